"""Candidate sources that need no user vector: popular items and new items.

A cold-start shopper (no vector, no history) still needs a page, and a
product listed this morning has no embedding yet, so the ANN index cannot
find it. Both are served from lists precomputed at bundle build:

- ``popular``: item rows by descending popularity, overall and per
  merchant and per category (CSR: ``keys``, ``offsets``, ``rows``);
- ``new``: rows of items without an embedding, newest first, overall and
  per merchant and per category.

A request's scope picks the list: its ``merchant_id`` filter (store page),
else its ``category_id`` filter (search, browse), else the overall list.
Other filter conditions are then checked on the list's head, vectorised; the
overall list keeps only its ``GLOBAL_DEPTH`` best, so a very selective
filter on a home feed can return fewer items than asked (the ANN source
covers that case).
"""

from __future__ import annotations

import numpy as np

from engine import _core, _safetensors
from engine.errors import CorruptFileError

GLOBAL_DEPTH = 20_000
SCOPES = ("merchant_id", "category_id")


def _csr(keys: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group ``order`` (rows, best first) by ``keys[order]`` keeping the order within groups."""
    grouped = order[np.argsort(keys[order], kind="stable")]
    unique, starts = np.unique(keys[grouped], return_index=True)
    offsets = np.append(starts, len(grouped)).astype(np.int64)
    return unique.astype(np.int64), offsets, grouped.astype(np.int64)


class CandidateLists:
    """Popular and new item rows by scope; immutable, shared by all threads."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._a = arrays
        # What rows() reads per request, looked up once: (source, scope) -> the
        # arguments of _core.list_rows for that list (scope None: the overall one).
        self._lists = {(source, None): (arrays[f"{source}.all"], None, None, None) for source in ("popular", "new")}
        self._lists.update({(source, scope): (None, arrays[f"{source}.{scope}.keys"],
                                              arrays[f"{source}.{scope}.offsets"], arrays[f"{source}.{scope}.rows"])
                            for source in ("popular", "new") for scope in SCOPES})

    @classmethod
    def build(cls, popularity: np.ndarray, is_new: np.ndarray, attributes: dict[str, np.ndarray],
              age_days: np.ndarray | None = None) -> "CandidateLists":
        """``popularity``: a score per item row (higher first; NaN = never popular);
        ``is_new``: items that only the new-item source can reach; ``attributes``
        must hold ``merchant_id`` and ``category_id``; ``age_days`` orders new items."""
        popularity = np.asarray(popularity, dtype=np.float64)
        n = len(popularity)
        arrays: dict[str, np.ndarray] = {}
        known = ~np.isnan(popularity)
        order = np.flatnonzero(known)[np.argsort(-popularity[known], kind="stable")]
        fresh = np.flatnonzero(is_new)
        if age_days is not None:
            fresh = fresh[np.argsort(np.asarray(age_days)[fresh], kind="stable")]
        for source, rows in (("popular", order), ("new", fresh)):
            arrays[f"{source}.all"] = rows[:GLOBAL_DEPTH].astype(np.int64)
            for scope in SCOPES:
                column = np.asarray(attributes[scope], dtype=np.int64)
                if len(column) != n:
                    raise ValueError(f"attributes[{scope!r}]: expected {n} values, got {len(column)}")
                keys, offsets, grouped = _csr(column, rows)
                arrays[f"{source}.{scope}.keys"] = keys
                arrays[f"{source}.{scope}.offsets"] = offsets
                arrays[f"{source}.{scope}.rows"] = grouped
        arrays["n_items"] = np.array([n], dtype=np.int64)
        return cls(arrays)

    def save(self, path: str) -> None:
        _safetensors.write(path, dict(self._a), {"format": "rank-engine.candidate-lists", "version": "1"})

    @classmethod
    def load(cls, path: str, n_items: int) -> "CandidateLists":
        arrays, meta = _safetensors.read(path, mmap=False)
        if meta.get("format") != "rank-engine.candidate-lists" or meta.get("version") != "1":
            raise CorruptFileError(f"{path}: not a rank-engine candidate-lists file (version 1)")
        expected = {"n_items", *(f"{s}.all" for s in ("popular", "new"))}
        expected |= {f"{s}.{scope}.{p}" for s in ("popular", "new") for scope in SCOPES
                     for p in ("keys", "offsets", "rows")}
        if set(arrays) != expected:
            raise CorruptFileError(f"{path}: arrays {sorted(arrays)} differ from {sorted(expected)}")
        if int(arrays["n_items"][0]) != n_items:
            raise CorruptFileError(f"{path}: built for {int(arrays['n_items'][0])} items, the bundle has {n_items}")
        for name, a in arrays.items():
            if name.endswith((".rows", ".all")) and a.size and (a.min() < 0 or a.max() >= n_items):
                raise CorruptFileError(f"{path}: {name} holds rows outside 0..{n_items - 1}")
            if name.endswith(".offsets"):
                rows = arrays[name.replace(".offsets", ".rows")]
                keys = arrays[name.replace(".offsets", ".keys")]
                if (len(a) != len(keys) + 1 or a[0] != 0 or a[-1] != len(rows) or np.any(np.diff(a) < 0)):
                    raise CorruptFileError(f"{path}: {name} is not a valid offsets array")
        return cls(arrays)

    def native_lists(self) -> dict:
        """The lists as `_core.CandidateStage` takes them: per source, the
        overall list and per scope its (keys, offsets, rows)."""
        return {source: (self._lists[source, None][0], {scope: self._lists[source, scope][1:] for scope in SCOPES})
                for source in ("popular", "new")}

    def rows(self, source: str, filters: dict, attributes: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Up to ``n`` item rows of ``source`` ("popular" or "new") matching ``filters``.

        The scope's lists (every row matches the scope), then the other conditions
        checked on a head of them long enough to usually fill ``n``: one native call
        (cpp/rerank/candidate_lists.hpp)."""
        if n <= 0:
            return np.empty(0, dtype=np.int64)
        scope = None
        for name in SCOPES:
            if name in filters:
                scope = name
                break
        checks = [(_check_column(attributes[name]), _values(value)) for name, value in filters.items() if name != scope]
        every, keys, offsets, rows = self._lists[source, scope]
        return _core.list_rows(every, keys, offsets, rows, [] if scope is None else _values(filters[scope]), checks, n)


def _values(value) -> list[int]:
    """A filter's value or values as ints (True is 1)."""
    if type(value) is int or type(value) is bool:
        return [int(value)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [int(v) for v in value]
    return [int(value)]


def _check_column(column: np.ndarray) -> np.ndarray:
    """An attribute column as the native check reads it: int64 or bool, C-contiguous."""
    if (column.dtype == np.int64 or column.dtype == np.bool_) and column.flags.c_contiguous:
        return column  # the serving bundle's columns
    if column.dtype != np.bool_ and column.dtype != np.int64:
        column = column.astype(np.int64)
    return np.ascontiguousarray(column)
