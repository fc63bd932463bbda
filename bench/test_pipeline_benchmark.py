"""pytest-benchmark suite for the whole ranking request: ``Ranker.rank`` against the hand-glued stack.

    python -m pytest bench/test_pipeline_benchmark.py --benchmark-group-by=group

Not part of the default test run (pyproject ``testpaths = ["tests"]``). A
small world (20,000 items, dim 32), the full 60-feature spec of
``bench/pipeline/workload.py``, two 50-tree heads, built once per module in a
temporary folder (~15 s). Per group the engine (logging to an
ImpressionLogger) and the glued stack (usearch + pandas + LightGBM + numpy,
``bench/pipeline/glued.py``) on the same requests: one request per call, the
next request each call; and 64 requests on 2 threads. Before anything is
timed the glued features are checked against the engine's assembler and the
top 20 against the engine's on the same candidates. The full side-by-side run
is ``python -m bench.pipeline.run``.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("pandas")
pytest.importorskip("lightgbm")
pytest.importorskip("usearch")

from bench.machine import import_engine  # noqa: E402
from bench.pipeline import workload  # noqa: E402
from bench.pipeline.glued import GluedStack  # noqa: E402

engine = import_engine()

SMALL = replace(workload.QUICK, items=20_000, users=3_000, dim=32, merchants=300, categories=40,
                train_requests=200, trees=50, requests=256, warmup=32, check_requests=16)
BATCH = 64


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    import msgspec

    from engine.features import FeatureAssembler
    from engine.impressions import ImpressionLogger
    from engine.ranking import Ranker

    folder = tmp_path_factory.mktemp("pipeline")
    prep = workload.prepare(SMALL, log=lambda message: None, cache_dir=folder / "cache")
    keys = workload.ItemKeys.of(prep.items)
    requests = [workload.to_rank_request(prep.world, r, keys)
                for r in prep.world.sample_requests(SMALL.requests, seed=2)]
    glued = GluedStack(items=prep.items, item_vectors=prep.world.item_vectors, users=prep.users,
                       user_vectors=prep.world.user_vectors, spec=prep.spec,
                       surfaces=workload.surfaces(trained=True), models=prep.models,
                       usearch_path=str(prep.usearch_path))
    logger = ImpressionLogger(folder / "log", when_full="drop")
    ranker = Ranker.load(prep.bundle, logger=logger)

    # Same candidates -> same features (the dot product to float rounding) and the same top 20.
    assembler = FeatureAssembler(prep.spec, prep.items, prep.world.item_vectors)
    dot = prep.spec.names.index("user_item_dot")
    for rq in requests[:SMALL.check_requests]:
        rows = prep.world.item_rows(ranker.rank(msgspec.structs.replace(rq, k=10_000)).item_ids)
        fields, u, _ = glued.request_fields(rq)
        engine_fields = {**fields, "user_vector": u}
        diff = np.abs(assembler.assemble(rows, engine_fields) - glued.features(rows, fields, u))
        assert (np.delete(diff, dot, axis=1) == 0).all(), "glued features differ from the engine's"
        assert diff[:, dot].max() <= 1e-5
        assert np.array_equal(ranker.rank(rq).item_ids, glued.rank(rq, rows=rows).item_ids)
    glued.log.clear()
    yield {"engine": ranker, "glued": glued, "requests": requests}
    ranker.close()
    logger.close()


def _batch(stack, runtime: str, pool: ThreadPoolExecutor):
    if runtime == "engine":
        ranker = stack["engine"]
        return lambda batch: ranker.rank_batch(batch, threads=2)
    glued = stack["glued"]

    def run(batch):
        out = list(pool.map(glued.rank, batch))
        glued.log.clear()
        return out

    return run


@pytest.mark.parametrize("runtime", ["engine", "glued"])
def test_rank_one_request(benchmark, stack, runtime):
    rank = stack[runtime].rank
    requests = itertools.cycle(stack["requests"])
    for rq in stack["requests"][:SMALL.warmup]:
        rank(rq)
    benchmark.group = f"rank(): one request, {SMALL.items:,} items, 2 heads x {SMALL.trees} trees"
    benchmark.extra_info.update(items=SMALL.items, trees=SMALL.trees, features=60)
    benchmark(lambda: rank(next(requests)))
    if runtime == "glued":
        stack["glued"].log.clear()


@pytest.mark.parametrize("runtime", ["engine", "glued"])
def test_rank_batch_two_threads(benchmark, stack, runtime):
    with ThreadPoolExecutor(2) as pool:
        run = _batch(stack, runtime, pool)
        batches = itertools.cycle([stack["requests"][i:i + BATCH]
                                   for i in range(0, len(stack["requests"]), BATCH)])
        run(next(batches))
        benchmark.group = f"{BATCH} requests on 2 threads, {SMALL.items:,} items"
        benchmark.extra_info.update(items=SMALL.items, trees=SMALL.trees, batch=BATCH)
        benchmark.pedantic(lambda: run(next(batches)), rounds=20, warmup_rounds=2)
