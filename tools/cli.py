"""The `rank-engine` command line (also `python -m engine`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rank-engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    quick = sub.add_parser(
        "quickstart",
        help="generate a catalogue, build and save an index, report recall and latency",
    )
    quick.add_argument("--out", default="quickstart-out", help="folder for the index file")
    quick.add_argument("--items", type=int, default=200_000, help="catalogue size (default 200,000)")
    quick.add_argument("--dim", type=int, default=64, help="embedding dimensions (default 64)")
    quick.add_argument("--queries", type=int, default=1_000, help="queries per search kind (default 1,000)")
    quick.add_argument("--storage", choices=("f32", "f16", "i8"), default="i8",
                       help="how the IVF lists store vectors (default i8)")
    quick.add_argument("--threads", type=int, default=2, help="threads for the build (default 2)")
    quick.add_argument("--seed", type=int, default=0, help="seed of the generated catalogue")
    from tools import compile_forest

    compile_forest.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        from tools.quickstart import run

        run(args)
    elif args.command == "compile":
        return compile_forest.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
