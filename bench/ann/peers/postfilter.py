"""Baseline: over-fetch from an unfiltered FAISS IVF-Flat index, then drop rows that fail the filter.

This is what a service does with an ANN library that has no filters: ask for
k / selectivity * OVERFETCH neighbours and keep the first k that pass. The
filter check is part of the timed call.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from bench.ann.peers.faiss_indexes import FaissIVF

OVERFETCH = 2.0


class PostFilterIVF(FaissIVF):
    def __init__(self, k: int, dim: int) -> None:
        super().__init__(k, dim, codec="Flat")
        self.label = "post-filter (faiss IVF-Flat)"

    def build(self, workload) -> None:
        super().build(workload)
        self.config = f"over-fetch x{OVERFETCH:g}/selectivity, {self.config}"

    def searcher(self, knob, filter_case=None):
        if filter_case is None:
            return None  # only the filtered comparison
        index, k = self.index, self.k
        mask = filter_case.mask
        fetch = min(len(mask), math.ceil(k / max(filter_case.selectivity, 1e-9) * OVERFETCH))
        params = faiss.SearchParametersIVF(nprobe=knob)

        def search(q: np.ndarray) -> np.ndarray:
            labels = index.search(q, fetch, params=params)[1]
            ok = (labels >= 0) & mask[np.maximum(labels, 0)]
            first = np.argsort(~ok, axis=1, kind="stable")[:, :k]
            out = np.take_along_axis(labels, first, axis=1)
            out[~np.take_along_axis(ok, first, axis=1)] = -1
            return out

        return search
