"""Structural checks of a HeadIR, run on every parsed model and every loaded
Forest file: after ``validate_head`` passes, evaluating the head by the rules
in ``engine.forest.ir`` touches only indices in range and always reaches a
leaf.

Every check is vectorised (models reach about a million nodes) and runs in
an order that never indexes with a value not yet checked, so hostile arrays
(wrong dtypes, negative offsets, decreasing tree offsets) get a ``ValueError``
that names the field, never an IndexError or a crash. Wrong types are
ValueErrors too: a head's fields come from a file, where a wrong type is a
corrupt value.

Invariants beyond the ir.py docstring, which the parsers guarantee:
- a head with ``leaf_width > 1`` has only vector-leaf trees (``tree_output ==
  -1``); with ``leaf_width == 1`` a tree adds into one column (-1 is then
  allowed only when there is a single output);
- leaves have no flags, threshold NaN, both children -1, and an empty
  ``[0, 0)`` category range; split nodes have leaf values 0;
- numeric splits have a non-NaN threshold and an empty ``[0, 0)`` category
  range; categorical splits have threshold NaN and at least one bitset word;
- feature names, when given, are unique (the compiler maps columns by name).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from engine.forest.ir import (
    ACCUMULATE,
    CAT_INT_CAST,
    CATEGORICAL,
    KNOWN_FLAGS,
    TRANSFORMS,
    HeadIR,
)

ARRAY_DTYPES = {
    "base_score": np.float64,
    "tree_offsets": np.int64,
    "tree_output": np.int32,
    "feature": np.int32,
    "threshold": np.float32,
    "left": np.int32,
    "right": np.int32,
    "flags": np.uint8,
    "cat_begin": np.int64,
    "cat_end": np.int64,
    "cat_words": np.uint32,
    "leaf_value": np.float64,
}
NODE_FIELDS = ("feature", "threshold", "left", "right", "flags", "cat_begin", "cat_end")


def validate_head(head: HeadIR) -> None:
    """Raise ``ValueError`` naming the field if ``head`` breaks an invariant."""
    if not isinstance(head, HeadIR):
        raise ValueError(f"head: expected a HeadIR, got {type(head).__name__}")  # noqa: TRY004
    _check_scalars(head)
    _check_array_types(head)
    n_trees, n_nodes = _check_offsets(head)
    _check_lengths(head, n_trees, n_nodes)
    _check_tree_output(head)
    nodes = _NodeView(head)
    _check_features_and_flags(head, nodes)
    _check_leaves(head, nodes)
    _check_children(head, nodes)
    _check_categories(head, nodes)


def _check_scalars(head: HeadIR) -> None:
    if not isinstance(head.name, str) or not head.name:
        raise ValueError(f"name: expected a non-empty str, got {head.name!r}")
    if not isinstance(head.source, str):
        raise ValueError(f"source: expected a str, got {type(head.source).__name__}")  # noqa: TRY004
    for field in ("n_features", "n_outputs", "leaf_width"):
        value = getattr(head, field)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{field}: expected an integer >= 1, got {value!r}")
    if head.leaf_width not in (1, head.n_outputs):
        raise ValueError(f"leaf_width: must be 1 or n_outputs ({head.n_outputs}), got {head.leaf_width}")
    if head.transform not in TRANSFORMS:
        raise ValueError(f"transform: expected one of {TRANSFORMS}, got {head.transform!r}")
    if head.transform == "softmax" and head.n_outputs < 2:
        raise ValueError(f"transform: softmax needs n_outputs > 1, got {head.n_outputs}")
    if head.accumulate not in ACCUMULATE:
        raise ValueError(f"accumulate: expected one of {ACCUMULATE}, got {head.accumulate!r}")
    alpha = head.sigmoid_alpha
    if (isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha)
            or alpha <= 0):
        raise ValueError(f"sigmoid_alpha: expected a finite number > 0, got {alpha!r}")
    names = head.feature_names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("feature_names: expected a list of str")
    if names and len(names) != head.n_features:
        raise ValueError(f"feature_names: {len(names)} names for n_features={head.n_features}")
    seen: set[str] = set()
    for feature_name in names:
        if feature_name in seen:
            raise ValueError(f"feature_names: {feature_name!r} appears more than once")
        seen.add(feature_name)


def _check_array_types(head: HeadIR) -> None:
    for field, dtype in ARRAY_DTYPES.items():
        value = getattr(head, field)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{field}: expected a numpy array, got {type(value).__name__}")  # noqa: TRY004
        if value.dtype != dtype:
            raise ValueError(f"{field}: expected dtype {np.dtype(dtype)}, got {value.dtype}")
        if value.ndim != 1:
            raise ValueError(f"{field}: expected a 1-D array, got shape {value.shape}")
    if len(head.base_score) != head.n_outputs:
        raise ValueError(f"base_score: expected {head.n_outputs} values (n_outputs), "
                         f"got {len(head.base_score)}")
    if not np.isfinite(head.base_score).all():
        raise ValueError("base_score: NaN or infinity")


def _check_offsets(head: HeadIR) -> tuple[int, int]:
    offsets = head.tree_offsets
    if len(offsets) < 1 or offsets[0] != 0:
        raise ValueError("tree_offsets: must start with 0")
    sizes = np.diff(offsets)
    if (sizes < 1).any():
        t = int(np.flatnonzero(sizes < 1)[0])
        raise ValueError(f"tree_offsets: tree {t} has {int(sizes[t])} nodes (offsets must increase)")
    if offsets[-1] != len(head.feature):
        raise ValueError(f"tree_offsets: the last offset {int(offsets[-1])} is not the node count "
                         f"{len(head.feature)} (len(feature))")
    return len(offsets) - 1, int(offsets[-1])


def _check_lengths(head: HeadIR, n_trees: int, n_nodes: int) -> None:
    for field in NODE_FIELDS:
        if len(getattr(head, field)) != n_nodes:
            raise ValueError(f"{field}: expected {n_nodes} values (one per node), "
                             f"got {len(getattr(head, field))}")
    if len(head.leaf_value) != n_nodes * head.leaf_width:
        raise ValueError(f"leaf_value: expected {n_nodes * head.leaf_width} values "
                         f"(n_nodes * leaf_width), got {len(head.leaf_value)}")
    if len(head.tree_output) != n_trees:
        raise ValueError(f"tree_output: expected {n_trees} values (one per tree), "
                         f"got {len(head.tree_output)}")


def _check_tree_output(head: HeadIR) -> None:
    out = head.tree_output
    if head.leaf_width > 1:
        bad = out != -1
        what = "must be -1 (vector leaves) when leaf_width > 1"
    else:
        lowest = -1 if head.n_outputs == 1 else 0
        bad = (out < lowest) | (out >= head.n_outputs)
        what = f"must be in [{lowest}, {head.n_outputs}) when leaf_width is 1"
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        raise ValueError(f"tree_output: tree {t} has {int(out[t])}; {what}")


class _NodeView:
    """Per-node tree id, tree-local index and tree size (offsets already checked)."""

    def __init__(self, head: HeadIR):
        sizes = np.diff(head.tree_offsets)
        self.tree = np.repeat(np.arange(len(sizes)), sizes)
        self.local = np.arange(len(self.tree)) - head.tree_offsets[:-1][self.tree]
        self.tree_size = sizes[self.tree]
        self.is_leaf = head.feature == -1
        self.is_cat = ~self.is_leaf & ((head.flags & CATEGORICAL) != 0)
        self.is_numeric = ~self.is_leaf & ~self.is_cat

    def fail(self, field: str, mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValueError(f"{field}: tree {int(self.tree[i])} node {int(self.local[i])} {what}")


def _check_features_and_flags(head: HeadIR, nodes: _NodeView) -> None:
    nodes.fail("feature", (head.feature < -1) | (head.feature >= head.n_features),
               f"has a feature id outside [-1, {head.n_features}) (n_features)")
    nodes.fail("flags", (head.flags & ~np.uint8(KNOWN_FLAGS)) != 0, "has unknown flag bits")


def _check_leaves(head: HeadIR, nodes: _NodeView) -> None:
    leaf = nodes.is_leaf
    nodes.fail("left", leaf & (head.left != -1), "is a leaf with a left child")
    nodes.fail("right", leaf & (head.right != -1), "is a leaf with a right child")
    nodes.fail("flags", leaf & (head.flags != 0), "is a leaf with flags")
    nodes.fail("threshold", leaf & ~np.isnan(head.threshold), "is a leaf with a threshold (expected NaN)")
    values = head.leaf_value.reshape(-1, head.leaf_width)
    nodes.fail("leaf_value", leaf & ~np.isfinite(values).all(axis=1), "is a leaf valued NaN or infinity")
    nodes.fail("leaf_value", ~leaf & (values != 0).any(axis=1), "is a split node with a nonzero value")


def _check_children(head: HeadIR, nodes: _NodeView) -> None:
    split = ~nodes.is_leaf
    for field in ("left", "right"):
        child = getattr(head, field)
        nodes.fail(field, split & ((child <= nodes.local) | (child >= nodes.tree_size)),
                   "has a child outside (its own index, tree size)")
    # Children above their parent make every tree acyclic; one parent per
    # non-root node then makes it a tree reaching every node from the root.
    start = head.tree_offsets[:-1][nodes.tree]
    children = np.concatenate([(start + head.left)[split], (start + head.right)[split]])
    n_parents = np.bincount(children, minlength=len(head.feature))
    is_root = nodes.local == 0
    nodes.fail("left", ~is_root & (n_parents != 1), "does not have exactly one parent")


def _check_categories(head: HeadIR, nodes: _NodeView) -> None:
    begin, end = head.cat_begin, head.cat_end
    not_cat = ~nodes.is_cat
    nodes.fail("cat_begin", not_cat & ((begin != 0) | (end != 0)),
               "is not categorical but has a category range (expected [0, 0))")
    nodes.fail("flags", nodes.is_numeric & ((head.flags & CAT_INT_CAST) != 0),
               "has CAT_INT_CAST on a numeric split")
    nodes.fail("threshold", nodes.is_numeric & np.isnan(head.threshold), "is a numeric split with threshold NaN")
    nodes.fail("threshold", nodes.is_cat & ~np.isnan(head.threshold),
               "is a categorical split with a threshold (expected NaN)")
    nodes.fail("cat_begin", nodes.is_cat & ((begin < 0) | (begin >= end) | (end > len(head.cat_words))),
               f"has a category range outside cat_words (or empty); cat_words has {len(head.cat_words)}")
