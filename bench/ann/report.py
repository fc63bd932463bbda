"""Render a benchmark run (the JSON written by bench.ann.run) as markdown tables and a plot.

    python -m bench.ann.report [bench/results/ann.json]

Every speed is quoted next to the recall it was measured at and as a ratio to
the best peer in the same table, measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.driver import rerender_main
from bench.machine import cpu_line, engine_build_line
from bench.markdown import runs_lines, runtime_notes, table

THRESHOLDS = (0.95, 0.99)


# -- workload description (called by run.py with the live Workload) ----------
def describe_workload(wl) -> dict:
    cat = wl.catalogue
    merchant_share = np.bincount(cat.attributes["merchant_id"]) / len(cat)
    cluster_share = np.bincount(cat.cluster) / len(cat)
    return {
        "n": len(cat), "dim": cat.dim, "n_queries": len(wl.queries), "k": wl.params.k,
        "n_clusters": cat.n_clusters, "largest_cluster_share": float(cluster_share.max()),
        "n_merchants": int((merchant_share > 0).sum()),
        "largest_merchant_share": float(merchant_share.max()),
        "in_stock_share": float(cat.attributes["in_stock"].mean()),
        "fingerprint": wl.fingerprint,
        "filters": [{"name": c.name, "column": c.column, "selectivity": c.selectivity,
                     "values": len(c.values) if isinstance(c.values, list) else 1}
                    for c in wl.filters],
    }


# -- helpers ------------------------------------------------------------------
def best_at(points, threshold: float):
    ok = [p for p in points or () if p["recall"] >= threshold]
    return max(ok, key=lambda p: p["qps"]) if ok else None


def _fmt_qps(q: float | None) -> str:
    if q is None:
        return "—"
    return f"{q:,.0f}" if q >= 100 else f"{q:,.1f}" if q >= 10 else f"{q:.2f}"


def _fmt_ratio(qps: float | None, best_peer: float | None) -> str:
    if qps is None or not best_peer:
        return "—"
    return f"×{qps / best_peer:.2f}"


def _knob(r: dict, knob) -> str:
    return f"{r['knob']}=default" if knob is None else f"{r['knob']}={knob}"


def _ok(results):
    return [r for r in results if "error" not in r and "skipped" not in r]


def _truncated(p) -> str:
    return f" ({p['queries']} q)" if p and p.get("partial") else ""


# -- sections -----------------------------------------------------------------
def _header(doc) -> list[str]:
    s, w = doc["system"], doc["workload"]
    v = s["versions"]
    filters = "; ".join(f"{f['name']}: {f['selectivity'] * 100:.3g} %"
                        + (f" ({f['values']} merchants)" if f["values"] > 1 else "")
                        for f in w["filters"])
    return [
        "# ANN retrieval: rank-engine vs FAISS, hnswlib, usearch",
        "",
        engine_build_line(s),
        cpu_line(s),
        f"- peers: faiss-cpu {v.get('faiss-cpu')} ({s.get('faiss_compile_options', '?')}), "
        f"hnswlib {v.get('hnswlib')}, usearch {v.get('usearch')}; numpy {v.get('numpy')}, "
        f"Python {s['python']}",
        *runs_lines(doc),
        f"- workload: `make_catalogue({w['n']:,}, dim={w['dim']})`: {w['n_clusters']:,} clusters "
        f"(largest {w['largest_cluster_share'] * 100:.1f} %), {w['n_merchants']:,} merchants "
        f"(largest {w['largest_merchant_share'] * 100:.1f} %), {w['in_stock_share'] * 100:.0f} % in "
        f"stock; {w['n_queries']:,} queries from `Catalogue.queries` (fresh points, not items); "
        f"recall@{w['k']} against exact inner-product ground truth",
        f"- filters: {filters}",
        "",
        "QPS is queries per second on one core; **×peer** is QPS divided by the best "
        "peer's QPS in the same table (peers = everything but the engine). "
        "Each library's result quality was checked before it was timed "
        "(build table, column *check*).",
        "",
    ]


def _build_section(doc) -> list[str]:
    rows = []
    for r in doc["results"]:
        if "skipped" in r:
            rows.append([r["runtime"], "—", r["skipped"], "—", "—", "—", "skipped"])
            continue
        if "build_s" not in r:
            rows.append([r.get("label", r["runtime"]), r.get("version", "—"), r.get("error", "?"),
                         "—", "—", "—", "error"])
            continue
        size = r.get("size_bytes")
        chk = r.get("check", {})
        chk_txt = f"{chk.get('recall', float('nan')):.3f} @ {r['knob'] or 'exact'}={chk.get('knob')}" \
            if r["knob"] else f"{chk.get('recall', float('nan')):.3f} (exact)"
        if "error" in r:
            chk_txt += f" — {r['error']}"
        rows.append([r["label"], r["version"], r["config"], f"{r['build_s']:.1f}",
                     f"{r['rss_delta'] / 2**20:,.0f}",
                     "—" if size is None else f"{size / 2**20:,.0f}", chk_txt])
    return ["## Build (one thread)", "",
            *table(["library", "version", "config", "build s", "RSS Δ MB", "index MB", "check recall@10"],
                   rows),
            "", "*RSS Δ*: resident memory after the build minus before, in a fresh process; "
            "*index MB*: the library's own account (engine `stats()['bytes']`, "
            "`faiss.serialize_index`, hnswlib `index_file_size()`, usearch `memory_usage`).", ""]


def _sweep_rows(results, get_points, with_default=True):
    """Rows of a threshold table and the summary ratios."""
    ok = _ok(results)
    best_peer = {}
    for t in THRESHOLDS:
        qs = [best_at(get_points(r), t) for r in ok if not r.get("is_engine")]
        best_peer[t] = max((p["qps"] for p in qs if p), default=None)
    rows = []
    for r in ok:
        pts = get_points(r)
        if not pts:
            continue
        row = [r["label"], r["version"], r["config"]]
        for t in THRESHOLDS:
            p = best_at(pts, t)
            if p is None:
                row += ["—", "—", "—", "—"]
            else:
                row += [_knob(r, p["knob"]), f"{p['recall']:.3f}", _fmt_qps(p["qps"]) + _truncated(p),
                        _fmt_ratio(p["qps"], best_peer[t])]
        row.append(f"{max(p['recall'] for p in pts):.3f}")
        rows.append(row)
    head = ["library", "version", "config"]
    for t in THRESHOLDS:
        head += [f"knob @≥{t}", "recall", "QPS", "×peer"]
    head.append("max recall")
    return head, rows, best_peer


def _defaults_rows(results, get_points):
    rows = []
    for r in _ok(results):
        if not r.get("is_engine"):
            continue
        p = next((p for p in get_points(r) or () if p["knob"] is None), None)
        if p:
            rows.append((r, p))
    return rows


def _summary_line(results, get_points, t) -> str | None:
    ok = _ok(results)
    best = {}
    for side in (True, False):
        cands = [(r, best_at(get_points(r), t)) for r in ok if bool(r.get("is_engine")) == side]
        cands = [(r, p) for r, p in cands if p]
        best[side] = max(cands, key=lambda rp: rp[1]["qps"]) if cands else None
    if not best[True] or not best[False]:
        return None
    (er, ep), (pr, pp) = best[True], best[False]
    return (f"recall ≥ {t}: best engine {er['label']} ({_knob(er, ep['knob'])}) "
            f"{_fmt_qps(ep['qps'])} QPS vs best peer {pr['label']} ({_knob(pr, pp['knob'])}) "
            f"{_fmt_qps(pp['qps'])} QPS: **×{ep['qps'] / pp['qps']:.2f}**")


def _unfiltered_section(doc) -> list[str]:
    out = []
    batch = doc["settings"]["batch"]
    for b, title in (("1", "batch 1 (a loop of single-query calls)"),
                     (str(batch), f"batch {batch} (one call)")):
        get = lambda r, b=b: (r.get("unfiltered") or {}).get(b)  # noqa: E731
        head, rows, _ = _sweep_rows(doc["results"], get)
        out += [f"## Unfiltered top-10, {title}", ""]
        for t in THRESHOLDS:
            line = _summary_line(doc["results"], get, t)
            if line:
                out.append(f"- {line}")
        out += ["", *table(head, rows), ""]
        drows = _defaults_rows(doc["results"], get)
        if drows:
            out += ["Engine at its calibrated default (`ef=None`):", "",
                    *table(["library", "config", "recall", "QPS"],
                           [[r["label"], r["config"], f"{p['recall']:.3f}", _fmt_qps(p["qps"])]
                            for r, p in drows]), ""]
    return out


def _filtered_section(doc) -> list[str]:
    out = ["## Filtered top-10, batch 1", "",
           "Best QPS at recall ≥ 0.95 against the exact filtered top 10. The engine gets the "
           "filter as a dict per call (`{'merchant_id': m}`, `{'merchant_id': int64 array}`, "
           "`{'in_stock': True}`), validated and planned in the timed call; FAISS gets an `IDSelectorBitmap` built once per filter "
           "(untimed); hnswlib gets a Python `filter=` callback; the post-filter baseline "
           "over-fetches k/selectivity×2 from an unfiltered IVF-Flat and drops the rest. "
           "usearch's Python API has no predicate search, so it is absent here.", ""]
    t = THRESHOLDS[0]
    for f in doc["workload"]["filters"]:
        name = f["name"]
        get = lambda r, name=name: (r.get("filtered") or {}).get(name)  # noqa: E731
        ok = [r for r in _ok(doc["results"]) if get(r)]
        if not ok:
            continue
        peer_best = max((p["qps"] for r in ok if not r.get("is_engine")
                         for p in [best_at(get(r), t)] if p), default=None)
        rows = []
        for r in ok:
            pts = get(r)
            p = best_at(pts, t)
            mx = max(pts, key=lambda p: p["recall"])
            if p is None:
                rows.append([r["label"], r["version"], r["config"], "—", "—", "—", "—",
                             f"never ≥ {t}: best {mx['recall']:.3f} at {_knob(r, mx['knob'])}, "
                             f"{_fmt_qps(mx['qps'])} QPS" + _truncated(mx)])
            else:
                rows.append([r["label"], r["version"], r["config"], _knob(r, p["knob"]),
                             f"{p['recall']:.3f}", _fmt_qps(p["qps"]) + _truncated(p),
                             _fmt_ratio(p["qps"], peer_best), ""])
            d = next((p for p in pts if p["knob"] is None), None)
            if d is not None:
                rows.append([f"{r['label']} (default ef)", r["version"], "ef=None", "ef=default",
                             f"{d['recall']:.3f}", _fmt_qps(d["qps"]),
                             _fmt_ratio(d["qps"], peer_best), "calibrated default"])
        extra = f", {f['values']} merchants" if f["values"] > 1 else ""
        out += [f"### {name} (selectivity {f['selectivity'] * 100:.3g} %{extra})", "",
                *table(["library", "version", "config", "knob", "recall", "QPS", "×peer", "note"],
                       rows), ""]
    return out


def _exact_section(doc) -> list[str]:
    rows = []
    batch = str(doc["settings"]["batch"])
    for b in ("1", batch):
        cands = [(r, r["exact"][b]) for r in _ok(doc["results"]) if b in (r.get("exact") or {})]
        peer = max((p["qps"] for r, p in cands if not r.get("is_engine")), default=None)
        for r, p in cands:
            rows.append([r["label"], r["version"], "search(exact=True)" if r.get("is_engine") else r["config"],
                         b, f"{p['recall']:.4f}", _fmt_qps(p["qps"]) + _truncated(p),
                         _fmt_ratio(p["qps"], peer)])
    if not rows:
        return []
    return ["## Exact search (brute force over every row)", "",
            *table(["library", "version", "config", "batch", "recall", "QPS", "×peer"], rows), ""]


def _notes(doc) -> list[str]:
    out = runtime_notes(doc)
    partial = sorted({r["label"] for r in _ok(doc["results"])
                      for pts in _all_points(r) for p in pts if p.get("partial")})
    if partial:
        out.append(f"- Points marked *(N q)* ran N of the {doc['workload']['n_queries']} queries: "
                   f"a batch-1 loop stops after {doc['settings']['budget_s']:g} s once "
                   f"{doc['settings']['min_queries']} queries are done (slow configurations of "
                   f"{', '.join(partial)}); their recall is over those queries.")
    engine_rows = [r for r in _ok(doc["results"]) if r.get("is_engine")]
    stamps = {r["label"]: r.get("extra", {}).get("native_module", "") for r in engine_rows}
    if stamps:
        path = next(iter(stamps.values())).split(" (")[0]
        heads = {r["label"]: r.get("extra", {}).get("source_head") for r in engine_rows}
        loaded = ", ".join(f"{label}: {s.split(' (')[-1].rstrip(')')}"
                           + (f" (source `{heads[label]}`)" if heads.get(label) else "")
                           for label, s in stamps.items())
        out.append(f"- Engine native module `{path}`, modified at (as each worker loaded it) {loaded}.")
        if len(set(stamps.values())) > 1:
            out.append("- **The engine's native module was rebuilt between engine workers**: "
                       "engine rows may come from different commits; compare them with care.")
    st = doc["settings"]
    out.append(f"- Sweeps go up the knob and stop at the first point with recall ≥ 0.995, "
               f"below 20 QPS, or after recall gained < 0.002 over two steps. Each point is the fastest of up to {st.get('repeats', 1)} timed "
               f"runs of the same queries (fewer when a run takes over {st['budget_s']:g} s)"
               + (f", over {st['rounds']} rounds that alternate the order of the libraries"
                  if st.get("rounds", 1) > 1 else "")
               + "; a shared 2-core VM (whose hypervisor steals up to half the CPU at times) "
               "is still noisy, so read ratios to ±15 %.")
    return ["## Notes", "", *out, ""] if out else []


def _all_points(r):
    for group in ("unfiltered", "filtered"):
        for pts in (r.get(group) or {}).values():
            yield pts or []
    for p in (r.get("exact") or {}).values():
        yield [p]


def _appendix(doc) -> list[str]:
    out = ["## All points", "", "<details><summary>every (knob, recall, QPS) measured</summary>", ""]
    for r in _ok(doc["results"]):
        lines = []
        for group in ("unfiltered", "filtered"):
            for key, pts in (r.get(group) or {}).items():
                if not pts:
                    continue
                label = f"batch {key}" if group == "unfiltered" else f"{key}, batch 1"
                cells = ", ".join(f"{'default' if p['knob'] is None else p['knob']}: "
                                  f"{p['recall']:.3f} / {_fmt_qps(p['qps'])}" for p in pts)
                lines.append(f"- {group} {label} ({r['knob']}: recall / QPS): {cells}")
        if lines:
            out += [f"**{r['label']}** — {r['config']}", "", *lines, ""]
    out += ["</details>", ""]
    return out


def render_markdown(doc) -> str:
    for r in _ok(doc["results"]):  # mark points that ran fewer than all queries
        for pts in _all_points(r):
            for p in pts:
                p["partial"] = p["queries"] < doc["workload"]["n_queries"]
    parts = (_header(doc) + _build_section(doc) + _unfiltered_section(doc)
             + _filtered_section(doc) + _exact_section(doc) + _notes(doc) + _appendix(doc))
    return "\n".join(parts).rstrip() + "\n"


def plot(doc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    lo = 1.0
    for r in _ok(doc["results"]):
        pts = [p for p in (r.get("unfiltered") or {}).get("1") or () if p["knob"] is not None]
        if not pts:
            continue
        recall = [p["recall"] for p in pts]
        lo = min(lo, min(recall))
        style = "-" if r.get("is_engine") else "--"
        line, = ax.plot(recall, [p["qps"] for p in pts], style, marker="o", ms=3,
                        lw=2.2 if r.get("is_engine") else 1.4, label=r["label"])
        d = next((p for p in (r.get("unfiltered") or {}).get("1") or () if p["knob"] is None), None)
        if d is not None:
            ax.plot([d["recall"]], [d["qps"]], marker="*", ms=13, color=line.get_color(),
                    markeredgecolor="black", linestyle="none")
    ax.set_yscale("log")
    ax.set_xlim(max(lo - 0.01, 0.7), 1.002)  # the region a service would run in
    for t in THRESHOLDS:
        ax.axvline(t, color="grey", lw=0.7, ls=":")
    w = doc["workload"]
    ax.set_xlabel(f"recall@{w['k']}")
    ax.set_ylabel("queries per second (one thread, batch 1, log scale)")
    bi = doc["system"]["engine_build_info"]
    ax.set_title(f"{w['n']:,} x {w['dim']} catalogue, {w['n_queries']:,} queries — "
                 f"{doc['system']['cpu']}, engine simd={bi['simd']}"
                 + (f" ({bi['kernels']})" if bi.get("kernels") else "") + "\n"
                 "★ = engine at its calibrated default ef", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(doc, out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    md_path = out_dir / f"{name}.md"
    png_path = out_dir / f"{name}_recall_qps.png"
    md_path.write_text(render_markdown(doc))
    plot(doc, png_path)
    return md_path, png_path


def main(argv=None) -> int:
    from bench.ann.workload import RESULTS_DIR

    return rerender_main(argv, RESULTS_DIR / "ann.json", write)


if __name__ == "__main__":
    sys.exit(main())
