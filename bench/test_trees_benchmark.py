"""pytest-benchmark suite for engine.Forest against XGBoost and LightGBM's own predictors, on small models.

    python -m pytest bench/test_trees_benchmark.py --benchmark-group-by=group

Not part of the default test run (pyproject ``testpaths = ["tests"]``). Each
group holds the engine and the library that trained the model, at batch 1
(one row per call, the next row each call) and batch 256, measured in the
same run; raw scores are checked against the training library before
anything is timed. The engine cases skip while ``engine.compile_forest`` is
not in the build. The full side-by-side run is ``python -m bench.trees.run``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")

from bench.machine import import_engine  # noqa: E402
from bench.trees.workload import TRAIN_THREADS, make_rows  # noqa: E402

engine = import_engine()

N_FEATURES, TRAIN_ROWS, EVAL_ROWS, N_TREES = 100, 10_000, 4096, 200
BATCHES = [1, 256]


@pytest.fixture(scope="module")
def rows():
    X, y = make_rows(TRAIN_ROWS, N_FEATURES, seed=0)
    X_eval, _ = make_rows(EVAL_ROWS, N_FEATURES, seed=1)
    return X, y, X_eval


@pytest.fixture(scope="module")
def models(rows, tmp_path_factory):
    """{library: (model file, predict_raw(X), raw scores on the held-out rows)}; one thread each."""
    X, y, X_eval = rows
    out = tmp_path_factory.mktemp("trees")
    lgb_model = lgb.train({"objective": "binary", "num_leaves": 63, "num_threads": TRAIN_THREADS, "verbose": -1,
                           "seed": 0}, lgb.Dataset(X, y), num_boost_round=N_TREES)
    lgb_model.save_model(out / "lightgbm.txt")
    xgb_model = xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": TRAIN_THREADS, "seed": 0},
                          xgb.DMatrix(X, y), num_boost_round=N_TREES)
    xgb_model.save_model(out / "xgboost.json")
    xgb_model.set_param({"nthread": 1})

    def lgb_raw(x):
        return lgb_model.predict(x, raw_score=True, num_threads=1)

    def xgb_raw(x):
        return xgb_model.inplace_predict(x, predict_type="margin")

    return {"lightgbm": (out / "lightgbm.txt", lgb_raw, lgb_raw(X_eval)),
            "xgboost": (out / "xgboost.json", xgb_raw, xgb_raw(X_eval))}


def _bench(benchmark, fn, X_eval, batch):
    if batch == 1:
        rows = itertools.cycle(X_eval[i:i + 1] for i in range(len(X_eval)))
        benchmark(lambda: fn(next(rows)))
    else:
        benchmark.pedantic(fn, (X_eval[:batch],), rounds=200, warmup_rounds=5)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_engine(benchmark, rows, models, tmp_path, library, batch):
    if not hasattr(engine, "compile_forest"):
        pytest.skip("engine.Forest not available in this build")
    path, _, reference = models[library]
    engine.compile_forest(str(path), str(tmp_path / "model.forest"))
    forest = engine.Forest.load(str(tmp_path / "model.forest"))
    X_eval = rows[2]
    out = np.asarray(forest.predict(X_eval, output="raw", threads=1), dtype=np.float64).reshape(-1)
    diff = np.abs(out - reference)
    assert (diff <= 1e-6 * np.maximum(1.0, np.abs(reference))).all(), f"max |Δ| {diff.max():.3g}"
    benchmark.group = f"{library} {N_TREES} trees, batch {batch}"
    benchmark.extra_info.update(max_abs_diff=float(diff.max()), trees=N_TREES)
    _bench(benchmark, lambda x: forest.predict(x, output="raw", threads=1), X_eval, batch)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_training_library(benchmark, rows, models, library, batch):
    _, predict, _ = models[library]
    benchmark.group = f"{library} {N_TREES} trees, batch {batch}"
    benchmark.extra_info.update(trees=N_TREES)
    _bench(benchmark, predict, rows[2], batch)
