"""rank-engine: native-accelerated retrieval and ranking for e-commerce."""

from engine._simd_env import check_environment as _check_environment

_check_environment()

from engine import _core  # noqa: E402
from engine.errors import CorruptFileError  # noqa: E402
from engine.features import FeatureAssembler, FeatureSpec  # noqa: E402
from engine.forest import Forest, compile_forest  # noqa: E402
from engine.vector_index import VectorIndex  # noqa: E402

__version__ = _core.build_info()["version"]


def build_info() -> dict:
    """The build and run-time configuration of the native core.

    Keys: ``simd`` (the instruction-set level in use: ``avx512``, ``avx2`` or
    ``scalar``; ``ENGINE_SIMD`` lowers it), ``simd_supported`` (levels this CPU
    can run), ``kernels`` and ``forest_kernels`` (the distance and forest kernel
    tables in use; ``avx512-vbmi`` is the binned forest walk), ``compiler`` and
    ``version``.
    """
    return dict(_core.build_info())


_PIPELINE = {
    "Ranker": "engine.ranking", "RankRequest": "engine.ranking", "RankResponse": "engine.ranking",
    "SurfaceSettings": "engine.ranking", "ValueModel": "engine.ranking", "ValueTerm": "engine.ranking",
    "RerankPolicy": "engine.ranking", "build_bundle": "engine.bundle", "ImpressionLogger": "engine.impressions",
    "read_impressions": "engine.impressions", "make_world": "engine.datasets",
}


def __getattr__(name: str):
    # usearch is imported on first use only: its wheel bundles its own C++
    # runtime, and loading it before FAISS makes FAISS crash in
    # faiss.index_factory, so `import engine` must not load it.
    if name == "UsearchIndex":
        from engine.usearch_index import UsearchIndex

        return UsearchIndex
    # Numba (and torch, for engine.losses.torch_loss) load on first use only.
    if name in ("losses", "metrics", "datasets", "impressions", "bundle", "ranking"):
        import importlib

        return importlib.import_module(f"engine.{name}")
    # The pipeline's entry points, imported on first use (pyarrow IPC, LightGBM paths).
    if name in _PIPELINE:
        import importlib

        return getattr(importlib.import_module(_PIPELINE[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "VectorIndex", "UsearchIndex", "Forest", "compile_forest", "FeatureSpec", "FeatureAssembler",
    "CorruptFileError", "build_info", "__version__", *_PIPELINE,
]
