"""The `rank-engine` command line (also `python -m engine`)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rank-engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    quick = sub.add_parser(
        "quickstart",
        help="generate a shopping world, log, train and compile heads, serve, report latency and NDCG@10",
    )
    quick.add_argument("--out", default="quickstart-out",
                       help="folder for bundles and logs (default ./quickstart-out)")
    quick.add_argument("--items", type=int, default=50_000, help="catalogue size (default 50,000)")
    quick.add_argument("--users", type=int, default=10_000, help="shoppers (default 10,000)")
    quick.add_argument("--dim", type=int, default=32, help="embedding dimensions (default 32)")
    quick.add_argument("--train-requests", type=int, default=20_000,
                       help="requests served by the logging policy to train on (default 20,000)")
    quick.add_argument("--eval-requests", type=int, default=2_000, help="held-out requests (default 2,000)")
    quick.add_argument("--rounds", type=int, default=300, help="boosting rounds of the click head (default 300)")
    quick.add_argument("--threads", type=int, default=2, help="threads for builds, training, batches (default 2)")
    quick.add_argument("--seed", type=int, default=0, help="seed of the generated world")
    quick.add_argument("--no-progress", action="store_true", help="no progress bars")
    from tools import build_bundle, compile_forest

    compile_forest.add_parser(sub)
    build_bundle.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        from engine.quickstart import QuickstartConfig, run

        run(QuickstartConfig(out=args.out, items=args.items, users=args.users, dim=args.dim,
                             train_requests=args.train_requests, eval_requests=args.eval_requests,
                             rounds=args.rounds, threads=args.threads, seed=args.seed,
                             progress=not args.no_progress))
    elif args.command == "compile":
        return compile_forest.run(args)
    elif args.command == "bundle":
        return build_bundle.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
