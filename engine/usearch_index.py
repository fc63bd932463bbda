"""engine.UsearchIndex: VectorIndex's interface over a usearch HNSW graph."""

from __future__ import annotations

import math
import os
import re
import secrets
import tempfile
import threading
import zlib
from contextlib import contextmanager
from typing import Annotated, Any, Iterator, Literal

import msgspec
import numpy as np
from usearch.index import DEFAULT_CONNECTIVITY, DEFAULT_EXPANSION_ADD, DEFAULT_EXPANSION_SEARCH
from usearch.index import Index as _UIndex
from usearch.index import MetricKind, ScalarKind

from engine import _safetensors, _validate
from engine._validate import AttributeColumn
from engine.errors import CorruptFileError

METRICS = ("ip", "cos", "l2")
STORAGES = ("f32", "f16", "i8")

_USEARCH_METRIC = {"ip": "ip", "cos": "cos", "l2": "l2sq"}
_METRIC_KIND = {"ip": MetricKind.IP, "cos": MetricKind.Cos, "l2": MetricKind.L2sq}
_SCALAR_KIND = {"f32": ScalarKind.F32, "f16": ScalarKind.F16, "i8": ScalarKind.I8}

# Elements of a (queries x rows) score block computed at once by the numpy paths.
_BLOCK = 1 << 22


class UsearchIndex:
    """Nearest-neighbour search over item vectors with attribute filters, on usearch.

    Same methods, arguments, errors and score conventions as ``VectorIndex``;
    the graph is a ``usearch.index.Index`` (HNSW) with ``connectivity`` (M),
    ``expansion_add`` (efConstruction) and ``expansion_search`` (ef) passed
    through (None: usearch's defaults, 16 / 128 / 64).

    Data kept beside the graph. usearch keys are internal row numbers; this
    object keeps, per row, the id (uint64), a live flag, an f32 copy of the
    vector (unit-normalised for ``cos``) and the attribute columns (int64,
    bools as 0/1), plus the live ids sorted for id -> row look-ups. Memory is
    therefore the graph (``storage``-sized vectors + links) plus
    ``4 * dim + 9 + 8 * n_columns`` bytes per row added and 16 per live row.
    Removed rows stay as tombstones (in usearch too; there is no compaction:
    build a new index to reclaim them); their row numbers are never reused.

    Scores: ``ip`` and ``cos`` return similarities (higher first), ``l2``
    squared Euclidean distances (lower first). Every returned score is
    recomputed from the f32 copy, not taken from usearch's distances
    (``1 - sim`` for ip / cos, quantised for f16 / i8), so the exact and
    graph paths give the same score for the same row and match numpy in
    float32.

    Search plans, chosen per call from the filter:

    * ``exact=True``, or a filter matching at most ``max(exact_max_rows,
      exact_max_fraction * len(self))`` rows (2048 rows / 2 %): brute force
      in numpy (BLAS) over the matching rows' f32 vectors. Exact.
    * Otherwise the HNSW graph. With a filter of selectivity ``s`` (matching
      / live rows) it asks usearch for ``ceil(want / s * overfetch)``
      neighbours (``overfetch`` = 2), drops those that fail the filter, and
      for the queries still holding fewer than ``want`` matches asks again
      with 4x as many, while the request stays below both the number of
      matching rows (past that, scanning them is cheaper than visiting that
      much of the graph) and the whole index; the queries still short then
      get the exact scan over the matching rows.
      ``want`` is ``k`` for f32 storage and ``rerank_factor * k`` (4k) for
      f16 / i8, whose candidates are re-ranked with the f32 copy.
      usearch explores ``max(ef, requested)`` candidates, so over-fetching
      also deepens the search; a filtered request is raised to ``ef``, since
      those candidates are visited anyway.

    The matching rows are found with vectorised numpy over the attribute
    columns (one pass per call, shared by the batch of queries).

    What it cannot do: usearch's Python API has no predicate callback, so the
    graph walk is not filter-aware. Recall under a filter rests on the
    over-fetch, i.e. on how well HNSW ranks the top ``k / s * 2`` rather
    than the top ``k``: filters correlated with the query (all matches far
    from it) cost repeated, growing searches and usually end in the exact
    scan; filters that keep most rows behave like unfiltered search. For
    ``ip`` the deep lists are the weak point (HNSW over inner products is
    not a metric graph): on clustered test data a 10 % filter forced through
    the graph reached recall@10 of 0.82 on one set and 0.9+ on another,
    against 0.99+ for cos / l2; raise ``ef`` (a filtered request asks for at
    least ``ef`` rows) or the exact thresholds. The thresholds are the class
    attributes ``exact_max_rows``, ``exact_max_fraction``, ``overfetch`` and
    ``rerank_factor`` (an instance may override them).

    ``ef``: usearch keeps the search expansion on the index, not per call, so
    a search with ``ef`` sets the index's ``expansion_search`` to ``ef`` for
    its duration (``None``: the constructor's ``expansion_search``).
    Searches wanting different expansions therefore take turns; searches
    with the same one run together.

    ``storage``: usearch's i8 normalises every vector, which turns ``ip``
    and ``l2`` into cosine ranking, so ``storage='i8'`` is only accepted with
    ``metric='cos'``.

    Threads: searches may run concurrently with each other (usearch holds
    the GIL during its own search, so they interleave rather than run in
    parallel; ``threads`` parallelises a batch inside usearch, and the numpy
    scans use BLAS threads). ``add`` and ``remove`` take the index alone:
    they wait for running searches to finish and hold new ones back, so a
    search sees the index before or after a write, never in between.

    ``seed`` is recorded for parity with VectorIndex; usearch draws HNSW
    levels from its own fixed-seed generator (a build with ``threads=1`` is
    reproducible; with more threads the insertion order, and so the graph,
    varies).
    """

    exact_max_rows: int = 2048
    exact_max_fraction: float = 0.02
    overfetch: float = 2.0
    rerank_factor: int = 4

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        storage: str = "f32",
        *,
        connectivity: int | None = None,
        expansion_add: int | None = None,
        expansion_search: int | None = None,
        seed: int = 0,
    ) -> None:
        dim = _validate.as_count(dim, "dim")
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
        if storage not in STORAGES:
            raise ValueError(f"storage: expected one of {STORAGES}, got {storage!r}")
        if storage == "i8" and metric != "cos":
            raise ValueError(
                f"storage: 'i8' needs metric='cos' (usearch normalises i8 vectors, so "
                f"{metric!r} rankings would be wrong); use 'f16' or 'f32'"
            )
        connectivity = DEFAULT_CONNECTIVITY if connectivity is None else _validate.as_count(
            connectivity, "connectivity", minimum=2)
        expansion_add = DEFAULT_EXPANSION_ADD if expansion_add is None else _validate.as_count(
            expansion_add, "expansion_add")
        expansion_search = DEFAULT_EXPANSION_SEARCH if expansion_search is None else (
            _validate.as_count(expansion_search, "expansion_search"))
        seed = _validate.as_count(seed, "seed", minimum=0)
        self._setup(dim, metric, storage, connectivity, expansion_add, expansion_search, seed)
        self._usearch = self._new_graph()

    def _setup(self, dim: int, metric: str, storage: str, connectivity: int,
               expansion_add: int, expansion_search: int, seed: int) -> None:
        self._dim, self._metric, self._storage = dim, metric, storage
        self._connectivity, self._expansion_add = connectivity, expansion_add
        self._expansion_search, self._seed = expansion_search, seed
        self._viewed = False  # the graph maps a file read-only: copy it before a write
        self._kinds: dict[str, str] = {}
        self._n_rows = 0  # rows ever added (live + tombstones)
        self._ids = np.empty(0, dtype=np.uint64)  # row -> id
        self._live = np.empty(0, dtype=bool)
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._attrs = np.empty((0, 0), dtype=np.int64)  # (columns, rows)
        self._writable = True  # False while the row arrays are views of a loaded file
        self._sorted_ids = np.empty(0, dtype=np.uint64)  # live ids, ascending
        self._sorted_rows = np.empty(0, dtype=np.int64)  # their rows
        self._gate = _Gate(self._set_expansion, expansion_search)

    def _new_graph(self) -> _UIndex:
        return _UIndex(
            ndim=self._dim, metric=_USEARCH_METRIC[self._metric], dtype=self._storage,
            connectivity=self._connectivity, expansion_add=self._expansion_add,
            expansion_search=self._expansion_search,
        )

    def _set_expansion(self, expansion: int) -> None:
        self._usearch.expansion_search = expansion

    # -- properties -------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def storage(self) -> str:
        return self._storage

    @property
    def connectivity(self) -> int:
        return self._connectivity

    @property
    def expansion_add(self) -> int:
        return self._expansion_add

    @property
    def expansion_search(self) -> int:
        """The search expansion (ef) used when ``search`` gets ``ef=None``."""
        return self._expansion_search

    @property
    def attributes(self) -> dict[str, str]:
        """Attribute columns and their kinds ('int' or 'bool'), fixed by the first add."""
        return dict(self._kinds)

    def __len__(self) -> int:
        return int(self._sorted_ids.size)

    def __repr__(self) -> str:
        return (
            f"UsearchIndex(dim={self.dim}, metric={self.metric!r}, storage={self.storage!r}, "
            f"rows={len(self)}, connectivity={self._connectivity})"
        )

    # -- writes -----------------------------------------------------------
    def add(self, ids: Any, vectors: Any, attributes: Any = None, *, threads: int = 1) -> None:
        """Add rows. ``ids``: unique non-negative integers (< 2**63) not yet in the index.

        ``vectors``: (n, dim) floats (numpy, or an Arrow FixedSizeList<float32>
        array / chunked array / polars Series). ``attributes``: a dict of
        equal-length integer or boolean arrays, or an Arrow table / record
        batch; the first add fixes the columns, later adds must give the same.
        ``threads``: usearch workers for the graph insertion.
        """
        threads = _validate.as_count(threads, "threads")
        ids = _validate.as_ids(ids)
        vectors = _validate.as_matrix(vectors, self.dim, "vectors")
        if len(vectors) != len(ids):
            raise ValueError(f"vectors: expected {len(ids)} rows (one per id), got {len(vectors)}")
        _validate.unique_ids(ids)
        if self._metric == "cos":
            vectors = _unit_rows(vectors, "vectors")
        with self._gate.write():
            first = self._n_rows == 0
            kinds, block = _validate.as_attributes(attributes, len(ids), None if first else self._kinds)
            if not first and kinds != self._kinds:  # as_attributes lets any columns past an empty schema
                raise ValueError(
                    f"attributes: the index has columns {self._kinds or 'none'}; "
                    f"this add gives {kinds or 'none'}"
                )
            found, _ = self._lookup(ids)
            if found.any():
                raise ValueError(f"ids: id {int(ids[found][0])} is already in the index")
            if not ids.size:
                return
            self._materialise()
            start, m = self._n_rows, len(ids)
            self._reserve(start + m, len(kinds))
            rows = np.arange(start, start + m, dtype=np.int64)
            try:
                self._usearch.add(rows.astype(np.uint64), vectors, threads=threads)
            except BaseException:  # e.g. MemoryError part-way: take back what went in
                self._usearch.remove(rows.astype(np.uint64), threads=1)
                raise
            self._ids[start:start + m] = ids
            self._live[start:start + m] = True
            self._vectors[start:start + m] = vectors
            self._attrs[:, start:start + m] = block
            self._n_rows = start + m
            order = np.argsort(ids, kind="stable")
            at = np.searchsorted(self._sorted_ids, ids[order])
            self._sorted_ids = np.insert(self._sorted_ids, at, ids[order])
            self._sorted_rows = np.insert(self._sorted_rows, at, rows[order])
            if first:
                self._kinds = kinds

    def remove(self, ids: Any, *, missing_ok: bool = False) -> int:
        """Remove rows by id; returns how many were removed.

        An id not in the index (or given twice) raises ValueError and nothing
        is removed, unless ``missing_ok``.
        """
        ids = _validate.as_ids(ids)
        if not missing_ok:
            _validate.unique_ids(ids)
        ids = np.unique(ids)
        with self._gate.write():
            found, at = self._lookup(ids)
            if not missing_ok and not found.all():
                raise ValueError(f"ids: id {int(ids[~found][0])} is not in the index")
            at = at[found]
            if not at.size:
                return 0
            rows = self._sorted_rows[at]
            self._materialise()
            self._reserve(self._n_rows, len(self._kinds))
            self._usearch.remove(rows.astype(np.uint64), threads=1)
            self._live[rows] = False
            self._sorted_ids = np.delete(self._sorted_ids, at)
            self._sorted_rows = np.delete(self._sorted_rows, at)
            return int(rows.size)

    def _lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: is it live, and its position in the sorted live ids."""
        at = np.searchsorted(self._sorted_ids, ids)
        found = np.zeros(ids.shape, dtype=bool)
        inside = at < self._sorted_ids.size
        found[inside] = self._sorted_ids[at[inside]] == ids[inside]
        return found, at

    def _materialise(self) -> None:
        """A viewed (memory-mapped) usearch index is immutable, and writing to
        it crashes the process: copy it into memory first."""
        if self._viewed:
            self._usearch = self._usearch.copy()
            self._usearch.expansion_add = self._expansion_add
            self._usearch.expansion_search = self._gate.expansion
            self._viewed = False

    def _reserve(self, rows: int, n_columns: int) -> None:
        """Room for ``rows`` rows in writable row arrays (amortised growth)."""
        capacity = self._ids.size
        if self._writable and rows <= capacity:
            return
        new = max(rows, capacity + capacity // 2, 1024) if rows > capacity else capacity
        n = self._n_rows
        ids = np.zeros(new, dtype=np.uint64)
        live = np.zeros(new, dtype=bool)
        vectors = np.zeros((new, self._dim), dtype=np.float32)
        attrs = np.zeros((n_columns, new), dtype=np.int64)
        ids[:n], live[:n], vectors[:n] = self._ids[:n], self._live[:n], self._vectors[:n]
        if n:
            attrs[:, :n] = self._attrs[:, :n]
        self._ids, self._live, self._vectors, self._attrs = ids, live, vectors, attrs
        self._writable = True

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
        of allowed ids (ids not in the index are ignored). ``ef``: usearch
        ``expansion_search`` for this call (default: the index's). ``exact``:
        brute force over every matching row. ``threads``: usearch workers
        splitting the batch.

        Returns ``(ids, scores)`` of shape (n_queries, k): int64 ids padded with
        -1 and float32 scores padded with NaN when fewer than k rows match.
        """
        k = _validate.as_count(k, "k")
        threads = _validate.as_count(threads, "threads")
        expansion = self._expansion_search if ef is None else _validate.as_count(ef, "ef")
        q = _validate.as_matrix(queries, self.dim, "queries")
        conditions, allow = _validate.as_filter(filter, self._kinds)
        if self._metric == "cos":
            q = _unit_rows(q, "queries")
        with self._gate.read(expansion):
            cand = self._candidates(q, k, conditions, allow, bool(exact), threads, expansion)
            return self._finish(q, cand, k)

    def _candidates(self, q, k, conditions, allow, exact, threads, expansion) -> np.ndarray:
        """(n_queries, width) candidate rows, -1 where none; width may differ from k."""
        n_live = len(self)
        if not len(q) or not n_live:
            return np.full((len(q), 0), -1, dtype=np.int64)
        mask = self._match(conditions, allow) if (conditions or allow is not None) else None
        n_match = n_live if mask is None else int(np.count_nonzero(mask))
        if not n_match:
            return np.full((len(q), 0), -1, dtype=np.int64)
        small = mask is not None and n_match <= max(self.exact_max_rows, self.exact_max_fraction * n_live)
        if exact or small:
            return self._exact(q, k, mask, n_match)
        want = k if self._storage == "f32" else k * self.rerank_factor
        target = min(want, n_match)
        count = want if mask is None else math.ceil(want * n_live / n_match * self.overfetch)
        if mask is not None:  # usearch visits max(expansion, count) anyway: keep them all
            count = max(count, expansion)
        out = np.full((len(q), want), -1, dtype=np.int64)
        pending = np.arange(len(q))
        # A request beyond the matching rows visits more of the graph than a scan of
        # those rows would: stop there (and at the whole index) and scan instead.
        while pending.size and count < n_live and count <= n_match:
            keys = self._graph_search(q[pending], count, threads)
            ok = keys >= 0
            if mask is not None:
                ok[ok] = mask[keys[ok]]
            done = ok.sum(axis=1) >= target
            if done.any():
                # The first `want` matches of each finished query, in graph order.
                order = np.argsort(~ok[done], axis=1, kind="stable")[:, :want]
                picked = np.take_along_axis(keys[done], order, axis=1)
                picked[~np.take_along_axis(ok[done], order, axis=1)] = -1
                out[pending[done], :picked.shape[1]] = picked
            pending = pending[~done]
            count *= 4
        if pending.size:  # the graph could not supply enough matches: scan them
            rows = self._exact(q[pending], want, mask, n_match)
            out[pending] = -1
            out[pending, :rows.shape[1]] = rows
        return out

    def _graph_search(self, q: np.ndarray, count: int, threads: int) -> np.ndarray:
        found = self._usearch.search(q, count, threads=threads)
        if len(q) == 1:  # usearch returns Matches, not BatchMatches, for one query
            keys = np.full((1, count), -1, dtype=np.int64)
            keys[0, :len(found.keys)] = found.keys
            return keys
        keys = found.keys.astype(np.int64)
        keys[np.arange(keys.shape[1])[None, :] >= found.counts[:, None]] = -1
        return keys

    def _match(self, conditions, allow) -> np.ndarray:
        """Live rows passing the filter, as a bool mask over rows."""
        n = self._n_rows
        if allow is not None:
            found, at = self._lookup(allow)
            mask = np.zeros(n, dtype=bool)
            mask[self._sorted_rows[at[found]]] = True
            return mask
        mask = self._live[:n].copy()
        columns = list(self._kinds)
        for name, values in conditions:
            column = self._attrs[columns.index(name), :n]
            if values.size == 1:
                mask &= column == values[0]
            else:
                mask &= np.isin(column, values)
        return mask

    def _exact(self, q: np.ndarray, k: int, mask: np.ndarray | None, n_match: int) -> np.ndarray:
        """Top-k rows by brute force over the live rows passing ``mask``."""
        n = self._n_rows
        allowed = self._live[:n] if mask is None else mask
        if n_match * 2 < n:  # gather the few matching rows
            rows = np.flatnonzero(allowed)
            x, dead = self._vectors[rows], None
        else:  # scan everything in place and mask the rest
            rows, x = None, self._vectors[:n]
            dead = None if n_match == n else ~allowed
        kk = min(k, n_match)
        sqnorm = np.einsum("ij,ij->i", x, x) if self._metric == "l2" else None
        out = np.empty((len(q), kk), dtype=np.int64)
        step = max(1, _BLOCK // max(1, len(x)))
        for lo in range(0, len(q), step):
            s = q[lo:lo + step] @ x.T
            if sqnorm is not None:  # -|q - x|^2 up to a per-query constant
                s *= 2
                s -= sqnorm
            if dead is not None:
                s[:, dead] = -np.inf
            if kk < s.shape[1]:
                top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            else:  # every column is a match
                top = np.broadcast_to(np.arange(kk), s.shape)
            out[lo:lo + step] = top if rows is None else rows[top]
        return out

    def _finish(self, q: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact f32 scores for the candidate rows; the best k, padded."""
        nq, width = cand.shape
        ids = np.full((nq, k), -1, dtype=np.int64)
        scores = np.full((nq, k), np.nan, dtype=np.float32)
        if not width or not nq:
            return ids, scores
        keep = min(k, width)
        step = max(1, _BLOCK // (width * self._dim))
        for lo in range(0, nq, step):
            c = cand[lo:lo + step]
            valid = c >= 0
            x = self._vectors[np.where(valid, c, 0)]
            qs = q[lo:lo + step, None, :]
            if self._metric == "l2":
                diff = x - qs
                s = np.einsum("qcd,qcd->qc", diff, diff)
                rank = -s
            else:
                s = np.einsum("qcd,qcd->qc", x, np.broadcast_to(qs, x.shape))
                rank = s.copy()
            rank[~valid] = -np.inf
            order = np.argsort(-rank, axis=1, kind="stable")[:, :keep]
            rows = np.take_along_axis(c, order, axis=1)
            ok = rows >= 0
            ids[lo:lo + step, :keep] = np.where(ok, self._ids[np.where(ok, rows, 0)].astype(np.int64), -1)
            scores[lo:lo + step, :keep] = np.where(ok, np.take_along_axis(s, order, axis=1), np.nan)
        return ids, scores

    # -- files ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` plus a graph file beside it.

        ``path`` is a safetensors file (ids, live flags, f32 vectors,
        attributes, each with a CRC-32) whose ``__metadata__`` holds a
        versioned msgspec header naming the usearch graph file
        (``<name>.<random>.usearch`` in the same folder) with its size and
        CRC-32. The graph is written under a temporary name, fsynced and
        renamed first; then ``path`` is replaced atomically (temporary file,
        fsync, rename), which is the commit point: a reader sees the old pair
        or the new pair. The previous graph file is deleted afterwards (a
        crash in between can leave an orphan ``.usearch`` file, never an
        inconsistent index). Searches may run during a save.
        """
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        base = os.path.basename(path)
        with self._gate.read(None):
            graph_name = f"{base}.{secrets.token_hex(8)}.usearch"
            graph_path = os.path.join(folder, graph_name)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".usearch", dir=folder)
            os.close(fd)
            try:
                self._usearch.save(tmp)
                size, crc = _fsync_and_crc(tmp)
                os.replace(tmp, graph_path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            n = self._n_rows
            header = _Header(
                format=FORMAT, format_version=FORMAT_VERSION, dim=self._dim, metric=self._metric,
                storage=self._storage, connectivity=self._connectivity,
                expansion_add=self._expansion_add, expansion_search=self._expansion_search,
                seed=self._seed, columns=[AttributeColumn(c, kind) for c, kind in self._kinds.items()],
                rows=n, live=len(self), graph=_Graph(file=graph_name, bytes=size, crc32=crc),
            )
            arrays = {"ids": self._ids[:n], "live": self._live[:n], "vectors": self._vectors[:n],
                      "attributes": self._attrs[:, :n]}
            # Empty arrays hold nothing, and _safetensors can neither checksum an empty
            # 2-D array nor read a file whose data region is empty but described.
            arrays = {name: a for name, a in arrays.items() if a.size}
            previous = _previous_graph(path)
            try:
                _safetensors.write_versioned(path, arrays, _HEADER_KEY, header)
            except BaseException:
                os.unlink(graph_path)
                raise
            if previous and previous != graph_name:
                try:
                    os.unlink(os.path.join(folder, previous))
                except OSError:
                    pass  # already gone, or not ours to delete: harmless

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = True, verify: bool = True) -> "UsearchIndex":
        """Read an index written by save().

        ``mmap``: map both files instead of reading them (usearch ``view``,
        arrays paged in on use); the first add or remove then copies the graph
        into memory. Otherwise usearch ``load`` and in-memory arrays.
        ``verify``: check the CRC-32 of every array and of the graph file.
        Structure is always validated (shapes, ids, the graph's size, metric,
        dtype, dimensions and keys against the header). With
        ``verify=False`` a graph file whose bytes were altered in place
        (same size) is handed to usearch unchecked. Raises
        engine.CorruptFileError naming the file.
        """
        path = os.fspath(path)

        def corrupt(why: str) -> CorruptFileError:
            return CorruptFileError(f"{path}: {why}")

        arrays, h = _safetensors.read_versioned(path, _HEADER_KEY, _Header, FORMAT, FORMAT_VERSION,
                                                mmap=mmap, verify=verify)
        if h.storage == "i8" and h.metric != "cos":
            raise corrupt(f"storage 'i8' with metric {h.metric!r}")
        n, ncols = h.rows, len(h.columns)
        if len({c.name for c in h.columns}) != ncols:
            raise corrupt("duplicate attribute column names")
        expected = {
            "ids": (np.uint64, (n,)), "live": (np.bool_, (n,)),
            "vectors": (np.float32, (n, h.dim)), "attributes": (np.int64, (ncols, n)),
        }
        stored = {name for name, (_, shape) in expected.items() if 0 not in shape}
        if set(arrays) != stored:
            raise corrupt(f"arrays {sorted(arrays)}, expected {sorted(stored)}")
        for name, (dtype, shape) in expected.items():
            a = arrays.setdefault(name, np.empty(shape, dtype=dtype))
            if a.dtype != dtype or a.shape != shape:
                raise corrupt(f"array {name!r} is {a.dtype} {a.shape}, expected {np.dtype(dtype)} {shape}")
        ids, live, vectors, attrs = arrays["ids"], arrays["live"], arrays["vectors"], arrays["attributes"]
        rows = np.flatnonzero(live)
        if rows.size != h.live:
            raise corrupt(f"{rows.size} live rows, the header says {h.live}")
        if n and int(ids.max()) > _validate.MAX_ID:
            raise corrupt("an id is above 2**63 - 1")
        order = np.argsort(ids[rows], kind="stable")
        sorted_ids, sorted_rows = ids[rows][order], rows[order]
        if sorted_ids.size and (sorted_ids[1:] == sorted_ids[:-1]).any():
            raise corrupt("a live id appears twice")
        for i, c in enumerate(h.columns):
            if c.kind == "bool" and n and not np.isin(attrs[i], (0, 1)).all():
                raise corrupt(f"boolean attribute {c.name!r} holds values other than 0 / 1")
        if verify and not np.isfinite(vectors).all():
            raise corrupt("vectors contain NaN or infinity")

        graph_path = _graph_path(path, h.graph.file, corrupt)
        try:
            size = os.stat(graph_path).st_size
        except OSError as e:
            raise corrupt(f"graph file {h.graph.file!r} unreadable ({e.strerror})") from None
        if size != h.graph.bytes:
            raise corrupt(f"graph file {h.graph.file!r} holds {size} bytes, "
                          f"expected {h.graph.bytes} (truncated?)")
        if verify and _fsync_and_crc(graph_path, sync=False)[1] != h.graph.crc32:
            raise corrupt(f"graph file {h.graph.file!r} fails its checksum (corrupt data)")
        try:
            info = _UIndex.metadata(graph_path)
        except (ValueError, RuntimeError, OSError) as e:
            raise corrupt(f"graph file {h.graph.file!r} is not a usearch index ({e})") from None
        want = {"dimensions": h.dim, "kind_metric": _METRIC_KIND[h.metric],
                "kind_scalar": _SCALAR_KIND[h.storage], "count_present": h.live}
        got = {key: (info or {}).get(key) for key in want}
        if got != want:
            raise corrupt(f"graph file {h.graph.file!r} describes {got}, the header {want}")

        index = cls.__new__(cls)
        index._setup(h.dim, h.metric, h.storage, h.connectivity, h.expansion_add, h.expansion_search, h.seed)
        graph = index._new_graph()
        try:
            if mmap:
                graph.view(graph_path)
            else:
                graph.load(graph_path)
        except (ValueError, RuntimeError, OSError) as e:
            raise corrupt(f"graph file {h.graph.file!r}: {e}") from None
        graph.expansion_add, graph.expansion_search = h.expansion_add, h.expansion_search
        if graph.connectivity != h.connectivity or len(graph) != h.live:
            raise corrupt(f"graph file {h.graph.file!r} does not match the header "
                          f"(connectivity {graph.connectivity}, {len(graph)} rows)")
        keys = np.sort(np.asarray(graph.keys, dtype=np.uint64))
        if not np.array_equal(keys, rows.astype(np.uint64)):
            raise corrupt(f"graph file {h.graph.file!r} holds other rows than the live ones")
        index._usearch, index._viewed = graph, bool(mmap)
        index._kinds = {c.name: c.kind for c in h.columns}
        index._n_rows = n
        index._ids, index._live, index._vectors, index._attrs = ids, live, vectors, attrs
        index._writable = False
        index._sorted_ids, index._sorted_rows = sorted_ids, sorted_rows.astype(np.int64)
        return index


# -- concurrency -------------------------------------------------------------
class _Gate:
    """Readers share the index, a writer has it alone (writers go first).

    usearch keeps the search expansion on the index, so readers share it
    only with readers wanting the same expansion; the first reader of a
    group sets it. A reader asking for ``None`` joins any group. New readers
    do not join a running group while a reader waits for another expansion,
    so one busy expansion cannot starve the others.
    """

    def __init__(self, apply: Any, expansion: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._apply = apply
        self.expansion = expansion  # what the usearch index is set to
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._others_waiting = 0

    @contextmanager
    def read(self, expansion: int | None) -> Iterator[None]:
        with self._cond:
            other = False
            while True:
                if not self._writing and not self._writers_waiting:
                    if self._readers == 0:
                        break
                    if (expansion is None or expansion == self.expansion) and not (
                        self._others_waiting and not other
                    ):
                        break
                if expansion is not None and expansion != self.expansion and not other:
                    other = True
                    self._others_waiting += 1
                self._cond.wait()
            if other:
                self._others_waiting -= 1
            if expansion is not None and expansion != self.expansion:
                self._apply(expansion)
                self.expansion = expansion
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


# -- helpers -----------------------------------------------------------------
def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    zero = norms == 0
    if zero.any():
        raise ValueError(f"{name}: row {int(np.flatnonzero(zero)[0])} is the zero vector, "
                         "which has no cosine similarity")
    return (x / norms[:, None]).astype(np.float32)


def _fsync_and_crc(path: str, sync: bool = True) -> tuple[int, int]:
    crc, size = 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return size, crc


_GRAPH_NAME = re.compile(r"[^/\\\x00]+\.[0-9a-f]{16}\.usearch")


def _graph_path(path: str, name: str, corrupt: Any) -> str:
    """The graph file named in a header: a plain name in the folder of ``path``."""
    if not _GRAPH_NAME.fullmatch(name) or name.startswith("."):
        raise corrupt(f"graph file name {name!r} is not a plain file name")
    return os.path.join(os.path.dirname(os.path.abspath(path)), name)


def _previous_graph(path: str) -> str | None:
    """The graph file of the index now at ``path``, to delete once replaced."""
    if not os.path.exists(path):
        return None
    try:
        _, meta = _safetensors.read(path, mmap=True, verify=False)
        header = msgspec.json.decode(meta[_HEADER_KEY], type=_Header)
    except Exception:  # not our file, or unreadable: leave whatever is there
        return None
    name = header.graph.file
    if _GRAPH_NAME.fullmatch(name) and name.startswith(os.path.basename(path) + "."):
        return name
    return None


# -- file header -------------------------------------------------------------
FORMAT = "rank-engine/usearch-index"
FORMAT_VERSION = 1
_HEADER_KEY = "rank_engine.usearch_index"

_Count = Annotated[int, msgspec.Meta(ge=0)]
_Positive = Annotated[int, msgspec.Meta(ge=1)]


class _Graph(msgspec.Struct, forbid_unknown_fields=True):
    file: str
    bytes: _Count
    crc32: _Count


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    format_version: int
    dim: _Positive
    metric: Literal["ip", "cos", "l2"]
    storage: Literal["f32", "f16", "i8"]
    connectivity: Annotated[int, msgspec.Meta(ge=2)]
    expansion_add: _Positive
    expansion_search: _Positive
    seed: _Count
    columns: list[AttributeColumn]
    rows: _Count
    live: _Count
    graph: _Graph
