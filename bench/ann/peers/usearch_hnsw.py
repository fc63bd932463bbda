"""usearch: ``usearch.index.Index`` (HNSW), f32 and i8 vectors, called directly."""

from __future__ import annotations

import numpy as np
from usearch.index import Index

from bench.ann.peers.base import HNSW_EF, Runtime


class UsearchHNSW(Runtime):
    library = "usearch"
    knob = "expansion_search"
    sweep = HNSW_EF
    default_knob = None

    def __init__(self, k: int, dim: int, dtype: str = "f32", connectivity: int = 16,
                 expansion_add: int = 128) -> None:
        super().__init__(k, dim)
        self.label = f"usearch {dtype}"
        # Vectors are unit norm, so 'ip' and 'cos' rank alike. f32 uses 'ip' like
        # everyone else; i8 uses 'cos', which usearch quantises better (recall
        # tops out near 0.92 instead of 0.90 on this data).
        metric = "cos" if dtype == "i8" else "ip"
        self.index = Index(ndim=dim, metric=metric, dtype=dtype, connectivity=connectivity,
                           expansion_add=expansion_add)
        self.config = (f"Index(metric='{metric}', dtype='{dtype}', connectivity={connectivity}, "
                       f"expansion_add={expansion_add})")

    def build(self, workload) -> None:
        vectors = workload.catalogue.vectors
        self.index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=1)
        self.config += f" [{self.index.hardware_acceleration}]"

    def size_bytes(self) -> int:
        return int(self.index.memory_usage)

    def searcher(self, knob, filter_case=None):
        if filter_case is not None:
            return None  # the Python API has no predicate search
        index, k = self.index, self.k
        index.expansion_search = knob

        def search(q: np.ndarray) -> np.ndarray:
            return index.search(q, k, threads=1).keys

        return search

    def positions(self, raw: np.ndarray) -> np.ndarray:
        out = np.asarray(raw).astype(np.int64)
        return np.where((out < 0) | (out >= len(self.index)), -1, out)

    def extra(self) -> dict:
        return {"hardware_acceleration": self.index.hardware_acceleration}
