"""A NumPy evaluator of the canonical semantics in ``engine.forest.ir``: the
oracle that the parsers are tested against (each library's own predictions)
and that the native kernel is tested against.

It is written to be obviously correct, not fast: one tree at a time, all rows
advancing one level per step, every rule spelled out as in the ir docstring.
"""

from __future__ import annotations

import numpy as np

from engine.forest.ir import (
    CAT_INT_CAST,
    CATEGORICAL,
    DEFAULT_LEFT,
    ZERO_IS_MISSING,
    HeadIR,
)
from engine.forest.validate_ir import validate_head

ZERO_BAND = np.float32(1e-35)  # |x| <= this is "zero" for ZERO_IS_MISSING (LightGBM's kZeroThreshold)
OUTPUTS = ("raw", "value")


def reference_predict(head: HeadIR, X: np.ndarray, output: str = "raw") -> np.ndarray:
    """Scores of the rows of ``X`` (n, n_features): float32 (n,) for one
    output, else (n, n_outputs).

    ``output="raw"`` gives the margins (base score plus tree values, summed in
    tree order in the head's precision); ``"value"`` applies the transform.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
    validate_head(head)  # every index below is then in range
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != head.n_features:
        raise ValueError(f"X: expected shape (n, {head.n_features}), got {X.shape}")
    X = X.astype(np.float32)  # the kernel compares float32 with float32
    acc_dtype = np.float32 if head.accumulate == "f32" else np.float64
    raw = np.tile(head.base_score.astype(acc_dtype), (len(X), 1))
    leaf_values = head.leaf_value.reshape(-1, head.leaf_width).astype(acc_dtype)
    for t in range(head.n_trees):
        leaf = head.tree_offsets[t] + leaf_index(head, t, X)
        column = head.tree_output[t]
        if column == -1:  # vector leaves (or the single output)
            raw += leaf_values[leaf, :head.n_outputs]
        else:
            raw[:, column] += leaf_values[leaf, 0]
    scores = raw if output == "raw" else transform(head, raw.astype(np.float64))
    scores = scores.astype(np.float32)
    return scores[:, 0] if head.n_outputs == 1 else scores


def leaf_index(head: HeadIR, t: int, X: np.ndarray) -> np.ndarray:
    """Tree-local index of the leaf each row of ``X`` reaches in tree ``t``."""
    base = head.tree_offsets[t]
    node = np.zeros(len(X), dtype=np.int64)
    rows = np.arange(len(X))
    while rows.size:
        at = base + node[rows]
        at_split = head.feature[at] != -1
        rows, at = rows[at_split], at[at_split]
        if not rows.size:
            break
        x = X[rows, head.feature[at]]
        go_left = goes_left(head, at, x)
        node[rows] = np.where(go_left, head.left[at], head.right[at])
    return node


def goes_left(head: HeadIR, at: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The canonical decision at global split nodes ``at`` for float32 inputs ``x``."""
    flags = head.flags[at]
    zero_is_missing = (flags & ZERO_IS_MISSING) != 0
    with np.errstate(invalid="ignore"):  # NaN compares False, as in the kernel
        missing = np.isnan(x) | (zero_is_missing & (np.abs(x) <= ZERO_BAND))
        numeric_left = x < head.threshold[at]
    categorical = (flags & CATEGORICAL) != 0
    category_left = np.zeros(len(x), dtype=bool)
    if categorical.any():
        category_left[categorical] = in_category_set(head, at[categorical], x[categorical],
                                                     (flags[categorical] & CAT_INT_CAST) != 0)
    default_left = (flags & DEFAULT_LEFT) != 0
    return np.where(missing, default_left, np.where(categorical, category_left, numeric_left))


def in_category_set(head: HeadIR, at: np.ndarray, x: np.ndarray, int_cast: np.ndarray) -> np.ndarray:
    """Whether trunc(x) is a listed category of each categorical node ``at``."""
    n_words = head.cat_end[at] - head.cat_begin[at]
    with np.errstate(invalid="ignore"):
        lowest_ok = np.where(int_cast, x > -1, x >= 0)
        valid = lowest_ok & (x.astype(np.float64) < 32.0 * n_words)
    category = np.zeros(len(x), dtype=np.int64)
    category[valid] = np.trunc(x[valid]).astype(np.int64)
    word = head.cat_words[np.where(valid, head.cat_begin[at] + category // 32, 0)]
    bit = (word >> (category % 32).astype(np.uint32)) & 1
    return valid & (bit == 1)


def transform(head: HeadIR, raw: np.ndarray) -> np.ndarray:
    """Raw scores (n, n_outputs) to values, in float64."""
    if head.transform == "sigmoid":
        with np.errstate(over="ignore"):  # exp overflows to inf: the value is then 0
            return 1.0 / (1.0 + np.exp(-raw * head.sigmoid_alpha))
    if head.transform == "softmax":
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return raw
