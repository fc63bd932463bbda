"""The compiler's intermediate form of a tree ensemble: what every model parser
produces and what the Forest file stores, in one canonical split semantics so
that the native kernel has a single rule to evaluate.

Canonical semantics of a node (tree-local index i; root is 0):

- leaf when ``feature[i] == -1``; its values are ``leaf_value[i * leaf_width:
  (i + 1) * leaf_width]`` (``leaf_width`` is 1, or the number of outputs for
  vector-leaf trees).
- missing input: ``x`` is NaN, or ``flags & ZERO_IS_MISSING`` and
  ``|x| <= 1e-35f`` (the float32 nearest 1e-35: LightGBM's kZeroThreshold
  and ``missing_type=Zero``). A missing input goes to
  ``left[i]`` when ``flags & DEFAULT_LEFT``, else to ``right[i]``.
- numeric split (no CATEGORICAL flag): go left iff ``x < threshold[i]``
  (float32 compared with float32). Parsers convert their library's rule:
  XGBoost's ``x < split_condition`` is already this; LightGBM's double
  ``x <= t`` becomes ``threshold = nextafter(largest float32 <= t, +inf)``,
  which is exact for every float32 ``x``.
- categorical split (CATEGORICAL flag): ``c = trunc(x)``; go left iff
  ``0 <= x < 32 * n_words`` and bit ``c`` of the node's bitset is set; every
  other non-missing value (negative, too large, not in the set) goes right.
  The bitset is ``cat_words[cat_begin[i]:cat_end[i]]`` (uint32 words, bit c
  is ``word[c // 32] >> (c % 32) & 1``). Parsers whose library sends the
  listed categories right swap the children. With the CAT_INT_CAST flag the
  lower bound is ``-1 < x`` instead of ``0 <= x``: LightGBM takes the
  category as C's ``(int)x``, so any x in (-1, 0) is category 0 there, while
  XGBoost sends every x < 0 to the unlisted side.
- children always have larger indices than their parent (so every tree is
  acyclic by construction, and the file loader checks it).

Each tree adds its leaf value into output column ``tree_output[t]`` (or into
all ``n_outputs`` columns, in order, for vector-leaf trees, ``tree_output[t] ==
-1``). The raw score of output j is ``base_score[j] + sum of tree values``,
accumulated in tree order in ``accumulate`` precision ("f32": XGBoost's
float sum; "f64": LightGBM's double sum). ``transform`` maps raw scores to
values: "identity", "sigmoid" (1 / (1 + exp(-s * sigmoid_alpha))) or
"softmax" over the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_LEFT = 1
CATEGORICAL = 2
ZERO_IS_MISSING = 4
CAT_INT_CAST = 8  # categorical nodes only; see the docstring
KNOWN_FLAGS = DEFAULT_LEFT | CATEGORICAL | ZERO_IS_MISSING | CAT_INT_CAST

TRANSFORMS = ("identity", "sigmoid", "softmax")
ACCUMULATE = ("f32", "f64")


@dataclass(frozen=True)
class HeadIR:
    """One model: its trees (node arrays concatenated tree after tree) and how
    its raw scores become values."""

    name: str
    n_features: int  # the model's input width (feature ids are below it)
    n_outputs: int
    base_score: np.ndarray  # float64 (n_outputs,), margin space
    transform: str  # one of TRANSFORMS
    accumulate: str  # one of ACCUMULATE
    tree_offsets: np.ndarray  # int64 (n_trees + 1,): tree t's nodes are [off[t], off[t+1])
    tree_output: np.ndarray  # int32 (n_trees,): output column, or -1 for vector leaves
    leaf_width: int  # 1, or n_outputs when any tree has vector leaves
    feature: np.ndarray  # int32 (n_nodes,), -1 for leaves
    threshold: np.ndarray  # float32 (n_nodes,), numeric splits only (NaN elsewhere)
    left: np.ndarray  # int32 (n_nodes,), tree-local, -1 for leaves
    right: np.ndarray  # int32 (n_nodes,), tree-local, -1 for leaves
    flags: np.ndarray  # uint8 (n_nodes,), DEFAULT_LEFT | CATEGORICAL | ZERO_IS_MISSING | CAT_INT_CAST
    cat_begin: np.ndarray  # int64 (n_nodes,), into cat_words (0 for non-categorical)
    cat_end: np.ndarray  # int64 (n_nodes,)
    cat_words: np.ndarray  # uint32 (n_words,)
    leaf_value: np.ndarray  # float64 (n_nodes * leaf_width,), 0 for split nodes
    sigmoid_alpha: float = 1.0
    source: str = ""  # e.g. "xgboost 3.2.0 binary:logistic", for the summary and errors
    # Every feature the model was trained on, by index; may be empty when the
    # model file carries no names (the compiler then asks for feature_names).
    feature_names: list[str] = field(default_factory=list)

    @property
    def n_trees(self) -> int:
        return len(self.tree_offsets) - 1

    @property
    def n_nodes(self) -> int:
        return int(self.tree_offsets[-1])
