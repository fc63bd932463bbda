"""The Forest file: the concatenated canonical arrays of every head (ir.py)
in safetensors, plus a versioned msgspec header in ``__metadata__``. Writing
goes through a temporary file, fsync and rename (engine._safetensors); the
native core re-validates every index on load."""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from engine import _safetensors
from engine.forest.ir import CATEGORICAL, HeadIR

FORMAT = "rank-engine/forest"
FORMAT_VERSION = 1
_HEADER_KEY = "rank_engine.forest"

# name -> dtype of every array the file holds (the native Forest's inputs).
ARRAYS = {
    "tree_offsets": np.int64, "tree_output": np.int32, "feature": np.int32,
    "threshold": np.float32, "left": np.int32, "right": np.int32, "flags": np.uint8,
    "cat_begin": np.int64, "cat_end": np.int64, "cat_words": np.uint32, "leaf_value": np.float64,
}


class HeadMeta(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    n_outputs: int
    transform: Literal["identity", "sigmoid", "softmax"]
    sigmoid_alpha: float
    accumulate: Literal["f32", "f64"]
    n_trees: int
    leaf_width: int
    base_score: list[float]
    source: str


class Header(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    format_version: int
    n_features: int
    feature_names: list[str]
    optional_features: list[str]
    heads: list[HeadMeta]


def head_meta(head: HeadIR) -> HeadMeta:
    return HeadMeta(
        name=head.name, n_outputs=head.n_outputs, transform=head.transform,
        sigmoid_alpha=float(head.sigmoid_alpha), accumulate=head.accumulate, n_trees=head.n_trees,
        leaf_width=head.leaf_width, base_score=[float(b) for b in head.base_score], source=head.source,
    )


def concatenate(heads: list[HeadIR]) -> dict[str, np.ndarray]:
    """The file's arrays: every head's arrays one after the other, with tree
    offsets and bitset ranges shifted to index the concatenation."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    nodes = words = 0
    for h in heads:
        parts["tree_offsets"].append(np.asarray(h.tree_offsets[:-1], np.int64) + nodes)
        shift = np.where(h.flags & CATEGORICAL, words, 0)  # others keep the empty range [0, 0)
        parts["cat_begin"].append(np.asarray(h.cat_begin, np.int64) + shift)
        parts["cat_end"].append(np.asarray(h.cat_end, np.int64) + shift)
        for name in ("tree_output", "feature", "threshold", "left", "right", "flags", "cat_words", "leaf_value"):
            parts[name].append(getattr(h, name))
        nodes += h.n_nodes
        words += len(h.cat_words)
    parts["tree_offsets"].append(np.array([nodes], np.int64))
    return {name: np.ascontiguousarray(np.concatenate(parts[name]), dtype)
            for name, dtype in ARRAYS.items()}


def write(path: str, header: Header, arrays: dict[str, np.ndarray]) -> None:
    _safetensors.write_versioned(path, arrays, _HEADER_KEY, header)


def read(path: str, *, mmap: bool = True, verify: bool = True) -> tuple[Header, dict[str, np.ndarray]]:
    arrays, header = _safetensors.read_versioned(path, _HEADER_KEY, Header, FORMAT, FORMAT_VERSION,
                                                  mmap=mmap, verify=verify)
    return header, arrays
