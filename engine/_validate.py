"""Argument checks shared by the index front-ends.

Every check names the argument and says what was expected. Conversions that
keep values exact (float64 -> float32 vectors, int32 -> uint64 ids, a
non-contiguous view -> a contiguous copy) are made; anything else is refused,
never reinterpreted.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal

import msgspec
import numpy as np

from engine import _arrow

MAX_ID = 2**63 - 1


class AttributeColumn(msgspec.Struct, forbid_unknown_fields=True):
    """An attribute column as index files record it."""

    name: str
    kind: Literal["int", "bool"]


def _is_arrow(obj: Any) -> bool:
    return not isinstance(obj, np.ndarray) and (
        hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__")
    )


def as_count(value: Any, name: str, minimum: int = 1) -> int:
    if type(value) is int and value >= minimum:  # the per-request case, without the ABC check below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def as_matrix(obj: Any, dim: int, name: str, check_finite: bool = True) -> np.ndarray:
    """A C-contiguous float32 (n, dim) array of finite values; 1-D means one row.

    ``check_finite=False`` leaves the NaN / infinity check to the native call
    (which makes it without a temporary array).
    """
    if (type(obj) is np.ndarray and obj.dtype == np.float32 and obj.flags.c_contiguous
            and 1 <= obj.ndim <= 2 and obj.shape[-1] == dim and not check_finite):
        return obj if obj.ndim == 2 else obj.reshape(1, dim)  # the per-request fast path
    if _is_arrow(obj):
        arr = _arrow.to_matrix(obj, name)
    else:
        arr = np.asarray(obj)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point values, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 1-D or 2-D array, got {arr.ndim}-D")
    if arr.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} columns (the index dim), got {arr.shape[1]}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not check_finite:
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name}: row {row} contains NaN or infinity")
    return arr


def as_ids(obj: Any, name: str = "ids") -> np.ndarray:
    """uint64 ids in [0, 2**63 - 1] from any integer array."""
    arr = _arrow.to_column(obj, name) if _is_arrow(obj) else np.asarray(obj)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got {arr.ndim}-D")
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":  # np.array([]) is float64
            return np.empty(0, dtype=np.uint64)
        raise TypeError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name}: ids must be >= 0, got {int(arr.min())}")
    out = np.ascontiguousarray(arr, dtype=np.uint64)
    if out.size and out.max() > MAX_ID:
        raise ValueError(f"{name}: ids must be <= 2**63 - 1, got {int(out.max())}")
    return out


def unique_ids(ids: np.ndarray, name: str = "ids") -> None:
    s = np.sort(ids)
    dup = s[1:] == s[:-1]
    if dup.any():
        raise ValueError(f"{name}: duplicate id {int(s[1:][dup][0])}")


def as_attributes(obj: Any, n: int, columns: dict[str, str] | None) -> tuple[dict[str, str], np.ndarray]:
    """Attribute columns -> ({name: 'int' | 'bool'}, int64 (columns, n) array).

    ``columns`` is the schema the index already has (None before the first add).
    """
    if obj is None:
        cols: dict[str, np.ndarray] = {}
    elif _is_arrow(obj):
        cols = _arrow.to_columns(obj, "attributes")
    elif isinstance(obj, dict):
        cols = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise TypeError(f"attributes: column names must be str, got {type(key).__name__}")
            cols[key] = _arrow.to_column(value, f"attributes[{key!r}]") if _is_arrow(value) else np.asarray(value)
    else:
        raise TypeError(
            "attributes: expected a dict of arrays or an Arrow table/record batch, "
            f"got {type(obj).__name__}"
        )
    kinds: dict[str, str] = {}
    block = np.empty((len(cols), n), dtype=np.int64)
    for i, (key, values) in enumerate(cols.items()):
        where = f"attributes[{key!r}]"
        if values.ndim != 1 or len(values) != n:
            raise ValueError(f"{where}: expected {n} values (one per id), got shape {values.shape}")
        if values.dtype.kind == "b":
            kinds[key] = "bool"
        elif values.dtype.kind in "iu":
            if values.dtype == np.uint64 and values.size and values.max() > MAX_ID:
                raise ValueError(f"{where}: values must fit in int64")
            kinds[key] = "int"
        else:
            raise TypeError(f"{where}: expected integer or boolean values, got dtype {values.dtype}")
        block[i] = values
    if columns is not None and kinds != columns:
        raise ValueError(
            f"attributes: the index has columns {columns}; this add gives {kinds or 'none'}"
        )
    return kinds, block


def as_filter(
    filter: Any, columns: dict[str, str]
) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
    """A filter -> (conditions [(column, int64 values)], allow-list of ids or None)."""
    if filter is None:
        return [], None
    if isinstance(filter, dict):
        conditions = []
        for key, value in filter.items():
            if key not in columns:
                known = ", ".join(columns) or "none"
                raise ValueError(f"filter: unknown attribute {key!r} (the index has: {known})")
            conditions.append((key, filter_values(key, value, columns[key])))
        return conditions, None
    if isinstance(filter, (np.ndarray, list, tuple)) or _is_arrow(filter):
        return [], as_ids(filter, "filter")
    raise TypeError(
        "filter: expected a dict {attribute: value or values} or an array of allowed ids, "
        f"got {type(filter).__name__}"
    )


def filter_values(key: str, value: Any, kind: str) -> np.ndarray:
    """Filter values as int64, checked in one vectorised pass (store pages may
    pass thousands of merchant ids)."""
    # One Python scalar of the attribute's kind (a request's store or stock
    # filter): one small array, without the general path's conversions and checks.
    plain = type(value) is bool if kind == "bool" else (type(value) is int and -(2**63) <= value < 2**63)
    if plain:
        return np.array([value], dtype=np.int64)
    where = f"filter[{key!r}]"
    if isinstance(value, (set, frozenset)):
        value = list(value)
    arr = np.asarray(value)
    if arr.ndim > 1:
        raise ValueError(f"{where}: expected a value or a 1-D list of values")
    arr = arr.reshape(-1)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if kind == "bool":
        if arr.dtype.kind != "b":
            raise TypeError(f"{where}: attribute is boolean, got {arr.reshape(-1)[0]!r}")
        return arr.astype(np.int64)
    if arr.dtype.kind == "O":  # Python ints beyond 64 bits, or mixed types
        for v in arr:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{where}: attribute is integer, got {v!r}")
            if not -(2**63) <= int(v) <= MAX_ID:
                raise ValueError(f"{where}: value {v} does not fit in int64")
        raise TypeError(f"{where}: expected integer values")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{where}: attribute is integer, got {arr[0]!r} ({arr.dtype})")
    if arr.dtype == np.uint64 and arr.max() > MAX_ID:
        raise ValueError(f"{where}: value {int(arr.max())} does not fit in int64")
    return arr.astype(np.int64)
