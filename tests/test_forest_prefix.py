"""A head's first trees (a first-phase model) agree with the training library's
num_iteration / iteration_range predictions, under every kernel level."""

import numpy as np
import pytest

import engine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    lgb = pytest.importorskip("lightgbm")
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 12)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) > 0).astype(np.float32)
    click = lgb.train({"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1},
                      lgb.Dataset(X, y), num_boost_round=60)
    order = xgb.train({"objective": "binary:logistic", "max_depth": 5, "nthread": 1},
                      xgb.DMatrix(X, y), num_boost_round=40)
    path = tmp_path_factory.mktemp("prefix") / "f.ref"
    forest = engine.compile_forest({"p_click": click, "p_order": order}, path, feature_names=[f"f{i}" for i in range(12)])
    return forest, click, order, X


@pytest.mark.parametrize("rows", [1, 7, 300])
def test_prefix_matches_training_library(models, rows):
    import xgboost as xgb

    forest, click, order, X = models
    x = np.ascontiguousarray(X[:rows])
    for t in (0, 1, 13, 60):
        ours = forest.predict_prefix(x, "p_click", t)
        ref = click.predict(x, raw_score=True, num_iteration=t) if t else np.zeros(rows)  # LightGBM: 0 trees -> 0
        if t:
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    for t in (1, 17, 40):
        ours = forest.predict_prefix(x, "p_order", t)
        ref = order.predict(xgb.DMatrix(x), output_margin=True, iteration_range=(0, t))
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    full = forest.predict(x, output="raw")
    np.testing.assert_array_equal(forest.predict_prefix(x, "p_click", 60), full[:, 0])


def test_prefix_under_every_level(models):
    forest, _, _, X = models
    x = np.ascontiguousarray(X[:100])
    levels = engine._core.forest_levels()
    begin, _ = forest.head_trees("p_order")
    results = [forest._native.predict_level(level, x, True, begin, begin + 9) for level in levels]
    results.append(forest._native.predict_trees(x, begin, begin + 9, 1))
    assert forest.head_trees("p_click") == (0, 60) and forest.head_trees("p_order") == (60, 100)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_prefix_bad_arguments(models):
    forest, _, _, X = models
    with pytest.raises(ValueError, match="head: unknown 'p_view'"):
        forest.predict_prefix(X[:2], "p_view", 3)
    with pytest.raises(ValueError, match=r"n_trees: expected an integer in \[0, 60\]"):
        forest.predict_prefix(X[:2], "p_click", 61)
    with pytest.raises(ValueError, match="trees: expected"):
        forest._native.predict_trees(np.ascontiguousarray(X[:2]), 50, 10, 1)
