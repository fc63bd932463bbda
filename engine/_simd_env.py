"""Checks ENGINE_SIMD before the native module reads it.

The native dispatcher can only lower the level; an unknown value would fall
back silently there, so it is rejected here, at import.
"""

import os

LEVELS = ("avx512", "avx2", "scalar")


def check_environment() -> None:
    forced = os.environ.get("ENGINE_SIMD")
    if forced is not None and forced not in LEVELS:
        raise ValueError(
            f"ENGINE_SIMD: expected one of {', '.join(LEVELS)}, got {forced!r}"
        )
