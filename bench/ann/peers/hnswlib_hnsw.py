"""hnswlib: ``hnswlib.Index`` (HNSW) with its Python filter callback."""

from __future__ import annotations

import hnswlib
import numpy as np

from bench.ann.peers.base import HNSW_EF, Runtime


class HnswlibHNSW(Runtime):
    library = "hnswlib"
    label = "hnswlib"
    knob = "ef"
    sweep = HNSW_EF

    def __init__(self, k: int, dim: int, m: int = 16, ef_construction: int = 200) -> None:
        super().__init__(k, dim)
        self.m, self.ef_construction = m, ef_construction
        self.index = hnswlib.Index(space="ip", dim=dim)
        self.config = f"Index('ip') M={m} ef_construction={ef_construction}"

    def build(self, workload) -> None:
        vectors = workload.catalogue.vectors
        self.index.init_index(max_elements=len(vectors), M=self.m,
                              ef_construction=self.ef_construction, random_seed=100)
        self.index.set_num_threads(1)
        self.index.add_items(vectors, np.arange(len(vectors)), num_threads=1)

    def size_bytes(self) -> int:
        return int(self.index.index_file_size())

    def searcher(self, knob, filter_case=None):
        index, k = self.index, self.k
        index.set_ef(max(knob, k))
        # hnswlib calls back into Python for every visited node; a bytearray
        # lookup is the cheapest predicate Python offers.
        allow = None
        if filter_case is not None:
            allow = bytearray(filter_case.mask.astype(np.uint8).tobytes()).__getitem__

        def search(q: np.ndarray) -> np.ndarray:
            return index.knn_query(q, k, num_threads=1, filter=allow)[0]

        return search
