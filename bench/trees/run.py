"""Side-by-side tree-ensemble benchmark: engine.Forest against XGBoost, LightGBM, treelite+tl2cgen, lleaves, ONNX Runtime.

    python -m bench.trees.run                  # 8 models x 4 batch sizes: ~5 min once cached (the first
                                               # run trains and compiles the peers: ~1 h on 2 busy cores)
    python -m bench.trees.run --quick          # 1 model, batches 1 and 256, short budgets: a smoke test
    python -m bench.trees.run --runtimes engine --reuse
                                               # re-measure the engine, keep the peers of the last run
    python -m bench.trees.run --lleaves-python .venv-lleaves/bin/python

Writes bench/results/trees.md and trees_ns_per_row_tree.png (``--quick``:
trees_quick.*), and the raw numbers as JSON next to them. Every runtime is
single-threaded, in its own worker process (see worker.py); lleaves runs
under the interpreter of its own venv (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import machine
from bench.driver import collect_results, log, run_worker, selected_runtimes, utc_now
from bench.trees import report, workload
from bench.trees.peers import ORDER

PEER_DISTRIBUTIONS = ("xgboost-cpu", "lightgbm", "treelite", "tl2cgen", "onnxruntime", "onnxmltools",
                      "onnx", "numpy")
REPO = workload.RESULTS_DIR.parents[1]
# lleaves needs llvmlite<0.45, which cannot share the project's environment: its
# worker runs under this interpreter (--lleaves-python, $LLEAVES_PYTHON, or this default).
DEFAULT_LLEAVES_PYTHON = REPO / ".venv-lleaves" / "bin" / "python"


def lleaves_python(option: str | None) -> tuple[str | None, str | None]:
    """(the interpreter to run the lleaves worker with, None), or (None, why there is none)."""
    path = option or os.environ.get("LLEAVES_PYTHON") or os.fspath(DEFAULT_LLEAVES_PYTHON)
    if Path(path).exists():
        return path, None
    return None, (f"no lleaves interpreter at {path} (set --lleaves-python or $LLEAVES_PYTHON; "
                  "setup in bench/README.md)")


def worker_command(python: str, rt: str, args, models: list[str], out: Path) -> list[str]:
    return [python, "-m", "bench.trees.worker", "--runtime", rt, "--models", ",".join(models),
            "--batches", ",".join(map(str, args.batches)), "--budget", str(args.budget),
            "--min-calls", str(args.min_calls), "--out", os.fspath(out)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="rank-engine tree-ensemble benchmark against peer libraries")
    ap.add_argument("--quick", action="store_true",
                    help=f"models {workload.QUICK_MODELS}, batches {workload.QUICK_BATCHES}, short budgets")
    ap.add_argument("--models", default=None,
                    help="comma-separated subset of: " + ", ".join(m.name for m in workload.MODELS))
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,16,256,4096)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timed calls per (model, batch) cell (default 2; quick 0.3)")
    ap.add_argument("--min-calls", type=int, default=5, help="timed calls per cell at least")
    ap.add_argument("--runtimes", default=",".join(ORDER),
                    help=f"comma-separated subset of: {', '.join(ORDER)}")
    ap.add_argument("--reuse", action="store_true",
                    help="add the last results (same workload) of runtimes not in --runtimes")
    ap.add_argument("--lleaves-python", default=None,
                    help=f"interpreter with lleaves installed (default $LLEAVES_PYTHON or "
                         f"{DEFAULT_LLEAVES_PYTHON.relative_to(REPO)})")
    ap.add_argument("--jobs", type=int, default=1,
                    help="workers at once (default 1; more only for a smoke test: timings disturbed)")
    ap.add_argument("--name", default=None, help="output name (default trees, quick: trees_quick)")
    args = ap.parse_args(argv)
    models = (args.models.split(",") if args.models
              else workload.QUICK_MODELS if args.quick else [m.name for m in workload.MODELS])
    specs = [workload.spec_by_name(m) for m in models]
    args.batches = ([int(b) for b in args.batches.split(",")] if args.batches
                    else list(workload.QUICK_BATCHES if args.quick else workload.BATCHES))
    args.budget = args.budget or (0.3 if args.quick else 2.0)
    name = args.name or ("trees_quick" if args.quick else "trees")
    runtimes = selected_runtimes(ap, args.runtimes, ORDER)

    started = time.perf_counter()
    started_at = utc_now()
    load_at_start = os.getloadavg()[0]  # the cores are shared: the report says how busy they were
    command = "python -m bench.trees.run " + " ".join(argv if argv is not None else sys.argv[1:])
    key = f"trees-v{workload.FORMAT}-{'+'.join(models)}-b{'+'.join(map(str, args.batches))}"
    workload.prepare(specs, log=log)
    info = machine.system_info(PEER_DISTRIBUTIONS)
    log(f"CPU {info['cpu']}; engine simd={info['engine_build_info']['simd']}")
    lleaves_py, no_lleaves = lleaves_python(args.lleaves_python)

    def cache_path(rt: str) -> Path:
        return workload.CACHE_DIR / f"{name}-{rt}.json"

    def one(rt: str) -> dict:
        log(f"--- {rt}")
        python = sys.executable
        if rt == "lleaves":
            if lleaves_py is None:
                return {"runtime": rt, "skipped": no_lleaves}
            python = lleaves_py
        return run_worker(rt, worker_command(python, rt, args, models, cache_path(rt)),
                          cache_path(rt), REPO, key)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        fresh = dict(zip(runtimes, pool.map(one, runtimes)))
    results, runs = collect_results(fresh, ORDER, cache_path, workload.RESULTS_DIR / f"{name}.json",
                                    key, started_at, args.reuse)
    run_record = {"command": command.strip(), "started_at": started_at,
                  "elapsed_s": time.perf_counter() - started}
    doc = {
        "command": run_record["command"], "started_at": started_at,
        "elapsed_s": run_record["elapsed_s"], "runs": runs + [run_record], "system": info,
        "load_average": [load_at_start, os.getloadavg()[0]],
        "workload": report.describe_workload(specs),
        "settings": {"batches": args.batches, "budget_s": args.budget, "min_calls": args.min_calls,
                     "threads": 1, "jobs": args.jobs},
        "results": results,
    }
    json_path = workload.RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(doc, indent=1))
    md_path, png_path = report.write(doc, workload.RESULTS_DIR, name)
    log(f"wrote {md_path.name}, {png_path.name} and {json_path.name} in {doc['elapsed_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
