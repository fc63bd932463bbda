"""The driver side of a side-by-side benchmark: start one worker process per runtime, collect their JSON.

Shared by bench/ann and bench/trees. Each runtime runs in its own process,
single-threaded, so that libraries cannot disturb each other's memory or
thread pools and a crash costs one row; ``--reuse`` lets a run re-measure
some runtimes (usually the engine) and keep the others' rows from the last
run of the same workload, the report saying which run every row comes from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

CRASH_RETRY_WAIT_S = 60  # the native module may be rebuilt under us; one retry after a crash
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def utc_now() -> str:
    # Seconds, not minutes: --reuse tells runs apart by their start time.
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_worker(name: str, cmd: list[str], out_path: Path, cwd: Path, workload_key: str) -> dict:
    """Run one worker command that writes its result to ``out_path``; retry once if it crashes."""
    env = dict(os.environ, **SINGLE_THREAD_ENV)
    for attempt in range(2):
        if out_path.exists():
            out_path.unlink()
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=os.fspath(cwd))
        if proc.returncode == 0 and out_path.exists():
            result = json.loads(out_path.read_text())
            result.update(wall_s=time.perf_counter() - start, workload_key=workload_key,
                          finished_at=utc_now())
            out_path.write_text(json.dumps(result, indent=1))
            if "skipped" in result or "error" in result:
                log(f"{name}: {result.get('skipped') or result.get('error')}")
            return result
        log(f"{name}: worker exited with {proc.returncode}"
            + (f"; retrying in {CRASH_RETRY_WAIT_S} s" if attempt == 0 else ""))
        if attempt == 0:
            time.sleep(CRASH_RETRY_WAIT_S)
    return {"runtime": name, "error": f"worker crashed (exit code {proc.returncode}) twice"}


def selected_runtimes(ap, text: str, order: list[str]) -> list[str]:
    """The runtimes named in a comma-separated ``--runtimes`` value (argparse error if unknown)."""
    runtimes = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in order]
    if unknown:
        ap.error(f"unknown runtimes {unknown}; choose from {order}")
    return runtimes


def write_worker_result(out_path: str, runtime: str, compute: Callable[[], dict]) -> int:
    """Worker side: run ``compute`` and write its result (or the exception) atomically as JSON.

    An exception is recorded in the report rather than losing the whole run.
    """
    try:
        result = compute()
    except Exception as e:
        result = {"runtime": runtime, "error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc()}
        print(result["traceback"], file=sys.stderr, flush=True)
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, out_path)
    return 0


def rerender_main(argv, default_json: Path, write) -> int:
    """``python -m bench.X.report [run.json]``: render a saved run again with ``write(doc, dir, name)``."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else default_json
    md, png = write(json.loads(path.read_text()), path.parent, path.stem)
    print(f"wrote {md} and {png}")
    return 0


def collect_results(fresh: dict[str, dict], order: list[str], cache_path, doc_path: Path,
                    workload_key: str, started_at: str, reuse: bool) -> tuple[list[dict], list[dict]]:
    """This run's results in ``order``, plus (with ``reuse``) the last cached result of every
    other runtime measured on the same workload; and the earlier runs those came from.

    ``cache_path(runtime)`` is where a runtime's last result is kept; ``doc_path``
    the previous report's JSON, whose ``runs`` say when each earlier run started.
    """
    for rt, result in fresh.items():
        result["run_started_at"] = started_at
        cache_path(rt).write_text(json.dumps(result, indent=1))
    previous_runs = []
    if reuse and doc_path.exists():
        old_doc = json.loads(doc_path.read_text())
        previous_runs = old_doc.get("runs") or [
            {k: old_doc.get(k) for k in ("command", "started_at", "elapsed_s")}]
    results = []
    for rt in order:
        if rt in fresh:
            results.append(fresh[rt])
            continue
        cached = cache_path(rt)
        if reuse and cached.exists():
            old = json.loads(cached.read_text())
            if old.get("workload_key", workload_key) == workload_key:
                old["reused"] = old.get("finished_at") or datetime.fromtimestamp(
                    cached.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                if "run_started_at" not in old and previous_runs:
                    old["run_started_at"] = previous_runs[-1]["started_at"]
                results.append(old)
                log(f"{rt}: reusing the result of {old['reused']}")
    used = {r.get("run_started_at") for r in results}
    runs = [r for r in previous_runs if r["started_at"] in used and r["started_at"] != started_at]
    return results, runs
