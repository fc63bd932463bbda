"""XGBoost models (JSON or UBJSON, as XGBoost 1.x-3.x saves them) to a HeadIR.

Semantics, from XGBoost 3.2.0's source:
- ``src/predictor/predict_fn.h`` ``GetNextNode``: a missing value (NaN) goes
  to the default child; otherwise ``x < split_condition`` goes left (the
  canonical rule as is);
- ``src/common/categorical.h`` ``Decision``: the categories a node lists go
  RIGHT, and so does nothing else: values < 0 or >= 2**24 and categories not
  listed go left. The parser swaps the children (and the default direction)
  of categorical nodes, so the listed categories go left as ir.py wants;
- ``src/predictor/cpu_predictor.cc``: a float32 sum, starting from the base
  margin, adding trees in order into their output group (``tree_info``);
- ``src/learner.cc`` ``InitModelParam``: the stored ``base_score`` is in
  probability space and the objective's ``ProbToMargin`` maps it to the
  margin (``src/objective/regression_loss.h``: logit for the logistic
  objectives, identity for the others supported here);
- ``src/gbm/gbtree.cc`` ``Dart::PredictBatchImpl``: DART adds each tree's
  output times ``weight_drop[t]`` in float32, which equals adding leaf values
  pre-multiplied by the weight in float32;
- ``src/tree/multi_target_tree_model.cc`` (``multi_strategy=
  "multi_output_tree"``): a leaf's vector is ``leaf_weights[right[leaf]]``
  (3.2; earlier versions keep it in ``base_weights`` by node).

Every tree is compiled, as ``Booster.predict`` uses them all unless given an
``iteration_range``. Outputs: ``raw`` equals ``Booster.predict(output_margin=True)``. ``value``
equals ``Booster.predict()`` for every supported objective but
``multi:softmax``, where XGBoost returns the arg-max class id and the head
returns the class probabilities (softmax of the margins, as multi:softprob).

Supported: gbtree and dart boosters; objectives reg:squarederror,
reg:linear, reg:squaredlogerror, reg:pseudohubererror, reg:absoluteerror,
reg:quantileerror, binary:logitraw, rank:pairwise / ndcg / map (identity),
binary:logistic and reg:logistic (sigmoid), multi:softprob and multi:softmax
(softmax); several output groups (classes, targets), vector-leaf trees,
categorical splits, default directions, feature names. Refused with a
ValueError: gblinear; objectives with an exp link (count:poisson, reg:gamma,
reg:tweedie, survival:cox, survival:aft) or a step output (binary:hinge);
models carrying their own category vocabulary (trained on DataFrame
categories, which XGBoost re-codes by name at prediction); any key this
parser does not know inside the learner, booster, model or a tree.
"""

from __future__ import annotations

import math
import os
from typing import Any

import msgspec
import numpy as np

from engine.errors import CorruptFileError
from engine.forest import ubjson
from engine.forest._assemble import LibraryTrees, assemble
from engine.forest.ir import CATEGORICAL, DEFAULT_LEFT, HeadIR

IDENTITY_OBJECTIVES = {
    "reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "binary:logitraw",
    "rank:pairwise", "rank:ndcg", "rank:map",
}
LOGISTIC_OBJECTIVES = {"binary:logistic", "reg:logistic"}
SOFTMAX_OBJECTIVES = {"multi:softprob", "multi:softmax"}
REFUSED_OBJECTIVES = {
    "count:poisson": "its predictions are exp(margin)",
    "reg:gamma": "its predictions are exp(margin)",
    "reg:tweedie": "its predictions are exp(margin)",
    "survival:cox": "its predictions are exp(margin)",
    "survival:aft": "its predictions are exp(margin)",
    "binary:hinge": "its predictions are a 0/1 step of the margin",
}
# XGBoost's categories are int32 values below 2**24 (categorical.h OutOfRangeCat).
MAX_CATEGORY = 16777216
# Clamp of the logistic base score before the logit (regression_loss.h, kRtEps).
LOGIT_EPS = np.float32(1e-6)

KNOWN_KEYS = {
    "learner": {"attributes", "feature_names", "feature_types", "gradient_booster",
                "learner_model_param", "objective"},
    "learner_model_param": {"base_score", "boost_from_average", "num_class", "num_feature",
                            "num_target"},
    "model": {"cats", "gbtree_model_param", "iteration_indptr", "tree_info", "trees"},
    "tree": {"base_weights", "categories", "categories_nodes", "categories_segments",
             "categories_sizes", "default_left", "id", "leaf_weights", "left_children",
             "loss_changes", "parents", "right_children", "split_conditions", "split_indices",
             "split_type", "sum_hessian", "tree_param"},
}


def parse_xgboost(model: Any, name: str = "score") -> HeadIR:
    """The HeadIR of an XGBoost model.

    ``model``: an ``xgboost.Booster`` (or a scikit-learn wrapper), a path to a
    ``.json`` / ``.ubj`` model file, or the file's bytes. Files are read
    without importing xgboost.
    """
    doc, where = _load(model)
    return _Document(doc, where).head(name)


def _load(model: Any) -> tuple[Any, str]:
    if hasattr(model, "get_booster"):  # XGBRegressor, XGBClassifier, XGBRanker
        model = model.get_booster()
    if isinstance(model, (str, os.PathLike)):
        where = os.fspath(model)
        try:
            with open(where, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"{where}: cannot read the model file ({e.strerror})") from None
    elif isinstance(model, (bytes, bytearray, memoryview)):
        where, data = "XGBoost model bytes", bytes(model)
    elif hasattr(model, "save_raw"):
        where, data = "xgboost.Booster", bytes(model.save_raw("json"))
    else:
        raise TypeError("model: expected an xgboost.Booster, a path to a .json / .ubj model file "
                        f"or its bytes, got {type(model).__name__}")
    return _decode(data, where), where


def _decode(data: bytes, where: str) -> Any:
    """JSON or UBJSON, told apart by the byte after the opening brace (a
    JSON object continues with a quote, white space or '}'; a UBJSON object
    with the type marker of its first key's length)."""
    text = data.lstrip()
    if not text.startswith(b"{"):
        raise CorruptFileError(f"{where}: not an XGBoost model (neither a JSON nor a UBJSON object)")
    if text[1:].lstrip()[:1] in (b'"', b"}", b""):
        try:
            return msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise CorruptFileError(f"{where}: JSON: {e}") from None
    try:
        return ubjson.decode(data)
    except ValueError as e:
        raise CorruptFileError(f"{where}: {e}") from None


class _Document:
    """One decoded model document; every lookup names its path on failure."""

    def __init__(self, doc: Any, where: str):
        self.doc = doc
        self.where = where

    def fail(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{self.where}: {what}")

    def get(self, obj: Any, key: str, path: str) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(f"{path} is not an object")
        if key not in obj:
            raise self.fail(f"{path} has no {key!r}")
        return obj[key]

    def check_keys(self, obj: Any, kind: str, path: str) -> None:
        if not isinstance(obj, dict):
            raise self.fail(f"{path} is not an object")
        unknown = sorted(set(obj) - KNOWN_KEYS[kind])
        if unknown:
            raise ValueError(f"{self.where}: {path} has keys this parser does not know: "
                             f"{unknown} (a newer XGBoost format?); refusing rather than guessing "
                             "their meaning")

    def integer(self, obj: Any, key: str, path: str, default: int | None = None) -> int:
        if default is not None and isinstance(obj, dict) and key not in obj:
            return default
        value = self.get(obj, key, path)
        try:
            return int(value)  # XGBoost writes model parameters as strings
        except (TypeError, ValueError):
            raise self.fail(f"{path}.{key} is not an integer: {value!r}") from None

    def head(self, name: str) -> HeadIR:
        learner = self.get(self.doc, "learner", "the document")
        self.check_keys(learner, "learner", "learner")
        params = self.get(learner, "learner_model_param", "learner")
        self.check_keys(params, "learner_model_param", "learner.learner_model_param")
        n_features = self.integer(params, "num_feature", "learner.learner_model_param")
        n_classes = self.integer(params, "num_class", "learner.learner_model_param")
        n_targets = self.integer(params, "num_target", "learner.learner_model_param", default=1)
        n_outputs = max(n_classes, n_targets, 1)
        objective = self.get(self.get(learner, "objective", "learner"), "name", "learner.objective")
        transform = _transform(objective, self.where)
        base_score = self.base_margin(params, objective, n_outputs)
        model, tree_weights = self.booster_model(learner)
        trees = _Trees(self, model, n_features, n_outputs, tree_weights)
        version = ".".join(str(v) for v in self.doc.get("version", [])) or "(version unknown)"
        return assemble(
            trees.library_trees(), self.where,
            name=name, n_features=n_features, n_outputs=n_outputs, base_score=base_score,
            transform=transform, accumulate="f32", tree_output=trees.tree_output(),
            source=f"xgboost {version} {objective}",
            feature_names=self.feature_names(learner, n_features))

    def base_margin(self, params: dict, objective: str, n_outputs: int) -> np.ndarray:
        """The stored base score (probability space) through ProbToMargin, in float32."""
        text = self.get(params, "base_score", "learner.learner_model_param")
        try:
            values = np.array([float(v) for v in str(text).strip("[]").split(",")], dtype=np.float32)
        except ValueError:
            raise self.fail(f"learner.learner_model_param.base_score is not a number list: "
                            f"{text!r}") from None
        if len(values) == 1:
            values = np.repeat(values, n_outputs)  # before 3.1 the intercept was one scalar
        if len(values) != n_outputs or not np.isfinite(values).all():
            raise self.fail(f"learner.learner_model_param.base_score {text!r} does not hold "
                            f"{n_outputs} finite values")
        if objective in LOGISTIC_OBJECTIVES:
            values = np.array([_logit(v) for v in values], dtype=np.float32)
        return values.astype(np.float64)

    def booster_model(self, learner: dict) -> tuple[dict, np.ndarray | None]:
        """The gbtree model object, and DART's per-tree weights (None for gbtree)."""
        booster = self.get(learner, "gradient_booster", "learner")
        kind = self.get(booster, "name", "learner.gradient_booster")
        if kind == "gbtree":
            model = self.get(booster, "model", "learner.gradient_booster")
            weights = None
        elif kind == "dart":
            inner = self.get(booster, "gbtree", "learner.gradient_booster")
            model = self.get(inner, "model", "learner.gradient_booster.gbtree")
            weights = np.asarray(self.get(booster, "weight_drop", "learner.gradient_booster"))
            weights = weights.astype(np.float32) if weights.dtype.kind in "fiu" else None
            if weights is None or weights.ndim != 1 or not np.isfinite(weights).all():
                raise self.fail("learner.gradient_booster.weight_drop is not a list of finite numbers")
        elif kind == "gblinear":
            raise ValueError(f"{self.where}: gblinear (a linear model, not trees) is not supported")
        else:
            raise ValueError(f"{self.where}: booster {kind!r} is not supported (gbtree or dart)")
        self.check_keys(model, "model", "the booster's model")
        cats = model.get("cats", {})
        if isinstance(cats, dict) and len(cats.get("enc", [])) > 0:
            raise ValueError(f"{self.where}: the model carries its own category vocabulary (trained on "
                             "DataFrame categories; XGBoost re-codes them by name at prediction). "
                             "The engine takes integer category codes: retrain on codes")
        return model, weights

    def feature_names(self, learner: dict, n_features: int) -> list[str]:
        names = learner.get("feature_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.fail("learner.feature_names is not a list of strings")
        if names and len(names) != n_features:
            raise self.fail(f"learner.feature_names has {len(names)} names for {n_features} features")
        return names


def _transform(objective: Any, where: str) -> str:
    if objective in IDENTITY_OBJECTIVES:
        return "identity"
    if objective in LOGISTIC_OBJECTIVES:
        return "sigmoid"
    if objective in SOFTMAX_OBJECTIVES:
        return "softmax"
    if objective in REFUSED_OBJECTIVES:
        raise ValueError(f"{where}: objective {objective} is not supported: "
                         f"{REFUSED_OBJECTIVES[objective]}, a transform the engine does not have")
    raise ValueError(f"{where}: objective {objective!r} is not supported")


def _logit(p: np.float32) -> float:
    """XGBoost's ``Logit(clamp(p))`` = ``-logf(1.0f / p - 1.0f)``: the
    division and subtraction in float32 as there; the log in double, rounded
    to float32 (logf agrees to within an ulp)."""
    p = min(max(p, LOGIT_EPS), np.float32(1) - LOGIT_EPS)
    odds_inverse = np.float32(1) / p - np.float32(1)
    return float(np.float32(-math.log(float(odds_inverse))))


class _Trees:
    """The trees of a gbtree model, concatenated into LibraryTrees."""

    def __init__(self, doc: _Document, model: dict, n_features: int, n_outputs: int,
                 tree_weights: np.ndarray | None):
        self.doc = doc
        self.n_features = n_features
        self.n_outputs = n_outputs
        trees = doc.get(model, "trees", "the booster's model")
        info = np.asarray(doc.get(model, "tree_info", "the booster's model"))
        if not isinstance(trees, list) or not trees:
            raise doc.fail("the booster's model has no trees")
        if info.ndim != 1 or len(info) != len(trees) or info.dtype.kind not in "iu":
            raise doc.fail("the booster's model: tree_info is not one integer per tree")
        if tree_weights is not None and len(tree_weights) != len(trees):
            raise doc.fail(f"weight_drop has {len(tree_weights)} weights for {len(trees)} trees")
        self.groups = info.astype(np.int64)
        self.columns = [self.tree_columns(t, tree) for t, tree in enumerate(trees)]
        self.vector_leaf = np.array([c["leaf"].shape[1] > 1 for c in self.columns], dtype=bool)
        if self.vector_leaf.any() and not self.vector_leaf.all():
            raise ValueError(f"{doc.where}: a mix of vector-leaf and scalar-leaf trees is not supported")
        if tree_weights is not None:
            for c, w in zip(self.columns, tree_weights):
                c["leaf"] = (c["leaf"] * w).astype(np.float32)  # float32 product, as DART's

    def tree_columns(self, t: int, tree: Any) -> dict[str, np.ndarray]:
        """One tree's node arrays (library numbering), checked for length and type."""
        path = f"tree {t}"
        self.doc.check_keys(tree, "tree", path)
        tree_param = self.doc.get(tree, "tree_param", path)
        n = self.doc.integer(tree_param, "num_nodes", f"{path}.tree_param")
        width = max(self.doc.integer(tree_param, "size_leaf_vector", f"{path}.tree_param", default=1), 1)
        if n < 1:
            raise self.doc.fail(f"{path} has {n} nodes")
        if width not in (1, self.n_outputs):
            raise self.doc.fail(f"{path} has leaf vectors of {width} values for {self.n_outputs} outputs")
        cols = {key: self.array(tree, key, path, n, kind) for key, kind in (
            ("left_children", "i"), ("right_children", "i"), ("split_indices", "i"),
            ("split_conditions", "f"), ("default_left", "i"))}
        cols["split_type"] = (self.array(tree, "split_type", path, n, "i") if "split_type" in tree
                              else np.zeros(n, dtype=np.int64))
        is_leaf = cols["left_children"] == -1
        cols["leaf"] = self.leaf_values(tree, path, n, width, cols, is_leaf)
        # Leaves of vector trees keep their leaf index in right_children.
        cols["right_children"] = np.where(is_leaf, -1, cols["right_children"])
        cols["categories"] = self.categories(tree, path, n, cols["split_type"] == 1)
        return cols

    def array(self, obj: dict, key: str, path: str, n: int | None, kind: str) -> np.ndarray:
        """``obj[key]`` as an int64 ('i') or float32 ('f') array, of length n if given."""
        values = np.asarray(self.doc.get(obj, key, path))
        if values.ndim != 1 or (values.size and values.dtype.kind not in ("iub" if kind == "i" else "iuf")):
            raise self.doc.fail(f"{path}.{key} is not a list of {'integers' if kind == 'i' else 'numbers'}")
        if n is not None and len(values) != n:
            raise self.doc.fail(f"{path}.{key} has {len(values)} values for {n} nodes")
        return values.astype(np.int64 if kind == "i" else np.float32)

    def leaf_values(self, tree, path, n, width, cols, is_leaf) -> np.ndarray:
        """(n, width) float32 leaf values, 0 at split nodes."""
        if width == 1:
            return np.where(is_leaf, cols["split_conditions"], 0).astype(np.float32).reshape(n, 1)
        if "leaf_weights" in tree:  # 3.2: right_children of a leaf is its row in leaf_weights
            rows = self.array(tree, "leaf_weights", path, None, "f")
            slot = np.where(is_leaf, cols["right_children"], 0)
        else:  # before 3.2: leaf vectors sit in base_weights by node
            rows = self.array(tree, "base_weights", path, None, "f")
            slot = np.arange(n)
        if len(rows) % width or ((slot < 0) | (slot >= len(rows) // width))[is_leaf].any():
            raise self.doc.fail(f"{path}: leaf vectors out of range of its leaf weights")
        return np.where(is_leaf[:, None], rows.reshape(-1, width)[slot], 0).astype(np.float32)

    def categories(self, tree, path, n, is_cat) -> list[np.ndarray]:
        """[node ids, categories]: one entry per listed category of the tree."""
        nodes = self.array(tree, "categories_nodes", path, None, "i") if "categories_nodes" in tree \
            else np.zeros(0, dtype=np.int64)
        if not nodes.size and not is_cat.any():
            return [nodes, nodes]
        sizes = self.array(tree, "categories_sizes", path, len(nodes), "i")
        starts = self.array(tree, "categories_segments", path, len(nodes), "i")
        values = self.array(tree, "categories", path, None, "i")
        listed = np.zeros(n, dtype=bool)
        if ((nodes < 0) | (nodes >= n)).any():
            raise self.doc.fail(f"{path}.categories_nodes has a node out of range")
        listed[nodes] = True
        if (listed != is_cat).any() or (sizes < 1).any() or (starts < 0).any() \
                or (starts + sizes > len(values)).any():
            raise self.doc.fail(f"{path}: categorical nodes (split_type 1) do not match "
                                "categories_nodes / segments / sizes")
        owner = np.repeat(nodes, sizes)
        index = np.repeat(starts - np.cumsum(np.concatenate([[0], sizes[:-1]])), sizes) + np.arange(len(owner))
        categories = values[index]
        if ((categories < 0) | (categories >= MAX_CATEGORY)).any():
            raise self.doc.fail(f"{path}.categories has a value outside [0, 2**24)")
        return [owner, categories]

    def tree_output(self) -> np.ndarray:
        if self.vector_leaf.all():
            return np.full(len(self.columns), -1, dtype=np.int32)
        if ((self.groups < 0) | (self.groups >= self.n_outputs)).any():
            raise self.doc.fail(f"tree_info has an output group outside [0, {self.n_outputs})")
        return self.groups.astype(np.int32)

    def library_trees(self) -> LibraryTrees:
        cols = {key: np.concatenate([c[key] for c in self.columns]) for key in ("left_children", "right_children", "split_indices", "split_conditions",
                            "default_left", "split_type")}
        sizes = np.array([len(c["left_children"]) for c in self.columns], dtype=np.int64)
        leaf = np.concatenate([c["leaf"] for c in self.columns])
        is_leaf = cols["left_children"] == -1
        is_cat = ~is_leaf & (cols["split_type"] == 1)
        feature = np.where(is_leaf, -1, cols["split_indices"])
        if ((feature < -1) | (feature >= self.n_features)).any():
            raise self.doc.fail(f"a split uses a feature outside [0, {self.n_features}) (num_feature)")
        default_left = cols["default_left"] != 0
        # Listed categories go right in XGBoost: swap children (and the
        # default direction with them) so that they go left, as ir.py wants.
        left = np.where(is_cat, cols["right_children"], cols["left_children"])
        right = np.where(is_cat, cols["left_children"], cols["right_children"])
        default_left = np.where(is_cat, ~default_left, default_left)
        flags = (np.where(~is_leaf & default_left, DEFAULT_LEFT, 0)
                 | np.where(is_cat, CATEGORICAL, 0)).astype(np.uint8)
        cat_begin, cat_end, cat_words = self.bitsets(sizes)
        return LibraryTrees(
            tree_sizes=sizes, left=left, right=right, feature=feature,
            threshold=np.where(is_leaf | is_cat, np.nan, cols["split_conditions"]),
            flags=flags, cat_begin=cat_begin, cat_end=cat_end, cat_words=cat_words, leaf_value=leaf)

    def bitsets(self, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each categorical node's bitset: words [begin, end) of one uint32 array."""
        n_nodes = int(sizes.sum())
        starts = np.concatenate([[0], np.cumsum(sizes)])[:-1]
        owner = np.concatenate([s + c["categories"][0] for s, c in zip(starts, self.columns)])
        category = np.concatenate([c["categories"][1] for c in self.columns])
        n_words = np.zeros(n_nodes, dtype=np.int64)
        np.maximum.at(n_words, owner, category // 32 + 1)
        cat_end = np.cumsum(n_words)
        cat_begin = cat_end - n_words
        words = np.zeros(int(cat_end[-1]), dtype=np.uint32)
        np.bitwise_or.at(words, cat_begin[owner] + category // 32,
                         np.left_shift(np.uint32(1), (category % 32).astype(np.uint32)))
        has_words = n_words > 0
        return np.where(has_words, cat_begin, 0), np.where(has_words, cat_end, 0), words
