"""The model parsers reproduce XGBoost's and LightGBM's own predictions.

Each model is trained here on a synthetic set (100 features, 5 % NaN,
integer-coded categorical columns, zero-heavy columns), parsed from every
input form, and evaluated by the NumPy reference on held-out rows plus edge
inputs: every threshold and its float32 neighbours, the zero band, infinities
(LightGBM only: XGBoost refuses them), odd category values and all-NaN rows.
XGBoost's raw scores are matched bit for bit (both sum in float32), and so
are LightGBM's once rounded to float32 (both sum in float64).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from forest_cases import (
    CATEGORICAL_COLUMNS,
    N_FEATURES,
    assert_raw_and_values,
    assert_same_head,
    edge_rows,
    synthetic,
)

from engine.forest.ir import CATEGORICAL
from engine.forest.lightgbm_model import canonical_threshold, parse_lightgbm
from engine.forest.reference import reference_predict
from engine.forest.xgboost_model import parse_xgboost

FEATURE_TYPES = ["c" if i in CATEGORICAL_COLUMNS else "q" for i in range(N_FEATURES)]
N_ROUNDS = 12
# One thread: the suite shares 2 cores with other work, where OpenMP's
# spinning threads make training many times slower.


@pytest.fixture(scope="module")
def data():
    X, y = synthetic(2500)
    return X[:2000], y[:2000], X[2000:]


def _labels(y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "binary":
        return (y > np.median(y)).astype(np.float64)
    if kind == "multiclass":
        return np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75])).astype(np.float64)
    if kind == "two_targets":
        return np.stack([y, np.sin(y)], axis=1)
    return y


# name: (training parameters, label kind, categorical columns as categories)
XGBOOST_CASES = {
    "binary_logistic": ({"objective": "binary:logistic"}, "binary", True),
    "squarederror": ({"objective": "reg:squarederror"}, "regression", False),
    "softprob": ({"objective": "multi:softprob", "num_class": 4}, "multiclass", False),
    "softmax": ({"objective": "multi:softmax", "num_class": 4}, "multiclass", True),
    "targets_one_output_per_tree": ({"objective": "reg:squarederror"}, "two_targets", True),
    "targets_multi_output_tree": ({"objective": "reg:squarederror", "multi_strategy": "multi_output_tree"},
                                  "two_targets", False),  # XGBoost: no categories here
    "dart": ({"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0},
             "binary", False),
    "logitraw_onehot_categories": ({"objective": "binary:logitraw", "max_cat_to_onehot": 100},
                                   "binary", True),
    "pruned_exact": ({"objective": "reg:pseudohubererror", "tree_method": "exact", "gamma": 2.0},
                     "regression", False),
}


def _xgb_matrix(X, categorical: bool, label=None) -> xgb.DMatrix:
    if not categorical:
        return xgb.DMatrix(X, label=label)
    return xgb.DMatrix(X, label=label, feature_types=FEATURE_TYPES, enable_categorical=True)


@pytest.fixture(scope="module", params=list(XGBOOST_CASES))
def xgboost_model(request, data):
    params, kind, categorical = XGBOOST_CASES[request.param]
    X, y, _ = data
    train = {"tree_method": "hist", "max_depth": 5, "max_cat_to_onehot": 1, "seed": 0, "nthread": 1,
             **params}
    booster = xgb.train(train, _xgb_matrix(X, categorical, _labels(y, kind)), N_ROUNDS)
    return request.param, booster, categorical


def test_xgboost_matches_booster_predictions(xgboost_model, data):
    case, booster, categorical = xgboost_model
    head = parse_xgboost(booster, name=case)
    X = np.concatenate([data[2], edge_rows(head, data[2], infinities=False)])
    matrix = _xgb_matrix(X, categorical)
    raw = booster.predict(matrix, output_margin=True)
    value = booster.predict(matrix)
    if case == "softmax":  # XGBoost returns the class id; the head returns probabilities
        assert_raw_and_values(head, X, raw, None, exact=True)
        np.testing.assert_array_equal(reference_predict(head, X, "value").argmax(axis=1), value)
    else:
        assert_raw_and_values(head, X, raw, value, exact=True)
    assert head.n_features == N_FEATURES and head.accumulate == "f32"
    assert ((head.flags & CATEGORICAL) != 0).any() == categorical


def test_xgboost_every_input_form_gives_one_head(xgboost_model, tmp_path):
    _, booster, _ = xgboost_model
    head = parse_xgboost(booster)
    for suffix in ("json", "ubj"):
        path = tmp_path / f"model.{suffix}"
        booster.save_model(path)
        assert_same_head(parse_xgboost(path), head)
        assert_same_head(parse_xgboost(str(path)), head)
        assert_same_head(parse_xgboost(path.read_bytes()), head)


def test_xgboost_feature_names_and_wrappers(data):
    X, y, _ = data
    names = [f"f_{i}" for i in range(N_FEATURES)]
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y, feature_names=names), 2)
    assert parse_xgboost(booster).feature_names == names
    wrapper = type("XGBRegressorLike", (), {"get_booster": lambda self: booster})()
    assert_same_head(parse_xgboost(wrapper), parse_xgboost(booster))


# name: (training parameters, label kind, categorical_feature)
LIGHTGBM_CASES = {
    "binary_categorical": ({"objective": "binary"}, "binary", list(CATEGORICAL_COLUMNS)),
    "regression": ({"objective": "regression"}, "regression", []),
    "multiclass_categorical": ({"objective": "multiclass", "num_class": 4}, "multiclass",
                               list(CATEGORICAL_COLUMNS)),
    "multiclassova": ({"objective": "multiclassova", "num_class": 4, "sigmoid": 0.7}, "multiclass", []),
    "zero_as_missing": ({"objective": "binary", "zero_as_missing": True, "sigmoid": 1.5}, "binary",
                        list(CATEGORICAL_COLUMNS)),
    "no_missing": ({"objective": "regression", "use_missing": False}, "regression",
                   list(CATEGORICAL_COLUMNS)),
    "cross_entropy_l1": ({"objective": "cross_entropy"}, "binary", []),
}


@pytest.fixture(scope="module", params=list(LIGHTGBM_CASES))
def lightgbm_model(request, data):
    params, kind, categorical = LIGHTGBM_CASES[request.param]
    X, y, _ = data
    train = {"num_leaves": 15, "min_data_per_group": 5, "cat_smooth": 1.0, "max_cat_to_onehot": 4,
             "verbose": -1, "num_threads": 1, "seed": 0, **params}
    dataset = lgb.Dataset(X, _labels(y, kind), categorical_feature=categorical, params={"verbose": -1})
    return request.param, lgb.train(train, dataset, N_ROUNDS)


def test_lightgbm_matches_booster_predictions(lightgbm_model, data):
    case, booster = lightgbm_model
    head = parse_lightgbm(booster)
    X = np.concatenate([data[2], edge_rows(head, data[2])])
    assert_raw_and_values(head, X, booster.predict(X, raw_score=True), booster.predict(X), exact=True)
    assert head.n_features == N_FEATURES and head.accumulate == "f64"
    assert ((head.flags & CATEGORICAL) != 0).any() == bool(LIGHTGBM_CASES[case][2])


def test_lightgbm_every_input_form_gives_one_head(lightgbm_model, tmp_path):
    _, booster = lightgbm_model
    head = parse_lightgbm(booster)
    path = tmp_path / "model.txt"
    booster.save_model(path)
    text = path.read_text()
    for form in (path, str(path), text, text.encode()):
        assert_same_head(parse_lightgbm(form), head)


def test_lightgbm_single_leaf_trees_and_wrappers(data):
    X, y, _ = data
    constant = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                         lgb.Dataset(X, np.full(len(y), 3.0)), 3)
    head = parse_lightgbm(constant)
    assert head.n_nodes == head.n_trees  # every tree is a single leaf
    assert_raw_and_values(head, X, constant.predict(X, raw_score=True), constant.predict(X), exact=True)
    wrapper = type("LGBMRegressorLike", (), {"booster_": constant})()
    assert_same_head(parse_lightgbm(wrapper), head)
    assert head.feature_names == [f"Column_{i}" for i in range(N_FEATURES)]


def test_lightgbm_categories_in_minus_one_to_zero_are_category_zero():
    """LightGBM reads a category as (int)x, so -0.5 is category 0 (the
    CAT_INT_CAST flag); -1 and below are no category."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 6, (3000, 1)).astype(np.float32)
    y = np.isin(X[:, 0], [0, 3]).astype(np.float64)
    booster = lgb.train({"objective": "regression", "num_leaves": 2, "verbose": -1, "min_data_per_group": 5,
                         "cat_smooth": 1.0, "num_threads": 1},
                        lgb.Dataset(X, y, categorical_feature=[0]), 1)
    probe = np.array([[0], [-0.5], [-0.999], [-1], [3.9], [-3], [np.nan]], dtype=np.float32)
    raw = booster.predict(probe, raw_score=True)
    assert raw[0] == raw[1] == raw[2] != raw[3]
    assert_raw_and_values(parse_lightgbm(booster), probe, raw, None, exact=True)


def test_lightgbm_thresholds_become_exact_float32_thresholds():
    """``x < canonical_threshold(t)`` iff LightGBM's ``x' <= t`` (x' is x with
    the zero band read as 0.0) for every float32 x near each t, thresholds
    between floats, exactly on floats, in the band and beyond float32's range."""
    f32 = np.float32
    exact = np.array([0.5, -0.5, 1.0, 3.0e38, -3.0e38, float(np.finfo(f32).max), -float(np.finfo(f32).max)])
    t = np.concatenate([exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf),
                        [0.0, -0.0, 1e-36, -1e-36, 1e-40, -1e-40, float(f32(1e-35)), -float(f32(1e-35)),
                         0.1, -0.1, 1e300, -1e300, -np.inf, 1e-46, 2.0**-149]])
    threshold = canonical_threshold(t)
    with np.errstate(over="ignore"):  # the neighbours of the largest float32 are infinities
        x = np.unique(np.concatenate([threshold, np.nextafter(threshold, f32(np.inf)),
                                      np.nextafter(threshold, f32(-np.inf)),
                                      f32([0, 1e-35, -1e-35, 1e-45, -1e-45, np.inf, -np.inf])]))
    x_read = np.where(np.abs(x) <= f32(1e-35), 0.0, x.astype(np.float64))
    np.testing.assert_array_equal(x[None, :] < threshold[:, None], x_read[None, :] <= t[:, None])
