"""Markdown pieces shared by the benchmark reports (bench/ann, bench/trees)."""

from __future__ import annotations


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def runs_lines(doc) -> list[str]:
    """The command(s) that produced a report; several when ``--reuse`` merged rows of earlier runs."""
    runs = doc.get("runs") or [{k: doc[k] for k in ("command", "started_at", "elapsed_s")}]
    if len(runs) == 1:
        r = runs[0]
        return [f"- command: `{r['command']}`, started {r['started_at']}, "
                f"took {r['elapsed_s'] / 60:.1f} min"]
    out = ["- merged from runs of the same workload (rows say which, see Notes):"]
    for r in runs:
        rows = [x.get("label", x["runtime"]) for x in doc["results"]
                if x.get("run_started_at") == r["started_at"]]
        out.append(f"  - `{r['command']}`, started {r['started_at']}, took {r['elapsed_s'] / 60:.1f} min"
                   + (f" ({', '.join(rows)})" if rows else ""))
    return out


def runtime_notes(doc) -> list[str]:
    """Note lines for runtimes that did not run or failed, rows reused from an earlier run, and
    workers that ran at once."""
    results, out = doc["results"], []
    for r in results:
        if "skipped" in r:
            out.append(f"- {r['runtime']}: not run: {r['skipped']}.")
        elif "error" in r:
            out.append(f"- {r['runtime']}: {r['error']}.")
    reused = [r for r in results if r.get("reused")]
    if reused:
        out.append("- Rows reused from an earlier run of the same workload (`--reuse`): "
                   + ", ".join(f"{r.get('label', r['runtime'])} ({r['reused']})" for r in reused) + ".")
    jobs = doc["settings"].get("jobs", 1)
    if jobs > 1:
        out.append(f"- **{jobs} workers ran at once** (smoke-test mode): libraries competed "
                   "for the cores, so these timings are not comparable.")
    return out
