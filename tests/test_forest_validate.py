"""validate_head rejects every broken invariant with a ValueError naming the
field (and never crashes on hostile arrays); the reference evaluator follows
the canonical rules of engine.forest.ir on a hand-built head."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.forest.ir import (
    CAT_INT_CAST,
    CATEGORICAL,
    DEFAULT_LEFT,
    ZERO_IS_MISSING,
    HeadIR,
)
from engine.forest.reference import reference_predict
from engine.forest.validate_ir import validate_head

NAN = np.nan


def small_head(**changes) -> HeadIR:
    """Two trees over 3 features.

    Tree 0: node 0 "f0 < 0.5" (missing and zero band go left) -> leaf 1 (1.0)
    or node 2, "trunc(f1) in {0, 3, 33}" with CAT_INT_CAST (missing goes
    right) -> leaf 3 (10.0) or leaf 4 (20.0).
    Tree 1: a single leaf 100.0.
    """
    fields = {
        "name": "score", "n_features": 3, "n_outputs": 1, "base_score": np.array([0.5]), "transform": "identity",
        "accumulate": "f64",
        "tree_offsets": np.array([0, 5, 6], dtype=np.int64),
        "tree_output": np.array([0, 0], dtype=np.int32),
        "leaf_width": 1,
        "feature": np.array([0, -1, 1, -1, -1, -1], dtype=np.int32),
        "threshold": np.array([0.5, NAN, NAN, NAN, NAN, NAN], dtype=np.float32),
        "left": np.array([1, -1, 3, -1, -1, -1], dtype=np.int32),
        "right": np.array([2, -1, 4, -1, -1, -1], dtype=np.int32),
        "flags": np.array([DEFAULT_LEFT | ZERO_IS_MISSING, 0, CATEGORICAL | CAT_INT_CAST, 0, 0, 0], dtype=np.uint8),
        "cat_begin": np.array([0, 0, 0, 0, 0, 0], dtype=np.int64),
        "cat_end": np.array([0, 0, 2, 0, 0, 0], dtype=np.int64),
        "cat_words": np.array([0b1001, 0b10], dtype=np.uint32),
        "leaf_value": np.array([0, 1.0, 0, 10.0, 20.0, 100.0]),
        "feature_names": ["a", "b", "c"],
    }
    fields.update(changes)
    return HeadIR(**fields)


def test_the_small_head_is_valid():
    validate_head(small_head())


def _set(field: str, index: int, value):
    def corrupt(head: HeadIR) -> HeadIR:
        array = getattr(head, field).copy()
        array[index] = value
        return dataclasses.replace(head, **{field: array})
    return corrupt


def _replace(**changes):
    return lambda head: dataclasses.replace(head, **changes)


# name: (corruption, the field the message must name)
CORRUPTIONS = {
    "empty_name": (_replace(name=""), "name"),
    "n_features_zero": (_replace(n_features=0), "n_features"),
    "n_outputs_bool": (_replace(n_outputs=True), "n_outputs"),
    "leaf_width": (_replace(leaf_width=2), "leaf_width"),
    "transform": (_replace(transform="exp"), "transform"),
    "softmax_one_output": (_replace(transform="softmax"), "transform"),
    "accumulate": (_replace(accumulate="f16"), "accumulate"),
    "sigmoid_alpha_zero": (_replace(sigmoid_alpha=0.0), "sigmoid_alpha"),
    "sigmoid_alpha_nan": (_replace(sigmoid_alpha=float("nan")), "sigmoid_alpha"),
    "feature_names_length": (_replace(feature_names=["a"]), "feature_names"),
    "feature_names_duplicate": (_replace(feature_names=["a", "b", "a"]), "feature_names"),
    "feature_names_type": (_replace(feature_names=("a", "b", "c")), "feature_names"),
    "source_type": (_replace(source=None), "source"),
    "dtype": (lambda h: dataclasses.replace(h, left=h.left.astype(np.int64)), "left"),
    "not_an_array": (lambda h: dataclasses.replace(h, right=h.right.tolist()), "right"),
    "two_dimensional": (lambda h: dataclasses.replace(h, flags=h.flags.reshape(2, 3)), "flags"),
    "object_array": (_replace(cat_words=np.array([None], dtype=object)), "cat_words"),
    "base_score_length": (_replace(base_score=np.zeros(2)), "base_score"),
    "base_score_nan": (_replace(base_score=np.array([NAN])), "base_score"),
    "offsets_empty": (_replace(tree_offsets=np.zeros(0, np.int64)), "tree_offsets"),
    "offsets_start": (_set("tree_offsets", 0, 1), "tree_offsets"),
    "offsets_negative": (_replace(tree_offsets=np.array([0, -5, 6], np.int64)), "tree_offsets"),
    "offsets_decreasing": (_replace(tree_offsets=np.array([0, 6, 5], np.int64)), "tree_offsets"),
    "offsets_repeated": (_replace(tree_offsets=np.array([0, 5, 5, 6], np.int64),
                                  tree_output=np.zeros(3, np.int32)), "tree_offsets"),
    "offsets_end": (_set("tree_offsets", 2, 7), "tree_offsets"),
    "offsets_huge": (_set("tree_offsets", 1, 2**62), "tree_offsets"),
    "node_array_length": (lambda h: dataclasses.replace(h, threshold=h.threshold[:5]), "threshold"),
    "leaf_value_length": (lambda h: dataclasses.replace(h, leaf_value=h.leaf_value[:5]), "leaf_value"),
    "tree_output_length": (_replace(tree_output=np.zeros(3, np.int32)), "tree_output"),
    "tree_output_range": (_set("tree_output", 1, 1), "tree_output"),
    "tree_output_negative": (_set("tree_output", 1, -2), "tree_output"),
    "feature_range": (_set("feature", 0, 3), "feature"),
    "feature_below_minus_one": (_set("feature", 0, -2), "feature"),
    "unknown_flag": (_set("flags", 0, 16), "flags"),
    "leaf_with_child": (_set("left", 1, 2), "left"),
    "leaf_with_flags": (_set("flags", 1, DEFAULT_LEFT), "flags"),
    "leaf_with_threshold": (_set("threshold", 1, 0.0), "threshold"),
    "leaf_value_nan": (_set("leaf_value", 3, NAN), "leaf_value"),
    "leaf_value_inf": (_set("leaf_value", 5, np.inf), "leaf_value"),
    "split_with_value": (_set("leaf_value", 0, 1.0), "leaf_value"),
    "child_not_above_parent": (_set("left", 2, 1), "left"),
    "child_is_itself": (_set("right", 2, 2), "right"),
    "child_beyond_tree": (_set("right", 2, 5), "right"),
    "child_negative": (_set("right", 0, -7), "right"),
    "two_parents": (_set("right", 2, 3), "left"),
    "numeric_threshold_nan": (_set("threshold", 0, NAN), "threshold"),
    "categorical_threshold": (_set("threshold", 2, 1.0), "threshold"),
    "cat_int_cast_on_numeric": (_set("flags", 0, CAT_INT_CAST), "flags"),
    "numeric_with_category_range": (_set("cat_end", 0, 1), "cat_begin"),
    "category_range_empty": (_set("cat_end", 2, 0), "cat_begin"),
    "category_range_beyond_words": (_set("cat_end", 2, 3), "cat_begin"),
    "category_range_negative": (_set("cat_begin", 2, -1), "cat_begin"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_validate_head_names_the_broken_field(case):
    corrupt, field = CORRUPTIONS[case]
    with pytest.raises(ValueError, match=rf"^{field}: "):
        validate_head(corrupt(small_head()))


def test_validate_head_rejects_what_is_not_a_head():
    with pytest.raises(ValueError, match="head: expected a HeadIR"):
        validate_head({"name": "score"})


def test_vector_leaves_need_every_tree_to_be_vector():
    head = small_head(n_outputs=2, leaf_width=2, base_score=np.zeros(2),
                      tree_output=np.array([-1, -1], dtype=np.int32),
                      leaf_value=np.repeat(small_head().leaf_value, 2))
    validate_head(head)
    with pytest.raises(ValueError, match="^tree_output: tree 1 has 0; must be -1"):
        validate_head(dataclasses.replace(head, tree_output=np.array([-1, 0], dtype=np.int32)))


def test_reference_follows_the_canonical_rules():
    b = np.float32(1e-35)
    rows = np.array([
        [0.4, NAN, 0],    # numeric left -> 1
        [0.5, 0, 0],      # 0.5 is not < 0.5 -> categorical node, category 0 -> 10
        [NAN, 1, 0],      # missing goes left -> 1
        [b, 1, 0],        # zero band is missing -> 1
        [np.nextafter(b, np.float32(1)), 1, 0],  # just above the band: 1.4e-35 < 0.5 -> 1
        [1, -0.5, 0],     # CAT_INT_CAST: (int)-0.5 is category 0 -> 10
        [1, -1, 0],       # no category -> 20
        [1, 3.9, 0],      # category 3 -> 10
        [1, 33, 0],       # category 33 (second word) -> 10
        [1, 64, 0],       # beyond the bitset -> 20
        [1, NAN, 0],      # missing, default right -> 20
        [1, np.inf, 0],   # -> 20
        [np.inf, 2, 0],   # inf is not < 0.5; category 2 is not listed -> 20
        [-np.inf, 2, 0],  # -> 1
    ], dtype=np.float32)
    expected = 0.5 + 100 + np.array([1, 10, 1, 1, 1, 10, 20, 10, 10, 20, 20, 20, 20, 1])
    np.testing.assert_array_equal(reference_predict(small_head(), rows), expected.astype(np.float32))
    without_int_cast = small_head(flags=small_head().flags & ~np.uint8(CAT_INT_CAST))
    assert reference_predict(without_int_cast, rows[5:6])[0] == np.float32(120.5)  # XGBoost: -0.5 is no category


def test_reference_accumulates_in_the_head_precision():
    head = small_head(base_score=np.array([16777216.0]), leaf_value=np.array([0, 1.0, 0, 1.0, 1.0, 1.0]))
    rows = np.array([[0, 0, 0]], dtype=np.float32)
    assert reference_predict(head, rows)[0] == np.float32(16777218)  # f64: 2**24 + 1 + 1
    f32 = dataclasses.replace(head, accumulate="f32")
    assert reference_predict(f32, rows)[0] == np.float32(16777216)  # f32: each + 1 rounds away


def test_reference_transforms():
    rows = np.array([[0, 0, 0]], dtype=np.float32)  # raw 101.5
    sigmoid = small_head(transform="sigmoid", sigmoid_alpha=0.01)
    np.testing.assert_allclose(reference_predict(sigmoid, rows, "value"), 1 / (1 + np.exp(-1.015)), rtol=1e-6)
    two = small_head(n_outputs=2, base_score=np.array([0.0, 1.0]), transform="softmax",
                     tree_output=np.array([0, 1], dtype=np.int32))
    raw = reference_predict(two, rows)
    np.testing.assert_array_equal(raw, [[1.0, 101.0]])
    np.testing.assert_allclose(reference_predict(two, rows, "value"), [[np.exp(-100) / (1 + np.exp(-100)),
                                                                        1 / (1 + np.exp(-100))]], rtol=1e-6, atol=1e-30)
    with pytest.raises(ValueError, match="output: expected one of"):
        reference_predict(two, rows, "margin")
    with pytest.raises(ValueError, match=r"X: expected shape \(n, 3\)"):
        reference_predict(two, rows[:, :2])


ARRAY_FIELDS = ["tree_offsets", "tree_output", "feature", "threshold", "left", "right", "flags",
                "cat_begin", "cat_end", "cat_words", "leaf_value", "base_score"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(ARRAY_FIELDS), index=st.integers(0, 7),
       value=st.one_of(st.integers(-2**40, 2**40), st.sampled_from([NAN, np.inf, -1, 0, 1, 2, 5, 6, 2**31 - 1])),
       keep_dtype=st.booleans())
def test_hostile_arrays_get_a_value_error_or_a_usable_head(field, index, value, keep_dtype):
    """No corruption crashes validate_head; a head it accepts evaluates."""
    array = getattr(small_head(), field)
    # Either the same dtype with one value changed, or one value appended
    # (which changes the length and, often, the dtype).
    corrupt = array.copy() if keep_dtype else np.array(array.tolist() + [value])
    if keep_dtype and index < len(corrupt):
        with np.errstate(invalid="ignore", over="ignore"):
            try:
                corrupt[index] = value
            except (OverflowError, ValueError):  # the value does not fit the dtype
                return
    head = dataclasses.replace(small_head(), **{field: corrupt})
    try:
        validate_head(head)
    except ValueError:
        return
    reference_predict(head, np.zeros((2, 3), dtype=np.float32))
