"""engine.VectorIndex: filtered nearest-neighbour retrieval over item embeddings."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine import _core, _validate, index_file

METRICS = ("ip", "cos", "l2")
STORAGES = ("f32", "f16", "i8")


class VectorIndex:
    """Nearest-neighbour search over item vectors with attribute filters.

    Rows live in immutable segments. Each large segment is partitioned into
    IVF lists (k-means, about ``4 * sqrt(n)`` of them) whose vectors are stored
    as ``storage`` codes; the f32 originals are kept, sorted by the attribute
    with the most distinct values (e.g. ``merchant_id``), for exact scans and
    to re-rank f16 / i8 candidates. The number of lists probed is calibrated
    at build time so that 99.5 % of the true top-10 of sampled rows fall in
    the probed lists.

    A search picks, per segment, the cheaper of two plans from the filter's
    selectivity: an exact SIMD scan of the matching rows (contiguous for the
    clustered attribute), or a walk over the lists nearest the query that
    checks the filter as it goes and keeps probing until it has seen
    ``C * sqrt(selectivity)`` matching rows, ``C`` being the rows an
    unfiltered search scans.

    Scores: ``ip`` and ``cos`` return similarities (higher first); ``l2``
    returns squared Euclidean distances (lower first).

    ``add`` and ``remove`` publish a new snapshot atomically: a concurrent
    search sees the catalogue before or after, never in between. All native
    work releases the GIL; one index may be searched from many threads.
    """

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        storage: str = "f32",
        *,
        nlist: int | None = None,
        min_ivf_rows: int = 20_000,
        seed: int = 0,
    ) -> None:
        dim = _validate.as_count(dim, "dim")
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
        if storage not in STORAGES:
            raise ValueError(f"storage: expected one of {STORAGES}, got {storage!r}")
        nlist = 0 if nlist is None else _validate.as_count(nlist, "nlist")
        min_ivf_rows = _validate.as_count(min_ivf_rows, "min_ivf_rows")
        seed = _validate.as_count(seed, "seed", minimum=0)
        self._native = _core.Index(dim, metric, storage, nlist, min_ivf_rows, seed)
        self._kinds: dict[str, str] = {}

    # -- properties -------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._native.dim

    @property
    def metric(self) -> str:
        return self._native.metric

    @property
    def storage(self) -> str:
        return self._native.storage

    @property
    def attributes(self) -> dict[str, str]:
        """Attribute columns and their kinds ('int' or 'bool'), fixed by the first add."""
        return dict(self._kinds)

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self.dim}, metric={self.metric!r}, storage={self.storage!r}, "
            f"rows={len(self)}, segments={self._native.segment_count})"
        )

    def stats(self) -> dict[str, Any]:
        """Segments with their rows, IVF lists and calibrated nprobe, and bytes held."""
        segments = []
        total = 0
        for seg in self._native.segments():
            meta, arrays = seg["meta"], seg["arrays"]
            nbytes = sum(a.nbytes for a in arrays.values())
            total += nbytes
            segments.append({
                "rows": meta["rows"], "live": meta["live"], "nlist": meta["nlist"],
                "default_nprobe": meta["default_nprobe"], "bytes": nbytes,
            })
        return {"rows": len(self), "segments": segments, "bytes": total}

    # -- writes -----------------------------------------------------------
    def add(self, ids: Any, vectors: Any, attributes: Any = None, *, threads: int = 1) -> None:
        """Add rows. ``ids``: unique non-negative integers (< 2**63) not yet in the index.

        ``vectors``: (n, dim) floats (numpy, or an Arrow FixedSizeList<float32>
        array / chunked array / polars Series). ``attributes``: a dict of
        equal-length integer or boolean arrays, or an Arrow table / record
        batch; the first add fixes the columns, later adds must give the same.
        """
        threads = _validate.as_count(threads, "threads")
        ids = _validate.as_ids(ids)
        vectors = _validate.as_matrix(vectors, self.dim, "vectors")
        if len(vectors) != len(ids):
            raise ValueError(f"vectors: expected {len(ids)} rows (one per id), got {len(vectors)}")
        _validate.unique_ids(ids)
        first = self._native.segment_count == 0
        kinds, block = _validate.as_attributes(attributes, len(ids), None if first else self._kinds)
        if not ids.size:
            return
        self._native.add(ids, vectors, list(kinds), block, threads)
        if first:
            self._kinds = kinds

    def remove(self, ids: Any, *, missing_ok: bool = False) -> int:
        """Remove rows by id; returns how many were removed.

        An id not in the index raises ValueError (nothing is removed) unless
        ``missing_ok``.
        """
        ids = _validate.as_ids(ids)
        return self._native.remove(ids, bool(missing_ok))

    def compact(self, *, threads: int = 1) -> None:
        """Rebuild all live rows into one segment with freshly trained IVF lists."""
        self._native.compact(_validate.as_count(threads, "threads"))

    # -- reads ------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int,
        filter: Any = None,
        ef: int | None = None,
        exact: bool = False,
        threads: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best rows for each query.

        ``queries``: (n, dim) or (dim,) floats (a 1-D query is a batch of one).
        ``filter``: ``{"merchant_id": 42, "in_stock": True}`` (equality),
        ``{"category_id": [3, 7]}`` (membership), conditions ANDed; or an array
        of allowed ids. ``ef``: IVF lists to probe at least (default: the
        calibrated value); more is slower and more accurate. ``exact``: brute
        force over every matching row. ``threads`` splits a batch of queries.

        Returns ``(ids, scores)`` of shape (n_queries, k): int64 ids padded with
        -1 and float32 scores padded with NaN when fewer than k rows match.
        """
        k = _validate.as_count(k, "k")
        threads = _validate.as_count(threads, "threads")
        nprobe = 0 if ef is None else _validate.as_count(ef, "ef")
        q = _validate.as_matrix(queries, self.dim, "queries", check_finite=False)
        conditions, allow = _validate.as_filter(filter, self._kinds)
        return self._native.search(q, k, conditions, allow, nprobe, bool(exact), threads)

    # -- files ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` atomically (temporary file, fsync, rename)."""
        index_file.save(self, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, verify: bool = True) -> "VectorIndex":
        """Read an index written by save().

        ``mmap``: map the file instead of reading it (arrays are paged in on
        use; an IVF segment's f32 vectors, which searches re-score at
        scattered rows, are copied to huge pages either way). ``verify``: check the checksum of every array. Structure is
        always validated. Raises engine.CorruptFileError naming the file.
        """
        return index_file.load(cls, os.fspath(path), mmap=mmap, verify=verify)
