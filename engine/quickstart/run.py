"""`rank-engine quickstart`: the whole loop on a generated shopping world.

1. generate a world (items, users, sessions with position-biased clicks);
2. serve training traffic with a first bundle that has no models (it ranks
   by retrieval score and explores), logging every impression;
3. simulate the shoppers' clicks and orders on what was shown;
4. train LightGBM heads (p_click, p_order) on the logged features;
5. compile them into a bundle with a value model per surface;
6. serve held-out traffic with logging on, and report per-stage latency and
   NDCG@10 of the trained ranker against a popularity ranker and the
   logging policy, all on the same held-out requests.
"""

from __future__ import annotations

import os
import zlib
import time
from dataclasses import dataclass

import numpy as np

EMPTY = np.uint64(2**64 - 1)
STAGES = ("user", "candidates", "features", "heads", "value", "rerank", "log", "total")


@dataclass
class QuickstartConfig:
    out: str = "quickstart-out"
    items: int = 50_000
    users: int = 10_000
    dim: int = 32
    train_requests: int = 20_000
    eval_requests: int = 2_000
    rounds: int = 300
    threads: int = 2
    seed: int = 0
    progress: bool = True


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


def to_rank_request(r: dict, explore: bool | None = None):
    """A world's request dict -> RankRequest (context fields the spec reads, None when absent)."""
    from engine.quickstart.spec import CONTEXT_FIELDS
    from engine.ranking import RankRequest

    context = {name: r["context"].get(name) for name in CONTEXT_FIELDS}
    context["category_clicks"] = r["category_clicks"]
    return RankRequest(surface=r["surface"], user_id=r["user_id"], filters=r["filters"], context=context,
                       recent_item_ids=r["recent_item_ids"].tolist(), request_id=r["request_id"],
                       explore=explore, seed=zlib.crc32(r["request_id"].encode()))


def serve(ranker, requests: list[dict], k: int, *, explore: bool | None, threads: int, desc: str,
          progress: bool, batch: int = 500):
    """Rank every request; returns (shown ids (n, k) EMPTY-padded, per-stage timings (n, stages))."""
    shown = np.full((len(requests), k), EMPTY, dtype=np.uint64)
    timings = np.zeros((len(requests), len(STAGES)))
    starts = range(0, len(requests), batch)
    for start in _progress(starts, len(starts), desc, progress):
        chunk = requests[start:start + batch]
        responses = ranker.rank_batch([to_rank_request(r, explore) for r in chunk], threads=threads)
        for j, resp in enumerate(responses):
            shown[start + j, : len(resp.item_ids)] = resp.item_ids[:k]
            timings[start + j] = [resp.timings_us[s] for s in STAGES]
    return shown, timings


def _remove_earlier_logs(folder: str) -> None:
    """An earlier run's impression files in ``folder`` (the logger's names only):
    training reads every file there, and the same request ids would come back
    twice, each impression a duplicate row."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith("impressions-") and name.endswith((".arrow", ".arrow.partial")):
            os.remove(os.path.join(folder, name))


def run(config: QuickstartConfig, echo=print) -> dict:
    from engine.bundle import build_bundle
    from engine.datasets import make_world
    from engine.impressions import ImpressionLogger, read_impressions
    from engine.quickstart import spec as world_spec
    from engine.quickstart.evaluate import ndcg_at_k
    from engine.quickstart.train import train_heads, training_rows
    from engine.ranking import Ranker

    t_start = time.perf_counter()
    out = os.path.abspath(config.out)
    os.makedirs(out, exist_ok=True)
    train_log_dir, serve_log_dir = os.path.join(out, "logs", "train"), os.path.join(out, "logs", "serve")
    for folder in (train_log_dir, serve_log_dir):
        _remove_earlier_logs(folder)
    echo(f"[1/6] generating a world: {config.items:,} items, {config.users:,} users, dim {config.dim}")
    world = make_world(n_items=config.items, n_users=config.users, dim=config.dim, seed=config.seed)
    spec = world_spec.feature_spec()
    common = dict(items=world_spec.items_table(world), item_vectors=world.item_vectors, feature_spec=spec,
                  users=world.users.select(["user_id", "segment"]), user_vectors=world.user_vectors,
                  popularity="review_count", threads=config.threads, overwrite=True)

    echo("[2/6] serving training traffic with the logging policy (retrieval score + exploration)")
    logging_bundle = build_bundle(os.path.join(out, "bundle-logging"),
                                  surfaces=world_spec.surfaces(trained=False, explore=True), **common)
    train_requests = world.sample_requests(config.train_requests, seed=config.seed + 1)
    with ImpressionLogger(train_log_dir, when_full="block") as logger, \
            Ranker.load(logging_bundle, logger=logger) as ranker:
        shown, _ = serve(ranker, train_requests, world_spec.K, explore=None, threads=config.threads,
                         desc="training traffic", progress=config.progress)

    echo("[3/6] simulating clicks and orders on what was shown")
    clicks, orders = world.simulate_feedback(train_requests, shown, seed=config.seed + 2)

    echo("[4/6] training LightGBM heads on the logged features")
    X, clicked, ordered = training_rows(read_impressions(train_log_dir), [r["request_id"] for r in train_requests],
                                        clicks, orders)
    models = train_heads(X, clicked, ordered, list(spec.names), rounds=config.rounds,
                         threads=config.threads, seed=config.seed)

    echo("[5/6] compiling the heads into a serving bundle")
    surfaces = world_spec.surfaces(trained=True, first_phase_trees=min(20, config.rounds))
    bundle = build_bundle(os.path.join(out, "bundle"), surfaces=surfaces,
                          models=models, model_versions={"p_click": "quickstart-1", "p_order": "quickstart-1"},
                          **common)
    popularity_bundle = build_bundle(os.path.join(out, "bundle-popularity"),
                                     surfaces=world_spec.surfaces(trained=False, popularity=True), **common)

    echo("[6/6] serving held-out traffic and evaluating")
    eval_requests = world.sample_requests(config.eval_requests, seed=config.seed + 3)
    with ImpressionLogger(serve_log_dir, when_full="block") as logger, \
            Ranker.load(bundle, logger=logger) as ranker:
        # Latency from single-threaded requests, as one host worker sees them.
        trained_shown, timings = serve(ranker, eval_requests, world_spec.K, explore=False, threads=1,
                                       desc="held-out traffic", progress=config.progress)
    results = {"trained": ndcg_at_k(world, eval_requests, trained_shown)}
    for name, path in (("popularity", popularity_bundle), ("logging policy", logging_bundle)):
        with Ranker.load(path) as baseline:
            base_shown, _ = serve(baseline, eval_requests, world_spec.K, explore=False, threads=config.threads,
                                  desc=name, progress=config.progress)
        results[name] = ndcg_at_k(world, eval_requests, base_shown)

    summary = {
        "latency_us": {s: (float(np.percentile(timings[:, i], 50)), float(np.percentile(timings[:, i], 99)))
                       for i, s in enumerate(STAGES)},
        "ndcg@10": {name: float(v.mean()) for name, v in results.items()},
        "training_rows": int(len(X)), "clicks": int(clicked.sum()), "orders": int(ordered.sum()),
        "bundle": bundle, "logs": os.path.join(out, "logs"), "seconds": time.perf_counter() - t_start,
    }
    _print_summary(summary, echo)
    return summary


def _print_summary(s: dict, echo) -> None:
    echo("")
    echo("latency per request, single thread (microseconds)")
    echo(f"  {'stage':<12}{'p50':>10}{'p99':>10}")
    for stage, (p50, p99) in s["latency_us"].items():
        echo(f"  {stage:<12}{p50:>10.1f}{p99:>10.1f}")
    echo("")
    echo("NDCG@10 on held-out requests (gain: true expected clicks + orders; ideal: best of the catalogue in scope)")
    for name, value in s["ndcg@10"].items():
        echo(f"  {name:<16}{value:.4f}")
    echo("")
    echo(f"trained on {s['training_rows']:,} logged impressions ({s['clicks']:,} clicks, {s['orders']:,} orders)")
    echo(f"bundle:  {s['bundle']}")
    echo(f"logs:    {s['logs']}  (Arrow IPC; engine.impressions.read_impressions or pyarrow.ipc.open_file)")
    echo(f"done in {s['seconds']:.0f} s")
