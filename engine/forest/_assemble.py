"""From a library's node arrays to a HeadIR: shared by the model parsers.

Parsers fill a ``LibraryTrees`` with node arrays in the library's own node
numbering (tree after tree). ``assemble`` renumbers every tree breadth-first
from its root, which drops nodes the root cannot reach (XGBoost keeps pruned
nodes in its arrays) and makes every child's index larger than its parent's
(XGBoost reuses freed slots, so a child may sit before its parent), then
checks the result with ``validate_head``. A child out of range, a node with
two parents or a cycle is a corrupt model and raises ``ValueError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.forest.ir import HeadIR
from engine.forest.validate_ir import validate_head


@dataclass
class LibraryTrees:
    """Nodes of every tree, concatenated, in the library's numbering.

    ``left`` / ``right`` are tree-local child indices, -1 at leaves; the other
    arrays hold the HeadIR node fields (``leaf_value`` as (n_nodes, leaf_width)).
    """

    tree_sizes: np.ndarray  # int64 (n_trees,)
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    flags: np.ndarray
    cat_begin: np.ndarray
    cat_end: np.ndarray
    cat_words: np.ndarray
    leaf_value: np.ndarray


def assemble(trees: LibraryTrees, where: str, **head_fields) -> HeadIR:
    """The HeadIR of ``trees`` (breadth-first node order), validated.

    ``where`` names the model in error messages; ``head_fields`` are the
    remaining HeadIR fields (name, n_features, n_outputs, base_score, ...).
    """
    order, offsets, left, right = breadth_first(trees.tree_sizes, trees.left, trees.right, where)
    head = HeadIR(
        tree_offsets=offsets,
        feature=trees.feature[order].astype(np.int32),
        threshold=trees.threshold[order].astype(np.float32),
        left=left,
        right=right,
        flags=trees.flags[order].astype(np.uint8),
        cat_begin=trees.cat_begin[order].astype(np.int64),
        cat_end=trees.cat_end[order].astype(np.int64),
        cat_words=trees.cat_words.astype(np.uint32),
        leaf_value=trees.leaf_value[order].astype(np.float64).reshape(-1),
        leaf_width=int(trees.leaf_value.shape[1]),
        **head_fields,
    )
    try:
        validate_head(head)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    return head


def breadth_first(tree_sizes: np.ndarray, left: np.ndarray, right: np.ndarray, where: str):
    """Renumber every tree breadth-first, all trees at once, one level per step.

    Returns (order: library node index of each new node, new tree offsets,
    new tree-local left, new tree-local right).
    """
    tree_sizes = np.asarray(tree_sizes, dtype=np.int64)
    n_trees = len(tree_sizes)
    if (tree_sizes < 1).any():
        t = int(np.flatnonzero(tree_sizes < 1)[0])
        raise ValueError(f"{where}: tree {t} has no nodes")
    starts = np.concatenate([[0], np.cumsum(tree_sizes)])[:-1]
    tree_of = np.repeat(np.arange(n_trees), tree_sizes)
    local = np.arange(len(tree_of)) - starts[tree_of]
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    _check_children(left, right, tree_sizes[tree_of], tree_of, local, where)
    is_split = left >= 0
    global_left = np.where(is_split, starts[tree_of] + left, -1)
    global_right = np.where(is_split, starts[tree_of] + right, -1)

    visited = np.zeros(len(tree_of), dtype=bool)
    frontier = starts
    visited[frontier] = True
    levels = []
    while frontier.size:
        levels.append(frontier)
        parents = frontier[is_split[frontier]]
        children = np.stack([global_left[parents], global_right[parents]], axis=1).reshape(-1)
        if visited[children].any() or np.unique(children).size != children.size:
            bad = children[visited[children]] if visited[children].any() else children
            node = int(bad[0])
            raise ValueError(f"{where}: tree {int(tree_of[node])}: node {int(local[node])} has two "
                             "parents or lies on a cycle")
        visited[children] = True
        frontier = children
    order = np.concatenate(levels)
    order = order[np.argsort(tree_of[order], kind="stable")]  # trees contiguous, each breadth-first

    new_index = np.full(len(tree_of), -1, dtype=np.int64)
    new_index[order] = np.arange(len(order))
    new_sizes = np.bincount(tree_of[order], minlength=n_trees)
    offsets = np.concatenate([[0], np.cumsum(new_sizes)]).astype(np.int64)
    new_start = offsets[tree_of[order]]
    split = is_split[order]
    new_left = np.where(split, new_index[global_left[order]] - new_start, -1).astype(np.int32)
    new_right = np.where(split, new_index[global_right[order]] - new_start, -1).astype(np.int32)
    return order, offsets, new_left, new_right


def _check_children(left, right, tree_size, tree_of, local, where):
    """Both children or none, each within its tree and not the node itself."""
    def fail(mask, what):
        i = int(np.flatnonzero(mask)[0])
        raise ValueError(f"{where}: tree {int(tree_of[i])}: node {int(local[i])} {what} "
                         f"(left {int(left[i])}, right {int(right[i])}, tree size {int(tree_size[i])})")

    half_leaf = (left < 0) != (right < 0)
    if half_leaf.any():
        fail(half_leaf, "has one child")
    for child in (left, right):
        bad = (child < -1) | (child >= tree_size) | (child == local) | (child == 0)
        if bad.any():
            fail(bad, "has a child out of range")
