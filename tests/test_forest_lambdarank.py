"""Real data: ranking models trained on LightGBM's lambdarank example
(../shared/data/lambdarank, a sample of Yahoo! LTR) and parsed back exactly.

The shared data set is read in place. Both libraries see the same dense
float32 matrix (libsvm ids are 1-based: column i - 1 holds id i).
"""

import os

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from conftest import DATA
from forest_cases import assert_raw_and_values, edge_rows

from engine.forest.lightgbm_model import parse_lightgbm
from engine.forest.xgboost_model import parse_xgboost

LAMBDARANK = DATA / "lambdarank"
N_FEATURES = 300
# CI always has ../shared/data: there a missing data set is a failure, not a skip.
pytestmark = pytest.mark.skipif(not (LAMBDARANK / "rank.train").exists() and not os.environ.get("CI"),
                                reason="../shared/data/lambdarank is not beside this checkout")


def _load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X float32 (n, 300), labels, query group sizes) of one libsvm file."""
    lines = (LAMBDARANK / name).read_text().splitlines()
    X = np.zeros((len(lines), N_FEATURES), dtype=np.float32)
    labels = np.empty(len(lines))
    for row, line in enumerate(lines):
        label, *pairs = line.split()
        labels[row] = float(label)
        ids, values = zip(*(pair.split(":") for pair in pairs))
        X[row, np.array(ids, dtype=np.int64) - 1] = np.array(values, dtype=np.float32)
    groups = np.loadtxt(LAMBDARANK / f"{name}.query", dtype=np.int64)
    assert groups.sum() == len(lines)
    return X, labels, groups


@pytest.fixture(scope="module")
def lambdarank():
    return _load("rank.train"), _load("rank.test")


def test_lightgbm_lambdarank_with_hundreds_of_trees(lambdarank):
    (X, y, groups), (X_test, _, _) = lambdarank
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 31, "verbose": -1, "num_threads": 1,
                         "seed": 0}, lgb.Dataset(X, y, group=groups), 300)
    head = parse_lightgbm(booster)
    assert head.n_trees == 300 and head.transform == "identity"
    rows = np.concatenate([X_test, edge_rows(head, X_test)])
    raw = booster.predict(rows, raw_score=True)
    assert_raw_and_values(head, rows, raw, booster.predict(rows), exact=True)


def test_xgboost_rank_ndcg(lambdarank, tmp_path):
    (X, y, groups), (X_test, _, _) = lambdarank
    train = xgb.DMatrix(X, label=y)
    train.set_group(groups)
    booster = xgb.train({"objective": "rank:ndcg", "max_depth": 6, "nthread": 1, "seed": 0}, train, 60)
    path = tmp_path / "ranker.ubj"
    booster.save_model(path)
    head = parse_xgboost(path)
    assert head.n_trees == 60 and head.transform == "identity"
    rows = np.concatenate([X_test, edge_rows(head, X_test, infinities=False)])
    matrix = xgb.DMatrix(rows)
    assert_raw_and_values(head, rows, booster.predict(matrix, output_margin=True), booster.predict(matrix),
                          exact=True)
