"""Random forests in the compiler's canonical form (engine/forest/ir.py) with
every kind of node, to test the native kernel against the NumPy reference
evaluator without training a model."""

from __future__ import annotations

import numpy as np

from engine.forest.ir import CAT_INT_CAST, CATEGORICAL, DEFAULT_LEFT, ZERO_IS_MISSING, HeadIR


def random_tree(rng: np.random.Generator, n_features: int, max_depth: int, categorical: bool,
                zero_missing: bool, width: int, few_thresholds: bool = False, split_probability: float = 0.8):
    """One tree as (feature, threshold, left, right, flags, cat words per node, leaf values);
    nodes are numbered in creation order, so children follow their parent."""
    feature, threshold, left, right, flags, cats, values = [], [], [], [], [], [], []

    def new_node(depth: int) -> int:
        i = len(feature)
        feature.append(-1); threshold.append(np.nan); left.append(-1); right.append(-1)
        flags.append(0); cats.append(None); values.append(np.zeros(width))
        split = depth < max_depth and (depth < 2 or rng.random() < split_probability)
        if not split:
            values[i] = rng.normal(0, 1, width)
            return i
        feature[i] = int(rng.integers(n_features))
        f = DEFAULT_LEFT if rng.random() < 0.5 else 0
        if categorical and rng.random() < 0.25:
            f |= CATEGORICAL | (CAT_INT_CAST if rng.random() < 0.5 else 0)
            cats[i] = rng.integers(0, 2**32, int(rng.integers(1, 3)), dtype=np.uint64).astype(np.uint32)
        else:
            threshold[i] = np.float32(rng.integers(-3, 4) if few_thresholds
                                      else rng.choice([0.0, rng.normal(0, 1), rng.integers(-3, 4)]))
        if zero_missing and rng.random() < 0.3:
            f |= ZERO_IS_MISSING
        flags[i] = f
        left[i] = new_node(depth + 1)
        right[i] = new_node(depth + 1)
        return i

    new_node(0)
    return feature, threshold, left, right, flags, cats, values


def random_head(seed: int, n_trees: int = 40, n_features: int = 12, max_depth: int = 7, *,
                categorical: bool = True, zero_missing: bool = True, n_outputs: int = 1,
                vector_leaves: bool = False, transform: str = "identity", accumulate: str = "f64",
                name: str = "score", few_thresholds: bool = False, split_probability: float = 0.8) -> HeadIR:
    """few_thresholds: integer thresholds only, so that trees repeat each other's splits as
    histogram-trained models do (7 per feature, against a new one per split otherwise).
    split_probability: of a node below depth 2 (1: every tree complete to its depth)."""
    rng = np.random.default_rng(seed)
    width = n_outputs if vector_leaves else 1
    cols = {k: [] for k in ("feature", "threshold", "left", "right", "flags", "leaf_value")}
    offsets, cat_begin, cat_end, words = [0], [], [], []
    for _ in range(n_trees):
        depth = int(rng.integers(0, max_depth + 1))
        feature, threshold, left, right, flags, cats, values = random_tree(
            rng, n_features, depth, categorical, zero_missing, width, few_thresholds, split_probability)
        for c, v in zip(("feature", "threshold", "left", "right", "flags"), (feature, threshold, left, right, flags)):
            cols[c].extend(v)
        cols["leaf_value"].extend(np.concatenate(values))
        for c in cats:  # non-categorical nodes have the empty range [0, 0)
            cat_begin.append(0 if c is None else len(words))
            if c is not None:
                words.extend(c)
            cat_end.append(0 if c is None else len(words))
        offsets.append(offsets[-1] + len(feature))
    tree_output = (np.full(n_trees, -1) if vector_leaves else rng.integers(0, n_outputs, n_trees))
    return HeadIR(
        name=name, n_features=n_features, n_outputs=n_outputs,
        base_score=rng.normal(0, 1, n_outputs), transform=transform, accumulate=accumulate,
        tree_offsets=np.array(offsets, np.int64), tree_output=tree_output.astype(np.int32),
        leaf_width=width, feature=np.array(cols["feature"], np.int32),
        threshold=np.array(cols["threshold"], np.float32), left=np.array(cols["left"], np.int32),
        right=np.array(cols["right"], np.int32), flags=np.array(cols["flags"], np.uint8),
        cat_begin=np.array(cat_begin, np.int64), cat_end=np.array(cat_end, np.int64),
        cat_words=np.array(words, np.uint32), leaf_value=np.array(cols["leaf_value"], np.float64),
        feature_names=[f"x{i}" for i in range(n_features)], source="random",
    )


def random_rows(seed: int, n: int, n_features: int) -> np.ndarray:
    """Rows mixing normal values, small integers (categories), exact zeros, the
    zero-as-missing band, NaN, infinities and values just off the thresholds'."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1.5, (n, n_features)).astype(np.float32)
    pick = rng.random(X.shape)
    X[pick < 0.25] = rng.integers(-2, 70, (pick < 0.25).sum())
    specials = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, np.nan, np.inf, -np.inf, -0.5, 0.5,
                         1.0, np.nextafter(np.float32(1), np.float32(2)), 1e10], np.float32)
    mask = pick > 0.8
    X[mask] = rng.choice(specials, mask.sum())
    return X
