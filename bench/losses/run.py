"""Ranking losses and metrics: the engine's Numba kernels against LightGBM's
built-in objectives, torch implementations of the same losses, pytrec_eval
and ranx, all measured in one run.

    python -m bench.losses.run            # 20,000 queries per loss call, 10,000-query run: ~5 min
    python -m bench.losses.run --quick    # smaller, ~1 min; writes losses_quick.md

Writes bench/results/losses.md. Every peer's output is checked against the
engine's before it is timed; a time is the best of --repeats calls.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import platform
import sys
import time
from importlib.metadata import version

import lightgbm
import numba
import numpy as np
import pytrec_eval
import torch

from bench.losses.torch_losses import padded_step
from bench.losses.workload import labels_for, ranking_batch, trec_run
from engine import losses, metrics

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"
THREADS = (1, 2)
# engine objective -> (LightGBM built-in objective, engine parameters matching its defaults)
LIGHTGBM_BUILTINS = {
    "lambdarank": ("lambdarank", {"k": 30, "norm": True}),
    "sigmoid_cross_entropy": ("binary", {}),
    "squared_error": ("regression", {}),
}
METRICS = ["ndcg@10", "map@10", "mrr", "recall@10", "precision@10"]
TREC_MEASURES = {"ndcg@10": "ndcg_cut_10", "map@10": "map_cut_10", "mrr": "recip_rank",
                 "recall@10": "recall_10", "precision@10": "P_10"}


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: compilation, caches, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def set_threads(n: int) -> None:
    numba.set_num_threads(n)
    torch.set_num_threads(n)


def measure_objectives(n_queries: int, repeats: int) -> list[dict]:
    scores, labels, offsets = ranking_batch(n_queries)
    rows = []
    for name, engine_loss in losses.OBJECTIVES.items():
        y = labels_for(name, labels)
        torch_step, mask = padded_step(name, scores, y, offsets)
        loss, grad, _ = engine_loss(scores, y, offsets)
        torch_loss, torch_grad = torch_step()
        row = {"objective": name, "check": max(abs(torch_loss.item() - loss) / max(abs(loss), 1e-300),
                                               float(np.abs(torch_grad.numpy()[mask] - grad).max()))}
        for threads in THREADS:
            set_threads(threads)
            row[f"engine {threads}t"] = n_queries / best_of(functools.partial(engine_loss, scores, y, offsets), repeats)
            row[f"torch {threads}t"] = n_queries / best_of(torch_step, repeats)
        rows.append(row)
        print(f"  {name}: {row}", file=sys.stderr)
    return rows


def _ms_per_round(objective, feature, labels, sizes, threads: int, rounds: int) -> float:
    """Best of 3 trainings (after a warm-up) on a freshly constructed data set."""
    times = []
    for _ in range(4):
        data = lightgbm.Dataset(feature, label=labels, group=sizes, free_raw_data=False).construct()
        start = time.perf_counter()
        lightgbm.train({"objective": objective, "num_threads": threads, "num_leaves": 31, "verbose": -1,
                        "deterministic": True}, data, num_boost_round=rounds)
        times.append(time.perf_counter() - start)
    return 1e3 * min(times[1:]) / rounds


def measure_lightgbm(n_queries: int, rounds: int) -> list[dict]:
    """ms per boosting round on a one-feature data set, where the objective is
    most of a round: built-in objective, the engine's, and a no-op callback
    (precomputed gradients: the tree and the Python round trip alone)."""
    _, labels, offsets = ranking_batch(n_queries)
    sizes = np.diff(offsets)
    feature = np.random.default_rng(1).standard_normal((len(labels), 1))
    rows = []
    for name, (builtin, params) in LIGHTGBM_BUILTINS.items():
        y = labels_for(name, labels)
        _, grad, hess = losses.OBJECTIVES[name](np.zeros(len(y)), y, offsets, reduction="sum")
        fixed = (grad, np.abs(hess))
        objectives = {"built-in": builtin, "engine": losses.lightgbm_objective(name, **params),
                      "no-op": lambda preds, data, fixed=fixed: fixed}
        row = {"objective": f"{name} (LightGBM {builtin})"}
        for threads in THREADS:
            set_threads(threads)
            for label, objective in objectives.items():
                row[f"{label} {threads}t"] = _ms_per_round(objective, feature, y, sizes, threads, rounds)
        rows.append(row)
        print(f"  {row}", file=sys.stderr)
    return rows


def measure_metrics(n_queries: int, repeats: int) -> dict:
    import ranx

    run, qrels = trec_run(n_queries)
    ours = metrics.evaluate(run, qrels, METRICS)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES.values())).evaluate(run)
    trec = {m: float(np.mean([v[TREC_MEASURES[m]] for v in per_query.values()])) for m in METRICS}
    ranx_means = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS)
    checks = {"pytrec_eval": max(abs(ours[m] - trec[m]) for m in METRICS),
              "ranx": max(abs(ours[m] - ranx_means[m]) for m in METRICS)}
    # The offsets API on the same run, laid out flat (queries as in the run, ties by input order).
    scores = np.concatenate([list(docs.values()) for docs in run.values()])
    grades = np.concatenate([[qrels[q].get(d, 0) for d in docs] for q, docs in run.items()]).astype(float)
    sizes = [len(docs) for docs in run.values()]
    rows = {}
    for threads in THREADS:
        set_threads(threads)
        rows[f"engine.metrics.evaluate (dicts), {threads}t"] = best_of(
            lambda: metrics.evaluate(run, qrels, METRICS), repeats)
        rows[f"engine.metrics.ndcg + map + ... (flat arrays), {threads}t"] = best_of(
            lambda: [fn(scores, grades, None, 10, group_sizes=sizes) for fn in
                     (metrics.ndcg, metrics.map, metrics.mrr, metrics.recall, metrics.precision)], repeats)
        rows[f"ranx Qrels + Run + evaluate, {threads}t"] = best_of(
            lambda: ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS), repeats)
    rows["pytrec_eval RelevanceEvaluator + evaluate, 1t"] = best_of(
        lambda: pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES.values())).evaluate(run), repeats)
    print(f"  {rows} {checks}", file=sys.stderr)
    return {"rows": rows, "checks": checks, "values": ours,
            "size": (n_queries, sum(sizes), sum(len(j) for j in qrels.values()))}


def environment() -> list[str]:
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                   platform.processor())
    packages = ", ".join(f"{p} {version(p)}" for p in ("numpy", "numba", "torch", "lightgbm",
                                                        "pytrec-eval-terrier", "ranx"))
    return [f"- Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}",
            f"- Packages: {packages}; numba threading layer: {numba.threading_layer()}",
            f"- OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"]


def render(args, objectives, lightgbm_rows, metric_result, load_before, load_after) -> str:
    command = "python -m bench.losses.run" + (" --quick" if args.quick else "")
    if os.environ.get("OMP_WAIT_POLICY"):
        command = f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} {command}"
    lines = ["# Ranking losses and metrics: engine vs LightGBM, torch, pytrec_eval, ranx", "",
             f"`{command}`", "", *environment(),
             f"- Load average (1 min) before / after the run: {load_before} / {load_after} "
             "(the VM is shared; 2-thread figures suffer most when it is busy)", "",
             f"## Loss + gradient + hessian, {args.queries:,} lambdarank-shaped queries per call", "",
             "Query lengths and labels of rank.train repeated (1-27 items, mean 15); float64 scores. "
             "Engine: the public call (input checks included) returning loss, grad and hess. Torch: the same "
             "loss written for a padded (queries x 27) batch, forward + autograd backward (no hessian). "
             "Queries per second, best of the repeats; `check`: the larger of the relative loss difference "
             "and the max gradient difference between the two, measured before timing.", "",
             "| objective | engine 1 thread | engine 2 threads | torch 1 thread | torch 2 threads | "
             "engine / torch (2 threads) | check |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in objectives:
        lines.append(f"| {r['objective']} | {r['engine 1t']:,.0f} | {r['engine 2t']:,.0f} | {r['torch 1t']:,.0f} | "
                     f"{r['torch 2t']:,.0f} | x{r['engine 2t'] / r['torch 2t']:.1f} | {r['check']:.1e} |")
    lines += ["", f"## LightGBM: ms per boosting round, {args.lightgbm_queries:,} queries, one feature", "",
              "One feature keeps the tree cheap, so a round is mostly the objective. `no-op`: a callback "
              "returning precomputed gradients, i.e. the tree plus LightGBM's Python round trip; the "
              "engine's objective costs about `engine - no-op`. The engine's LambdaRank runs with LightGBM's "
              "defaults (k=30, norm=True). LightGBM's `num_threads` = the engine's threads.", "",
              "| objective | built-in 1t | engine 1t | no-op 1t | built-in 2t | engine 2t | no-op 2t |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in lightgbm_rows:
        lines.append(f"| {r['objective']} | " + " | ".join(
            f"{r[f'{label} {t}t']:.2f}" for t in THREADS for label in ("built-in", "engine", "no-op")) + " |")
    n_queries, n_ranked, n_judged = metric_result["size"]
    checks = metric_result["checks"]
    lines += ["", f"## Metrics: {', '.join(METRICS)} on a {n_queries:,}-query run", "",
              f"{n_ranked:,} ranked documents ({n_ranked // n_queries} per query, scores on a 0.001 grid, "
              f"so ties), {n_judged:,} judgments (grades 0-3). Each line computes all five metrics, "
              "from the dicts (building the library's own structures included) unless said otherwise. "
              f"Engine vs pytrec_eval, largest difference of a mean: {checks['pytrec_eval']:.1e}; vs ranx: "
              f"{checks['ranx']:.1e} (ranx orders tied scores differently from trec_eval).", "",
              "| implementation | seconds | queries / s |", "| --- | ---: | ---: |"]
    for label, seconds in sorted(metric_result["rows"].items(), key=lambda item: item[1]):
        lines.append(f"| {label} | {seconds:.3f} | {n_queries / seconds:,.0f} |")
    lines += ["", "Means: " + ", ".join(f"{m} {v:.4f}" for m, v in metric_result["values"].items()), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; writes losses_quick.md")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    args.queries, args.lightgbm_queries, args.metric_queries, rounds = (
        (2_000, 2_000, 1_000, 5) if args.quick else (20_000, 20_000, 10_000, 20))
    load_before = os.getloadavg()[0]
    print("objectives", file=sys.stderr)
    objectives = measure_objectives(args.queries, args.repeats)
    print("lightgbm", file=sys.stderr)
    lightgbm_rows = measure_lightgbm(args.lightgbm_queries, rounds)
    print("metrics", file=sys.stderr)
    metric_result = measure_metrics(args.metric_queries, args.repeats)
    out = RESULTS / ("losses_quick.md" if args.quick else "losses.md")
    out.write_text(render(args, objectives, lightgbm_rows, metric_result, load_before, os.getloadavg()[0]))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
