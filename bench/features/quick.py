"""Per-call cost of engine.FeatureAssembler at the request path's size.

    python bench/features/quick.py [--items 200000] [--rows 500] [--dim 64] [--repeat 2000]

A typical spec: 60 features, of which 10 hashed crosses (2-3 sources; 7 mix
item and request), 5 hashed ids, 8 buckets, 4 lookups into request maps
(20-60 entries), 2 matches, one 64-dim dot product and 30 pass-through numbers. Prints the median wall time per call of
``assemble`` (the whole public call: request encoding, output allocation,
the kernel) and of the same call writing into a preallocated ``out``, then
offline throughput. Every result is checked against the offline path first
(byte for byte), as the tests do. Single thread unless stated; no pass/fail.
The minimum is printed beside the median: on a shared machine it is the
better estimate of the cost itself; the load average is printed with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import pyarrow as pa

import engine
from engine.features import Bucket, Cross, Dot, FeatureSpec, Hashed, Lookup, Match, Numeric

NUMERIC_ITEM = [f"item_num_{i}" for i in range(25)]
NUMERIC_REQUEST = ["hour", "day_of_week", "session_length", "user_age_days", "basket_value"]


def typical_spec() -> FeatureSpec:
    features = [Numeric(c, f"item.{c}") for c in NUMERIC_ITEM]
    features += [Numeric(f, f"request.{f}", default=-1.0) for f in NUMERIC_REQUEST]
    features += [
        Bucket("price_bucket", "item.price", [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
        Bucket("rating_bucket", "item.rating", [1.5, 2.5, 3.5, 4.0, 4.5]),
        Bucket("age_bucket", "item.age_days", [1, 7, 30, 90, 365]),
        Bucket("ctr_bucket", "item.item_num_0", [-1, -0.5, 0, 0.5, 1]),
        Bucket("hour_bucket", "request.hour", [6, 12, 18]),
        Bucket("session_bucket", "request.session_length", [1, 3, 10, 30]),
        Bucket("basket_bucket", "request.basket_value", [0, 10, 50, 200]),
        Bucket("stock_bucket", "item.stock", [0, 1, 10, 100]),
    ]
    features += [
        Hashed("category", "item.category_id", 1 << 12),
        Hashed("merchant", "item.merchant_id", 1 << 16),
        Hashed("brand", "item.brand_id", 1 << 14),
        Hashed("segment", "request.segment", 64),
        Hashed("device", "request.device", 16),
    ]
    crosses = [
        ["request.segment", "item.category_id"], ["request.device", "item.merchant_id"],
        ["request.segment", "item.brand_id"], ["request.country", "item.merchant_id"],
        ["request.device", "item.category_id"], ["request.query_category", "item.category_id"],
        ["request.segment", "request.device", "item.category_id"],
        ["request.country", "item.category_id", "item.in_stock"],
        ["item.category_id", "item.brand_id"], ["request.segment", "item.merchant_id", "item.in_stock"],
    ]
    features += [Cross(f"cross_{i}", s, 1 << 18) for i, s in enumerate(crosses)]
    features += [
        Dot("user_item_sim"),
        Lookup("category_clicks", "category_clicks", "item.category_id"),
        Lookup("merchant_clicks", "merchant_clicks", "item.merchant_id"),
        Lookup("brand_views", "brand_views", "item.brand_id"),
        Lookup("category_recency", "category_recency", "item.category_id", default=1e6),
        Match("query_category_match", ["request.query_category", "item.category_id"]),
        Match("home_country_merchant", ["request.home_merchant", "item.merchant_id"]),
    ]
    return FeatureSpec(features)


def item_table(n: int, rng: np.random.Generator) -> pa.Table:
    cols = {c: rng.standard_normal(n) for c in NUMERIC_ITEM}
    cols |= {
        "item_id": rng.permutation(10 * n)[:n].astype(np.uint64),
        "price": rng.lognormal(3, 1.2, n), "rating": rng.uniform(1, 5, n).astype(np.float32),
        "age_days": rng.integers(0, 1000, n), "stock": rng.integers(0, 500, n).astype(np.int32),
        "category_id": rng.integers(0, 2000, n), "merchant_id": rng.integers(0, 50_000, n),
        "brand_id": rng.integers(0, 20_000, n), "in_stock": rng.random(n) < 0.9,
    }
    return pa.table(cols)


def request(rng: np.random.Generator, dim: int) -> dict:
    def clicks(k, hi):
        return {int(c): float(v) for c, v in zip(rng.integers(0, hi, k), rng.integers(1, 20, k))}

    return {
        "hour": 13, "day_of_week": 2, "session_length": 7.0, "user_age_days": 400, "basket_value": 35.5,
        "segment": "returning-high-value", "device": "ios", "country": "DE", "query_category": 17,
        "home_merchant": 1234, "user_vector": rng.standard_normal(dim).astype(np.float32),
        "category_clicks": clicks(40, 2000), "merchant_clicks": clicks(60, 50_000),
        "brand_views": clicks(30, 20_000), "category_recency": clicks(20, 2000),
    }


def offline_table(req: dict, rows: np.ndarray, dim: int) -> pa.Table:
    n = len(rows)
    cols: dict = {"item_row": rows}
    for k, v in req.items():
        if k == "user_vector":
            cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(np.tile(v, n)), dim)
        elif isinstance(v, dict):
            cols[k] = pa.array([list(v.items())] * n, pa.map_(pa.int64(), pa.float64()))
        else:
            cols[k] = [v] * n
    return pa.table(cols)


def call_us(fn, repeat: int) -> tuple[float, float]:
    """(median, minimum) wall time of one call, in microseconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6, min(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    spec = typical_spec()
    items = item_table(args.items, rng)
    vectors = rng.standard_normal((args.items, args.dim)).astype(np.float32)
    t = time.perf_counter()
    asm = engine.FeatureAssembler(spec, items, vectors)
    build_ms = (time.perf_counter() - t) * 1e3
    kinds = {}
    for f in spec.features:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    info = engine.build_info()
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print(f"rank-engine {info['version']} ({info['compiler']}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs{load}")
    print(f"spec: {asm.n_features} features {kinds}; items {args.items:,} (store built in {build_ms:.0f} ms)")

    req = request(rng, args.dim)
    rows = rng.integers(0, args.items, args.rows)
    X = asm.assemble(rows, req)
    Y = asm.assemble_offline(offline_table(req, rows, args.dim))
    assert np.array_equal(X.view(np.uint32), Y.view(np.uint32)), "online != offline"

    out = np.empty_like(X)
    for label, fn in [
        (f"assemble, {args.rows} rows", lambda: asm.assemble(rows, req)),
        (f"assemble, {args.rows} rows, out=", lambda: asm.assemble(rows, req, out=out)),
        ("assemble, 1 row (fixed cost)", lambda: asm.assemble(rows[:1], req)),
        (f"assemble, {args.rows} rows, request without maps",
         lambda: asm.assemble(rows, {k: v for k, v in req.items() if not isinstance(v, dict)})),
    ]:
        med, low = call_us(fn, args.repeat)
        print(f"{label:<50} {med:7.1f} us/call median, {low:7.1f} min  "
              f"({med * 1e3 / max(len(rows), 1):5.1f} ns/row, {args.repeat} calls)")

    n_off = 200_000
    off_rows = rng.integers(0, args.items, n_off)
    table = offline_table(req, off_rows, args.dim)
    for threads in (1, 2):
        best = min(_timed(lambda t=threads: asm.assemble_offline(table, threads=t)) for _ in range(3))
        print(f"assemble_offline, {n_off:,} rows, threads={threads:<11} {best * 1e3:7.1f} ms (min of 3)    "
              f"({best * 1e9 / n_off:5.1f} ns/row)")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
