"""`rank-engine compile`: XGBoost / LightGBM model files -> one Forest file,
through engine.compile_forest, with progress and a summary."""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compile",
        help="compile XGBoost / LightGBM models into a Forest file",
        description="Compile tree models into the engine's Forest format. Each MODEL is a file "
        "(XGBoost .json / .ubj, LightGBM model text), optionally prefixed with a head name "
        "(click=click.json); unnamed single models become the head 'score'.",
    )
    p.add_argument("models", nargs="+", metavar="[HEAD=]MODEL")
    p.add_argument("-o", "--output", required=True, help="the Forest file to write")
    p.add_argument("--feature-names", help="file with one feature name per line, naming the "
                   "models' columns by index (overrides names in the model files)")
    p.add_argument("--optional", action="append", default=[], metavar="FEATURE",
                   help="a feature that may be absent from Arrow inputs (repeatable)")


def _heads(specs: list[str]) -> dict[str, str] | str:
    if len(specs) == 1 and "=" not in specs[0]:
        return specs[0]
    heads = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"rank-engine compile: with several models, each needs HEAD=MODEL (got {spec!r})")
        if name in heads:
            raise SystemExit(f"rank-engine compile: head {name!r} given twice")
        heads[name] = path
    return heads


def run(args: argparse.Namespace) -> int:
    from engine import compile_forest

    names = None
    if args.feature_names:
        with open(args.feature_names, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    try:
        forest = compile_forest(_heads(args.models), args.output, names,
                                optional_features=args.optional, progress=progress)
    except (ValueError, TypeError) as e:
        print(f"rank-engine compile: {e}", file=sys.stderr)
        return 2
    s = forest.summary()
    print(f"{s['path']}: {s['trees']} trees, {s['leaves']} leaves, {s['nodes']} nodes, "
          f"max depth {s['max_depth']}, {s['features']} features")
    for h in s["heads"]:
        print(f"  head {h['name']}: {h['trees']} trees, {h['outputs']} output(s), "
              f"{h['transform']}, from {h['source']}")
    return 0
