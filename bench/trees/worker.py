"""Worker: one runtime over the models it can read: load, check agreement, then time; results as JSON.

``python -m bench.trees.worker --runtime tl2cgen --models lightgbm-l63-t500-f100 --out x.json``

The driver (``bench.trees.run``) starts one worker per runtime, so each
library runs in a fresh process (no allocator or thread-pool state left by
another one, a crash costs one row), and the lleaves worker can run under
another interpreter. This module imports only numpy and the standard
library before the runtime's own module, for that reason.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from bench.driver import write_worker_result  # noqa: E402
from bench.trees import workload  # noqa: E402
from bench.trees.peers import RUNTIMES  # noqa: E402
from bench.trees.peers.base import Unavailable  # noqa: E402

# Agreement with the training library's raw scores, checked on every held-out
# row before anything is timed. The engine must reproduce them to float32
# output precision; a peer is timed unless it computes another function
# (most rows off), and its disagreement is reported either way.
ENGINE_TOL = 1e-6  # |Δ| <= ENGINE_TOL * max(1, |reference|)
ROW_OFF = 1e-4  # a row "disagrees" above this
PEER_MEDIAN_TOL = 1e-4
CHECK_CHUNK = 4096
WARMUP_S = 0.2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def check(predict, X: np.ndarray, reference: np.ndarray, is_engine: bool) -> dict:
    """Raw scores on every held-out row against the training library's."""
    out = np.concatenate([np.asarray(predict(X[i:i + CHECK_CHUNK]), dtype=np.float64).reshape(-1)
                          for i in range(0, len(X), CHECK_CHUNK)])
    if out.shape != reference.shape or not np.isfinite(out).all():
        return {"ok": False, "why": f"output shape {out.shape} (want {reference.shape}) or non-finite"}
    diff = np.abs(out - reference)
    result = {"max_abs": float(diff.max()), "median_abs": float(np.median(diff)),
              "rows_off_pct": float((diff > ROW_OFF).mean() * 100), "rows": len(diff)}
    if is_engine:
        result["ok"] = bool((diff <= ENGINE_TOL * np.maximum(1.0, np.abs(reference))).all())
        result["rule"] = f"|Δ| <= {ENGINE_TOL:g}·max(1, |ref|) on every row"
    else:
        result["ok"] = result["median_abs"] <= PEER_MEDIAN_TOL
        result["rule"] = f"median |Δ| <= {PEER_MEDIAN_TOL:g}"
    return result


def time_calls(predict, X: np.ndarray, batch: int, budget_s: float, min_calls: int) -> dict:
    """Median wall time of one call on ``batch`` rows, over calls until ``budget_s`` has passed.

    Consecutive calls take consecutive slices of the held-out rows (so a
    batch-1 loop does not score one cached row over and over). The garbage
    collector is off while timing, for every runtime alike.
    """
    chunks = [X[i:i + batch] for i in range(0, len(X) - batch + 1, batch)]
    warm_until = time.perf_counter() + min(WARMUP_S, budget_s / 5)
    i = 0
    while i < 3 or time.perf_counter() < warm_until:
        predict(chunks[i % len(chunks)])
        i += 1
    times = []
    gc.collect()
    gc.disable()
    try:
        deadline = time.perf_counter() + budget_s
        while len(times) < min_calls or time.perf_counter() < deadline:
            chunk = chunks[len(times) % len(chunks)]
            t0 = time.perf_counter_ns()
            predict(chunk)
            times.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    t = np.array(times, dtype=np.float64) / 1e3  # microseconds
    return {"median_us": float(np.median(t)), "min_us": float(t.min()),
            "p90_us": float(np.percentile(t, 90)), "calls": len(t)}


def run_model(runtime, spec, batches, budget_s, min_calls) -> dict:
    X, reference = workload.load_eval(spec)
    start = time.perf_counter()
    runtime.prepare(spec)
    result = {"config": runtime.config, "prepare_s": time.perf_counter() - start,
              "cached": runtime.cached}
    predict = runtime.predictor()
    result["check"] = check(predict, X, reference, runtime.is_engine)
    c = result["check"]
    log(f"  {spec.name}: prepared in {result['prepare_s']:.1f} s"
        + (" (cached artefact)" if runtime.cached else "")
        + f"; check max|Δ|={c.get('max_abs', float('nan')):.2g} "
        f"rows off={c.get('rows_off_pct', float('nan')):.2f} % ok={c['ok']}")
    if not c["ok"]:
        result["error"] = "failed the agreement check; not timed"
        return result
    result["batches"] = {}
    for b in batches:
        cell = time_calls(predict, X, b, budget_s, min_calls)
        cell["ns_per_row_tree"] = cell["median_us"] * 1e3 / (b * spec.n_trees)
        result["batches"][str(b)] = cell
        log(f"    batch {b}: {cell['median_us']:.1f} us/call, {cell['ns_per_row_tree']:.2f} ns/row-tree "
            f"({cell['calls']} calls)")
    return result


def run(name: str, models: list[str], batches: list[int], budget_s: float, min_calls: int,
        artefact_dir: Path) -> dict:
    module, cls = RUNTIMES[name]
    result = {"runtime": name}
    try:
        runtime = getattr(importlib.import_module(module), cls)(artefact_dir)
    except (ImportError, Unavailable) as e:
        result["skipped"] = str(e) if isinstance(e, Unavailable) else f"{type(e).__name__}: {e}"
        return result
    result.update(label=runtime.label, library=runtime.library, version=runtime.version(),
                  is_engine=runtime.is_engine, python=sys.executable, models={})
    for spec in map(workload.spec_by_name, models):
        if spec.library not in runtime.reads:
            continue  # e.g. lleaves on an XGBoost model: not a gap, the library cannot read it
        try:
            result["models"][spec.name] = run_model(runtime, spec, batches, budget_s, min_calls)
        except Exception as e:  # one model failing should not lose the others
            log(traceback.format_exc())
            result["models"][spec.name] = {"error": f"{type(e).__name__}: {e}"}
    result["extra"] = runtime.extra()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtime", required=True, choices=sorted(RUNTIMES))
    ap.add_argument("--models", required=True, help="comma-separated model names (workload.MODELS)")
    ap.add_argument("--batches", default="1,16,256,4096")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per cell")
    ap.add_argument("--min-calls", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    artefact_dir = workload.CACHE_DIR / "artefacts"
    artefact_dir.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    return write_worker_result(args.out, args.runtime, lambda: run(
        args.runtime, args.models.split(","), batches, args.budget, args.min_calls, artefact_dir))


if __name__ == "__main__":
    sys.exit(main())
