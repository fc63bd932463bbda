"""Worker: build one runtime, check its answers, then time it; results as JSON.

``python -m bench.ann.worker --runtime faiss-hnsw32 --n 1000000 --queries 1000 --out x.json``

The driver (``bench.ann.run``) starts one worker per runtime so each build is
measured in a fresh process (clean RSS, no allocator state left by another
library) and a crash in one library cannot take the run down.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from bench.ann.peers import RUNTIMES  # noqa: E402
from bench.driver import write_worker_result  # noqa: E402

# Import order matters: bench.ann.workload imports engine, engine imports
# usearch, and usearch's extension carries its own statically linked
# libstdc++; once that is loaded, faiss.index_factory (std::regex) segfaults.
# So main() imports the peer module (faiss first) before the workload.


def _recall_at_k(found, truth):
    from bench.ann.workload import recall_at_k

    return recall_at_k(found, truth)

STOP_RECALL = 0.995  # a sweep ends at the first point at least this accurate
MIN_QPS = 20.0  # ... or at the first point slower than this (per query)
PLATEAU = 0.002  # ... or when three points in a row gained less recall than this
CHECK_QUERIES = 50
CHECK_MIN_RECALL = 0.5
WARMUP_QUERIES = 3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn, queries, truth, runtime, batch: int, budget_s: float, min_queries: int,
            repeats: int = 1) -> dict:
    """Time ``fn`` over the queries (batch 1: a loop of single-query calls), then score it.

    A batch-1 loop stops early once past ``budget_s`` with at least
    ``min_queries`` done; recall is then over the queries that ran. The loop
    is repeated (same queries) up to ``repeats`` times while the time spent
    stays under ``budget_s``, and the fastest repeat counts: on a shared
    machine, interference only ever makes a run slower.
    """
    nq = len(queries)
    if batch == 1:
        chunks = [queries[i:i + 1] for i in range(nq)]
    else:
        chunks = [queries[i:i + batch] for i in range(0, nq, batch)]
    for q in ([queries[i:i + 1] for i in range(WARMUP_QUERIES)] if batch == 1
              else [queries[:WARMUP_QUERIES]]):
        fn(q)
    first_out, times, spent = None, [], 0.0
    for _ in range(repeats):
        out = []
        start = time.perf_counter()
        deadline = start + budget_s
        for i, q in enumerate(chunks):
            out.append(fn(q))
            if batch == 1 and i + 1 >= min_queries and time.perf_counter() > deadline:
                break
        elapsed = time.perf_counter() - start
        if first_out is None:
            first_out = out
            chunks = chunks[:len(out)]  # repeats run the same queries
        times.append(elapsed)
        spent += elapsed
        if spent > budget_s:
            break
    raw = np.vstack([np.asarray(o).reshape(-1, runtime.k) for o in first_out])
    done = len(raw)
    found = runtime.positions(raw)
    return {"recall": _recall_at_k(found, truth[:done]), "qps": done / min(times),
            "queries": done, "seconds": min(times), "repeats": len(times)}


def sweep(runtime, queries, truth, batch, budget_s, min_queries, repeats, filter_case=None, tag=""):
    """Points (knob, recall, qps) along the runtime's knob; None if it cannot run this case."""
    points = []
    knobs = list(runtime.sweep)
    if runtime.is_engine:
        knobs = [None] + knobs  # the calibrated default first, then the sweep
    for knob in knobs:
        fn = runtime.searcher(knob, filter_case)
        if fn is None:
            return None
        p = measure(fn, queries, truth, runtime, batch, budget_s, min_queries, repeats)
        p["knob"] = knob
        points.append(p)
        log(f"  {tag} batch={batch} {runtime.knob}={knob}: recall={p['recall']:.4f} "
            f"qps={p['qps']:.0f} ({p['queries']} q)")
        if knob is None:
            continue
        swept = [q["recall"] for q in points if q["knob"] is not None]
        plateau = len(swept) >= 3 and swept[-1] - swept[-3] < PLATEAU
        if p["recall"] >= STOP_RECALL or p["qps"] < MIN_QPS or plateau:
            break
    return points


def check(runtime, wl) -> dict:
    """Answer quality at the most accurate setting, before anything is timed.

    Runtimes that only search with filters (the post-filter baseline) are
    checked on the broadest filter.
    """
    q = wl.queries[:CHECK_QUERIES]
    case, truth = None, wl.truth
    if runtime.sweep:
        knob = runtime.sweep[-1]
        fn = runtime.searcher(knob, None)
        if fn is None:
            case = max(wl.filters, key=lambda c: c.selectivity)
            fn, truth = runtime.searcher(knob, case), case.truth
    else:
        fn, knob = runtime.exact_searcher(), "exact"
    found = runtime.positions(np.asarray(fn(q)).reshape(len(q), -1))
    recall = _recall_at_k(found, truth[:len(q)])
    ok = bool(recall >= CHECK_MIN_RECALL and (found >= 0).all() and (found < wl.params.n).all())
    return {"knob": knob, "recall": recall, "ok": ok, "filter": case and case.name}


def run(name: str, runtime_cls, params, budget_s: float, min_queries: int, batch: int,
        repeats: int) -> dict:
    from bench.ann.workload import load_workload

    _, _, kwargs = RUNTIMES[name]
    result: dict = {"runtime": name}
    wl = load_workload(params, compute=False, log=log)
    runtime = runtime_cls(params.k, params.dim, **kwargs)
    result.update(label=runtime.label, library=runtime.library, version=runtime.version(),
                  knob=runtime.knob, is_engine=runtime.is_engine)

    gc.collect()
    rss0 = rss_bytes()
    start = time.perf_counter()
    runtime.build(wl)
    result["build_s"] = time.perf_counter() - start
    gc.collect()
    result["rss_delta"] = rss_bytes() - rss0
    result["size_bytes"] = runtime.size_bytes()
    result["config"] = runtime.config
    result["extra"] = runtime.extra()
    log(f"{name}: built in {result['build_s']:.1f} s, {result['rss_delta'] / 2**20:.0f} MB RSS; "
        f"{runtime.config}")

    result["check"] = check(runtime, wl)
    log(f"  check: recall={result['check']['recall']:.4f} at {runtime.knob}={result['check']['knob']}")
    if not result["check"]["ok"]:
        result["error"] = "failed the quality check; not timed"
        return result

    nq = len(wl.queries)
    batches = sorted({1, min(batch, nq)})
    if runtime.sweep:
        result["unfiltered"] = {
            str(b): sweep(runtime, wl.queries, wl.truth, b, budget_s, min_queries, repeats,
                     tag="unfiltered")
            for b in batches}
        result["filtered"] = {}
        for case in wl.filters:
            points = sweep(runtime, wl.queries, case.truth, 1, budget_s, min_queries, repeats,
                           filter_case=case, tag=case.name)
            if points is not None:
                result["filtered"][case.name] = points
    exact = runtime.exact_searcher()
    if exact is not None:
        result["exact"] = {}
        for b in batches:
            p = measure(exact, wl.queries, wl.truth, runtime, b, budget_s, min_queries, repeats)
            result["exact"][str(b)] = p
            log(f"  exact batch={b}: recall={p['recall']:.4f} qps={p['qps']:.1f} ({p['queries']} q)")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", required=True, choices=sorted(RUNTIMES))
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--queries", type=int, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=5.0, help="seconds per batch-1 point")
    ap.add_argument("--min-queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timed runs per point")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    module, cls, _ = RUNTIMES[args.runtime]
    try:
        runtime_cls = getattr(importlib.import_module(module), cls)  # before the workload: see top
        skipped = None
    except ImportError as e:
        runtime_cls, skipped = None, f"ImportError: {e}"
    from bench.ann.workload import Params

    params = Params(n=args.n, n_queries=args.queries, k=args.k)
    if skipped:
        return write_worker_result(args.out, args.runtime,
                                   lambda: {"runtime": args.runtime, "skipped": skipped})
    return write_worker_result(args.out, args.runtime, lambda: run(
        args.runtime, runtime_cls, params, args.budget, min(args.min_queries, args.queries),
        args.batch, args.repeats))


if __name__ == "__main__":
    sys.exit(main())
