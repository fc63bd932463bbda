"""engine.FeatureAssembler: every kind against a plain Python reference (the hash
functions re-implemented here from their documentation), online == offline byte
for byte from pyarrow and polars, bad input, threads and the GIL."""

from __future__ import annotations

import math
import struct
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from engine.features import Bucket, Cross, Dot, FeatureAssembler, FeatureSpec, Hashed, Lookup, Match, Numeric

pl = pytest.importorskip("polars")

# ---- the reference ---------------------------------------------------------------

from engine.features.hashing import M64, code, cross, fnv1a64, hashed, mix64, reduce_to  # noqa: E402


def number(v) -> float:
    if v is None:
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return 1.0 if v else 0.0
    if isinstance(v, (int, np.integer)):
        return float(int(v))
    return float(v)


def dot_reference(u: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Lane k = j % 8 sums its float32 products in order, then a fixed tree."""
    products = vectors.astype(np.float32) * u.astype(np.float32)[None, :]
    lanes = np.zeros((len(vectors), 8), np.float32)
    for j in range(products.shape[1]):
        lanes[:, j % 8] += products[:, j]
    k = [lanes[:, i] for i in range(8)]
    return ((k[0] + k[1]) + (k[2] + k[3])) + ((k[4] + k[5]) + (k[6] + k[7]))


def value_of(source: str, item: dict, request: dict):
    origin, name = source.split(".", 1)
    return item[name] if origin == "item" else request.get(name)


def feature_value(f, item: dict, request: dict, dot: np.float32) -> np.float32:
    if isinstance(f, (Numeric, Bucket)):
        v = number(value_of(f.source, item, request))
        if math.isnan(v):
            return np.float32(f.default)
        if isinstance(f, Numeric):
            return np.float32(v)
        return np.float32(np.searchsorted(np.array(f.boundaries), v, side="right"))
    if isinstance(f, Hashed):
        return np.float32(hashed(value_of(f.source, item, request), f.buckets))
    if isinstance(f, Cross):
        return np.float32(cross([value_of(s, item, request) for s in f.sources], f.buckets))
    if isinstance(f, Match):
        a, b = (code(value_of(s, item, request)) for s in f.sources)
        return np.float32(1.0 if a is not None and a == b else 0.0)
    if isinstance(f, Lookup):
        m, key = request.get(f.field), code(value_of(f.key, item, request))
        hits = [v for k, v in (m or {}).items() if key is not None and (int(k) & M64) == key]
        v = number(hits[-1]) if hits else math.nan
        return np.float32(f.default if math.isnan(v) else v)
    if isinstance(f, Dot):
        return dot
    raise TypeError(f)


def reference(spec: FeatureSpec, items: dict, vectors, rows, request: dict) -> np.ndarray:
    """items: {column: (values, null mask or None)}."""
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows), len(spec.features)), np.float32)
    uv = request.get("user_vector")
    dots = dot_reference(uv, vectors[rows]) if uv is not None and vectors is not None else None
    for i, r in enumerate(rows):
        item = {name: None if mask is not None and mask[r] else values[r] for name, (values, mask) in items.items()}
        for j, f in enumerate(spec.features):
            out[i, j] = feature_value(f, item, request, np.float32(0) if dots is None else dots[i])
    return out


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == np.float32 and actual.flags.c_contiguous
    if not same_bytes(actual, expected):
        bad = np.argwhere(actual.view(np.uint32) != expected.view(np.uint32))
        r, c = bad[0]
        raise AssertionError(f"{len(bad)} values differ; first at row {r}, column {c}: "
                             f"{actual[r, c]!r} != {expected[r, c]!r}")


# ---- a world: items, vectors, a ~60-feature spec, requests -------------------------

N_ITEMS = 300
DIM = 19  # not a multiple of 8: the dot's tail lanes are exercised


def make_items(rng: np.random.Generator, n: int = N_ITEMS) -> dict:
    def nulls(p):
        return rng.random(n) < p

    items = {f"num_{i}": (rng.standard_normal(n), nulls(0.05)) for i in range(20)}
    items["num_0"][0][::17] = np.nan  # NaN as well as null
    items |= {
        "price": (rng.lognormal(3, 1.5, n), None),
        "rating": (rng.uniform(1, 5, n).astype(np.float32), nulls(0.1)),
        "stock": (rng.integers(0, 20, n).astype(np.int32), nulls(0.1)),
        "age_days": (rng.integers(0, 2000, n), None),
        "category_id": (rng.integers(0, 25, n), nulls(0.05)),
        # ids beyond 2**63: codes are 64-bit patterns
        "merchant_id": (rng.integers(0, 40, n).astype(np.uint64) + np.uint64(2**63 - 20), nulls(0.05)),
        "brand_id": (rng.integers(-30, 30, n).astype(np.int16), None),
        "in_stock": (rng.random(n) < 0.8, nulls(0.05)),
        "item_id": (rng.permutation(10 * n)[:n].astype(np.uint64), None),
    }
    return items


def item_table(items: dict) -> pa.Table:
    return pa.table({name: pa.array(values, mask=mask) for name, (values, mask) in items.items()})


def typical_spec() -> FeatureSpec:
    f = [Numeric(f"num_{i}", f"item.num_{i}", default=float(i % 3)) for i in range(20)]
    f += [Numeric(c, f"item.{c}") for c in ("price", "rating", "stock", "age_days", "in_stock")]
    f += [Numeric(c, f"request.{c}", default=-1.0) for c in ("hour", "session_length", "basket_value", "is_app",
                                                             "day_of_week")]
    f += [
        Bucket("price_b", "item.price", [1, 5, 10, 50, 100]),
        Bucket("rating_b", "item.rating", [2, 3, 4, 4.5], default=-3),
        Bucket("stock_b", "item.stock", [0, 1, 10]),
        Bucket("age_b", "item.age_days", [7, 30, 365]),
        Bucket("num0_b", "item.num_0", [-1, 0, 1]),
        Bucket("hour_b", "request.hour", [6, 12, 18]),
        Bucket("session_b", "request.session_length", [1, 10]),
        Bucket("basket_b", "request.basket_value", [0, 10, 100]),
        Hashed("category", "item.category_id", 1000),
        Hashed("merchant", "item.merchant_id", 65536),
        Hashed("brand", "item.brand_id", 512),
        Hashed("in_stock_h", "item.in_stock", 2),
        Hashed("segment", "request.segment", 64),
        Hashed("device", "request.device", 16),
        Hashed("query_category", "request.query_category", 1000),
        Cross("segment_x_category", ["request.segment", "item.category_id"], 4096),
        Cross("device_x_merchant", ["request.device", "item.merchant_id"], 2**24),
        Cross("category_x_segment", ["item.category_id", "request.segment"], 4096),
        Cross("country_x_brand_x_stock", ["request.country", "item.brand_id", "item.in_stock"], 10007),
        Cross("segment_x_device", ["request.segment", "request.device"], 97),
        Cross("category_x_brand", ["item.category_id", "item.brand_id"], 1 << 12),
        Cross("query_x_category", ["request.query_category", "item.category_id"], 1),
        Cross("hour_x_device_x_category", ["request.hour", "request.device", "item.category_id"], 5000),
        Cross("app_x_merchant", ["request.is_app", "item.merchant_id"], 333),
        Cross("segment_x_device_x_country", ["request.segment", "request.device", "request.country"], 777),
        Dot("user_item"),
        Lookup("category_clicks", "category_clicks", "item.category_id"),
        Lookup("merchant_clicks", "merchant_clicks", "item.merchant_id", default=7.0),
        Lookup("brand_views", "brand_views", "item.brand_id", default=-0.5),
        Match("query_match", ["request.query_category", "item.category_id"]),
        Match("home_merchant", ["item.merchant_id", "request.home_merchant"]),
    ]
    return FeatureSpec(f)


def random_request(rng: np.random.Generator, items: dict, dim: int = DIM) -> dict:
    """Every field present, None or absent at random; maps of 0-40 entries
    (scanned up to 8, indexed beyond), with None and NaN values."""
    def pick(column):
        values, _ = items[column]
        return values[rng.integers(0, len(values))]

    def a_map(column, size):
        keys = {int(pick(column)) for _ in range(size)} | {int(k) for k in rng.integers(-5, 5, 2)}
        out = {}
        for k in keys:
            r = rng.random()
            out[k] = None if r < 0.05 else math.nan if r < 0.1 else float(rng.integers(0, 50)) + 0.25
        return out

    full = {
        "hour": int(rng.integers(0, 24)), "session_length": float(rng.exponential(5)),
        "basket_value": float(rng.choice([math.nan, rng.uniform(0, 200)])), "is_app": bool(rng.random() < 0.5),
        "day_of_week": int(rng.integers(0, 7)),
        "segment": str(rng.choice(["new", "returning", "vip", "ünïcödé-段"])),
        "device": str(rng.choice(["ios", "android", "web", ""])),
        "country": str(rng.choice(["DE", "FR", "US"])),
        "query_category": int(pick("category_id")), "home_merchant": int(pick("merchant_id")),
        "category_clicks": a_map("category_id", int(rng.integers(0, 40))),
        "merchant_clicks": a_map("merchant_id", int(rng.integers(0, 12))),
        "brand_views": a_map("brand_id", int(rng.integers(0, 6))),
        "user_vector": rng.standard_normal(dim).astype(np.float32),
    }
    request = {}
    for k, v in full.items():
        r = rng.random()
        if r < 0.8:
            request[k] = v
        elif r < 0.9:
            request[k] = None
    return request


# Arrow types of the offline table's request columns.
OFFLINE_TYPES = {
    "hour": pa.int64(), "session_length": pa.float64(), "basket_value": pa.float64(), "is_app": pa.bool_(),
    "day_of_week": pa.int8(), "segment": pa.string(), "device": pa.large_string(), "country": pa.string(),
    "query_category": pa.int64(), "home_merchant": pa.uint64(),
    "category_clicks": pa.map_(pa.int64(), pa.float64()), "merchant_clicks": pa.map_(pa.int64(), pa.float64()),
    "brand_views": pa.map_(pa.int64(), pa.float64()),
}


def offline_table(requests: list[dict], rows: list[np.ndarray], dim: int = DIM, by: str = "item_row",
                  items: dict | None = None) -> pa.Table:
    """One row per (request, item), the request's values repeated on each of its rows."""
    n = sum(len(r) for r in rows)
    cols: dict[str, pa.Array] = {}
    all_rows = np.concatenate(rows) if rows else np.empty(0, np.int64)
    if by == "item_row":
        cols["item_row"] = pa.array(all_rows.astype(np.int64))
    else:
        cols["item_id"] = pa.array(items["item_id"][0][all_rows])
    for field, type_ in OFFLINE_TYPES.items():
        values = []
        for req, r in zip(requests, rows):
            v = req.get(field)
            if isinstance(v, dict):  # int64 keys: ids beyond 2**63 as their two's complement
                v = [(k - 2**64 if k >= 2**63 else k, x) for k, x in v.items()]
            values += [v] * len(r)
        cols[field] = pa.array(values, type=type_)
    vectors = np.zeros((n, dim), np.float32)
    valid = np.zeros(n, bool)
    at = 0
    for req, r in zip(requests, rows):
        if req.get("user_vector") is not None:
            vectors[at:at + len(r)] = req["user_vector"]
            valid[at:at + len(r)] = True
        at += len(r)
    cols["user_vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim, mask=pa.array(~valid))
    cols["ignored"] = pa.array(np.arange(n))
    return pa.table(cols)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(42)
    items = make_items(rng)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32)
    spec = typical_spec()
    asm = FeatureAssembler(spec, item_table(items), vectors)
    requests = [random_request(rng, items) for _ in range(12)]
    rows = [rng.integers(0, N_ITEMS, int(rng.integers(0, 70))) for _ in requests]
    return {"items": items, "vectors": vectors, "spec": spec, "asm": asm, "requests": requests, "rows": rows}


# ---- online against the reference ---------------------------------------------------


def test_typical_spec_matches_the_reference(world):
    asm, spec = world["asm"], world["spec"]
    assert 55 <= asm.n_features <= 65 and asm.names == spec.names
    for request, rows in zip(world["requests"], world["rows"]):
        expected = reference(spec, world["items"], world["vectors"], rows, request)
        assert_same(asm.assemble(rows, request), expected)


def test_online_equals_offline_byte_for_byte_pyarrow(world):
    asm = world["asm"]
    online = np.concatenate([asm.assemble(r, q) for q, r in zip(world["requests"], world["rows"])])
    table = offline_table(world["requests"], world["rows"])
    assert_same(asm.assemble_offline(table), online)
    assert_same(asm.assemble_offline(table, threads=3), online)
    # Several record batches; slices (offsets into every buffer); one record batch.
    batches = table.to_batches(max_chunksize=37)
    assert len(batches) > 1
    assert_same(asm.assemble_offline(pa.Table.from_batches(batches), threads=2), online)
    assert_same(asm.assemble_offline(pa.concat_tables([table.slice(0, 5), table.slice(5)])), online)
    batch = table.combine_chunks().to_batches()[0]
    assert_same(asm.assemble_offline(batch), online)
    assert_same(asm.assemble_offline(batch.slice(3)), online[3:])


def test_online_equals_offline_byte_for_byte_polars(world):
    asm = world["asm"]
    online = np.concatenate([asm.assemble(r, q) for q, r in zip(world["requests"], world["rows"])])
    frame = pl.from_arrow(offline_table(world["requests"], world["rows"]))
    exported = pa.RecordBatchReader.from_stream(frame).schema
    assert exported.field("segment").type == pa.string_view()  # polars' strings
    assert_same(asm.assemble_offline(frame), online)
    assert_same(asm.assemble_offline(frame, threads=2), online)
    # Lookup maps as polars lists of {key, value} structs: exported as large_list<struct>.
    entry = pl.Struct({"key": pl.Int64, "value": pl.Float64})
    as_lists = frame.with_columns(
        pl.Series(c, [None if m is None else [{"key": k, "value": v} for k, v in m]
                      for m in frame[c].to_arrow().to_pylist()], dtype=pl.List(entry))
        for c in ("category_clicks", "merchant_clicks", "brand_views"))
    assert pa.types.is_large_list(pa.RecordBatchReader.from_stream(as_lists).schema.field("brand_views").type)
    assert_same(asm.assemble_offline(as_lists), online)


def test_offline_names_items_by_item_id(world):
    asm = world["asm"]
    online = np.concatenate([asm.assemble(r, q) for q, r in zip(world["requests"], world["rows"])])
    table = offline_table(world["requests"], world["rows"], by="item_id", items=world["items"])
    assert_same(asm.assemble_offline(table), online)
    assert_same(asm.assemble_offline(pl.from_arrow(table), threads=2), online)


def test_random_requests_many_rows_online_equals_offline(world):
    """More requests, each over many rows (long map runs share one index)."""
    rng = np.random.default_rng(7)
    asm = world["asm"]
    requests = [random_request(rng, world["items"]) for _ in range(30)]
    rows = [rng.integers(0, N_ITEMS, int(rng.integers(1, 300))) for _ in requests]
    online = np.concatenate([asm.assemble(r, q) for q, r in zip(requests, rows)])
    assert_same(asm.assemble_offline(offline_table(requests, rows), threads=2), online)


def test_vectors_through_vector_rows_give_the_same_bytes(world):
    """Item vectors read through per-item rows of another matrix (how a ranker
    reads the vector index's copy), with -1 a zero vector, give the bytes of
    the plain (n_items, dim) matrix, online and offline."""
    rng = np.random.default_rng(11)
    vectors = world["vectors"].copy()
    vectors[rng.random(N_ITEMS) < 0.2] = 0.0  # items without a vector
    has = np.flatnonzero(vectors.any(axis=1))
    order = rng.permutation(has)  # the index's rows: its own order, a subset
    vector_rows = np.full(N_ITEMS, -1, np.int32)
    vector_rows[order] = np.arange(len(order), dtype=np.int32)
    plain = FeatureAssembler(world["spec"], item_table(world["items"]), vectors)
    shared = FeatureAssembler(world["spec"], item_table(world["items"]), vectors[order], vector_rows=vector_rows)
    online = np.concatenate([plain.assemble(r, q) for q, r in zip(world["requests"], world["rows"])])
    for q, r in zip(world["requests"], world["rows"]):
        assert_same(shared.assemble(r, q), plain.assemble(r, q))
    assert_same(shared.assemble_offline(offline_table(world["requests"], world["rows"]), threads=2), online)
    # A negative user vector over a zero item vector: the dot's sign of zero is kept too.
    request = dict(world["requests"][0], user_vector=-np.ones(DIM, np.float32))
    zero_rows = np.flatnonzero(vector_rows < 0)[:5]
    assert_same(shared.assemble(zero_rows, request), plain.assemble(zero_rows, request))


def test_vector_rows_are_checked(small):
    table = item_table(small["items"])
    vectors = small["vectors"]
    with pytest.raises(ValueError, match="vector_rows: expected 10 values"):
        FeatureAssembler(small["spec"], table, vectors, vector_rows=np.zeros(9, np.int32))
    with pytest.raises(ValueError, match="vector_rows: item 4 names row 10 of item_vectors' 10"):
        FeatureAssembler(small["spec"], table, vectors, vector_rows=np.array([0, 1, 2, 3, 10, -1, 0, 0, 0, 0], np.int32))
    with pytest.raises(ValueError, match="vector_rows: item 0 names row -2"):
        FeatureAssembler(small["spec"], table, vectors, vector_rows=np.full(10, -2, np.int32))
    with pytest.raises(TypeError, match="vector_rows: expected dtype int32"):
        FeatureAssembler(small["spec"], table, vectors, vector_rows=np.zeros(10, np.int64))
    # Any number of vector rows, fewer than the items.
    asm = FeatureAssembler(small["spec"], table, vectors[:3], vector_rows=np.array([0, 1, 2] + [-1] * 7, np.int32))
    assert asm.n_items == 10


def test_items_from_several_chunks_a_batch_and_polars(world):
    items, vectors, spec = world["items"], world["vectors"], world["spec"]
    table = item_table(items)
    request, rows = world["requests"][0], world["rows"][0]
    expected = world["asm"].assemble(rows, request)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=71))
    assert chunked.column(0).num_chunks > 1
    sliced = pa.concat_tables([table.slice(0, 100), table.slice(100)])
    for source in (chunked, sliced, table.combine_chunks().to_batches()[0], pl.from_arrow(table)):
        assert_same(FeatureAssembler(spec, source, vectors).assemble(rows, request), expected)
    # Arrow item vectors (FixedSizeList) are accepted as well.
    fsl = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)
    assert_same(FeatureAssembler(spec, table, fsl).assemble(rows, request), expected)


# ---- every kind, its edge cases ------------------------------------------------------


def one_feature(feature, columns: dict, request: dict, vectors=None, rows=None):
    items = {name: (np.asarray(v[0]), None if v[1] is None else np.asarray(v[1])) for name, v in columns.items()}
    n = len(next(iter(items.values()))[0])
    spec = FeatureSpec([feature])
    asm = FeatureAssembler(spec, item_table(items), vectors)
    rows = np.arange(n) if rows is None else rows
    got = asm.assemble(rows, request)
    assert_same(got, reference(spec, items, vectors, rows, request))
    table = offline_table_for(request, rows, {f.split(".", 1)[1] for f in
                                              (feature.sources if not isinstance(feature, Lookup) else [])
                                              if f.startswith("request.")} | (
                                  {feature.field} if isinstance(feature, Lookup) else set()),
                              vectors.shape[1] if vectors is not None else 0, isinstance(feature, Dot))
    assert_same(asm.assemble_offline(table), got)
    return got[:, 0]


def int_key(k) -> int:
    """A map key as Arrow's int64 holds it: beyond 2**63 as its two's complement."""
    k = int(k)
    return k - 2**64 if k >= 2**63 else k


def offline_table_for(request, rows, fields, dim, dot):
    n = len(rows)
    cols = {"item_row": pa.array(np.asarray(rows, np.int64))}
    for field in sorted(fields):
        v = request.get(field)
        if isinstance(v, dict) or field.endswith("clicks"):
            entries = None if v is None else [(int_key(k), None if x is None else float(x)) for k, x in v.items()]
            cols[field] = pa.array([entries] * n, pa.map_(pa.int64(), pa.float64()))
        elif v is None:
            cols[field] = pa.nulls(n)  # Arrow's null type: missing on every row
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and int(v) >= 2**63:
            cols[field] = pa.array([int(v)] * n, pa.uint64())
        else:
            cols[field] = pa.array([v.item() if isinstance(v, np.generic) else v] * n)
    if dot:
        uv = request.get("user_vector")
        flat = np.tile(uv if uv is not None else np.zeros(dim, np.float32), n)
        cols["user_vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim,
                                                                mask=pa.array([uv is None] * n))
    return pa.table(cols)


def test_numeric_nan_null_missing_and_defaults():
    values = np.array([1.5, np.nan, -2.25, 1e30, 3.0, 7.0])
    mask = np.array([False, False, False, False, True, False])
    got = one_feature(Numeric("x", "item.x", default=9.0), {"x": (values, mask)}, {})
    assert got.tolist() == [1.5, 9.0, -2.25, np.float32(1e30), 9.0, 7.0]
    for request, expected in [({}, -1.0), ({"r": None}, -1.0), ({"r": math.nan}, -1.0), ({"r": 3}, 3.0),
                              ({"r": True}, 1.0), ({"r": np.float32(0.1)}, np.float32(0.1)), ({"r": 2**40}, 2**40)]:
        got = one_feature(Numeric("x", "request.r", default=-1.0), {"x": (values, None)}, request)
        assert (got == np.float32(expected)).all()


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                   np.uint64, np.float32, np.float64, np.bool_])
def test_numeric_reads_every_column_type(dtype):
    values = (np.arange(6) % 2).astype(dtype) if dtype == np.bool_ else np.array([0, 1, 2, 100, 7, 3], dtype)
    mask = np.array([False, True, False, False, False, False])
    got = one_feature(Numeric("x", "item.x", default=-5.0), {"x": (values, mask)}, {})
    assert got[1] == -5.0


def test_bucket_boundaries_nan_and_missing():
    values = np.array([-np.inf, 0.999, 1.0, 1.5, 10.0, 10.0001, np.inf, np.nan, 5.0])
    mask = np.zeros(9, bool)
    mask[-1] = True
    got = one_feature(Bucket("b", "item.x", [1, 10], default=-7), {"x": (values, mask)}, {})
    assert got.tolist() == [0, 0, 1, 1, 2, 2, 2, -7, -7]
    got = one_feature(Bucket("b", "request.r", [1, 10]), {"x": (values, None)}, {"r": 10})
    assert (got == 2).all()


@pytest.mark.parametrize("buckets", [1, 2, 1000, 2**24])
def test_hashed_ints_bools_strings_and_missing(buckets):
    ids = np.array([0, 1, -1, 2**62, -(2**63), 12345, 7], np.int64)
    mask = np.array([False] * 6 + [True])
    got = one_feature(Hashed("h", "item.x", buckets), {"x": (ids, mask)}, {})
    assert ((0 <= got) & (got < buckets)).all()
    # -1 as int64 and 2**64 - 1 as uint64 are one category.
    u = one_feature(Hashed("h", "item.x", buckets), {"x": (np.array([2**64 - 1], np.uint64), None)}, {})
    assert u[0] == got[2]
    for value in ["", "a", "ünïcödé-段", 5, -5, 2**64 - 1, True, None, np.int32(3), np.bool_(False)]:
        one_feature(Hashed("h", "request.r", buckets), {"x": (ids, None)}, {"r": value})
    b = one_feature(Hashed("h", "item.x", 2**24), {"x": (np.array([True, False]), None)}, {})
    assert b.tolist() == [reduce_to(mix64(1), 2**24), reduce_to(mix64(0), 2**24)]


def test_cross_mixed_item_only_request_only_and_order():
    cat = np.array([3, 4, 3, 4, 5], np.int64)
    mask = np.array([False, False, False, False, True])
    cols = {"cat": (cat, mask), "brand": (np.array([1, 1, 2, 2, 2], np.int32), None)}
    request = {"seg": "vip", "dev": 4}
    a = one_feature(Cross("c", ["request.seg", "item.cat"], 1 << 20), cols, request)
    b = one_feature(Cross("c", ["item.cat", "request.seg"], 1 << 20), cols, request)
    assert (a != b).any()  # the source order matters
    one_feature(Cross("c", ["item.cat", "item.brand"], 999), cols, request)
    one_feature(Cross("c", ["request.seg", "request.dev"], 999), cols, request)
    one_feature(Cross("c", ["request.dev", "item.brand", "request.seg", "item.cat"], 12345), cols, request)
    one_feature(Cross("c", ["request.missing", "item.cat"], 999), cols, request)
    # Equal values on both sides do not cancel.
    same = one_feature(Cross("c", ["request.dev", "item.cat"], 1 << 20), cols, {"dev": 4})
    assert len(set(same[:4].tolist())) == 2


@pytest.mark.parametrize("dim", [1, 3, 8, 15, 16, 17, 64, 97])
def test_dot_fixed_order_every_tail(dim):
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((40, dim)).astype(np.float32) * 3
    cols = {"x": (np.zeros(40), None)}
    uv = rng.standard_normal(dim).astype(np.float32)
    got = one_feature(Dot("d"), cols, {"user_vector": uv}, vectors)
    np.testing.assert_allclose(got, vectors.astype(np.float64) @ uv, rtol=1e-4, atol=1e-4)
    assert (one_feature(Dot("d"), cols, {}, vectors) == 0).all()
    assert (one_feature(Dot("d"), cols, {"user_vector": None}, vectors) == 0).all()
    # float64 user vectors are rounded to float32 first, as an offline float32 column holds them.
    assert_same(FeatureAssembler(FeatureSpec([Dot("d")]), item_table(cols), vectors).assemble(
        np.arange(40), {"user_vector": uv.astype(np.float64)}), got[:, None])


@pytest.mark.parametrize("size", [0, 1, 8, 9, 200])  # scanned up to 8, indexed beyond
def test_lookup_missing_key_map_value(size):
    rng = np.random.default_rng(size)
    keys = rng.permutation(1000)[:size].tolist()
    clicks = {int(k): float(i) + 0.5 for i, k in enumerate(keys)}
    if size:
        clicks[keys[0]] = None
        clicks[keys[-1]] = math.nan
    cat = np.array(keys[:5] + [999_999, 3], np.int64)
    mask = np.zeros(len(cat), bool)
    mask[-1] = True
    cols = {"cat": (cat, mask)}
    f = Lookup("l", "clicks", "item.cat", default=-2.0)
    got = one_feature(f, cols, {"clicks": clicks})
    assert got[-1] == -2.0 and got[-2] == -2.0
    assert (one_feature(f, cols, {}) == -2.0).all()
    assert (one_feature(f, cols, {"clicks": None}) == -2.0).all()


def test_lookup_keys_beyond_int64_and_numpy_keys():
    merchants = np.array([2**63 + 5, 7, 2**64 - 1], np.uint64)
    f = Lookup("l", "clicks", "item.m", default=0.0)
    got = one_feature(f, {"m": (merchants, None)}, {"clicks": {2**63 + 5: 1.0, np.int64(7): np.float32(2.5),
                                                                -1: 3}})
    assert got.tolist() == [1.0, 2.5, 3.0]


def test_match_equal_different_missing():
    cat = np.array([5, 6, 5, -1], np.int64)
    mask = np.array([False, False, True, False])
    cols = {"cat": (cat, mask), "other": (np.array([5, 5, 5, 5], np.uint8), None)}
    got = one_feature(Match("m", ["request.q", "item.cat"]), cols, {"q": 5})
    assert got.tolist() == [1, 0, 0, 0]
    assert (one_feature(Match("m", ["request.q", "item.cat"]), cols, {}) == 0).all()
    assert one_feature(Match("m", ["item.cat", "request.q"]), cols, {"q": 2**64 - 1}).tolist() == [0, 0, 0, 1]
    assert one_feature(Match("m", ["item.cat", "item.other"]), cols, {}).tolist() == [1, 0, 0, 0]
    assert (one_feature(Match("m", ["request.q", "request.p"]), cols, {"q": "a", "p": "a"}) == 1).all()
    # A string never equals an integer category.
    assert (one_feature(Match("m", ["request.q", "item.cat"]), cols, {"q": "5"}) == 0).all()


def test_nulls_in_item_columns_are_missing_for_every_kind():
    cols = {"x": (np.array([1, 2], np.int64), np.array([True, False]))}
    for f in [Numeric("f", "item.x", 4.0), Bucket("f", "item.x", [0, 10], -4.0), Hashed("f", "item.x", 77),
              Cross("f", ["item.x", "request.s"], 77), Match("f", ["item.x", "request.s"])]:
        one_feature(f, cols, {"s": 2})


# ---- the API -------------------------------------------------------------------------


def test_assembler_properties_and_out(world):
    asm = world["asm"]
    assert asm.spec is world["spec"] and asm.n_items == N_ITEMS
    assert asm.names == world["spec"].names and asm.n_features == len(asm.names)
    assert asm.request_fields == world["spec"].request_fields
    assert set(asm.item_columns) == set(world["spec"].item_columns)
    assert "FeatureAssembler" in repr(asm)
    rows, request = world["rows"][1], world["requests"][1]
    out = np.full((len(rows), asm.n_features), 5.0, np.float32)
    assert asm.assemble(rows, request, out=out) is out
    assert_same(out, asm.assemble(rows, request))
    assert asm.assemble(np.empty(0, np.int64), request).shape == (0, asm.n_features)
    assert asm.assemble([], request).shape == (0, asm.n_features)
    # Other integer rows, lists and non-contiguous views are converted.
    assert_same(asm.assemble(list(rows), request), out)
    assert_same(asm.assemble(rows.astype(np.int32), request), out)
    assert_same(asm.assemble(np.repeat(rows, 2)[::2], request), out)
    empty = offline_table([], [])
    assert asm.assemble_offline(empty).shape == (0, asm.n_features)


def test_concurrent_assemble_equals_serial(world):
    asm = world["asm"]
    rng = np.random.default_rng(3)
    jobs = [(rng.integers(0, N_ITEMS, 200), random_request(rng, world["items"])) for _ in range(16)]
    serial = [asm.assemble(r, q) for r, q in jobs]
    results: dict[int, list] = {}
    errors = []

    def work(t):
        try:
            results[t] = [asm.assemble(r, q) for _ in range(10) for r, q in jobs]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for t in range(4):
        for i, got in enumerate(results[t]):
            assert same_bytes(got, serial[i % len(jobs)])


def test_offline_releases_the_gil():
    """A Python thread keeps running while a long offline assemble is in native code.

    The work is hashing a ~64 KiB string on every row: string views let 4,000 rows
    share one buffer, so the call is long (~0.3 s) but the table is small. Each
    row's string is one byte shorter than the last, so none repeats its predecessor
    (an equal string would reuse the previous row's hash)."""
    size = 1 << 16
    asm = FeatureAssembler(FeatureSpec([Hashed("h", "request.s", 100)]), pa.table({"c": [1]}))

    def timed_call(n: int):
        views = b"".join(struct.pack("<i4sii", size - r, b"xxxx", 0, 0) for r in range(n))
        strings = pa.Array.from_buffers(pa.string_view(), n, [None, pa.py_buffer(views),  # buffer 0, offset 0
                                                              pa.py_buffer(b"x" * size)])
        table = pa.table({"item_row": np.zeros(n, np.int64), "s": strings})
        start = time.perf_counter()
        got = asm.assemble_offline(table)
        end = time.perf_counter()
        for r in (0, 1, n - 1):
            assert got[r, 0] == reduce_to(mix64(fnv1a64(b"x" * (size - r))), 100)
        return start, end

    ticks: list[float] = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.02)
    try:
        # A machine that finishes too soon to tell gets more rows (still one call).
        n = 4000
        start, end = timed_call(n)
        while end - start < 0.1 and n < 64_000:
            n *= 4
            start, end = timed_call(n)
    finally:
        stop.set()
        ticker.join()
    assert end - start >= 0.1, f"{n} rows took {end - start:.3f} s, too short to tell"
    # Had the call kept the GIL, the ticker could only have run at its edges.
    inside = [t for t in ticks if start + 0.03 < t < end - 0.03]
    assert inside, "no Python thread ran while assemble_offline was computing"


# ---- bad input -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(11)
    items = {"price": (rng.random(10), None), "cat": (rng.integers(0, 5, 10), None),
             "name": (np.array([f"n{i}" for i in range(10)]), None), "item_id": (np.arange(10, dtype=np.uint64), None)}
    spec = FeatureSpec([Numeric("p", "item.price"), Numeric("hour", "request.hour"),
                        Hashed("seg", "request.segment", 10), Cross("x", ["request.segment", "item.cat"], 50),
                        Lookup("clicks", "clicks", "item.cat"), Dot("sim")])
    vectors = rng.standard_normal((10, 4)).astype(np.float32)
    return {"items": items, "spec": spec, "vectors": vectors,
            "asm": FeatureAssembler(spec, item_table(items), vectors)}


def test_items_missing_or_wrong_column_names_column_and_feature(small):
    items = dict(small["items"])
    del items["cat"]
    with pytest.raises(ValueError, match=r"items: no column 'cat' \(read by feature 'x' \(cross\)\)"):
        FeatureAssembler(small["spec"], item_table(items), small["vectors"])
    items = dict(small["items"])
    items["price"] = items["name"]
    with pytest.raises(TypeError, match=r"column 'price' \(read by feature 'p' \(numeric\)\).*'u' \(string\)"):
        FeatureAssembler(small["spec"], item_table(items), small["vectors"])
    items = dict(small["items"])
    items["cat"] = (items["price"][0], None)
    with pytest.raises(TypeError, match=r"column 'cat' is float64; feature 'x' \(cross\) needs integer"):
        FeatureAssembler(small["spec"], item_table(items), small["vectors"])
    cat = pa.array(["a", "b"]).dictionary_encode()
    with pytest.raises(TypeError, match="dictionary"):
        FeatureAssembler(FeatureSpec([Hashed("h", "item.cat", 3)]), pa.table({"cat": cat}))
    with pytest.raises(TypeError, match="items: expected an Arrow"):
        FeatureAssembler(small["spec"], {"price": [1.0]}, small["vectors"])
    with pytest.raises(TypeError, match="spec: expected a FeatureSpec"):
        FeatureAssembler([Numeric("p", "item.price")], item_table(small["items"]))


def test_item_vectors_are_checked(small):
    table = item_table(small["items"])
    with pytest.raises(ValueError, match=r"item_vectors: required by feature 'sim' \(dot\)"):
        FeatureAssembler(small["spec"], table)
    with pytest.raises(ValueError, match="item_vectors: expected 10 rows"):
        FeatureAssembler(small["spec"], table, small["vectors"][:5])
    bad = small["vectors"].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="item_vectors: row 3 contains NaN"):
        FeatureAssembler(small["spec"], table, bad)
    with pytest.raises(TypeError, match="item_vectors: expected floating-point"):
        FeatureAssembler(small["spec"], table, np.ones((10, 4), np.int64))
    with pytest.raises(ValueError, match="item_vectors: expected a 2-D"):
        FeatureAssembler(small["spec"], table, np.ones(10, np.float32))


@pytest.mark.parametrize("request_,error,pattern", [
    ({"hour": "13"}, TypeError, r"request\['hour'\]: feature 'hour' \(numeric\) needs a number, got str"),
    ({"hour": {1: 2.0}}, TypeError, r"request\['hour'\]: .*got dict"),
    ({"hour": [1]}, TypeError, r"request\['hour'\]: .*got list"),
    ({"segment": 1.5}, TypeError, r"request\['segment'\]: feature 'seg' \(hashed\) needs an int, str or bool"),
    ({"segment": b"vip"}, TypeError, r"request\['segment'\]: .*got bytes"),
    ({"segment": 2**64}, ValueError, r"request\['segment'\]: 18446744073709551616 does not fit in 64 bits"),
    ({"clicks": [(1, 2.0)]}, TypeError, r"request\['clicks'\]: feature 'clicks' \(lookup\) needs a dict"),
    ({"clicks": {"a": 1.0}}, TypeError, r"request\['clicks'\]: keys must be int, got str"),
    ({"clicks": {1: "x"}}, TypeError, r"request\['clicks'\]: values must be numbers, got str"),
    ({"clicks": {2**65: 1.0}}, ValueError, r"request\['clicks'\]: .* does not fit in 64 bits"),
    ({"user_vector": [1.0, 2.0, 3.0, 4.0]}, TypeError, r"request\['user_vector'\]: expected a float32 numpy array"),
    ({"user_vector": np.ones(3, np.float32)}, ValueError, r"request\['user_vector'\]: expected shape \(4,\)"),
    ({"user_vector": np.ones((1, 4), np.float32)}, ValueError, r"request\['user_vector'\]: expected shape"),
    ({"user_vector": np.ones(4, np.int32)}, TypeError, r"request\['user_vector'\]: expected floating-point"),
    ({"user_vector": np.array([1, np.nan, 0, 0], np.float32)}, ValueError,
     r"request\['user_vector'\]: element 1 is NaN or infinite"),
    ({"user_vector": np.array([1, 0, np.inf, 0])}, ValueError, r"element 2 is NaN or infinite"),
])
def test_bad_request_values_name_the_field(small, request_, error, pattern):
    with pytest.raises(error, match=pattern):
        small["asm"].assemble(np.arange(3), request_)


def test_bad_rows_request_and_out(small):
    asm = small["asm"]
    with pytest.raises(ValueError, match=r"rows\[2\]: 10 is out of range for an item table of 10 rows"):
        asm.assemble(np.array([0, 1, 10]), {})
    with pytest.raises(ValueError, match=r"rows\[0\]: -1 is out of range"):
        asm.assemble(np.array([-1]), {})
    with pytest.raises(TypeError, match="rows: expected integer item rows"):
        asm.assemble(np.array([0.0, 1.0]), {})
    with pytest.raises(ValueError, match="rows: expected a 1-D"):
        asm.assemble(np.zeros((2, 2), np.int64), {})
    with pytest.raises(TypeError, match="request: expected a dict"):
        asm.assemble(np.arange(2), [("hour", 1)])
    assert asm.assemble(np.arange(2), None).shape == (2, asm.n_features)
    with pytest.raises(ValueError, match=r"out: expected shape \(2, 6\)"):
        asm.assemble(np.arange(2), {}, out=np.empty((3, 6), np.float32))
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        asm.assemble(np.arange(2), {}, out=np.empty((2, 6)))
    with pytest.raises(TypeError, match="out: expected a C-contiguous"):
        asm.assemble(np.arange(2), {}, out=np.empty((6, 2), np.float32).T)
    frozen = np.empty((2, 6), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out: the array is read-only"):
        asm.assemble(np.arange(2), {}, out=frozen)


def good_offline(n=4) -> dict:
    return {"item_row": pa.array(np.arange(n), pa.int64()), "hour": pa.array([1.0] * n),
            "segment": pa.array(["a"] * n), "clicks": pa.array([[(1, 2.0)]] * n, pa.map_(pa.int64(), pa.float64())),
            "user_vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(4 * n, np.float32)), 4)}


@pytest.mark.parametrize("change,error,pattern", [
    (lambda c: c.pop("item_row"), ValueError, "table: expected an item_row .* or item_id"),
    (lambda c: c.pop("hour"), ValueError, r"table: no column 'hour' \(the request field read by feature 'hour'"),
    (lambda c: c.pop("user_vector"), ValueError, r"table: no column 'user_vector' \(read by feature 'sim'"),
    (lambda c: c.update(hour=pa.array(["1"] * 4)), TypeError,
     r"table: column 'hour' holds strings; feature 'hour' \(numeric\) needs numbers"),
    (lambda c: c.update(segment=pa.array([1.5] * 4)), TypeError,
     r"table: column 'segment' is float64; feature 'seg' \(hashed\) needs integer, bool or string"),
    (lambda c: c.update(clicks=pa.array([{"k": 1}] * 4)), TypeError,
     r"table: column 'clicks'.*expected map<int64, float64> or list<struct<key: int64, value: float64>>"),
    (lambda c: c.update(clicks=pa.array([[(1, 2)]] * 4, pa.map_(pa.int32(), pa.int64()))), TypeError,
     r"table: column 'clicks'.*got keys 'i' \(int32\) and values 'l' \(int64\)"),
    (lambda c: c.update(user_vector=pa.FixedSizeListArray.from_arrays(pa.array(np.ones(12, np.float32)), 3)),
     ValueError, "table: column 'user_vector' has 3 values per row, the item vectors 4"),
    (lambda c: c.update(user_vector=pa.FixedSizeListArray.from_arrays(
        pa.array(np.array([1, 1, 1, 1, 1, np.nan, 1, 1] * 2, np.float32)), 4)),
     ValueError, "table: user_vector at row 1: element 1 is NaN or infinite"),
    (lambda c: c.update(item_row=pa.array([0, 1, 10, 2])), ValueError,
     "table: item_row 10 at row 2 is out of range for an item table of 10 rows"),
    (lambda c: c.update(item_row=pa.array([0, -3, 1, 2])), ValueError, "table: item_row -3 at row 1 is out of range"),
    (lambda c: c.update(item_row=pa.array([0, None, 1, 2], pa.int64())), ValueError, "table: item_row is null at row 1"),
    (lambda c: c.update(item_row=pa.array([0.0, 1, 1, 2])), TypeError, "table: column 'item_row' is float64"),
    (lambda c: (c.pop("item_row"), c.update(item_id=pa.array([1, 2, 99, 3], pa.uint64()))), ValueError,
     "table: item_id 99 at row 2 is not in the item table"),
])
def test_bad_offline_tables_name_the_column(small, change, error, pattern):
    cols = good_offline()
    change(cols)
    with pytest.raises(error, match=pattern):
        small["asm"].assemble_offline(pa.table(cols))


def test_offline_item_ids_need_a_unique_item_id_column():
    spec = FeatureSpec([Numeric("p", "item.p")])
    table = pa.table({"item_id": pa.array([1, 2], pa.uint64())})
    with pytest.raises(ValueError, match="the item table has no item_id column"):
        FeatureAssembler(spec, pa.table({"p": [1.0, 2.0]})).assemble_offline(table)
    dup = FeatureAssembler(spec, pa.table({"p": [1.0, 2.0, 3.0], "item_id": pa.array([1, 2, 1], pa.uint64())}))
    with pytest.raises(ValueError, match="items: item_id 1 appears at rows 0 and 2"):
        dup.assemble_offline(table)
    assert dup.assemble(np.arange(3), {}).shape == (3, 1)  # online does not need ids


def test_offline_threads_and_input_type(small):
    asm = small["asm"]
    with pytest.raises(ValueError, match="threads"):
        asm.assemble_offline(pa.table(good_offline()), threads=0)
    with pytest.raises(TypeError, match="table: expected an Arrow"):
        asm.assemble_offline({"item_row": [1]})
    with pytest.raises(TypeError, match="table: expected a struct"):
        asm.assemble_offline(pa.array([1, 2]))
    # Missing values can be given as Arrow's null type, or nulls.
    cols = good_offline()
    cols["hour"] = pa.nulls(4)
    cols["clicks"] = pa.nulls(4, pa.map_(pa.int64(), pa.float64()))
    got = asm.assemble_offline(pa.table(cols))
    assert_same(got, asm.assemble(np.arange(4), {"segment": "a", "user_vector": np.ones(4, np.float32)}))


def test_read_only_vectors_are_borrowed_and_writeable_ones_copied(small):
    # A read-only array (a bundle's memory map, an index's vectors) is read in
    # place; a writeable one is copied, so writing to it later changes nothing.
    table = item_table(small["items"])
    request = {"hour": 3, "segment": 2, "clicks": {1: 4.0}, "user_vector": np.ones(4, np.float32)}
    rows = np.arange(10)
    expected = small["asm"].assemble(rows, request)
    writeable = small["vectors"].copy()
    copied = FeatureAssembler(small["spec"], table, writeable)
    writeable[:] = 0
    assert_same(copied.assemble(rows, request), expected)
    shared = small["vectors"].copy()
    shared.flags.writeable = False
    borrowed = FeatureAssembler(small["spec"], table, shared)
    del shared  # the assembler keeps it alive
    assert_same(borrowed.assemble(rows, request), expected)

