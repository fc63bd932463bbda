"""rank-engine: ``engine.VectorIndex`` (IVF lists over f32 / f16 / i8 codes)."""

from __future__ import annotations

import numpy as np

from bench.ann.peers.base import IVF_NPROBE, Runtime
from bench.machine import import_engine, loaded_engine_build

engine = import_engine()  # waits out a rebuild of the native module in progress
LOADED_BUILD = loaded_engine_build(engine)


class EngineIVF(Runtime):
    library = "rank-engine"
    knob = "ef"
    sweep = tuple(p for p in IVF_NPROBE if p >= 4)
    is_engine = True

    def __init__(self, k: int, dim: int, storage: str = "f32") -> None:
        super().__init__(k, dim)
        self.storage = storage
        self.label = f"engine {storage}"
        self.index = engine.VectorIndex(dim, "ip", storage)
        self.config = f"VectorIndex({dim}, 'ip', '{storage}')"
        self._positions = None

    def version(self) -> str:
        return engine.__version__

    def build(self, workload) -> None:
        cat = workload.catalogue
        self.index.add(cat.ids, cat.vectors, cat.attributes, threads=1)
        seg = self.index.stats()["segments"]
        lists = "+".join(str(s["nlist"]) for s in seg)
        nprobe = "+".join(str(s["default_nprobe"]) for s in seg)
        self.config += f" nlist={lists} default ef={nprobe}"
        self._positions = workload.positions_of

    def size_bytes(self) -> int:
        return int(self.index.stats()["bytes"])

    def searcher(self, knob, filter_case=None):
        index, k = self.index, self.k
        filt = None if filter_case is None else filter_case.engine_filter()

        def search(q: np.ndarray) -> np.ndarray:
            return index.search(q, k, filter=filt, ef=knob, threads=1)[0]

        return search

    def exact_searcher(self):
        index, k = self.index, self.k

        def search(q: np.ndarray) -> np.ndarray:
            return index.search(q, k, exact=True, threads=1)[0]

        return search

    def positions(self, raw: np.ndarray) -> np.ndarray:
        return self._positions(raw)

    def extra(self) -> dict:
        return {"build_info": engine.build_info(), "stats": {
            "segments": [{k: v for k, v in s.items()} for s in self.index.stats()["segments"]]},
            **LOADED_BUILD}
