"""LightGBM models (the text format of ``Booster.model_to_string`` /
``save_model``, version v4) to a HeadIR.

Semantics, from LightGBM 4.7.0's source:
- ``src/c_api.cpp`` ``RowPairFunctionFromDenseMatrix`` (and every other
  input path): before any tree sees a row, a value with
  ``|x| <= kZeroThreshold`` (1e-35f, ``include/LightGBM/meta.h``) becomes 0.0;
- ``include/LightGBM/tree.h`` ``NumericalDecision``: unless the node's
  missing type is NaN, a NaN input is 0.0; with missing type Zero a zero
  (so also NaN and the zero band) takes the default direction, with
  missing type NaN a NaN does; otherwise ``x <= threshold`` (double) goes
  left. ``decision_type`` bits: 1 categorical, 2 default left, bits 2-3 the
  missing type (0 None, 1 Zero, 2 NaN);
- ``tree.h`` ``CategoricalDecision``: NaN and ``(int)x < 0`` go right; the
  categories set in the node's bitset (``cat_threshold`` words
  ``cat_boundaries[k]:cat_boundaries[k + 1]``, k = ``(int)threshold``) go
  left; ``GetLeaf`` uses it only when the tree has ``num_cat > 0``;
- ``src/boosting/gbdt_prediction.cpp`` ``PredictRaw``: a double sum from 0,
  iteration by iteration, tree ``i * num_tree_per_iteration + k`` into
  output k; leaf values already include the shrinkage;
- ``src/objective/*.hpp`` ``ConvertOutput`` for each objective's transform.

The canonical rule is ``x < threshold`` on float32, so a double threshold t
becomes ``nextafter(largest float32 <= t, +inf)``, which is exact for every
float32 x; thresholds inside the zero band are moved to its edge, because
LightGBM never compares a value of the band with them (it compares 0.0).
For missing type None the direction 0.0 takes is stored as the default
direction; missing type Zero sets ZERO_IS_MISSING; categorical nodes set
CAT_INT_CAST, as ``(int)x`` makes any x in (-1, 0) category 0.

Supported objectives: regression, regression_l1, huber, fair, quantile, mape,
lambdarank, rank_xendcg and custom objectives (identity), binary and
cross_entropy (sigmoid, with binary's ``sigmoid:`` alpha), multiclass
(softmax), multiclassova (one sigmoid per class). Refused with a ValueError:
poisson, gamma, tweedie (exp link), cross_entropy_lambda (log1p(exp)),
``reg_sqrt`` models (squared output), linear trees, ``average_output``
(random forest mode divides the sum by the number of iterations, which a
sum of leaf values cannot reproduce exactly), models carrying pandas
category vocabularies.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine.errors import CorruptFileError
from engine.forest._assemble import LibraryTrees, assemble
from engine.forest.ir import (
    CAT_INT_CAST,
    CATEGORICAL,
    DEFAULT_LEFT,
    ZERO_IS_MISSING,
    HeadIR,
)

ZERO_THRESHOLD = float(np.float32(1e-35))  # kZeroThreshold, a float literal widened to double
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2

IDENTITY_OBJECTIVES = {"regression", "regression_l1", "huber", "fair", "quantile", "mape",
                       "lambdarank", "rank_xendcg"}
REFUSED_OBJECTIVES = {
    "poisson": "its predictions are exp(raw score)",
    "gamma": "its predictions are exp(raw score)",
    "tweedie": "its predictions are exp(raw score)",
    "cross_entropy_lambda": "its predictions are log1p(exp(raw score))",
}


def parse_lightgbm(model: Any, name: str = "score") -> HeadIR:
    """The HeadIR of a LightGBM model.

    ``model``: a ``lightgbm.Booster`` (or a scikit-learn wrapper), a path to
    a model text file, or the model text itself (str or bytes).
    """
    text, where = _load(model)
    return _ModelText(text, where).head(name)


def _load(model: Any) -> tuple[str, str]:
    if hasattr(model, "booster_"):  # LGBMRegressor, LGBMClassifier, LGBMRanker
        model = model.booster_
    if isinstance(model, (bytes, bytearray, memoryview)):
        model = bytes(model).decode("utf-8", errors="replace")
    if isinstance(model, str) and "\n" in model:  # model text (a path has no line break)
        return model, "LightGBM model text"
    if isinstance(model, (str, os.PathLike)):
        where = os.fspath(model)
        try:
            with open(where, encoding="utf-8", errors="replace") as f:
                return f.read(), where
        except OSError as e:
            raise ValueError(f"{where}: cannot read the model file ({e.strerror})") from None
    if hasattr(model, "model_to_string"):
        return model.model_to_string(), "lightgbm.Booster"
    raise TypeError("model: expected a lightgbm.Booster, a path to a model text file or the "
                    f"model text, got {type(model).__name__}")


class _ModelText:
    """The header and tree blocks of one model text."""

    def __init__(self, text: str, where: str):
        self.where = where
        lines = text.replace("\r\n", "\n").split("\n")
        if not lines or lines[0] != "tree":
            raise self.fail("not a LightGBM model text (the first line is not 'tree')")
        try:
            end = lines.index("end of trees")
        except ValueError:
            raise self.fail("no 'end of trees' line (truncated?)") from None
        self.header, self.trees = self.blocks(lines[1:end])
        self.flags = {line for line in lines[1:end] if line and "=" not in line}
        pandas = [line for line in lines[end:] if line.startswith("pandas_categorical:")]
        if pandas and pandas[-1] != "pandas_categorical:null":
            raise ValueError(f"{where}: the model carries pandas category vocabularies (LightGBM "
                             "re-codes DataFrame categories by them); the engine takes integer "
                             "category codes: retrain on codes")

    def fail(self, what: str) -> CorruptFileError:
        return CorruptFileError(f"{self.where}: {what}")

    def blocks(self, lines: list[str]) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The header's key=value pairs, and one dict per ``Tree=`` block."""
        header: dict[str, str] = {}
        trees: list[dict[str, str]] = []
        current = header
        for line in lines:
            key, eq, value = line.partition("=")
            if not eq:
                continue
            if key == "Tree":
                if value != str(len(trees)):
                    raise self.fail(f"tree block {value!r} where Tree={len(trees)} was expected")
                current = {}
                trees.append(current)
            else:
                current[key] = value
        if not trees:
            raise self.fail("the model has no trees")
        return header, trees

    def integer(self, fields: dict[str, str], key: str, where: str) -> int:
        if key not in fields:
            raise self.fail(f"{where} has no {key}=")
        try:
            return int(fields[key])
        except ValueError:
            raise self.fail(f"{where}: {key}={fields[key]!r} is not an integer") from None

    def numbers(self, fields: dict[str, str], key: str, where: str, count: int, dtype) -> np.ndarray:
        if key not in fields:
            raise self.fail(f"{where} has no {key}=")
        try:
            values = np.array(fields[key].split(), dtype=dtype)
        except (ValueError, OverflowError):
            raise self.fail(f"{where}: {key}= holds a value that is not a number") from None
        if len(values) != count:
            raise self.fail(f"{where}: {key}= has {len(values)} values, expected {count}")
        return values

    def head(self, name: str) -> HeadIR:
        n_features = self.integer(self.header, "max_feature_idx", "the header") + 1
        per_iteration = self.integer(self.header, "num_tree_per_iteration", "the header")
        n_classes = self.integer(self.header, "num_class", "the header")
        if per_iteration < 1 or n_features < 1 or (n_classes > 1 and per_iteration != n_classes):
            raise self.fail(f"inconsistent header: max_feature_idx={n_features - 1}, "
                            f"num_class={n_classes}, num_tree_per_iteration={per_iteration}")
        if len(self.trees) % per_iteration:
            raise self.fail(f"{len(self.trees)} trees is not a whole number of iterations of "
                            f"{per_iteration} trees")
        if "average_output" in self.flags:
            raise ValueError(f"{self.where}: average_output (random forest mode) is not supported: "
                             "LightGBM divides the sum of trees by the number of iterations")
        objective = self.header.get("objective", "custom")
        transform, alpha = _transform(objective, self.where)
        tree_output = (np.arange(len(self.trees)) % per_iteration).astype(np.int32)
        return assemble(
            self.library_trees(n_features), self.where,
            name=name, n_features=n_features, n_outputs=per_iteration,
            base_score=np.zeros(per_iteration), transform=transform, accumulate="f64",
            tree_output=tree_output, sigmoid_alpha=alpha,
            source=f"lightgbm {self.header.get('version', '')} {objective}",
            feature_names=self.feature_names(n_features))

    def feature_names(self, n_features: int) -> list[str]:
        names = self.header.get("feature_names", "").split()
        if names and len(names) != n_features:
            raise self.fail(f"feature_names= has {len(names)} names for {n_features} features")
        return names

    def library_trees(self, n_features: int) -> LibraryTrees:
        parts = [self.tree_nodes(t, fields) for t, fields in enumerate(self.trees)]
        words_before = np.cumsum([0] + [len(p["cat_words"]) for p in parts])
        for p, offset in zip(parts, words_before):
            p["cat_begin"] = np.where(p["cat_end"] > 0, p["cat_begin"] + offset, 0)
            p["cat_end"] = np.where(p["cat_end"] > 0, p["cat_end"] + offset, 0)
        columns = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        if (columns["feature"] >= n_features).any():
            raise self.fail(f"a split uses a feature above max_feature_idx={n_features - 1}")
        return LibraryTrees(
            tree_sizes=np.array([len(p["feature"]) for p in parts], dtype=np.int64),
            left=columns["left"], right=columns["right"], feature=columns["feature"],
            threshold=columns["threshold"], flags=columns["flags"],
            cat_begin=columns["cat_begin"], cat_end=columns["cat_end"],
            cat_words=columns["cat_words"], leaf_value=columns["leaf_value"].reshape(-1, 1))

    def tree_nodes(self, t: int, fields: dict[str, str]) -> dict[str, np.ndarray]:
        """One tree's nodes: splits 0..L-2 as LightGBM numbers them, then leaf l at L-1+l."""
        where = f"tree {t}"
        n_leaves = self.integer(fields, "num_leaves", where)
        n_cat = self.integer(fields, "num_cat", where)
        if fields.get("is_linear", "0") != "0":
            raise ValueError(f"{self.where}: linear trees (linear_tree=true) are not supported: "
                             "their leaves are linear models of the features")
        if n_leaves < 1 or n_cat < 0:
            raise self.fail(f"{where}: num_leaves={n_leaves}, num_cat={n_cat}")
        n_splits = n_leaves - 1
        leaf_values = self.numbers(fields, "leaf_value", where, n_leaves, np.float64)
        if n_splits == 0:
            return _single_leaf(leaf_values)
        split = {key: self.numbers(fields, key, where, n_splits, dtype) for key, dtype in (
            ("split_feature", np.int64), ("threshold", np.float64), ("decision_type", np.int64),
            ("left_child", np.int64), ("right_child", np.int64))}
        if n_cat:
            boundaries = self.numbers(fields, "cat_boundaries", where, n_cat + 1, np.int64)
            if boundaries[0] != 0 or (np.diff(boundaries) < 1).any():
                raise self.fail(f"{where}: cat_boundaries= must start at 0 and increase")
            words = self.numbers(fields, "cat_threshold", where, int(boundaries[-1]), np.uint64)
        else:
            boundaries, words = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        if (words > 0xFFFFFFFF).any():
            raise self.fail(f"{where}: cat_threshold= holds a value above 2**32 - 1")
        nodes = self.splits(where, split, n_cat, boundaries)
        left = _node_index(split["left_child"], n_splits)
        right = _node_index(split["right_child"], n_splits)
        swap = nodes.pop("swap")
        nodes["left"], nodes["right"] = np.where(swap, right, left), np.where(swap, left, right)
        return _with_leaves(nodes, leaf_values, words.astype(np.uint32))

    def splits(self, where: str, split: dict, n_cat: int, boundaries: np.ndarray) -> dict[str, np.ndarray]:
        """Feature, canonical threshold, flags and category range of each split
        node, and whether its children must be swapped.

        LightGBM splits non-missing from missing values with threshold +inf
        (every number, +inf too, goes left), which no ``x < T`` can say: such
        a node gets its children swapped and T = -inf (no number goes left).
        """
        decision = split["decision_type"]
        if ((decision < 0) | (decision > 15) | ((decision >> 2) == 3)).any():
            raise self.fail(f"{where}: decision_type= holds an unknown value")
        categorical = (decision & 1) != 0
        if categorical.any() and n_cat == 0:
            raise self.fail(f"{where}: a categorical split in a tree with num_cat=0")
        if (split["split_feature"] < 0).any():
            raise self.fail(f"{where}: split_feature= holds a negative feature")
        t = split["threshold"]
        numeric_t = np.where(categorical, 0.0, t)
        if np.isnan(numeric_t).any():
            raise self.fail(f"{where}: a numeric split has threshold NaN")
        swap = numeric_t == np.inf
        threshold = np.where(swap, np.float32(-np.inf), canonical_threshold(numeric_t))
        cat_index = np.where(categorical, t, 0)
        if ((cat_index < 0) | (cat_index >= max(n_cat, 1)) | (cat_index != np.trunc(cat_index))).any():
            raise self.fail(f"{where}: a categorical split names a bitset outside num_cat={n_cat}")
        cat_index = cat_index.astype(np.int64)
        return {
            "feature": split["split_feature"],
            "threshold": np.where(categorical, np.float32(np.nan), threshold),
            "flags": _split_flags(decision, categorical, threshold, swap),
            "cat_begin": np.where(categorical, boundaries[cat_index], 0),
            "cat_end": np.where(categorical, boundaries[np.minimum(cat_index + 1, n_cat)], 0),
            "swap": swap,
        }


def canonical_threshold(t: np.ndarray) -> np.ndarray:
    """float32 T with ``x < T`` iff LightGBM's ``x <= t`` for every float32 x
    (after LightGBM has turned the zero band |x| <= 1e-35f into 0.0)."""
    with np.errstate(over="ignore"):  # beyond float32's range: inf (stepped back below), or T = inf
        nearest = t.astype(np.float32)
        below = np.where(nearest.astype(np.float64) > t, np.nextafter(nearest, np.float32(-np.inf)), nearest)
        threshold = np.nextafter(below, np.float32(np.inf))
    # A value of the band is compared as 0.0: with t in [0, band) the whole
    # band goes left (x <= band edge); with t in [-band, 0) it goes right.
    band_edge = np.float32(ZERO_THRESHOLD)
    threshold = np.where((t >= 0) & (t < ZERO_THRESHOLD), np.nextafter(band_edge, np.float32(np.inf)),
                         threshold)
    return np.where((t >= -ZERO_THRESHOLD) & (t < 0), -band_edge, threshold).astype(np.float32)


def _split_flags(decision: np.ndarray, categorical: np.ndarray, threshold: np.ndarray,
                 swap: np.ndarray) -> np.ndarray:
    missing_type = (decision >> 2) & 3
    default_left = ((decision & 2) != 0) ^ swap  # the default child moves with a swap
    # Missing type None: NaN is read as 0.0, so it goes where 0.0 goes
    # (threshold is already in the swapped node's terms).
    default_left = np.where(missing_type == MISSING_NONE, np.float32(0) < threshold, default_left)
    numeric = ~categorical
    flags = (np.where(numeric & default_left, DEFAULT_LEFT, 0)
             | np.where(numeric & (missing_type == MISSING_ZERO), ZERO_IS_MISSING, 0)
             | np.where(categorical, CATEGORICAL | CAT_INT_CAST, 0))  # NaN goes right: no DEFAULT_LEFT
    return flags.astype(np.uint8)


def _node_index(child: np.ndarray, n_splits: int) -> np.ndarray:
    """LightGBM's child code (split index, or ~leaf) as a node index (leaves after splits)."""
    return np.where(child >= 0, child, n_splits + ~child)


def _single_leaf(leaf_values: np.ndarray) -> dict[str, np.ndarray]:
    empty = {"feature": np.zeros(0, np.int64), "threshold": np.zeros(0, np.float32),
             "flags": np.zeros(0, np.uint8), "cat_begin": np.zeros(0, np.int64),
             "cat_end": np.zeros(0, np.int64), "left": np.zeros(0, np.int64),
             "right": np.zeros(0, np.int64)}
    return _with_leaves(empty, leaf_values, np.zeros(0, np.uint32))


def _with_leaves(splits: dict[str, np.ndarray], leaf_values: np.ndarray,
                 cat_words: np.ndarray) -> dict[str, np.ndarray]:
    """Split nodes followed by the leaves (feature -1, no children, their values)."""
    n_splits, n_leaves = len(splits["feature"]), len(leaf_values)
    minus_one = np.full(n_leaves, -1, dtype=np.int64)
    zeros = np.zeros(n_leaves, dtype=np.int64)
    return {
        "feature": np.concatenate([splits["feature"], minus_one]),
        "threshold": np.concatenate([splits["threshold"], np.full(n_leaves, np.nan, np.float32)]),
        "flags": np.concatenate([splits["flags"], np.zeros(n_leaves, np.uint8)]),
        "cat_begin": np.concatenate([splits["cat_begin"], zeros]),
        "cat_end": np.concatenate([splits["cat_end"], zeros]),
        "left": np.concatenate([splits["left"], minus_one]),
        "right": np.concatenate([splits["right"], minus_one]),
        "leaf_value": np.concatenate([np.zeros(n_splits), leaf_values]),
        "cat_words": cat_words,
    }


def _transform(objective: str, where: str) -> tuple[str, float]:
    """(transform, sigmoid_alpha) of an ``objective=`` line such as 'binary sigmoid:1'."""
    name, *options = objective.split()
    params = dict(option.partition(":")[::2] for option in options)
    if "sqrt" in options:
        raise ValueError(f"{where}: objective '{objective}' (reg_sqrt) is not supported: its "
                         "predictions are the signed square of the raw score")
    if name in REFUSED_OBJECTIVES:
        raise ValueError(f"{where}: objective {name} is not supported: {REFUSED_OBJECTIVES[name]}, "
                         "a transform the engine does not have")
    if name in IDENTITY_OBJECTIVES or name == "custom":
        return "identity", 1.0
    if name == "multiclass":
        return "softmax", 1.0
    if name == "cross_entropy":
        return "sigmoid", 1.0
    if name in ("binary", "multiclassova"):
        try:
            return "sigmoid", float(params["sigmoid"])
        except (KeyError, ValueError):
            raise CorruptFileError(f"{where}: objective '{objective}' has no valid sigmoid:") from None
    raise ValueError(f"{where}: objective {name!r} is not supported")
