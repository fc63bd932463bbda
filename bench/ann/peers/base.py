"""What every competitor module provides: build once, then hand out searchers.

A runtime is one library in one configuration (``config`` is the string the
report quotes). The worker times only the callables that ``searcher``
returns; mapping their raw labels to row positions (``positions``) happens
after the clock stops, so id translation never counts against anyone.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Searcher = Callable[[np.ndarray], np.ndarray]  # (batch, dim) float32 -> raw labels (batch, k)

# Knob sweeps, ascending; the worker stops a sweep once recall@k >= 0.995 or
# a point gets too slow, so the tails cost nothing when they are not needed.
# Steps of about 1.2x up to the 0.99 region (every integer below 8, where a
# step of one is already 1.15-1.5x), so that no library is reported at a knob
# much above the one it needs for a recall target (the same grid for every
# library of a kind).
HNSW_EF = (10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 384,
           512, 768, 1024, 1536, 2048)
IVF_NPROBE = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 192,
              256, 384, 512, 768, 1024)


class Runtime:
    library: str = ""  # distribution name, for the version lookup and the report
    label: str = ""  # short name shown in tables and plots
    config: str = ""  # the configuration, as one quotable string (set by build)
    knob: str = ""  # the search-time accuracy knob swept
    sweep: tuple = ()
    default_knob = None  # a knob value to report as "default" (None: no such point)
    is_engine = False

    def __init__(self, k: int, dim: int) -> None:
        self.k = k
        self.dim = dim

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.library)
        except PackageNotFoundError:
            return "?"

    def build(self, workload) -> None:
        raise NotImplementedError

    def size_bytes(self) -> int | None:
        """The library's own account of the index size, if it has one."""
        return None

    def searcher(self, knob, filter_case=None) -> Searcher | None:
        """A callable searching a batch at ``knob``; None if this runtime cannot apply the filter."""
        raise NotImplementedError

    def exact_searcher(self) -> Searcher | None:
        return None

    def positions(self, raw: np.ndarray) -> np.ndarray:
        """Raw labels -> catalogue row positions (-1 for none). Default: labels are positions."""
        out = np.asarray(raw).astype(np.int64, copy=False)
        return np.where(out < 0, -1, out)

    def extra(self) -> dict:
        """Anything else worth recording (calibrated defaults, SIMD level...)."""
        return {}
