"""engine.Forest: the native kernel against the NumPy reference evaluator on
random forests with every kind of node, under every SIMD level and batch
shape; inputs (numpy, Arrow); bad input; threads; file validation and fuzz."""

from __future__ import annotations

import dataclasses
import os
import threading

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from forest_random import random_head, random_rows

import engine
from engine import _core
from engine.errors import CorruptFileError
from engine.forest import forest_file
from engine.forest.compile import write_forest
from engine.forest.reference import reference_predict

LEVELS = _core.forest_levels()
# Row counts around the kernels' lane groups (8, 16), row blocks (32, 64) and the padding
# thresholds (a remainder of 20 rows alone, 8 after full blocks: binned_avx512.cpp).
BATCHES = [1, 2, 3, 7, 8, 9, 15, 16, 19, 20, 31, 32, 33, 63, 64, 65, 71, 72, 100, 129, 1000]


def load(tmp_path, *heads, name="forest.bin", **kwargs) -> engine.Forest:
    path = tmp_path / name
    write_forest(list(heads), path, **kwargs)
    return engine.Forest.load(path)


KINDS = {
    "numeric f32": dict(categorical=False, zero_missing=False, accumulate="f32"),
    "numeric f64": dict(categorical=False, zero_missing=False),
    "categorical": dict(zero_missing=False),
    "zero missing": dict(categorical=False),
    "everything": dict(),
    "deep": dict(max_depth=14, n_trees=20),
    "multiclass": dict(n_outputs=3, transform="softmax"),
    "vector leaves": dict(n_outputs=2, vector_leaves=True, accumulate="f32"),
    "sigmoid": dict(transform="sigmoid"),
    # At most 64 leaves, numeric: the binned walk's forests (cpp/trees/binned.hpp).
    "binned f32": dict(categorical=False, zero_missing=False, accumulate="f32", max_depth=6, n_trees=60),
    "binned f64": dict(categorical=False, zero_missing=False, max_depth=6, n_trees=60),
    "binned zero missing": dict(categorical=False, max_depth=6, n_trees=60),
    "binned multiclass": dict(categorical=False, n_outputs=3, transform="softmax", max_depth=6),
    # Complete trees up to 6 levels: every one of a 64-leaf tree's leaf groups (binned_alive_avx512.hpp).
    "binned complete": dict(categorical=False, max_depth=6, n_trees=30, split_probability=1.0),
    # Up to 8 levels and more than 64 leaves: the top 6 in tables, the bottom 2 by slot.
    "binned deep f32": dict(categorical=False, zero_missing=False, accumulate="f32", max_depth=8, n_trees=40),
    "binned deep zero missing": dict(categorical=False, max_depth=8, n_trees=40),
    # Trees repeating each other's splits: a block compares each distinct one once (split_pairs).
    "binned shared splits f32": dict(categorical=False, accumulate="f32", max_depth=6, n_trees=60, few_thresholds=True),
    "binned shared splits f64": dict(categorical=False, max_depth=6, n_trees=60, few_thresholds=True),
}
# Categorical splits, vector leaves or trees of more than 8 levels and 64 leaves: the general walk only.
GENERAL_ONLY = {"categorical", "everything", "deep", "multiclass", "vector leaves", "sigmoid"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_level_and_batch_equals_the_reference(tmp_path, kind):
    head = random_head(seed=len(kind), **KINDS[kind])
    forest = load(tmp_path, head)
    X = random_rows(1, max(BATCHES), head.n_features)
    want = reference_predict(head, X).reshape(len(X), -1)
    assert forest._native.binned == (kind not in GENERAL_ONLY)
    assert (forest._native.binned_shared_splits > 0) == ("shared splits" in kind)
    for level in LEVELS:
        for n in BATCHES:
            got = forest._native.predict_level(level, X[:n], True)
            # Same trees, same order, same precision: equal, not merely close.
            np.testing.assert_array_equal(got, want[:n], err_msg=f"{kind}, {level}, batch {n}")


def test_tree_ranges_take_shared_or_own_split_masks_at_every_visit_width(tmp_path):
    """Full blocks compare each distinct split of the forest once when the trees walked
    share splits (the whole forest here), or each tree's own splits (two trees, as a first
    phase walks); visits of 1, 2, 4 and 8 blocks hold a split's row masks in 1, 2, 4 or 8
    words (cpp/trees/binned_alive_avx512.hpp). Every level equals the scalar walk."""
    head = random_head(seed=7, categorical=False, zero_missing=False, max_depth=6, n_trees=120, few_thresholds=True)
    forest = load(tmp_path, head)
    assert forest._native.binned and forest._native.binned_shared_splits > 0
    X = random_rows(2, 600, head.n_features)
    for begin, end in ((0, 2), (5, 7), (0, 120)):
        for n in (64, 128, 192, 256, 512, 600):
            want = forest._native.predict_level("scalar", X[:n], True, begin, end)
            for level in LEVELS:
                np.testing.assert_array_equal(forest._native.predict_level(level, X[:n], True, begin, end), want,
                                              err_msg=f"trees [{begin}, {end}), {level}, batch {n}")


def test_binned_walk_splits_features_with_more_than_254_thresholds(tmp_path):
    """Bins are bytes and 255 marks a missing value: a feature with more thresholds ranks them in
    several bin columns of 254, still exact."""
    head = random_head(seed=5, n_trees=400, n_features=2, max_depth=6, categorical=False)
    assert len(np.unique(head.threshold[head.feature == 0])) > 2 * 254
    forest = load(tmp_path, head)
    assert forest._native.binned
    X = random_rows(3, 300, head.n_features)
    want = reference_predict(head, X).reshape(len(X), -1)
    for level in LEVELS:
        np.testing.assert_array_equal(forest._native.predict_level(level, X, True), want, err_msg=level)
        # Rows one at a time take the complete form (binned.hpp's BinnedComplete).
        for i in range(0, 300, 37):
            np.testing.assert_array_equal(forest._native.predict_level(level, X[i:i + 1], True), want[i:i + 1],
                                          err_msg=f"{level}, row {i}")


@pytest.mark.parametrize("kind", ["multiclass", "sigmoid", "vector leaves"])
def test_values_apply_the_transform(tmp_path, kind):
    head = random_head(seed=3, **KINDS[kind])
    forest = load(tmp_path, head)
    X = random_rows(2, 200, head.n_features)
    np.testing.assert_allclose(forest.predict(X, "value").reshape(len(X), -1),
                               reference_predict(head, X, "value").reshape(len(X), -1), rtol=0, atol=1e-6)


def test_heads_share_a_pass_and_features_are_matched_by_name(tmp_path):
    click = random_head(seed=4, name="click", n_features=6)
    order = random_head(seed=5, name="order", n_features=6)
    # order's model knows the features in another order, one extra, one missing.
    order = dataclasses.replace(order, feature_names=["x5", "x4", "x3", "x2", "x1", "extra"])
    forest = load(tmp_path, click, order)
    assert forest.heads == ["click", "order"]
    assert forest.feature_names == [f"x{i}" for i in range(6)] + ["extra"]
    X = random_rows(3, 300, 7)
    got = forest.predict(X, "raw")
    assert got.shape == (300, 2)
    np.testing.assert_array_equal(got[:, 0], reference_predict(click, X[:, :6]))
    order_columns = [5, 4, 3, 2, 1, 6]
    np.testing.assert_array_equal(got[:, 1], reference_predict(order, X[:, order_columns]))


@pytest.mark.parametrize("max_depth", [6, 8])
def test_binned_heads_of_both_precisions_share_a_pass(tmp_path, max_depth):
    """An XGBoost-like head (float sums) beside a LightGBM-like one (double sums): the binned walk
    keeps each output's sums and leaf values in its own precision, in blocks and row by row."""
    options = dict(categorical=False, n_features=10, max_depth=max_depth, n_trees=30)
    click = random_head(seed=11, name="click", accumulate="f32", **options)
    order = random_head(seed=12, name="order", zero_missing=False, **options)
    forest = load(tmp_path, click, order)
    assert forest._native.binned
    X = random_rows(5, 300, 10)
    want = np.stack([reference_predict(click, X), reference_predict(order, X)], axis=1)
    for level in LEVELS:
        for n in (1, 3, 9, 64, 100, 300):
            np.testing.assert_array_equal(forest._native.predict_level(level, X[:n], True), want[:n],
                                          err_msg=f"{level}, batch {n}")


@pytest.mark.parametrize("walk", ["general", "binned"])
def test_threads_and_concurrent_callers_agree(tmp_path, walk):
    # Each walk keeps per-thread buffers; both must be safe to share.
    options = {} if walk == "general" else dict(KINDS["binned deep zero missing"], n_trees=60)
    head = random_head(seed=6, **({"n_trees": 60} | options))
    forest = load(tmp_path, head)
    assert forest._native.binned == (walk == "binned")  # the form; whether it runs depends on the CPU
    X = random_rows(4, 5000, head.n_features)
    want = forest.predict(X)
    np.testing.assert_array_equal(forest.predict(X, threads=2), want)
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = forest.predict(X[i * 500:(i + 2) * 500], threads=1 + i % 2)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in results.items():
        np.testing.assert_array_equal(got, want[i * 500:(i + 2) * 500])


def test_arrow_tables_match_columns_by_name(tmp_path):
    head = random_head(seed=7, n_features=5)
    forest = load(tmp_path, head, optional_features=["x4"])
    X = random_rows(5, 100, 5)
    want = forest.predict(X)
    shuffled = pa.table({f"x{i}": X[:, i] for i in [3, 1, 4, 0, 2]} | {"unused": np.arange(100)})
    np.testing.assert_array_equal(forest.predict(shuffled), want)
    np.testing.assert_array_equal(forest.predict(shuffled.to_batches()[0]), want)
    import polars as pl

    np.testing.assert_array_equal(forest.predict(pl.from_arrow(shuffled)), want)
    as_f64 = pa.table({f"x{i}": X[:, i].astype(np.float64) for i in range(5)})
    np.testing.assert_array_equal(forest.predict(as_f64), want)
    # An optional feature left out reads as missing.
    no_x4 = X.copy()
    no_x4[:, 4] = np.nan
    np.testing.assert_array_equal(forest.predict(shuffled.drop(["x4"])), forest.predict(no_x4))
    with pytest.raises(ValueError, match=r"missing feature columns \['x2'\]"):
        forest.predict(shuffled.drop(["x2"]))
    with pytest.raises(ValueError, match="nulls"):
        forest.predict(pa.table({f"x{i}": pa.array([None, 1.0]) for i in range(5)}))


def test_bad_input_names_the_argument(tmp_path):
    forest = load(tmp_path, random_head(seed=8, n_features=4))
    X = random_rows(6, 10, 4)
    with pytest.raises(ValueError, match="X: expected 4 feature columns, got 3"):
        forest.predict(X[:, :3])
    with pytest.raises(ValueError, match="X: expected a 2-D array"):
        forest.predict(X[0])
    with pytest.raises(TypeError, match="X: expected a numeric dtype"):
        forest.predict(X.astype(str))
    with pytest.raises(TypeError, match="X: expected a 2-D numpy array or an Arrow table"):
        forest.predict(X.tolist())
    with pytest.raises(ValueError, match="output"):
        forest.predict(X, output="probability")
    with pytest.raises(ValueError, match="threads"):
        forest.predict(X, threads=0)
    # Converted, never reinterpreted: float64, integers and strided views.
    np.testing.assert_array_equal(forest.predict(X.astype(np.float64)), forest.predict(X))
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(forest.predict(wide), forest.predict(X))
    assert forest.predict(np.zeros((0, 4), np.float32)).shape == (0,)


def test_summary_and_repr(tmp_path):
    head = random_head(seed=9, n_outputs=3, transform="softmax")
    forest = load(tmp_path, head)
    s = forest.summary()
    assert s["trees"] == head.n_trees and s["nodes"] == head.n_nodes and s["features"] == 12
    assert s["leaves"] == int((head.feature == -1).sum())
    assert forest.output_names == ["score[0]", "score[1]", "score[2]"]
    assert "trees=40" in repr(forest)


# ---- the file ---------------------------------------------------------------

def test_truncated_and_bit_flipped_files_raise(tmp_path):
    path = tmp_path / "f.bin"
    write_forest([random_head(seed=10, n_trees=5)], path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    for cut in sorted(set(rng.integers(0, len(data), 40)) | {0, 8, len(data) - 1}):
        (tmp_path / "cut.bin").write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="cut.bin"):
            engine.Forest.load(tmp_path / "cut.bin")
    for at in rng.integers(0, len(data), 60):
        flipped = bytearray(data)
        flipped[at] ^= 1 << int(rng.integers(8))
        (tmp_path / "flip.bin").write_bytes(bytes(flipped))
        try:
            engine.Forest.load(tmp_path / "flip.bin")  # a flip in padding may be harmless
        except CorruptFileError as e:
            assert "flip.bin" in str(e)


def hostile(head, **changes):
    arrays = {k: v.copy() for k, v in forest_file.concatenate([head]).items()}
    for name, edit in changes.items():
        edit(arrays[name])
    return arrays


def first_split(head):
    """(global index, index within its tree) of the first split node."""
    s = int(np.flatnonzero(head.feature >= 0)[0])
    tree = int(np.searchsorted(head.tree_offsets, s, side="right")) - 1
    return s, s - int(head.tree_offsets[tree])


@pytest.mark.parametrize("case, message", [
    ("child out of range", "children must be distinct nodes after it"),
    ("cycle", "children must be distinct nodes after it"),
    ("orphan", "has no parent or several"),
    ("feature out of range", "feature .* out of range"),
    ("bitset out of range", "categorical bitset out of range"),
    ("NaN leaf", "leaf value is not finite"),
    ("unknown flag", "unknown flag bits"),
    ("offsets", "tree_offsets"),
])
def test_loader_rejects_hostile_arrays_with_valid_checksums(tmp_path, case, message):
    head = random_head(seed=11, n_trees=3, max_depth=4)
    s, local = first_split(head)
    leaf = int(np.flatnonzero(head.feature == -1)[0])
    edits = {
        "child out of range": dict(left=lambda a: a.__setitem__(s, 10**6)),
        "cycle": dict(right=lambda a: a.__setitem__(s, local)),
        # The root's right child leaves its subtree without a parent.
        "orphan": dict(right=lambda a: a.__setitem__(s, int(head.left[s]) + 1)),
        "feature out of range": dict(feature=lambda a: a.__setitem__(s, 12)),
        "bitset out of range": dict(flags=lambda a: a.__setitem__(s, 2), cat_end=lambda a: a.__setitem__(s, 10**9)),
        "NaN leaf": dict(leaf_value=lambda a: a.__setitem__(leaf, np.nan)),
        "unknown flag": dict(flags=lambda a: a.__setitem__(s, 64)),
        "offsets": dict(tree_offsets=lambda a: a.__setitem__(-1, a[-1] + 1)),
    }[case]
    arrays = hostile(head, **edits)
    header = forest_file.Header(
        format=forest_file.FORMAT, format_version=forest_file.FORMAT_VERSION, n_features=12,
        feature_names=head.feature_names, optional_features=[], heads=[forest_file.head_meta(head)])
    path = os.fspath(tmp_path / "hostile.bin")
    forest_file.write(path, header, arrays)
    with pytest.raises(CorruptFileError, match=message):
        engine.Forest.load(path)


def test_foreign_and_inconsistent_headers_raise(tmp_path):
    head = random_head(seed=12, n_trees=2)
    arrays = forest_file.concatenate([head])
    path = os.fspath(tmp_path / "h.bin")
    base = dict(format=forest_file.FORMAT, format_version=forest_file.FORMAT_VERSION, n_features=12,
                feature_names=head.feature_names, optional_features=[],
                heads=[forest_file.head_meta(head)])
    for changes, message in [
        (dict(format_version=99), "format version 99"),
        (dict(feature_names=head.feature_names[:-1]), "11 feature names for 12 features"),
        (dict(optional_features=["nope"]), "optional features"),
        (dict(heads=[msgspec.structs.replace(forest_file.head_meta(head), n_trees=3)]), "trees"),
        (dict(heads=[msgspec.structs.replace(forest_file.head_meta(head), base_score=[0.0, 1.0])]), "base_score"),
    ]:
        forest_file.write(path, forest_file.Header(**(base | changes)), arrays)
        with pytest.raises(CorruptFileError, match=message):
            engine.Forest.load(path)
    index = engine.VectorIndex(4)
    index.add(np.arange(3, dtype=np.uint64), np.eye(3, 4, dtype=np.float32))
    index.save(tmp_path / "index.bin")
    with pytest.raises(CorruptFileError, match="not a rank-engine/forest file"):
        engine.Forest.load(tmp_path / "index.bin")
