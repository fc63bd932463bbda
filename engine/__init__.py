"""rank-engine: native-accelerated retrieval and ranking for e-commerce."""

from engine._simd_env import check_environment as _check_environment

_check_environment()

from engine import _core  # noqa: E402
from engine.errors import CorruptFileError  # noqa: E402
from engine.vector_index import VectorIndex  # noqa: E402
from engine.usearch_index import UsearchIndex  # noqa: E402

__version__ = _core.build_info()["version"]


def build_info() -> dict:
    """The build and run-time configuration of the native core.

    Keys: ``simd`` (the instruction-set level in use: ``avx512``, ``avx2`` or
    ``scalar``; ``ENGINE_SIMD`` lowers it), ``simd_supported`` (levels this CPU
    can run), ``compiler`` and ``version``.
    """
    return dict(_core.build_info())


__all__ = ["VectorIndex", "UsearchIndex", "CorruptFileError", "build_info", "__version__"]
