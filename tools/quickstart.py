"""The README's main job until the ranking pipeline lands: build a filtered
retrieval index over a generated catalogue, save and reload it, and report
recall@10 and per-query latency for the searches a store front makes."""

from __future__ import annotations

import os
import time

import numpy as np

import engine
from engine.datasets import make_catalogue


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(int((truth >= 0).sum()), 1)


def _latencies_us(index, queries, k, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """One call per query, as a request handler makes them."""
    ids = np.empty((len(queries), k), np.int64)
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        ids[i] = index.search(q, k, **kwargs)[0][0]
        times[i] = (time.perf_counter() - t0) * 1e6
    return ids, times


def _step(message: str) -> float:
    print(f"  {message} ...", end="", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f" {time.perf_counter() - t0:.1f} s", flush=True)


def run(args) -> None:
    info = engine.build_info()
    print(f"rank-engine {info['version']} (simd: {info['simd']}, compiler {info['compiler']})")
    os.makedirs(args.out, exist_ok=True)

    t0 = _step(f"generating a catalogue of {args.items:,} items x {args.dim} dims")
    cat = make_catalogue(args.items, dim=args.dim, seed=args.seed)
    queries = cat.queries(args.queries, seed=args.seed + 1)
    _done(t0)

    t0 = _step(f"building a {args.storage} index on {args.threads} threads")
    index = engine.VectorIndex(args.dim, "ip", args.storage, seed=args.seed)
    index.add(cat.ids, cat.vectors, cat.attributes, threads=args.threads)
    build_s = time.perf_counter() - t0
    _done(t0)

    path = os.path.join(args.out, "index.safetensors")
    t0 = _step(f"saving and memory-mapping {path}")
    index.save(path)
    index = engine.VectorIndex.load(path, mmap=True)
    _done(t0)

    merchants, counts = np.unique(cat.attributes["merchant_id"], return_counts=True)
    store = int(merchants[np.argmin(np.abs(counts - 0.01 * args.items))])  # a ~1 % store page
    scenarios = [
        ("home feed (no filter)", None),
        ("in stock only", {"in_stock": True}),
        (f"store page: merchant {store} ({counts[merchants == store][0]:,} items), in stock",
         {"merchant_id": store, "in_stock": True}),
    ]
    print(f"\n{'search':58s} {'recall@10':>9s} {'p50 us':>8s} {'p99 us':>8s}")
    for name, filt in scenarios:
        truth = index.search(queries, 10, filter=filt, exact=True, threads=args.threads)[0]
        found, times = _latencies_us(index, queries, 10, filter=filt)
        p50, p99 = np.percentile(times, [50, 99])
        print(f"{name:58s} {_recall(found, truth):9.3f} {p50:8.1f} {p99:8.1f}")
    stats = index.stats()
    print(f"\nindex: {stats['rows']:,} rows, {stats['bytes'] / 2**20:.0f} MiB, "
          f"{sum(s['nlist'] for s in stats['segments'][:1])} IVF lists, "
          f"default ef {stats['segments'][0]['default_nprobe']}, built in {build_s:.1f} s; saved to {path}")
