"""One module per competitor; ``RUNTIMES`` maps a runtime name to (module, class, kwargs).

Modules are imported only inside the worker that runs them, so a missing peer
library (ImportError) skips that runtime with a note instead of failing the run.
"""

RUNTIMES: dict[str, tuple[str, str, dict]] = {
    "engine-f32": ("bench.ann.peers.rank_engine", "EngineIVF", {"storage": "f32"}),
    "engine-f16": ("bench.ann.peers.rank_engine", "EngineIVF", {"storage": "f16"}),
    "engine-i8": ("bench.ann.peers.rank_engine", "EngineIVF", {"storage": "i8"}),
    "usearch-f32": ("bench.ann.peers.usearch_hnsw", "UsearchHNSW", {"dtype": "f32"}),
    "usearch-i8": ("bench.ann.peers.usearch_hnsw", "UsearchHNSW", {"dtype": "i8"}),
    "faiss-hnsw32": ("bench.ann.peers.faiss_indexes", "FaissHNSW", {"m": 32}),
    "faiss-ivf-flat": ("bench.ann.peers.faiss_indexes", "FaissIVF", {"codec": "Flat"}),
    "faiss-ivf-sq8": ("bench.ann.peers.faiss_indexes", "FaissIVF", {"codec": "SQ8"}),
    "faiss-flat": ("bench.ann.peers.faiss_indexes", "FaissFlat", {}),
    "hnswlib": ("bench.ann.peers.hnswlib_hnsw", "HnswlibHNSW", {"m": 16, "ef_construction": 200}),
    "postfilter-faiss-ivf-flat": ("bench.ann.peers.postfilter", "PostFilterIVF", {}),
}
