"""Query groups: the flat layout shared by engine.losses and engine.metrics.

A batch of queries is stored flat: the items of query ``q`` are
``scores[offsets[q]:offsets[q + 1]]``, with ``offsets[0] == 0`` and
``offsets[-1] == len(scores)``. Callers give either ``offsets`` or
``group_sizes`` (LightGBM's ``group``: the number of items of each query).
Every query has at least one item.

Checks name the argument and say what was expected. Conversions that keep
values exact are made (float16 -> float32 scores, integer labels -> float64,
integral float group sizes as ``np.loadtxt`` reads them -> int64); anything
else is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_1d(obj: Any, name: str) -> np.ndarray:
    arr = np.asarray(obj)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got {arr.ndim}-D")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def as_scores(obj: Any, name: str = "scores") -> np.ndarray:
    """Finite float32 or float64 scores, C-contiguous (float32 stays float32)."""
    arr = _as_1d(obj, name)
    dtype = np.float32 if arr.dtype in (np.float16, np.float32) else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(arr)
    if not finite.all():
        i = _first_bad(~finite)
        raise ValueError(f"{name}: NaN or infinity at index {i} ({arr[i]})")
    return arr


def as_labels(obj: Any, n: int, name: str = "labels") -> np.ndarray:
    """Finite, non-negative float64 labels, one per score."""
    arr = _as_1d(obj, name)
    if len(arr) != n:
        raise ValueError(f"{name}: expected {n} values (one per score), got {len(arr)}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}: expected finite values >= 0, got {arr[i]} at index {i}")
    return arr


def _as_integers(obj: Any, name: str) -> np.ndarray:
    arr = _as_1d(obj, name)
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise TypeError(f"{name}: expected integers, got non-integral values of dtype {arr.dtype}")
    elif arr.dtype.kind == "b":
        raise TypeError(f"{name}: expected integers, got dtype bool")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: values must fit in int64")
    return arr.astype(np.int64)


def as_offsets(offsets: Any, group_sizes: Any, n: int) -> np.ndarray:
    """int64 offsets (length n_queries + 1) from exactly one of offsets / group_sizes."""
    if (offsets is None) == (group_sizes is None):
        raise TypeError("offsets: give exactly one of offsets and group_sizes")
    if group_sizes is not None:
        sizes = _as_integers(group_sizes, "group_sizes")
        if sizes.size == 0 or (sizes <= 0).any():
            raise ValueError("group_sizes: expected one or more sizes, each >= 1")
        if int(sizes.sum()) != n:
            raise ValueError(f"group_sizes: sizes add up to {int(sizes.sum())}, expected {n} (one per score)")
        out = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=out[1:])
        return out
    out = _as_integers(offsets, "offsets")
    if len(out) < 2:
        raise ValueError(f"offsets: expected at least 2 values (one query), got {len(out)}")
    if out[0] != 0 or out[-1] != n:
        raise ValueError(
            f"offsets: must start at 0 and end at {n} (the number of scores), got {out[0]} .. {out[-1]}")
    steps = np.diff(out)
    if (steps <= 0).any():
        q = _first_bad(steps <= 0)
        raise ValueError(f"offsets: must be strictly increasing, got {out[q]} then {out[q + 1]} (query {q})")
    return np.ascontiguousarray(out)


def ranking_inputs(scores: Any, labels: Any, offsets: Any, group_sizes: Any):
    """(scores, labels, offsets) checked and converted for the kernels."""
    scores = as_scores(scores)
    labels = as_labels(labels, len(scores))
    return scores, labels, as_offsets(offsets, group_sizes, len(scores))
