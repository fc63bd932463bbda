"""End-to-end ranking benchmark: ``Ranker.rank`` against a hand-glued stack, in the same run.

    python -m bench.pipeline.run            # 1,000,000 items, 2,000 requests: ~3.5 min once cached
                                            # (first run: ~11 min, 6 of them the 2-thread HNSW build)
    python -m bench.pipeline.run --quick    # 100,000 items, 200 requests, 100-tree heads: < 2 min
    python -m bench.pipeline.report bench/results/pipeline.json   # re-render a run

One process, both runtimes single-threaded (OMP / OpenBLAS / MKL threads 1,
LightGBM ``num_threads=1``, usearch ``threads=1``, the engine's default
single-threaded request path). Order: prepare (cached) -> agreement checks
-> warm-up -> single-request latency, engine and glued taking turns over
``--rounds`` rounds (both see the same noise from the shared cores), each
turn a steady stream after RESUME unmeasured requests -> throughput on 2
threads (``rank_batch`` / a ThreadPoolExecutor). Writes
bench/results/pipeline.md, pipeline_latency.png and pipeline.json
(``--quick``: pipeline_quick.*).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy, LightGBM and the engine load their thread pools

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402

import msgspec  # noqa: E402
import numpy as np  # noqa: E402

from bench import machine  # noqa: E402
from bench.driver import log, utc_now  # noqa: E402
from bench.pipeline import report, workload  # noqa: E402
from bench.pipeline.glued import STAGES, GluedStack  # noqa: E402

PEER_DISTRIBUTIONS = ("pandas", "lightgbm", "usearch", "numpy", "pyarrow")
THREADS = 2
ALL_CANDIDATES = 10_000  # a k above the candidate count: the response lists every candidate
RESUME = 20  # unmeasured requests before each turn of a runtime (measure_latency)
QUALITY_REQUESTS = 200  # two-phase quality: true relevance and overlap on this many requests


def engine_fields(prep, request) -> dict:
    """The fields the engine's assembler reads for a request (Ranker._request_fields' rules)."""
    fields = {}
    row = prep.world.user_rows([request.user_id])[0]
    for c in prep.users.column_names:
        if c != "user_id":
            fields[c] = prep.users.column(c)[int(row)].as_py()
    fields.update(request.context)
    fields["user_vector"] = workload.user_vector(prep.world, request)
    return fields


def check_agreement(prep, ranker, glued: GluedStack, requests: list) -> dict:
    """Before timing: the compiled forest against LightGBM on identical rows, the glued
    features against the engine's assembler on the engine's candidates, and top-20 overlap."""
    import lightgbm as lgb

    from engine.bundle.manifest import read_manifest
    from engine.features import FeatureAssembler
    from engine.forest import Forest

    from engine import VectorIndex

    manifest = read_manifest(os.fspath(prep.bundle))
    forest = Forest.load(os.path.join(prep.bundle, manifest.artefacts["forest"].path))
    index = VectorIndex.load(os.path.join(prep.bundle, manifest.artefacts["index"].path)).stats()
    assembler = FeatureAssembler(prep.spec, prep.items, prep.world.item_vectors)
    names = list(prep.spec.names)

    online, feature_diff, same_cand, own_cand, cand_overlap, value_diff, exact_order = [], [], [], [], [], [], 0
    n_candidates = []
    for rq in requests:
        full = ranker.rank(msgspec.structs.replace(rq, k=ALL_CANDIDATES))
        shown = ranker.rank(rq)
        rows = prep.world.item_rows(full.item_ids)
        n_candidates.append(len(rows))
        X_engine = assembler.assemble(rows, engine_fields(prep, rq))
        fields, u, recent = glued.request_fields(rq)
        X_glued = glued.features(rows, fields, u)
        feature_diff.append(np.abs(X_engine.astype(np.float64) - X_glued).max(axis=0))
        online.append(X_engine)
        g_same = glued.rank(rq, rows=rows)
        g_own = glued.rank(rq)
        k = max(len(shown.item_ids), 1)
        same_cand.append(len(np.intersect1d(shown.item_ids, g_same.item_ids)) / k)
        own_cand.append(len(np.intersect1d(shown.item_ids, g_own.item_ids)) / k)
        exact_order += bool(np.array_equal(shown.item_ids, g_same.item_ids))
        glued_candidates = glued.candidates(glued.surfaces[rq.surface], rq.filters, u, recent)[0]
        cand_overlap.append(len(np.intersect1d(rows, glued_candidates)) / max(len(rows), 1))
        engine_value = dict(zip(shown.item_ids.tolist(), shown.value.tolist()))
        glued_value = dict(zip(g_same.item_ids.tolist(), g_same.value.tolist()))
        common = engine_value.keys() & glued_value.keys()
        if common:
            value_diff.append(max(abs(engine_value[i] - glued_value[i]) for i in common))
    glued.log.clear()
    worst = np.max(feature_diff, axis=0)

    heads = {}
    holdout = workload.load_holdout(prep)["X"]
    online = np.concatenate(online)
    for i, head in enumerate(forest.output_names):
        booster = lgb.Booster(model_file=os.fspath(prep.models[head]))
        cell = {}
        for label, X in (("holdout", holdout), ("online", online)):
            ref = booster.predict(X, raw_score=True, num_threads=1)
            got = forest.predict(X, output="raw", threads=1)
            got = got[:, i] if got.ndim == 2 else got
            diff = np.abs(got.astype(np.float64) - ref)
            prob = forest.predict(X, threads=1)
            prob = prob[:, i] if prob.ndim == 2 else prob
            cell[label] = {"rows": int(len(X)), "max_abs": float(diff.max()),
                           "ok": bool((diff <= 1e-6 * np.maximum(1.0, np.abs(ref))).all()),
                           "max_abs_prob": float(np.abs(prob - booster.predict(X, num_threads=1)).max())}
        heads[head] = cell
    return {
        "requests": len(requests),
        "heads": heads,
        "features": {"max_abs": {n: float(w) for n, w in zip(names, worst)},
                     "identical": int((worst == 0).sum()), "n": len(names),
                     "rows": int(len(online))},
        "top_k_overlap_same_candidates": float(np.mean(same_cand)),
        "top_k_same_order_same_candidates": exact_order,
        "top_k_overlap_own_candidates": float(np.mean(own_cand)),
        "candidate_overlap": float(np.mean(cand_overlap)),
        "value_max_abs_same_candidates": float(max(value_diff) if value_diff else 0.0),
        "engine": {"candidates_mean": float(np.mean(n_candidates)),
                   "index": {k: index["segments"][0][k] for k in ("rows", "nlist", "default_nprobe")}
                   | {"segments": len(index["segments"])},
                   "forest": {k: v for k, v in forest.summary().items() if k in ("trees", "nodes", "max_depth")}},
    }


def check_retrieval(prep, glued: GluedStack, requests: list) -> dict:
    """Recall@ANN of each runtime's nearest-neighbour candidates against the exact
    filtered top ANN (the engine's index with ``exact=True``), per surface: the engine
    with the surface's ``ann_ef``, the glued stack with its usearch over-fetch and
    post-filter (or exact scan of a small scope)."""
    from engine import VectorIndex
    from engine.bundle.manifest import read_manifest

    manifest = read_manifest(os.fspath(prep.bundle))
    index = VectorIndex.load(os.path.join(prep.bundle, manifest.artefacts["index"].path))
    surfaces = workload.surfaces(trained=True)
    recall: dict[str, dict[str, list]] = {}
    for rq in requests:
        u = workload.user_vector(prep.world, rq)
        if u is None:
            continue
        filters = rq.filters or None
        truth = index.search(u, workload.ANN, filter=filters, exact=True)[0][0]
        truth = truth[truth >= 0]
        if not len(truth):
            continue
        engine = index.search(u, workload.ANN, filter=filters, ef=surfaces[rq.surface].ann_ef)[0][0]
        glued_rows = glued.ann(u, workload.ANN, rq.filters)[0]
        cell = recall.setdefault(rq.surface, {"engine": [], "glued": []})
        cell["engine"].append(len(np.intersect1d(engine, truth)) / len(truth))
        cell["glued"].append(len(np.intersect1d(glued_rows, truth)) / len(truth))
    return {surface: {"requests": len(c["engine"]), "ann_ef": surfaces[surface].ann_ef}
            | {f"{rt}_{stat}": float(f(c[rt])) for rt in ("engine", "glued")
               for stat, f in (("mean", np.mean), ("p5", lambda v: np.percentile(v, 5)))}
            for surface, c in sorted(recall.items())}


def percentiles(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "p999": float(np.percentile(a, 99.9)),
            "mean": float(a.mean()), "max": float(a.max())}


def timed(rank, request, into: dict):
    """rank(request), its wall time (µs) and its stage timings appended to ``into``."""
    t = time.perf_counter()
    resp = rank(request)
    into["wall"].append((time.perf_counter() - t) * 1e6)
    for s in STAGES:
        into["stages"][s].append(resp.timings_us[s])
    return resp


def measure_two_phase(two_phase, requests: list, raw: list, world, one_phase) -> dict:
    """Latency of the two-phase engine (single thread) and what it costs in quality: the
    world's true relevance of the shown items, and top-k overlap with the one-phase engine."""
    into = {"stages": {s: [] for s in STAGES}, "wall": []}
    overlap, rel_two, rel_one = [], [], []
    for rq in requests:
        timed(two_phase.rank, rq, into)
    for rq, r in zip(requests[:QUALITY_REQUESTS], raw[:QUALITY_REQUESTS]):
        a, b = two_phase.rank(rq), one_phase.rank(rq)
        overlap.append(len(set(a.item_ids.tolist()) & set(b.item_ids.tolist())) / max(len(b.item_ids), 1))
        for resp, out in ((a, rel_two), (b, rel_one)):
            ids = np.full((1, workload.K), np.uint64(2**64 - 1), dtype=np.uint64)
            ids[0, :len(resp.item_ids)] = resp.item_ids[:workload.K]
            out.append(float(world.request_relevance([r], ids).sum()))
    summary = {s: percentiles(v) for s, v in into["stages"].items()}
    summary["wall"] = percentiles(into["wall"])
    return {"summary": summary, "rerank_count": workload.RERANK_COUNT,
            "first_phase": f"p_click[:{workload.FIRST_PHASE_TREES}]", "quality_requests": len(overlap),
            "overlap_with_one_phase": float(np.mean(overlap)),
            "relevance_two_phase": float(np.mean(rel_two)), "relevance_one_phase": float(np.mean(rel_one))}


def measure_latency(ranker, glued: GluedStack, requests: list, resume: list, rounds: int) -> dict:
    """Single-threaded latency: engine and glued take turns, ``rounds`` turns each, every
    turn a steady stream of its share of ``requests`` after the ``resume`` requests
    (unmeasured; the first one's wall time is kept as ``first_after_switch``).

    Why not alternate in small blocks: on this KVM guest a runtime's first
    request after ~1 s of the other's work (or of idleness) runs 3-9 ms, every
    stage 5-40x its median, with no page fault in the guest: its memory has
    gone cold below the guest. Blocks of 50 made those first requests 2 % of
    the measured ones, i.e. the p99 of whichever runtime resumed."""
    out = {name: {"stages": {s: [] for s in STAGES}, "wall": [], "first_after_switch": []}
           for name in ("engine", "glued")}
    short = {"engine_fewer_than_k": 0, "glued_fewer_than_k": 0, "glued_ann_short": 0, "glued_refetches": 0,
             "engine_cold_start": 0, "engine_candidates": [], "glued_candidates": []}
    share = -(-len(requests) // rounds)
    for start in range(0, len(requests), share):
        chunk = requests[start:start + share]
        for name, rank in (("engine", ranker.rank), ("glued", glued.rank)):
            t = time.perf_counter()
            rank(resume[0])
            out[name]["first_after_switch"].append((time.perf_counter() - t) * 1e6)
            for rq in resume[1:]:
                rank(rq)
            for rq in chunk:
                resp = timed(rank, rq, out[name])
                if name == "engine":
                    short["engine_fewer_than_k"] += len(resp.item_ids) < workload.K
                    short["engine_cold_start"] += resp.cold_start
                else:
                    short["glued_fewer_than_k"] += len(resp.item_ids) < workload.K
                    short["glued_ann_short"] += resp.ann_short
                    short["glued_refetches"] += resp.refetches
                    short["glued_candidates"].append(resp.n_candidates)
            glued.log.clear()
    short["glued_candidates"] = float(np.mean(short["glued_candidates"]))
    for name, r in out.items():
        r["summary"] = {s: percentiles(v) for s, v in r["stages"].items()}
        r["summary"]["wall"] = percentiles(r["wall"])
    return {"engine": out["engine"], "glued": out["glued"], "counts": short,
            "by_surface": by_surface(out, [rq.surface for rq in requests])}


def by_surface(out: dict, surfaces: list[str]) -> dict:
    """Per surface: its requests, and p50 / p99 of each runtime's candidates stage and wall time
    (which surface's searches make the tail)."""
    surfaces = np.asarray(surfaces)
    result = {}
    for surface in sorted(set(surfaces.tolist())):
        mask = surfaces == surface
        result[surface] = {"requests": int(mask.sum())} | {
            name: {"candidates": percentiles(np.asarray(r["stages"]["candidates"])[mask]),
                   "wall": percentiles(np.asarray(r["wall"])[mask])}
            for name, r in out.items()}
    return result


def measure_throughput(ranker, glued: GluedStack, requests: list, batch: int, repeats: dict) -> dict:
    """Requests per second on THREADS threads: ``rank_batch`` and a ThreadPoolExecutor over glued.rank."""
    out = {}
    with ThreadPoolExecutor(THREADS) as pool:
        runs = {
            "engine": lambda b: ranker.rank_batch(b, threads=THREADS),
            "glued": lambda b: list(pool.map(glued.rank, b)),
        }
        for name, run_batch in runs.items():
            walls = []
            for _ in range(repeats[name]):
                t = time.perf_counter()
                for start in range(0, len(requests), batch):
                    run_batch(requests[start:start + batch])
                walls.append(time.perf_counter() - t)
                glued.log.clear()
            out[name] = {"requests": len(requests), "batch": batch, "threads": THREADS, "walls_s": walls,
                         "rps_best": len(requests) / min(walls), "rps_median": len(requests) / float(np.median(walls))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="rank-engine end-to-end request benchmark against a glued stack")
    ap.add_argument("--quick", action="store_true", help="100,000 items, 200 requests, 100-tree heads")
    ap.add_argument("--requests", type=int, default=None, help="measured requests (default 2,000; quick 200)")
    ap.add_argument("--rounds", type=int, default=2, help="turns of each runtime in the latency run (default 2)")
    ap.add_argument("--batch", type=int, default=500, help="requests per rank_batch call (default 500)")
    ap.add_argument("--name", default=None, help="output name (default pipeline, quick: pipeline_quick)")
    args = ap.parse_args(argv)
    params = workload.QUICK if args.quick else workload.FULL
    if args.requests:
        params = replace(params, requests=args.requests)
    name = args.name or ("pipeline_quick" if args.quick else "pipeline")

    from engine.impressions import ImpressionLogger
    from engine.ranking import Ranker

    started, started_at = time.perf_counter(), utc_now()
    load_at_start = os.getloadavg()[0]
    command = "python -m bench.pipeline.run " + " ".join(argv if argv is not None else sys.argv[1:])
    prep = workload.prepare(params, log=log)
    info = machine.system_info(PEER_DISTRIBUTIONS)
    log(f"CPU {info['cpu']}; engine simd={info['engine_build_info']['simd']}")

    keys = workload.ItemKeys.of(prep.items)
    convert = lambda raw: [workload.to_rank_request(prep.world, r, keys) for r in raw]  # noqa: E731
    warmup = convert(prep.world.sample_requests(params.warmup, seed=params.seed + 1000))
    raw_requests = prep.world.sample_requests(params.requests, seed=params.seed + 2000)
    requests = convert(raw_requests)
    checks = convert(prep.world.sample_requests(params.check_requests, seed=params.seed + 3000))

    t = time.perf_counter()
    glued = GluedStack(items=prep.items, item_vectors=prep.world.item_vectors, users=prep.users,
                       user_vectors=prep.world.user_vectors, spec=prep.spec, surfaces=workload.surfaces(trained=True),
                       models=prep.models, usearch_path=os.fspath(prep.usearch_path))
    glued_setup_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="pipeline-log-") as log_dir:
        logger = ImpressionLogger(log_dir)
        t = time.perf_counter()
        ranker = Ranker.load(prep.bundle, logger=logger)
        engine_load_s = time.perf_counter() - t
        log(f"engine bundle loaded in {engine_load_s:.1f} s; glued stack set up in {glued_setup_s:.1f} s")

        log(f"agreement checks on {len(checks)} requests")
        agreement = check_agreement(prep, ranker, glued, checks)
        log(f"top-{workload.K} overlap: {agreement['top_k_overlap_same_candidates']:.3f} (same candidates), "
            f"{agreement['top_k_overlap_own_candidates']:.3f} (own candidates); features identical: "
            f"{agreement['features']['identical']}/{agreement['features']['n']}")

        retrieval = check_retrieval(prep, glued, checks)
        for surface, c in retrieval.items():
            log(f"{surface}: recall@{workload.ANN} engine {c['engine_mean']:.3f}, glued {c['glued_mean']:.3f}")

        for rq in warmup:
            ranker.rank(rq)
            glued.rank(rq)
        glued.log.clear()
        gc.collect()
        log(f"latency: {len(requests)} requests, single thread, {args.rounds} turns of each runtime")
        latency = measure_latency(ranker, glued, requests, warmup[:RESUME], args.rounds)
        for rt in ("engine", "glued"):
            s = latency[rt]["summary"]
            log(f"{rt}: wall p50 {s['wall']['p50']:,.0f} µs, p99 {s['wall']['p99']:,.0f} µs")

        from engine.bundle import with_surfaces

        two_phase_bundle = with_surfaces(prep.bundle, os.path.join(log_dir, "two-phase"),
                                         workload.two_phase_surfaces())
        with Ranker.load(two_phase_bundle, logger=logger) as two_phase:
            for rq in warmup:
                two_phase.rank(rq)
            log(f"two-phase engine (rerank_count {workload.RERANK_COUNT}): {len(requests)} requests")
            two = measure_two_phase(two_phase, requests, raw_requests, prep.world, ranker)
        log(f"two-phase: wall p50 {two['summary']['wall']['p50']:,.0f} µs, p99 {two['summary']['wall']['p99']:,.0f} "
            f"µs; overlap with one phase {two['overlap_with_one_phase']:.3f}")

        repeats = {"engine": 3, "glued": 1 if not args.quick else 2}
        log(f"throughput: {THREADS} threads, batches of {args.batch}")
        throughput = measure_throughput(ranker, glued, requests, args.batch, repeats)
        for rt in ("engine", "glued"):
            log(f"{rt}: {throughput[rt]['rps_best']:,.0f} requests/s")
        ranker.close()
        logger.close()
        log_stats = msgspec.structs.asdict(logger.stats)

    doc = {
        "command": command.strip(), "started_at": started_at, "elapsed_s": time.perf_counter() - started,
        "system": info, "load_average": [load_at_start, os.getloadavg()[0]],
        "params": asdict(params), "prepare": {"cached": prep.cached, "folder": prep.folder.name, **prep.meta},
        "workload": report.describe_workload(prep),
        "setup_s": {"engine_load": engine_load_s, "glued_setup": glued_setup_s},
        "settings": {"rounds": args.rounds, "resume": RESUME, "batch": args.batch, "threads": THREADS, "repeats": repeats},
        "agreement": agreement, "retrieval": retrieval, "latency": latency, "two_phase": two, "throughput": throughput,
        "engine_log": log_stats,
    }
    json_path = workload.RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(doc, indent=1, default=float))
    md_path, png_path = report.write(doc, workload.RESULTS_DIR, name)
    log(f"wrote {md_path.name}, {png_path.name if png_path else '(no plot)'} and {json_path.name} "
        f"in {doc['elapsed_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
