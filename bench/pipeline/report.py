"""Render an end-to-end run (the JSON written by bench.pipeline.run) as markdown and a latency plot.

    python -m bench.pipeline.report [bench/results/pipeline.json]

Every engine figure sits next to the glued stack's, measured in the same
process and the same run, with the ratio and the issue's targets.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from bench.driver import rerender_main
from bench.machine import cpu_line, engine_build_line
from bench.markdown import runs_lines, table
from bench.pipeline import workload

TARGET_P99_US = 1000.0  # single-thread p99 of rank()
TARGET_X_GLUED = 10.0  # glued p99 / engine p99
STAGE_ROWS = ("user", "candidates", "features", "heads", "value", "rerank", "log", "total", "wall")
STAGE_TEXT = {
    "user": ("user row, recent items, user vector", "pandas `Index.get_loc` / `get_indexer` for the user and "
             "the recent items, numpy user vector"),
    "candidates": ("`VectorIndex` (IVF, i8) with filters + popular + new lists, dedupe",
                   "usearch HNSW over-fetch + numpy post-filter (exact numpy scan for scopes ≤ 50k rows) "
                   "+ precomputed popular / new lists, `pd.unique`"),
    "features": ("native `FeatureAssembler.assemble`", "`DataFrame.iloc[rows]` of precomputed item features "
                 "and codes; numpy hashes and dot, `Series.map` lookups, pandas matches; one `pd.concat`, "
                 "`.to_numpy(float32)`"),
    "heads": ("compiled forest, both heads in one pass (and the first phase, when set); heads, value and "
              "rerank are one native call (`cpp/rerank/scorer.hpp`)", "`Booster.predict(X, num_threads=1)` per head"),
    "value": ("native `ValueModel` blend (float32)", "numpy blend (float64)"),
    "rerank": ("native greedy re-rank (no caps, no exploration); the call's remaining time and the "
               "response's components", "`np.argpartition` + sort of the top 20"),
    "log": ("`ImpressionLogger.log` (queue; Arrow IPC written by a background thread)",
            "a dict appended to a list"),
    "total": ("sum of the stages, the response's own clock", "sum of the stages"),
    "wall": ("`perf_counter` around `rank()`", "`perf_counter` around `rank()`"),
}


def describe_workload(prep) -> dict:
    kinds = collections.Counter(type(f).__struct_config__.tag for f in prep.spec.features)
    return {"items": prep.params.items, "users": prep.params.users, "dim": prep.params.dim,
            "merchants": prep.params.merchants, "categories": prep.params.categories,
            "features": len(prep.spec.features), "kinds": dict(kinds), "trees": prep.params.trees,
            "leaves": prep.params.leaves, "sources": {"ann": workload.ANN, "popular": workload.POPULAR,
                                                       "new": workload.NEW}, "k": workload.K}


def _us(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _x(glued: float, engine: float) -> str:
    return f"×{glued / engine:.1f}" if engine > 0 else "—"


def _header(doc) -> list[str]:
    s, w = doc["system"], doc["workload"]
    v = s["versions"]
    load = doc.get("load_average")
    prep = doc["prepare"]
    training = prep.get("training", {})
    kinds = ", ".join(f"{n} {k}" for k, n in w["kinds"].items())
    return [
        "# Ranking request end to end: rank-engine vs a hand-glued stack",
        "",
        "usearch + pandas + LightGBM + numpy, the stack a data scientist would write "
        "(`bench/pipeline/glued.py`), against `Ranker.rank`, on the same requests, models and "
        "item table, in the same process and run.",
        "",
        engine_build_line(s),
        cpu_line(s) + (f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
                       "(above 1, other work shared the cores)" if load else ""),
        f"- peers: pandas {v.get('pandas')}, lightgbm {v.get('lightgbm')}, usearch {v.get('usearch')}; "
        f"numpy {v.get('numpy')}, pyarrow {v.get('pyarrow')}, Python {s['python']}",
        *runs_lines(doc),
        f"- world (`engine.datasets.make_world`): {w['items']:,} items, {w['users']:,} users, dim {w['dim']}, "
        f"{w['merchants']:,} merchants, {w['categories']} categories; requests from `World.sample_requests` "
        "(home 50 % with an in-stock filter, search 30 % with a category filter, store 20 % with a "
        "merchant filter), no exploration",
        f"- {w['features']} features ({kinds}); candidates per request: ANN {w['sources']['ann']} + popular "
        f"{w['sources']['popular']} + new {w['sources']['new']}, deduplicated, recent items removed "
        f"(mean {doc['latency']['counts']['glued_candidates']:.0f} in the glued stack); top {w['k']}; "
        "logging on",
        f"- heads: p_click and p_order, LightGBM binary, {w['trees']} trees × {w['leaves']} leaves each, "
        f"trained on {training.get('rows', 0):,} offline-assembled rows from {training.get('requests', 0):,} "
        "requests, labels drawn from the world's true probabilities (held-out AUC "
        + ", ".join(f"{h} {a:.3f}" for h, a in prep.get("holdout_auc", {}).items()) + ")",
        "",
    ]


def _summary(doc) -> list[str]:
    e, g = doc["latency"]["engine"]["summary"], doc["latency"]["glued"]["summary"]
    tp = doc["throughput"]
    p99, gp99 = e["wall"]["p99"], g["wall"]["p99"]
    ok1, ok2 = p99 <= TARGET_P99_US, gp99 / p99 >= TARGET_X_GLUED
    return [
        "## Summary", "",
        *table(["", "engine", "glued", "glued ÷ engine", "target"], [
            ["p50 of `rank()`, 1 thread (µs)", _us(e["wall"]["p50"]), _us(g["wall"]["p50"]),
             _x(g["wall"]["p50"], e["wall"]["p50"]), ""],
            ["p99 of `rank()`, 1 thread (µs)", _us(p99), _us(gp99), _x(gp99, p99),
             f"{'✓' if ok1 else '✗'} engine ≤ {TARGET_P99_US:,.0f} µs; {'✓' if ok2 else '✗'} ≥ ×{TARGET_X_GLUED:g}"],
            ["p99.9 (µs)", _us(e["wall"]["p999"]), _us(g["wall"]["p999"]), _x(g["wall"]["p999"], e["wall"]["p999"]),
             ""],
            [f"requests/s, {tp['engine']['threads']} threads", f"{tp['engine']['rps_best']:,.0f}",
             f"{tp['glued']['rps_best']:,.0f}", f"×{tp['engine']['rps_best'] / tp['glued']['rps_best']:.1f} "
             "(engine ÷ glued)", ""],
        ]), "",
        *_latency_method(doc),
        "",
    ]


def _stages(doc) -> list[str]:
    e, g = doc["latency"]["engine"]["summary"], doc["latency"]["glued"]["summary"]
    rows = []
    for s in STAGE_ROWS:
        name = f"**{s}**" if s in ("total", "wall") else s
        rows.append([name, _us(e[s]["p50"]), _us(e[s]["p99"]), _us(g[s]["p50"]), _us(g[s]["p99"]),
                     _x(g[s]["p50"], e[s]["p50"]), _x(g[s]["p99"], e[s]["p99"]),
                     f"{100 * e[s]['mean'] / e['total']['mean']:.0f} %" if s not in ("total", "wall") else ""])
    return ["## Latency per stage, single thread (µs)", "",
            *table(["stage", "engine p50", "engine p99", "glued p50", "glued p99", "×p50", "×p99",
                    "engine share of mean total"], rows), "",
            "×: glued ÷ engine (above 1: the engine is faster). What each runtime does per stage:", "",
            *table(["stage", "engine", "glued"], [[s, *STAGE_TEXT[s]] for s in STAGE_ROWS[:-2]]), ""]


def _two_phase(doc) -> list[str]:
    t = doc.get("two_phase")
    if not t:
        return []
    e, g, w = doc["latency"]["engine"]["summary"], doc["latency"]["glued"]["summary"], t["summary"]
    rows = [[s, _us(w[s]["p50"]), _us(w[s]["p99"]), _us(e[s]["p50"]), _x(g[s]["p50"], w[s]["p50"]),
             _x(g[s]["p99"], w[s]["p99"])] for s in ("candidates", "features", "heads", "total", "wall")]
    return [f"## Two-phase engine: first phase keeps {t['rerank_count']} candidates for the heads", "",
            f"The same bundle with `SurfaceSettings(first_phase=\"{t.get('first_phase', '?')}\", rerank_count="
            f"{t['rerank_count']})` (`engine.bundle.with_surfaces`): the raw score of the click head's first trees "
            "picks the candidates that features, both full heads and the value model then score (Vespa's "
            "first / second phase). Measured right after the runs above on the same requests. The glued stack "
            "still scores every candidate: the ratios compare configurations, not the same work.", "",
            *table(["stage", "two-phase p50", "two-phase p99", "one-phase p50", "glued ÷ two-phase p50",
                    "glued ÷ two-phase p99"], rows), "",
            f"Quality on {t['quality_requests']} of the requests: top-{doc['params'].get('k', 20)} overlap with the "
            f"one-phase engine {t['overlap_with_one_phase']:.3f}; the world's true relevance summed over the shown "
            f"items {t['relevance_two_phase']:.4f} (two-phase) vs {t['relevance_one_phase']:.4f} (one phase).", ""]


def _throughput(doc) -> list[str]:
    tp = doc["throughput"]
    rows = []
    for rt, how in (("engine", "`Ranker.rank_batch(batch, threads=2)`"),
                    ("glued", "`ThreadPoolExecutor(2).map(glued.rank, batch)`")):
        t = tp[rt]
        rows.append([rt, how, f"{t['batch']}", f"{len(t['walls_s'])}", f"{t['rps_best']:,.0f}",
                     f"{t['rps_median']:,.0f}"])
    return ["## Throughput on 2 threads", "",
            *table(["runtime", "how", "batch", "passes", "requests/s (best pass)", "requests/s (median)"], rows),
            "", f"Each pass ranks all {tp['engine']['requests']:,} measured requests in batches; the engine "
            "logs every response (its writer thread shares the cores).", ""]


def _latency_method(doc) -> list[str]:
    st, lat = doc["settings"], doc["latency"]
    if "rounds" not in st:  # runs before the turns (alternating blocks)
        return [f"Latency: {doc['params']['requests']:,} requests after {doc['params']['warmup']} warm-up "
                f"requests each, engine and glued alternating in blocks of {st['block']}. *wall* is "
                "`time.perf_counter` around the call; the stage rows are each runtime's own clocks."]
    first = {rt: ", ".join(_us(v) for v in lat[rt]["first_after_switch"]) for rt in ("engine", "glued")}
    return [
        f"Latency: {doc['params']['requests']:,} requests after {doc['params']['warmup']} warm-up requests each; "
        f"engine and glued take {st['rounds']} turns each (so that both see the same noise from the shared "
        f"cores), every turn a steady stream of its share after {st['resume']} unmeasured requests; p99.9 of "
        "this many requests is close to the maximum. *wall* is `time.perf_counter` around the call; the "
        "stage rows are each runtime's own clocks.",
        "",
        f"The first request of each turn, after the other runtime's (µs): engine {first['engine']}, glued "
        f"{first['glued']}. On this KVM guest a runtime's first request after a second or more of other work "
        "or of idleness runs several times its median with no page fault in the guest (its memory gone cold "
        "below the guest), so an earlier design that alternated blocks of 50 requests made those 2 % of "
        "the measured requests: the p99 of whichever runtime resumed.",
    ]


def _agreement(doc) -> list[str]:
    a = doc["agreement"]
    head_rows = []
    for head, cells in a["heads"].items():
        for label, c in cells.items():
            head_rows.append([head, label, f"{c['rows']:,}", f"{c['max_abs']:.2g}",
                              "✓" if c["ok"] else "✗", f"{c['max_abs_prob']:.2g}"])
    diff = {n: d for n, d in a["features"]["max_abs"].items() if d > 0}
    feature_text = (f"{a['features']['identical']} of {a['features']['n']} features are bit-identical on "
                    f"{a['features']['rows']:,} rows" + (
                        "; the others differ by at most " + ", ".join(f"`{n}` {d:.2g}" for n, d in diff.items())
                        if diff else ""))
    return [
        "## Agreement (checked before timing)", "",
        f"On {a['requests']} other requests:", "",
        "- **heads**: the engine's compiled forest against LightGBM's `predict(raw_score=True)` on "
        "identical rows (held-out training rows and the engine's online rows of these requests); "
        "each row must agree to |Δ| ≤ 1e-6·max(1, |ref|):", "",
        *table(["head", "rows from", "rows", "max |Δ| raw", "≤ 1e-6", "max |Δ| probability"], head_rows), "",
        f"- **features**: the glued stack's rows against the engine's `FeatureAssembler` on the engine's "
        f"candidates: {feature_text} (numpy's BLAS sums the dot product in another order than the "
        "engine's fixed 8 lanes).",
        f"- **top {doc['workload']['k']}, same candidates** (the glued stack ranks the engine's candidate rows): "
        f"mean overlap {a['top_k_overlap_same_candidates']:.3f}, identical order in "
        f"{a['top_k_same_order_same_candidates']} of {a['requests']} requests; largest value difference on a "
        f"shared item {a['value_max_abs_same_candidates']:.2g} (float32 blend vs float64).",
        f"- **top {doc['workload']['k']}, own candidates**: mean overlap {a['top_k_overlap_own_candidates']:.3f}; "
        f"the glued stack finds {100 * a['candidate_overlap']:.1f} % of the engine's candidates (HNSW f32 with "
        "post-filtering vs the engine's IVF i8 with filters inside the search).",
        "",
        *_retrieval(doc),
    ]


def _retrieval(doc) -> list[str]:
    r = doc.get("retrieval")
    if not r:
        return []
    ann = doc["workload"]["sources"]["ann"]
    rows = [[surface, c["requests"], "default" if c["ann_ef"] is None else c["ann_ef"],
             f"{c['engine_mean']:.3f}", f"{c['engine_p5']:.3f}", f"{c['glued_mean']:.3f}", f"{c['glued_p5']:.3f}"]
            for surface, c in r.items()]
    return [
        f"Nearest-neighbour candidates: recall@{ann} against the exact filtered top {ann} (the engine's index "
        "with `exact=True`), on the same requests; the engine with each surface's `ann_ef` (IVF lists to "
        "probe), the glued stack with usearch over-fetch and post-filter (exact numpy scans for small scopes):", "",
        *table(["surface", "requests", "engine ann_ef", "engine mean", "engine p5", "glued mean", "glued p5"], rows),
        "",
    ]


def _notes(doc) -> list[str]:
    c, prep = doc["latency"]["counts"], doc["prepare"]
    n = doc["params"]["requests"]
    steps = prep.get("steps_s", {})
    us = prep.get("usearch", {})
    built = ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in steps.items())
    log = doc.get("engine_log", {})
    engine = doc["agreement"].get("engine")
    lines = []
    if engine:
        ix, fo = engine["index"], engine["forest"]
        heads = doc["latency"]["engine"]["summary"]["heads"]["p50"]
        ns = heads * 1e3 / (engine["candidates_mean"] * fo["trees"])
        home_ef = doc.get("retrieval", {}).get("home", {}).get("ann_ef")
        lines = [
            f"- What the engine's time goes to: **heads** evaluate {fo['trees']:,} trees ({fo['nodes']:,} nodes, "
            f"max depth {fo['max_depth']}: LightGBM grows leaf-wise) on {engine['candidates_mean']:.0f} candidates "
            f"on average, {ns:.1f} ns per row-tree at the p50; **candidates**: the index's calibrated default is "
            f"{ix['default_nprobe']} of {ix['nlist']:,} IVF lists (`ann_ef=None`; calibrated at build so that "
            "99.5 % of sampled rows' true top-10 fall in the probed lists)" + (
                f"; the home feed probes {home_ef} (its `ann_ef`, set at a recall above the glued stack's: "
                "see Agreement)." if home_ef else "."),
        ]
    return [
        "## Notes", "",
        *lines,
        f"- Filters in the glued stack: {c['glued_ann_short']} of {n} requests got fewer than "
        f"{doc['workload']['sources']['ann']} ANN candidates after post-filtering (small stores: fewer items "
        f"than that), {c['glued_refetches']} searches were repeated with a 4× larger count; requests with "
        f"fewer than {doc['workload']['k']} items shown: engine {c['engine_fewer_than_k']}, glued "
        f"{c['glued_fewer_than_k']}; cold-start requests (no user vector): {c['engine_cold_start']}.",
        f"- usearch: `Index(ndim={doc['workload']['dim']}, metric='ip', dtype='f32')` with the library's "
        f"defaults (connectivity {us.get('connectivity')}, expansion_add {us.get('expansion_add')}, "
        f"expansion_search {us.get('expansion_search')}; `{us.get('hardware_acceleration')}`), "
        f"{us.get('rows', 0):,} vectors, `search(..., threads=1)`.",
        f"- Set-up, outside every clock: engine `Ranker.load` {doc['setup_s']['engine_load']:.1f} s; glued "
        f"stack (DataFrames, precomputed item features, usearch `restore`, boosters) "
        f"{doc['setup_s']['glued_setup']:.1f} s. One-time builds"
        + (" (models and usearch index cached from an earlier run; the bundle is rebuilt by every run)"
           if prep.get("cached") else "") + f": {built}.",
        f"- Engine impression log: {log.get('written', 0):,} records written, {log.get('dropped', 0)} dropped, "
        f"{log.get('rejected', 0)} rejected.",
        "- The 2-core VM is shared with other work: rerun before leaning on one ratio; the load average "
        "above says how busy the cores were.",
        "",
    ]


def _surfaces(doc) -> list[str]:
    by = doc["latency"].get("by_surface")
    if not by:  # results written before the split was recorded
        return []
    rows = [[surface, f"{v['requests']:,}",
             *(_us(v[rt][part][q]) for rt in ("engine", "glued") for part in ("candidates", "wall")
               for q in ("p50", "p99"))] for surface, v in by.items()]
    return ["## Per surface, single thread (µs)", "",
            *table(["surface", "requests", "engine candidates p50", "p99", "engine wall p50", "p99",
                    "glued candidates p50", "p99", "glued wall p50", "p99"], rows), "",
            "The same requests as above, split by surface: home feeds search the whole catalogue for the "
            "ANN candidates (an IVF walk), searches one category and store pages one merchant.", ""]


def render_markdown(doc) -> str:
    parts = (_header(doc) + _summary(doc) + _stages(doc) + _surfaces(doc) + _two_phase(doc) + _throughput(doc)
             + _agreement(doc) + _notes(doc))
    return "\n".join(parts).rstrip() + "\n"


def plot(doc, path: Path) -> bool:
    """Latency CDFs (log x) of rank() and p50 / p99 per stage; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    colors = {"engine": "C0", "glued": "C3"}
    for rt in ("engine", "glued"):
        wall = np.sort(np.asarray(doc["latency"][rt]["wall"]))
        ax.plot(wall, np.arange(1, len(wall) + 1) / len(wall), color=colors[rt], lw=2,
                label=f"{rt}: p50 {_us(np.percentile(wall, 50))} µs, p99 {_us(np.percentile(wall, 99))} µs")
    ax.axvline(TARGET_P99_US, color="grey", ls=":", lw=1)
    ax.axhline(0.99, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("rank() wall time per request (µs, 1 thread)")
    ax.set_ylabel("share of requests")
    ax.set_title("latency CDF (dotted: 1 ms, p99)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)

    stages = list(STAGE_ROWS[:-2])
    x = np.arange(len(stages))
    for j, rt in enumerate(("engine", "glued")):
        s = doc["latency"][rt]["summary"]
        p50 = [max(s[st]["p50"], 0.1) for st in stages]
        p99 = [max(s[st]["p99"], 0.1) for st in stages]
        bx.bar(x + (j - 0.5) * 0.38, p99, 0.38, color=colors[rt], alpha=0.35)
        bx.bar(x + (j - 0.5) * 0.38, p50, 0.38, color=colors[rt], label=f"{rt} p50 (light: p99)")
    bx.set_xticks(x, stages, fontsize=8)
    bx.set_yscale("log")
    bx.set_ylabel("µs")
    bx.set_title("per stage", fontsize=9)
    bx.legend(fontsize=8)
    bx.grid(True, axis="y", which="both", alpha=0.3)
    w = doc["workload"]
    fig.suptitle(f"{w['items']:,} items, {w['features']} features, 2 heads × {w['trees']} trees, top {w['k']} — "
                 f"{doc['system']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(doc, out_dir: Path, name: str) -> tuple[Path, Path | None]:
    md_path = Path(out_dir) / f"{name}.md"
    png_path = Path(out_dir) / f"{name}_latency.png"
    md_path.write_text(render_markdown(doc))
    return md_path, png_path if plot(doc, png_path) else None


def main(argv=None) -> int:
    return rerender_main(argv, workload.RESULTS_DIR / "pipeline.json", write)


if __name__ == "__main__":
    sys.exit(main())
