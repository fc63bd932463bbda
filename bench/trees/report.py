"""Render a tree benchmark run (the JSON written by bench.trees.run) as markdown tables and a plot.

    python -m bench.trees.report [bench/results/trees.json]

Every time is quoted as a ratio to the fastest peer measured in the same run
on the same model and batch size, next to the targets of the forest issue.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.driver import rerender_main
from bench.machine import cpu_line, engine_build_line
from bench.markdown import runs_lines, runtime_notes, table
from bench.trees import workload

# Targets of the forest kernel (the issue): per row-tree at large batches,
# per call at batch 1 for 500 trees, and against the fastest peer everywhere.
TARGET_NS_PER_ROW_TREE, TARGET_NS_FROM_BATCH = 5.0, 256
TARGET_US_BATCH1, TARGET_US_TREES = 10.0, 500
TARGET_X_PEER = 2.0


def describe_workload(specs) -> dict:
    return {"models": [{"name": m.name, "title": m.title, "library": m.library,
                        "n_trees": m.n_trees, "n_features": m.n_features} for m in specs],
            "train_rows": workload.TRAIN_ROWS, "eval_rows": workload.EVAL_ROWS,
            "missing_rate": workload.MISSING_RATE, "format": workload.FORMAT}


# -- helpers ------------------------------------------------------------------
def _ok(results):
    return [r for r in results if "error" not in r and "skipped" not in r]


def _cells(r: dict, model: str) -> dict:
    """{batch: cell} of runtime ``r`` on ``model`` (empty when not timed)."""
    return ((r.get("models") or {}).get(model) or {}).get("batches") or {}


def _fastest_peer(results, model: str, batch: str):
    """(result, cell) of the fastest non-engine runtime, or None."""
    cands = [(r, _cells(r, model)[batch]) for r in _ok(results)
             if not r.get("is_engine") and batch in _cells(r, model)]
    return min(cands, key=lambda rc: rc[1]["median_us"]) if cands else None


def _fmt_us(us: float) -> str:
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 10 else f"{us:.2f}"


def _fmt_ns(ns: float) -> str:
    return f"{ns:.1f}" if ns >= 10 else f"{ns:.2f}"


def _ratio(peer_us: float | None, us: float) -> str:
    return f"×{peer_us / us:.2f}" if peer_us else "—"


def _targets(model: dict, batch: int, us: float, ns: float, peer_us: float | None) -> list[str]:
    """Each target that applies to this cell, with ✓ or ✗."""
    out = []
    if batch >= TARGET_NS_FROM_BATCH:
        out.append(f"{'✓' if ns <= TARGET_NS_PER_ROW_TREE else '✗'} ≤{TARGET_NS_PER_ROW_TREE:g} ns/row-tree")
    if batch == 1 and model["n_trees"] <= TARGET_US_TREES:
        out.append(f"{'✓' if us <= TARGET_US_BATCH1 else '✗'} ≤{TARGET_US_BATCH1:g} µs/call")
    if peer_us:
        out.append(f"{'✓' if peer_us / us >= TARGET_X_PEER else '✗'} ≥×{TARGET_X_PEER:g} peer")
    return out


def _needed_us(model: dict, batch: int, peer_us: float | None) -> float | None:
    """The slowest engine time per call that meets every target of this cell."""
    bounds = [peer_us / TARGET_X_PEER] if peer_us else []
    if batch >= TARGET_NS_FROM_BATCH:
        bounds.append(TARGET_NS_PER_ROW_TREE * batch * model["n_trees"] / 1e3)
    if batch == 1 and model["n_trees"] <= TARGET_US_TREES:
        bounds.append(TARGET_US_BATCH1)
    return min(bounds) if bounds else None


# -- sections -----------------------------------------------------------------
def _header(doc) -> list[str]:
    s, w = doc["system"], doc["workload"]
    peers = ", ".join(f"{r['label']} {r['version']}" for r in doc["results"]
                      if "version" in r and not r.get("is_engine"))
    load = doc.get("load_average")
    return [
        "# Tree ensembles: rank-engine vs XGBoost, LightGBM, treelite+tl2cgen, lleaves, ONNX Runtime",
        "",
        engine_build_line(s),
        cpu_line(s) + (f"; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
                       "(above 1, other work shared the cores)" if load else ""),
        f"- peers: {peers or 'none ran'}; numpy {s['versions'].get('numpy')}, Python {s['python']}",
        *runs_lines(doc),
        f"- workload (`bench/trees/workload.py`): ranking-like rows (similarity scores, lognormal "
        f"prices and views, Poisson counts, CTR-like rates, 0/1 flags; correlated through shared "
        f"factors; {w['missing_rate'] * 100:.0f} % NaN), binary label from a nonlinear click model; "
        f"trained on {w['train_rows']:,} rows, checked and timed on "
        f"{w['eval_rows']:,} held-out rows",
        "- models: " + "; ".join(m["title"] for m in w["models"]),
        "",
        "**µs/call** is the median wall time of one predict call through Python (a batch-1 row is a "
        "loop of single-row calls, each on the next held-out row); **ns/row-tree** = µs/call ÷ "
        "(rows × trees); **×peer** = the fastest peer's µs/call ÷ this runtime's, on the same "
        "model and batch in the same run (above 1: faster than every peer). Each runtime's raw "
        "scores were checked against the training library's before it was timed (table "
        "*Agreement*).",
        "",
    ]


def _summary(doc) -> list[str]:
    results, batches = doc["results"], [str(b) for b in doc["settings"]["batches"]]
    engine = next((r for r in results if r.get("runtime") == "engine"), None)
    engine_ran = engine is not None and engine in _ok(results)
    out = ["## Summary: engine vs the fastest peer", ""]
    if not engine_ran:
        why = (engine or {}).get("skipped") or (engine or {}).get("error") or "not in --runtimes"
        out += [f"**engine not run: {why}.** The table shows the fastest peer per cell and the "
                "time per call at which the engine would meet every target of that cell.", ""]
    rows = []
    for m in doc["workload"]["models"]:
        for b in batches:
            peer = _fastest_peer(results, m["name"], b)
            peer_us = peer[1]["median_us"] if peer else None
            peer_txt = (f"{peer[0]['label']} {_fmt_us(peer_us)} µs ({_fmt_ns(peer[1]['ns_per_row_tree'])} ns)"
                        if peer else "—")
            cell = _cells(engine, m["name"]).get(b) if engine_ran else None
            if not engine_ran:
                need = _needed_us(m, int(b), peer_us)
                rows.append([m["title"], b, peer_txt, f"≤ {_fmt_us(need)} µs/call" if need else "—"])
            elif cell:
                rows.append([m["title"], b, _fmt_us(cell["median_us"]), _fmt_ns(cell["ns_per_row_tree"]),
                             peer_txt, _ratio(peer_us, cell["median_us"]),
                             ", ".join(_targets(m, int(b), cell["median_us"], cell["ns_per_row_tree"],
                                                peer_us))])
            else:  # the engine ran, but not on this cell (e.g. it failed its check)
                rows.append([m["title"], b, "—", "—", peer_txt, "—", "not timed"])
    out += table(["model", "batch", "engine µs/call", "engine ns/row-tree", "fastest peer", "×peer",
                  "targets"] if engine_ran else ["model", "batch", "fastest peer", "engine needs"], rows)
    out += ["", f"Targets: ≤ {TARGET_NS_PER_ROW_TREE:g} ns per row-tree at batch ≥ "
            f"{TARGET_NS_FROM_BATCH}; ≤ {TARGET_US_BATCH1:g} µs per call at batch 1 for "
            f"{TARGET_US_TREES} trees; at least ×{TARGET_X_PEER:g} the fastest peer at every "
            "batch size.", ""]
    return out


def _runtimes_section(doc) -> list[str]:
    rows = []
    for r in doc["results"]:
        if "skipped" in r or "models" not in r:
            rows.append([r.get("label", r["runtime"]), r.get("version", "—"), "—",
                         f"not run: {r.get('skipped') or r.get('error')}"])
            continue
        configs = sorted({m["config"] for m in r["models"].values() if m.get("config")})
        libraries = sorted({n.split("-")[0] for n in r["models"]})
        rows.append([r["label"], r["version"], ", ".join(libraries) or "none in this run",
                     "; ".join(configs) or "—"])
    return ["## Runtimes: what each call does (all of it is timed)", "",
            *table(["runtime", "version", "models", "load, then per call"], rows), "",
            "Every call gets the same float32 C-contiguous rows; conversions a library needs "
            "(tl2cgen's `DMatrix`, lleaves' float64 copy, ONNX's feed dict) happen inside the "
            "call and count, as the engine's own input checks do. Single-threaded everywhere: "
            "the library's thread option and `OMP_NUM_THREADS=1` in the worker. xgboost's batch-1 "
            "time is mostly a fixed cost of `inplace_predict` in Python (xgboost 3.2 builds a "
            "ctypes array-interface class on every call): a 1-tree prefix of these models took "
            "about 230 µs per call on this machine.", ""]


def _agreement_section(doc) -> list[str]:
    out_rows = []
    for m in doc["workload"]["models"]:
        for r in doc["results"]:
            mr = (r.get("models") or {}).get(m["name"])
            if mr is None:
                continue
            c = mr.get("check") or {}
            if "max_abs" in c:
                txt = (f"{'✓' if c['ok'] else '✗'} max |Δ| {c['max_abs']:.2g}, median "
                       f"{c['median_abs']:.2g}, {c['rows_off_pct']:.2f} % of rows > 1e-4")
            else:
                txt = c.get("why") or mr.get("error", "—")
            if mr.get("error") and "max_abs" in c:
                txt += f" — {mr['error']}"
            prep = f"{mr['prepare_s']:.1f}" + (" (cached)" if mr.get("cached") else "") \
                if "prepare_s" in mr else "—"
            out_rows.append([m["title"], r["label"], prep, txt])
    rule = ("the engine must match every row to |Δ| ≤ 1e-6·max(1, |ref|); a peer is timed "
            "when its median |Δ| ≤ 1e-4 (a few rows down another branch still count as the "
            "same model) and its disagreement is shown as measured")
    return ["## Agreement with the training library (before timing)", "",
            f"Raw scores on all {doc['workload']['eval_rows']:,} held-out rows against LightGBM's "
            f"`predict(raw_score=True)` / XGBoost's `inplace_predict(predict_type='margin')`; {rule}. "
            "*prepare s*: load and compile (tl2cgen: C generation and gcc; lleaves: LLVM; ONNX: "
            "conversion; engine: `compile_forest` + `Forest.load`), *cached* when a compiled "
            "artefact of an earlier run was reused.", "",
            *table(["model", "runtime", "prepare s", "check"], out_rows), ""]


def _model_sections(doc) -> list[str]:
    batches = [str(b) for b in doc["settings"]["batches"]]
    out = []
    for m in doc["workload"]["models"]:
        ran = [r for r in _ok(doc["results"]) if _cells(r, m["name"])]
        if not ran:
            continue
        peer_us = {b: (p[1]["median_us"] if (p := _fastest_peer(doc["results"], m["name"], b)) else None)
                   for b in batches}
        rows = []
        for r in ran:
            row = [f"**{r['label']}**" if r.get("is_engine") else r["label"]]
            for b in batches:
                c = _cells(r, m["name"]).get(b)
                row += ([_fmt_us(c["median_us"]), _fmt_ns(c["ns_per_row_tree"]),
                         _ratio(peer_us[b], c["median_us"])] if c else ["—", "—", "—"])
            rows.append(row)
        head = ["runtime"]
        for b in batches:
            head += [f"b={b} µs/call", "ns/row-tree", "×peer"]
        out += [f"## {m['title']}", "", *table(head, rows), ""]
    return out


def _notes(doc) -> list[str]:
    out = runtime_notes(doc)
    out += [f"- {r.get('label', r['runtime'])} on {model}: {mr['error']}."
            for r in doc["results"] for model, mr in (r.get("models") or {}).items() if "error" in mr]
    engine = next((r for r in _ok(doc["results"]) if r.get("is_engine")), None)
    if engine:
        x = engine.get("extra", {})
        out.append(f"- Engine native module `{x.get('native_module', '?')}`, source `{x.get('source_head', '?')}`.")
    st = doc["settings"]
    out.append(f"- Each cell: warm-up calls, then calls for {st['budget_s']:g} s (at least "
               f"{st['min_calls']}), garbage collector off; the median counts. The 2-core VM is "
               "shared with other work: in two full runs ten minutes apart (2026-11-26), the "
               "median cell moved by 8 %, nine in ten by under 35 %, the worst by 2.7×, so "
               "rerun before leaning on a single ratio.")
    return ["## Notes", "", *out, ""]


def render_markdown(doc) -> str:
    parts = (_header(doc) + _summary(doc) + _model_sections(doc) + _agreement_section(doc)
             + _runtimes_section(doc) + _notes(doc))
    return "\n".join(parts).rstrip() + "\n"


def plot(doc, path: Path) -> None:
    """ns per row-tree against batch size, one panel per model, one line per runtime (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in doc["workload"]["models"]
              if any(_cells(r, m["name"]) for r in _ok(doc["results"]))]
    if not models:  # nothing was timed: say so rather than leave a stale picture
        fig = plt.figure(figsize=(6, 1.5))
        fig.text(0.5, 0.5, "no runtime was timed in this run", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    cols = min(4, max(1, len(models)))
    rows = (len(models) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False,
                             sharey=True)
    colors = {rt: f"C{i}" for i, rt in enumerate(r["runtime"] for r in doc["results"])}
    for ax, m in zip(axes.flat, models):
        for r in _ok(doc["results"]):
            cells = _cells(r, m["name"])
            if not cells:
                continue
            bs = sorted(cells, key=int)
            ax.plot([int(b) for b in bs], [cells[b]["ns_per_row_tree"] for b in bs],
                    "-" if r.get("is_engine") else "--", marker="o", ms=3, color=colors[r["runtime"]],
                    lw=2.2 if r.get("is_engine") else 1.3, label=r["label"])
        ax.axhline(TARGET_NS_PER_ROW_TREE, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(m["title"].replace(", ", "\n", 1), fontsize=8)
        ax.set_xlabel("batch size (rows per call)", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("ns per row-tree (1 thread)", fontsize=8)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    ncol = min(len(handles), 3 * cols)
    legend_rows = -(-len(handles) // ncol) if handles else 0
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=ncol, fontsize=8)
    fig.suptitle(f"{doc['system']['cpu']} — dotted: the {TARGET_NS_PER_ROW_TREE:g} ns target",
                 fontsize=9, y=0.005, va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1 - 0.07 * legend_rows / rows))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(doc, out_dir: Path, name: str) -> tuple[Path, Path]:
    md_path = Path(out_dir) / f"{name}.md"
    png_path = Path(out_dir) / f"{name}_ns_per_row_tree.png"
    md_path.write_text(render_markdown(doc))
    plot(doc, png_path)
    return md_path, png_path


def main(argv=None) -> int:
    return rerender_main(argv, workload.RESULTS_DIR / "trees.json", write)


if __name__ == "__main__":
    sys.exit(main())
