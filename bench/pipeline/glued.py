"""The peer: the same ranking request served by a stack a data scientist would glue together.

usearch (HNSW) for retrieval, a pandas item-feature table joined with the
request context, the feature spec computed with pandas / numpy, LightGBM's
own ``Booster.predict`` for the two heads, a numpy blend with the same value
model, ``np.argpartition`` for the top 20, and a Python list as the log.

Written to be fair, and generous where a choice had to be made:

- item-only features (numeric, bucketised, hashed item columns) and the
  items' categorical codes are precomputed once into DataFrames (an "item
  feature store"); a request takes its candidates' rows (``iloc``), computes
  only what depends on the request, and joins the two with one ``pd.concat``
  (pandas 3.1's ``DataFrame.assign`` inserts columns one at a time: ~4 ms
  more per request here); user and item ids are looked up with
  ``Index.get_loc`` / ``get_indexer`` on numpy arrays, the fast paths;
- filters: small scopes (a merchant's or a category's items, up to
  ``EXACT_MAX`` rows) are scanned exactly with numpy instead of asking HNSW
  for thousands of neighbours; larger ones over-fetch from usearch
  (``ann / selectivity x OVERFETCH``) and post-filter with numpy masks,
  fetching 4x more when too few rows survive (counted in the response);
- popular and new items: per-scope row lists precomputed with pandas
  ``groupby``, the request's other conditions checked on their heads;
- logging: a dict appended to a list (no serialisation, no I/O).

The features follow the engine's definitions (engine/features/spec.py,
cpp/features/hash.hpp: FNV-1a codes, splitmix64 mixing, multiply-high
reduction), so the same LightGBM models apply; they are checked against the
engine's assembler in ``run.py``. Only the dot product may differ in the last
bits (numpy's BLAS sums in another order than the engine's fixed 8 lanes).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from engine.features.hashing import GOLDEN, M64, MISSING, fnv1a64
from engine.features.hashing import mix64 as mix64_int

_GOLDEN = np.uint64(GOLDEN)
_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31, _S32 = (np.uint64(s) for s in (27, 30, 31, 32))
_LOW32 = np.uint64(0xFFFFFFFF)

EXACT_MAX = 50_000  # scopes up to this many rows are scanned exactly
OVERFETCH = 1.5  # usearch count = wanted / selectivity x this
STAGES = ("user", "candidates", "features", "heads", "value", "rerank", "log", "total")


# -- the engine's hash, in numpy --------------------------------------------------
def code(value) -> int:
    """A request value's 64-bit code (int / bool: two's complement; str: FNV-1a; None: MISSING)."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return fnv1a64(value.encode())
    return int(value) & M64


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function on a uint64 array (numpy integer arithmetic wraps)."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


def reduce_to(h: np.ndarray, buckets: int) -> np.ndarray:
    """(h * buckets) >> 64 without 128-bit integers: buckets < 2**24, so the halves fit."""
    n = np.uint64(buckets)
    return ((h >> _S32) * n + (((h & _LOW32) * n) >> _S32)) >> _S32


def item_codes(column: pa.ChunkedArray) -> np.ndarray:
    """uint64 codes of an integer / bool item column; nulls get the missing code."""
    values = column.to_numpy(zero_copy_only=False)
    if column.null_count:
        valid = ~column.is_null().to_numpy(zero_copy_only=False)
        values = np.where(valid, np.nan_to_num(values.astype(np.float64)), 0).astype(np.int64)
        out = values.view(np.uint64).copy()
        out[~valid] = np.uint64(MISSING)
        return out
    return np.ascontiguousarray(values.astype(np.int64)).view(np.uint64)


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values of an item column, NaN where null."""
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


# -- the stack ------------------------------------------------------------------------
@dataclass
class GluedResponse:
    item_ids: np.ndarray
    value: np.ndarray
    rows: np.ndarray  # item rows shown
    n_candidates: int
    ann_short: bool  # the post-filtered ANN source returned fewer rows than asked
    refetches: int  # extra usearch searches after a post-filter left too few rows
    timings_us: dict


def _kind(f) -> str:
    return type(f).__struct_config__.tag


class GluedStack:
    def __init__(self, *, items: pa.Table, item_vectors: np.ndarray, users: pa.Table, user_vectors: np.ndarray,
                 spec, surfaces: dict, models: dict, usearch_path: str, log: list | None = None) -> None:
        import lightgbm as lgb
        from usearch.index import Index

        self.surfaces = surfaces
        self.names = list(spec.names)
        self.vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.index = Index.restore(usearch_path)  # loaded into memory, not a view
        self.boosters = {head: lgb.Booster(model_file=str(path)) for head, path in models.items()}
        self.log = [] if log is None else log

        item_ids = items.column("item_id").to_numpy()
        self.item_ids = item_ids
        self.id_index = pd.Index(item_ids)
        has_vector = np.any(self.vectors != 0, axis=1)
        self.n_indexed = int(has_vector.sum())

        # The item feature store: item-only features precomputed (float32, one column each),
        # and the codes of the categorical item columns that request-dependent features read.
        store: dict[str, np.ndarray] = {}
        codes: dict[str, np.ndarray] = {}
        self.request_only, self.mixed = [], []
        for f in spec.features:
            kind = _kind(f)
            sources = [] if kind == "dot" else list(f.sources)
            if kind == "lookup":
                sources = [f.key]
            item_only = bool(sources) and all(s.startswith("item.") for s in sources) and kind in (
                "numeric", "bucket", "hashed")
            if item_only:
                column = items.column(f.source[len("item."):])
                if kind == "hashed":
                    store[f.name] = reduce_to(mix64(item_codes(column)), f.buckets).astype(np.float32)
                else:
                    v = numbers(column)
                    if kind == "bucket":
                        v = np.where(np.isnan(v), np.nan, np.searchsorted(np.asarray(f.boundaries), v, "right"))
                    store[f.name] = np.where(np.isnan(v), f.default, v).astype(np.float32)
                continue
            if all(s.startswith("request.") for s in sources) and kind != "dot":
                self.request_only.append(f)
            else:
                self.mixed.append(f)
            for s in sources:
                if s.startswith("item.") and s[5:] not in codes:
                    codes[s[5:]] = item_codes(items.column(s[5:]))
        self.items = pd.DataFrame(store)  # indexed by item row
        self.codes = pd.DataFrame(codes)
        # The joined frame's columns are the store's, then the request-dependent ones: this
        # permutation puts them in the models' order.
        joined = list(store) + [f.name for f in self.request_only + self.mixed]
        self.order = np.array([joined.index(n) for n in self.names])

        # Value-model factors that are item columns, and the filterable attributes.
        factors = {f for s in surfaces.values() for t in s.value_model.terms for f in t.factors}
        self.columns = {c: numbers(items.column(c)) for c in sorted(factors - set(self.boosters))
                        if c in items.column_names}
        self.attr = {c: items.column(c).to_numpy(zero_copy_only=False).astype(np.int64)
                     for c in ("merchant_id", "category_id", "in_stock")}

        # Users: id -> row, attribute columns, vectors.
        self.user_index = pd.Index(users.column("user_id").to_numpy())
        self.user_attrs = {c: users.column(c).to_numpy(zero_copy_only=False)
                           for c in users.column_names if c != "user_id"}
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)

        # Exact-scan scopes and per-scope popular / new lists, with pandas.
        frame = pd.DataFrame({"merchant_id": self.attr["merchant_id"], "category_id": self.attr["category_id"],
                              "reviews": numbers(items.column("review_count")),
                              "age": numbers(items.column("age_days")), "has_vector": has_vector})
        with_vector = frame[frame.has_vector]
        self.scope = {c: self._groups(with_vector, c) for c in ("merchant_id", "category_id")}
        self.share = {c: {int(k): len(v) / self.n_indexed for k, v in self.scope[c].items()} for c in self.scope}
        self.share["in_stock"] = {1: float(self.attr["in_stock"][has_vector].mean())}
        self.share["in_stock"][0] = 1.0 - self.share["in_stock"][1]
        popular = with_vector.sort_values("reviews", ascending=False, kind="stable")
        fresh = frame[~frame.has_vector].sort_values("age", kind="stable")
        self.lists = {name: self._lists(f) for name, f in (("popular", popular), ("new", fresh))}

    @staticmethod
    def _groups(frame: pd.DataFrame, column: str) -> dict:
        """{value: item rows}, in the frame's order within each group."""
        labels = frame.index.to_numpy()
        return {int(k): labels[positions] for k, positions in frame.groupby(column).indices.items()}

    @classmethod
    def _lists(cls, frame: pd.DataFrame) -> dict:
        """The frame's rows (best first) overall and per merchant / category."""
        return {"all": frame.index.to_numpy(), **{c: cls._groups(frame, c) for c in ("merchant_id", "category_id")}}

    # -- the request ------------------------------------------------------------
    def rank(self, request, rows: np.ndarray | None = None) -> GluedResponse:
        """Rank one RankRequest; ``rows`` replaces the candidate stage (agreement checks)."""
        t0 = time.perf_counter_ns()
        settings = self.surfaces[request.surface]
        k = settings.k if request.k is None else request.k
        fields, u, recent = self.request_fields(request)
        t1 = time.perf_counter_ns()

        short, refetches = False, 0
        if rows is None:
            rows, short, refetches = self.candidates(settings, request.filters, u, recent)
        t2 = time.perf_counter_ns()

        X = self.features(rows, fields, u)
        t3 = time.perf_counter_ns()

        heads = {h: b.predict(X, num_threads=1) if len(X) else np.empty(0) for h, b in self.boosters.items()}
        t4 = time.perf_counter_ns()

        value = np.zeros(len(rows))
        for term in settings.value_model.terms:
            product = np.full(len(rows), term.weight)
            for name in term.factors:
                product = product * (heads[name] if name in heads else self.columns[name][rows])
            value += product
        t5 = time.perf_counter_ns()

        top = np.argpartition(-value, k)[:k] if len(value) > k else np.arange(len(value))
        top = top[np.argsort(-value[top], kind="stable")]
        shown = rows[top]
        t6 = time.perf_counter_ns()

        item_ids = self.item_ids[shown]
        self.log.append({"request_id": request.request_id, "user_id": request.user_id, "surface": request.surface,
                         "item_ids": item_ids, "value": value[top],
                         **{h: s[top] for h, s in heads.items()}, "features": X[top]})
        t7 = time.perf_counter_ns()
        timings = {"user": t1 - t0, "candidates": t2 - t1, "features": t3 - t2, "heads": t4 - t3,
                   "value": t5 - t4, "rerank": t6 - t5, "log": t7 - t6, "total": t7 - t0}
        return GluedResponse(item_ids, value[top], shown, len(rows), short, refetches,
                             {s: v / 1e3 for s, v in timings.items()})

    def request_fields(self, request):
        """(the request's fields: user attributes + context, its user vector or None, recent item rows)."""
        user_row = -1
        if request.user_id is not None:
            try:
                user_row = int(self.user_index.get_loc(request.user_id))
            except KeyError:
                pass  # an unknown user: no attributes, maybe a vector from the recent items
        recent = np.empty(0, np.int64)
        if request.recent_item_ids:
            recent = self.id_index.get_indexer(np.asarray(request.recent_item_ids, dtype=np.uint64))
            recent = recent[recent >= 0]
        fields = dict(request.context)
        for c, values in self.user_attrs.items():
            fields[c] = values[user_row].item() if user_row >= 0 else None
        return fields, self.user_vector(user_row, recent), recent

    def user_vector(self, user_row: int, recent: np.ndarray):
        if user_row >= 0:
            v = self.user_vectors[user_row]
            if v.any():
                return v
        if len(recent):
            v = self.vectors[recent].sum(axis=0)
            norm = float(np.linalg.norm(v))
            if norm > 0:
                return (v / norm).astype(np.float32)
        return None

    # -- candidates -------------------------------------------------------------
    def mask(self, rows: np.ndarray, filters: dict) -> np.ndarray:
        keep = np.ones(len(rows), dtype=bool)
        for name, value in filters.items():
            column = self.attr[name][rows]
            keep &= np.isin(column, value) if isinstance(value, (list, tuple)) else column == int(value)
        return keep

    def candidates(self, settings, filters: dict, u, recent: np.ndarray):
        parts, short, refetches = [], False, 0
        n_popular = settings.popular_candidates
        if u is not None and settings.ann_candidates:
            rows, short, refetches = self.ann(u, settings.ann_candidates, filters)
            parts.append(rows)
        else:
            n_popular += settings.ann_candidates  # cold start: popularity fills the ANN share
        parts.append(self.listed("popular", filters, n_popular))
        parts.append(self.listed("new", filters, settings.new_item_candidates))
        rows = pd.unique(np.concatenate(parts))  # first copy wins: ANN, then popular, then new
        if len(recent):
            rows = rows[~np.isin(rows, recent)]
        return rows, short, refetches

    def _scope_rows(self, filters: dict):
        for c in ("merchant_id", "category_id"):
            if c in filters:
                values = filters[c] if isinstance(filters[c], (list, tuple)) else [filters[c]]
                groups = [self.scope[c].get(int(v)) for v in values]
                groups = [g for g in groups if g is not None]
                return np.concatenate(groups) if groups else np.empty(0, np.int64)
        return None

    def _selectivity(self, filters: dict) -> float:
        sel = 1.0
        for c, value in filters.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            sel *= sum(self.share[c].get(int(v), 0.0) for v in values)
        return sel

    def ann(self, u: np.ndarray, n: int, filters: dict):
        """(rows, fewer than n?, refetches): exact scan of a small scope, else usearch + post-filter."""
        scope = self._scope_rows(filters)
        if scope is not None and len(scope) <= EXACT_MAX:
            rows = scope[self.mask(scope, filters)]
            if len(rows) > n:
                rows = rows[np.argpartition(-(self.vectors[rows] @ u), n)[:n]]
            return rows, len(rows) < n, 0
        sel = self._selectivity(filters) if filters else 1.0
        count = min(self.n_indexed, max(n, math.ceil(n / max(sel, 1e-9) * OVERFETCH)))
        refetches = 0
        while True:
            keys = self.index.search(u, count, threads=1).keys.astype(np.int64)
            rows = keys[self.mask(keys, filters)] if filters else keys
            if len(rows) >= n or count >= self.n_indexed:
                break
            count = min(self.n_indexed, count * 4)
            refetches += 1
        return rows[:n], len(rows) < n, refetches

    def listed(self, source: str, filters: dict, n: int) -> np.ndarray:
        if n <= 0:
            return np.empty(0, np.int64)
        lists = self.lists[source]
        rows = lists["all"]
        for c in ("merchant_id", "category_id"):
            if c in filters:
                values = filters[c] if isinstance(filters[c], (list, tuple)) else [filters[c]]
                groups = [lists[c][int(v)] for v in values if int(v) in lists[c]]
                rows = np.concatenate(groups) if groups else np.empty(0, np.int64)
                break
        head = rows[: max(4 * n, 256)]
        return head[self.mask(head, filters)][:n]

    # -- features -----------------------------------------------------------------
    def features(self, rows: np.ndarray, fields: dict, u) -> np.ndarray:
        """The spec's feature rows for ``rows``: the item feature store's rows joined with the
        request's fields, request-dependent columns computed with pandas / numpy."""
        cand = self.items.iloc[rows]
        codes = self.codes.iloc[rows]
        new: dict = {}
        for f in self.request_only:  # one value per request, broadcast by pandas
            new[f.name] = self._request_value(f, fields)
        for f in self.mixed:
            kind = _kind(f)
            if kind == "cross":
                h, constant = None, 0
                for i, s in enumerate(f.sources):
                    if s.startswith("item."):
                        term = mix64(codes[s[5:]].to_numpy() + np.uint64((i * GOLDEN) & M64))
                        h = term if h is None else h ^ term
                    else:
                        constant ^= mix64_int((code(fields.get(s[8:])) + i * GOLDEN) & M64)
                h = h ^ np.uint64(constant)
                new[f.name] = reduce_to(mix64(h), f.buckets).astype(np.float32)
            elif kind == "dot":
                new[f.name] = self.vectors[rows] @ u if u is not None else np.float32(0.0)
            elif kind == "lookup":
                m = fields.get(f.field)
                if m:
                    new[f.name] = codes[f.key[5:]].astype(np.int64).map(m).astype(np.float64).fillna(f.default)
                else:
                    new[f.name] = f.default
            elif kind == "match":
                item_src, req_src = sorted(f.sources, key=lambda s: not s.startswith("item."))
                value = fields.get(req_src[8:])
                new[f.name] = (0.0 if value is None else
                               (codes[item_src[5:]] == np.uint64(code(value))).astype(np.float32))
            else:
                raise NotImplementedError(f"{f.name}: {kind} with these sources")
        # One concat, not DataFrame.assign: pandas 3.1 inserts assigned columns one by one
        # (~4 ms for these 29 columns on this machine, against ~0.3 ms for the concat).
        joined = pd.concat([cand, pd.DataFrame(new, index=cand.index)], axis=1)
        return joined.to_numpy(dtype=np.float32)[:, self.order]

    @staticmethod
    def _request_value(f, fields: dict) -> float:
        kind = _kind(f)
        if kind in ("numeric", "bucket"):
            v = fields.get(f.source[8:])
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return f.default
            v = float(v)
            return float(np.searchsorted(np.asarray(f.boundaries), v, "right")) if kind == "bucket" else v
        if kind == "hashed":
            return float(int(reduce_to(mix64(np.array([code(fields.get(f.source[8:]))], np.uint64)),
                                       f.buckets)[0]))
        raise NotImplementedError(f"{f.name}: {kind} of request fields only")
