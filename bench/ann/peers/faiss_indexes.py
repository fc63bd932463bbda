"""FAISS: HNSW32, IVF-Flat, IVF-SQ8 and the exact IndexFlatIP, one thread."""

from __future__ import annotations

import faiss
import numpy as np

from bench.ann.peers.base import HNSW_EF, IVF_NPROBE, Runtime
from bench.ann.workload import ivf_nlist

faiss.omp_set_num_threads(1)

# Points per list used to train the coarse quantizer (faiss warns below 39).
TRAIN_PER_LIST = 64


def _bitmap(mask: np.ndarray):
    """An IDSelectorBitmap over row positions, and the bytes it points into (keep alive)."""
    bits = np.packbits(mask, bitorder="little")
    return faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits)), bits


class _Faiss(Runtime):
    library = "faiss-cpu"

    def size_bytes(self) -> int:
        return int(faiss.serialize_index(self.index).nbytes)


class FaissHNSW(_Faiss):
    knob = "efSearch"
    sweep = HNSW_EF

    def __init__(self, k: int, dim: int, m: int = 32) -> None:
        super().__init__(k, dim)
        self.factory = f"HNSW{m},Flat"
        self.label = f"faiss HNSW{m}"
        self.index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        self.config = (f"index_factory('{self.factory}', IP) "
                       f"efConstruction={self.index.hnsw.efConstruction}")

    def build(self, workload) -> None:
        self.index.add(workload.catalogue.vectors)

    def searcher(self, knob, filter_case=None):
        index, k = self.index, self.k
        if filter_case is None:
            params = faiss.SearchParametersHNSW(efSearch=max(knob, k))
            keep = None
        else:
            sel, bits = _bitmap(filter_case.mask)
            keep = (sel, bits)  # params does not own the selector
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(knob, k))

        def search(q: np.ndarray, _keep=(keep, params)) -> np.ndarray:
            return index.search(q, k, params=params)[1]

        return search


class FaissIVF(_Faiss):
    knob = "nprobe"
    sweep = IVF_NPROBE

    def __init__(self, k: int, dim: int, codec: str = "Flat") -> None:
        super().__init__(k, dim)
        self.codec = codec
        self.label = f"faiss IVF-{codec}"
        self.index = None

    def build(self, workload) -> None:
        vectors = workload.catalogue.vectors
        nlist = ivf_nlist(len(vectors))
        self.factory = f"IVF{nlist},{self.codec}"
        self.index = faiss.index_factory(self.dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        n_train = min(len(vectors), TRAIN_PER_LIST * nlist)
        sample = np.random.default_rng(0).choice(len(vectors), n_train, replace=False)
        self.index.train(vectors[np.sort(sample)])
        self.index.add(vectors)
        self.config = f"index_factory('{self.factory}', IP) trained on {n_train} rows"
        self.sweep = tuple(p for p in IVF_NPROBE if p <= nlist)

    def searcher(self, knob, filter_case=None):
        index, k = self.index, self.k
        if filter_case is None:
            params, keep = faiss.SearchParametersIVF(nprobe=knob), None
        else:
            sel, bits = _bitmap(filter_case.mask)
            keep = (sel, bits)  # params does not own the selector
            params = faiss.SearchParametersIVF(sel=sel, nprobe=knob)

        def search(q: np.ndarray, _keep=(keep, params)) -> np.ndarray:
            return index.search(q, k, params=params)[1]

        return search


class FaissFlat(_Faiss):
    """Brute force; only takes part in the exact-search comparison."""

    label = "faiss Flat"
    sweep = ()

    def __init__(self, k: int, dim: int) -> None:
        super().__init__(k, dim)
        self.index = faiss.IndexFlatIP(dim)
        self.config = "IndexFlatIP"

    def build(self, workload) -> None:
        self.index.add(workload.catalogue.vectors)

    def searcher(self, knob, filter_case=None):
        return None

    def exact_searcher(self):
        index, k = self.index, self.k

        def search(q: np.ndarray) -> np.ndarray:
            return index.search(q, k)[1]

        return search
