"""Compiled Forests agree with the libraries that trained them, on real data
(../shared/data/lambdarank) and on a generated set with NaN and categorical
columns: raw scores within 1e-6 absolute at batch 1 and large batches under
every SIMD level, and the same NDCG@1/3/5/10 on rank.test.

Accumulation precision follows the source: float32 in tree order for XGBoost
heads (as XGBoost sums), float64 for LightGBM heads, rounded to float32 once
at the end (LightGBM returns the double)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from forest_cases import CATEGORICAL_COLUMNS, N_FEATURES, edge_rows, synthetic
from ranking_support import features, group_sizes, labels, requires_data

import engine
from engine import _core
from engine import metrics
from engine.forest.lightgbm_model import parse_lightgbm
from engine.forest.xgboost_model import parse_xgboost
from tools.cli import main as cli

pytestmark = requires_data
LEVELS = _core.forest_levels()
NAMES = [f"feature_{i}" for i in range(301)]


@pytest.fixture(scope="module")
def lambdarank(tmp_path_factory):
    """LightGBM lambdarank and XGBoost rank:ndcg models on rank.train, compiled
    as two heads of one Forest, and rank.test."""
    X, y, groups = features("rank.train"), labels("rank.train"), group_sizes("rank.train")
    booster_lgb = lgb.train(
        {"objective": "lambdarank", "num_leaves": 63, "learning_rate": 0.1, "min_data_in_leaf": 5,
         "num_threads": 1, "deterministic": True, "verbose": -1},
        lgb.Dataset(X, y, group=groups), num_boost_round=150)
    train = xgb.DMatrix(X, label=y)
    train.set_group(groups)
    booster_xgb = xgb.train({"objective": "rank:ndcg", "max_depth": 6, "eta": 0.1, "nthread": 1},
                            train, num_boost_round=150)
    path = tmp_path_factory.mktemp("forest") / "rank.forest"
    forest = engine.compile_forest({"lightgbm": booster_lgb, "xgboost": booster_xgb}, path, NAMES)
    X_test = features("rank.test")
    want = np.column_stack([booster_lgb.predict(X_test, raw_score=True, num_threads=1),
                            booster_xgb.predict(xgb.DMatrix(X_test), output_margin=True)])
    return forest, X_test, want, booster_lgb, booster_xgb


def test_lambdarank_raw_scores_agree_at_every_level_and_batch(lambdarank):
    forest, X, want, _, _ = lambdarank
    assert forest.heads == ["lightgbm", "xgboost"]
    for level in LEVELS:
        got = forest._native.predict_level(level, X, True)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=level)
        for i in range(0, len(X), 97):  # batch 1
            np.testing.assert_allclose(forest._native.predict_level(level, X[i:i + 1], True)[0], want[i],
                                       rtol=0, atol=1e-6, err_msg=f"{level}, row {i}")
    np.testing.assert_allclose(forest.predict(X, "raw", threads=2), want, rtol=0, atol=1e-6)


def test_lambdarank_edge_inputs_agree(lambdarank):
    """Every threshold and its float32 neighbours, the zero band, odd values,
    infinities (LightGBM) and all-missing rows, on rank.test rows."""
    forest, X, _, booster_lgb, booster_xgb = lambdarank
    rows = edge_rows(parse_lightgbm(booster_lgb), X)
    np.testing.assert_allclose(forest.predict(rows, "raw")[:, 0],
                               booster_lgb.predict(rows, raw_score=True, num_threads=1), rtol=0, atol=1e-6)
    rows = edge_rows(parse_xgboost(booster_xgb), X, infinities=False)
    np.testing.assert_allclose(forest.predict(rows, "raw")[:, 1],
                               booster_xgb.predict(xgb.DMatrix(rows), output_margin=True), rtol=0, atol=1e-6)


def test_lambdarank_ndcg_of_the_compiled_models_equals_the_source(lambdarank):
    forest, X, want, _, _ = lambdarank
    y, groups = labels("rank.test"), group_sizes("rank.test")
    got = forest.predict(X, "raw")
    for head in range(2):
        for k in (1, 3, 5, 10):
            ours = metrics.ndcg(got[:, head], y, k=k, group_sizes=groups).mean()
            theirs = metrics.ndcg(want[:, head].astype(np.float32), y, k=k, group_sizes=groups).mean()
            assert ours == theirs, (head, k)


def test_model_files_compile_like_boosters(lambdarank, tmp_path):
    forest, X, want, booster_lgb, booster_xgb = lambdarank
    booster_lgb.save_model(tmp_path / "lgb.txt")
    booster_xgb.save_model(tmp_path / "xgb.json")
    booster_xgb.save_model(tmp_path / "xgb.ubj")
    for name, column in [("lgb.txt", 0), ("xgb.json", 1), ("xgb.ubj", 1)]:
        from_file = engine.compile_forest(tmp_path / name, tmp_path / f"{name}.forest", NAMES)
        np.testing.assert_allclose(from_file.predict(X, "raw"), want[:, column], rtol=0, atol=1e-6)


def test_command_line_compiles_heads_and_prints_a_summary(lambdarank, tmp_path, capsys):
    _, X, want, booster_lgb, booster_xgb = lambdarank
    booster_lgb.save_model(tmp_path / "lgb.txt")
    booster_xgb.save_model(tmp_path / "xgb.json")
    (tmp_path / "names.txt").write_text("\n".join(NAMES))
    out = tmp_path / "cli.forest"
    assert cli(["compile", f"click={tmp_path / 'lgb.txt'}", f"order={tmp_path / 'xgb.json'}",
                "--feature-names", str(tmp_path / "names.txt"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parsed head 'click'" in printed and "300 trees" in printed and "head order: 150 trees" in printed
    np.testing.assert_allclose(engine.Forest.load(out).predict(X, "raw"), want, rtol=0, atol=1e-6)
    assert cli(["compile", str(tmp_path / "names.txt"), "-o", str(tmp_path / "bad.forest")]) == 2
    assert "neither an XGBoost" in capsys.readouterr().err


@pytest.fixture(scope="module")
def generated():
    """A 100-feature set with 5 % NaN and integer-coded categorical columns."""
    X, y = synthetic(4000, seed=1)
    types = ["c" if i in CATEGORICAL_COLUMNS else "q" for i in range(N_FEATURES)]
    dtrain = xgb.DMatrix(X, label=y, feature_types=types, enable_categorical=True)
    booster_xgb = xgb.train({"max_depth": 8, "eta": 0.1, "nthread": 1, "max_cat_to_onehot": 1},
                            dtrain, num_boost_round=60)
    booster_lgb = lgb.train({"objective": "regression", "num_leaves": 63, "verbose": -1, "num_threads": 1,
                             "min_data_in_leaf": 5, "cat_smooth": 1, "min_data_per_group": 5},
                            lgb.Dataset(X, y, categorical_feature=list(CATEGORICAL_COLUMNS)),
                            num_boost_round=60)
    X_test, _ = synthetic(2000, seed=2)
    X_test[::50, list(CATEGORICAL_COLUMNS)] = -1  # unseen and negative categories too
    X_test[1::50, list(CATEGORICAL_COLUMNS)] = 1000
    want = np.column_stack([
        booster_xgb.predict(xgb.DMatrix(X_test, feature_types=types, enable_categorical=True),
                            output_margin=True),
        booster_lgb.predict(X_test, raw_score=True, num_threads=1)])
    return booster_xgb, booster_lgb, X_test, want


def test_generated_nan_and_categorical_models_agree(generated, tmp_path):
    booster_xgb, booster_lgb, X, want = generated
    names = [f"c{i}" for i in range(N_FEATURES)]
    forest = engine.compile_forest({"xgb": booster_xgb, "lgb": booster_lgb}, tmp_path / "g.forest", names)
    assert forest.summary()["max_depth"] >= 8
    for level in LEVELS:
        np.testing.assert_allclose(forest._native.predict_level(level, X, True), want, rtol=0, atol=1e-6,
                                   err_msg=level)
        for i in range(0, len(X), 251):
            np.testing.assert_allclose(forest._native.predict_level(level, X[i:i + 1], True)[0], want[i],
                                       rtol=0, atol=1e-6, err_msg=f"{level}, row {i}")
