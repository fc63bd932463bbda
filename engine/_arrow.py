"""Arrow inputs through the PyCapsule protocol (pyarrow, polars, DuckDB, ...).

The native core reads the Arrow C Data Interface structs itself (no libarrow):
``__arrow_c_array__`` for arrays and record batches, ``__arrow_c_stream__``
for tables, chunked arrays and series. Single-chunk inputs are zero copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine import _core


def _named(error: Exception, name: str) -> Exception:
    return type(error)(f"{name}: {error}")


def to_matrix(obj: Any, name: str) -> np.ndarray:
    """FixedSizeList<float32 | float64>[dim] -> (n, dim) array, zero copy for float32."""
    try:
        return _core.arrow_matrix(obj)
    except (TypeError, ValueError) as e:
        raise _named(e, name) from None


def to_column(obj: Any, name: str) -> np.ndarray:
    """A primitive Arrow array (integer, boolean, floating point) -> 1-D numpy array."""
    try:
        return _core.arrow_column(obj)
    except (TypeError, ValueError) as e:
        raise _named(e, name) from None


def to_columns(obj: Any, name: str) -> dict[str, np.ndarray]:
    """A record batch or table (struct array / stream) -> {column name: 1-D array}."""
    try:
        return dict(_core.arrow_columns(obj))
    except (TypeError, ValueError) as e:
        raise _named(e, name) from None
