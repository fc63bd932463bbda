"""What the parsers refuse, and how they report corrupt models: a ValueError
(CorruptFileError for a malformed file) that says what and where, never a
crash and never a silently different model."""

from __future__ import annotations

import copy
import json
import re

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from engine.errors import CorruptFileError
from engine.forest.lightgbm_model import parse_lightgbm
from engine.forest.xgboost_model import parse_xgboost


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 4)).astype(np.float32)
    X[:, 3] = rng.integers(0, 5, 400)
    y = X[:, 0] + (X[:, 3] == 2) + 0.1 * rng.standard_normal(400)
    return X, y


@pytest.fixture(scope="module")
def xgb_doc(small):
    """A small categorical model as a JSON document (dict) to corrupt."""
    X, y = small
    matrix = xgb.DMatrix(X, label=y, feature_types=["q", "q", "q", "c"], enable_categorical=True)
    booster = xgb.train({"max_depth": 3, "nthread": 1, "max_cat_to_onehot": 1}, matrix, 3)
    return json.loads(booster.save_raw("json"))


@pytest.fixture(scope="module")
def lgb_text(small):
    X, y = small
    booster = lgb.train({"objective": "regression", "num_leaves": 4, "verbose": -1, "num_threads": 1,
                         "min_data_per_group": 5, "cat_smooth": 1.0},
                        lgb.Dataset(X, y, categorical_feature=[3]), 3)
    return booster.model_to_string()


@pytest.mark.parametrize("objective, message", [
    ("count:poisson", "count:poisson is not supported: its predictions are exp"),
    ("reg:tweedie", "reg:tweedie is not supported"),
    ("binary:hinge", "binary:hinge is not supported: its predictions are a 0/1 step"),
])
def test_xgboost_refuses_objectives_with_other_links(small, objective, message):
    X, y = small
    booster = xgb.train({"objective": objective, "max_depth": 2, "nthread": 1},
                        xgb.DMatrix(X, label=np.abs(y) if "hinge" not in objective else y > 0), 2)
    with pytest.raises(ValueError, match=message):
        parse_xgboost(booster)


def test_xgboost_refuses_gblinear(small):
    X, y = small
    booster = xgb.train({"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, label=y), 2)
    with pytest.raises(ValueError, match="gblinear"):
        parse_xgboost(booster)


def _tree(doc: dict) -> dict:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]


def _cat_node(doc: dict) -> int:
    return _tree(doc)["categories_nodes"][0]


# name: (how to corrupt the document, the expected message)
XGBOOST_CORRUPTIONS = {
    "unknown_tree_key": (lambda d: _tree(d).update(leaf_offsets=[0]), "keys this parser does not know"),
    "unknown_booster": (lambda d: d["learner"]["gradient_booster"].update(name="gbforest"), "gbforest"),
    "unknown_objective": (lambda d: d["learner"]["objective"].update(name="reg:cubic"), "reg:cubic"),
    "no_learner": (lambda d: d.pop("learner"), "has no 'learner'"),
    "base_score_text": (lambda d: d["learner"]["learner_model_param"].update(base_score="[half]"),
                        "base_score"),
    "base_score_length": (lambda d: d["learner"]["learner_model_param"].update(base_score="[1,2,3]"),
                          "base_score"),
    "num_feature_text": (lambda d: d["learner"]["learner_model_param"].update(num_feature="many"),
                         "num_feature is not an integer"),
    "child_out_of_range": (lambda d: _tree(d)["left_children"].__setitem__(0, 999), "out of range"),
    "child_is_itself": (lambda d: _tree(d)["left_children"].__setitem__(0, 0), "out of range"),
    "cycle": (lambda d: _tree(d)["right_children"].__setitem__(0, _tree(d)["left_children"][0]),
              "two parents or lies on a cycle"),
    "one_child": (lambda d: _tree(d)["right_children"].__setitem__(0, -1), "has one child"),
    "short_array": (lambda d: _tree(d)["split_conditions"].pop(), "split_conditions has"),
    "text_in_array": (lambda d: _tree(d)["split_indices"].__setitem__(0, "x"), "split_indices is not"),
    "feature_out_of_range": (lambda d: _tree(d)["split_indices"].__setitem__(0, 4), "feature outside"),
    "negative_category": (lambda d: _tree(d)["categories"].__setitem__(0, -2), "outside [0, 2**24)"),
    "category_node_mismatch": (lambda d: _tree(d)["split_type"].__setitem__(_cat_node(d), 0),
                               "do not match"),
    "tree_info_group": (lambda d: d["learner"]["gradient_booster"]["model"]["tree_info"].__setitem__(0, 3),
                        "output group"),
    "no_trees": (lambda d: d["learner"]["gradient_booster"]["model"].update(trees=[], tree_info=[]),
                 "no trees"),
    "category_vocabulary": (lambda d: d["learner"]["gradient_booster"]["model"]["cats"].update(enc=[["a"]]),
                            "category vocabulary"),
}


@pytest.mark.parametrize("case", list(XGBOOST_CORRUPTIONS))
def test_xgboost_corrupt_documents_are_refused(xgb_doc, case):
    corrupt, message = XGBOOST_CORRUPTIONS[case]
    doc = copy.deepcopy(xgb_doc)
    corrupt(doc)
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_xgboost(json.dumps(doc).encode())


def test_xgboost_corrupt_bytes_name_the_file(xgb_doc, small, tmp_path):
    X, y = small
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 2)
    ubj = bytes(booster.save_raw("ubj"))
    path = tmp_path / "truncated.ubj"
    path.write_bytes(ubj[:len(ubj) // 2])
    with pytest.raises(CorruptFileError, match="truncated.ubj: UBJSON: truncated"):
        parse_xgboost(path)
    with pytest.raises(CorruptFileError, match="XGBoost model bytes: JSON: "):
        parse_xgboost(json.dumps(xgb_doc).encode()[:-10])
    with pytest.raises(CorruptFileError, match="not an XGBoost model"):
        parse_xgboost(b"tree\nversion=v4\n")
    with pytest.raises(ValueError, match="cannot read"):
        parse_xgboost(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="model: expected an xgboost.Booster"):
        parse_xgboost(42)


def test_lightgbm_refuses_linear_trees(small):
    X, y = small
    booster = lgb.train({"objective": "regression", "linear_tree": True, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(X[:, :3], y), 2)
    with pytest.raises(ValueError, match="linear trees"):
        parse_lightgbm(booster)


@pytest.mark.parametrize("params, message", [
    ({"objective": "poisson"}, "poisson is not supported: its predictions are exp"),
    ({"objective": "cross_entropy_lambda"}, "cross_entropy_lambda is not supported"),
    ({"objective": "regression", "reg_sqrt": True}, "reg_sqrt"),
    ({"objective": "regression", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5},
     "average_output"),
])
def test_lightgbm_refusals(small, params, message):
    X, y = small
    label = np.abs(y) / np.abs(y).max() if "cross_entropy" in params["objective"] else np.abs(y)
    booster = lgb.train({**params, "verbose": -1, "num_threads": 1}, lgb.Dataset(X, label), 2)
    with pytest.raises(ValueError, match=message):
        parse_lightgbm(booster)


def _replace_first(key: str, new: str):
    """Replace the first ``key=...`` line's value."""
    def corrupt(text: str) -> str:
        start = text.index(f"\n{key}=") + len(key) + 2
        end = text.index("\n", start)
        return text[:start] + new + text[end:]
    return corrupt


LIGHTGBM_CORRUPTIONS = {
    "truncated": (lambda t: t[:t.index("end of trees") - 100], "no 'end of trees'"),
    "not_a_model": (lambda t: "{}" + t, "not a LightGBM model"),
    "leaf_count": (_replace_first("num_leaves", "9"), "leaf_value= has"),
    "child_out_of_range": (_replace_first("left_child", "-9 -2 -3"), "out of range"),
    "cycle": (_replace_first("right_child", "0 -3 -4"), "out of range"),
    "decision_type": (_replace_first("decision_type", "12 2 2"), "decision_type= holds an unknown"),
    "number": (_replace_first("threshold", "1 x 2"), "not a number"),
    "feature": (_replace_first("split_feature", "0 1 7"), "above max_feature_idx"),
    "category_index": (lambda t: t.replace("decision_type=", "decision_type=1 ", 1)
                       .replace("threshold=", "threshold=5 ", 1), "threshold= has"),
    "trees_per_iteration": (_replace_first("num_tree_per_iteration", "2"), "whole number of iterations"),
    "objective": (_replace_first("objective", "binary"), "no valid sigmoid"),
    "unknown_objective": (_replace_first("objective", "ordinal"), "'ordinal' is not supported"),
    "pandas": (lambda t: t + "\npandas_categorical:[[\"a\", \"b\"]]\n", "pandas category vocabularies"),
    "tree_numbering": (lambda t: t.replace("Tree=1", "Tree=7"), "Tree=1 was expected"),
}


@pytest.mark.parametrize("case", list(LIGHTGBM_CORRUPTIONS))
def test_lightgbm_corrupt_texts_are_refused(lgb_text, case):
    corrupt, message = LIGHTGBM_CORRUPTIONS[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_lightgbm(corrupt(lgb_text))


def test_lightgbm_corrupt_file_names_the_file(lgb_text, tmp_path):
    path = tmp_path / "model.txt"
    path.write_text(lgb_text[:100])
    with pytest.raises(CorruptFileError, match="model.txt: no 'end of trees'"):
        parse_lightgbm(path)
    with pytest.raises(TypeError, match="model: expected a lightgbm.Booster"):
        parse_lightgbm(3.5)
