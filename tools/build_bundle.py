"""`rank-engine bundle`: item table + item vectors + trained models -> a serving bundle,
through engine.bundle.build_bundle."""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bundle",
        help="build a serving bundle from an item table, item vectors and trained models",
        description="Build a serving bundle (manifest, index, forests, item table, candidate lists). "
        "Tables are Parquet or Arrow IPC files; vectors are .npy float32 (rows x dim) aligned with the "
        "table's rows.",
    )
    p.add_argument("-o", "--output", required=True, help="bundle directory to write")
    p.add_argument("--items", required=True, help="item table (.parquet / .arrow) with item_id")
    p.add_argument("--item-vectors", required=True, help=".npy float32 (n_items, dim); zero rows: no embedding")
    p.add_argument("--spec", required=True, help="FeatureSpec JSON")
    p.add_argument("--surfaces", required=True, help="JSON object: surface name -> SurfaceSettings")
    p.add_argument("--model", action="append", default=[], metavar="HEAD=MODEL",
                   help="a trained model file per head (XGBoost .json/.ubj, LightGBM text); repeatable")
    p.add_argument("--forest", help="an already compiled Forest file instead of --model")
    p.add_argument("--users", help="user table (.parquet / .arrow) with user_id and attribute columns")
    p.add_argument("--user-vectors", help=".npy float32 (n_users, dim) aligned with --users")
    p.add_argument("--popularity", help="item column ranking the popular-items source")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")


def _read_table(path: str):
    import pyarrow as pa
    import pyarrow.ipc
    import pyarrow.parquet as pq

    if path.endswith(".parquet"):
        return pq.read_table(path)
    with pa.memory_map(path) as source:
        return pa.ipc.open_file(source).read_all()


def run(args: argparse.Namespace) -> int:
    import msgspec
    import numpy as np

    from engine.bundle import build_bundle
    from engine.features import FeatureSpec
    from engine.ranking import SurfaceSettings

    if args.model and args.forest:
        print("rank-engine bundle: give --model or --forest, not both", file=sys.stderr)
        return 2
    models = None
    if args.model:
        models = {}
        for spec in args.model:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                print(f"rank-engine bundle: --model needs HEAD=MODEL, got {spec!r}", file=sys.stderr)
                return 2
            models[name] = path
    elif args.forest:
        models = args.forest
    started = time.perf_counter()
    try:
        with open(args.spec, "rb") as f:
            spec = FeatureSpec.from_json(f.read())
        with open(args.surfaces, "rb") as f:
            surfaces = msgspec.json.decode(f.read(), type=dict[str, SurfaceSettings])
        out = build_bundle(
            args.output, items=_read_table(args.items), item_vectors=np.load(args.item_vectors),
            feature_spec=spec, surfaces=surfaces, models=models,
            users=_read_table(args.users) if args.users else None,
            user_vectors=np.load(args.user_vectors) if args.user_vectors else None,
            popularity=args.popularity, threads=args.threads, overwrite=args.overwrite,
        )
    except (ValueError, TypeError, OSError, msgspec.DecodeError) as e:
        print(f"rank-engine bundle: {e}", file=sys.stderr)
        return 2
    from engine.bundle import read_manifest

    m = read_manifest(out)
    print(f"{out}: version {m.bundle_version}, {m.n_items:,} items, dim {m.dim}, heads {m.heads or 'none'}, "
          f"surfaces {sorted(m.surfaces)}, {len(m.feature_spec.names)} features "
          f"({time.perf_counter() - started:.1f} s)")
    return 0
