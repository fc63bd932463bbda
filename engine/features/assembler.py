"""engine.FeatureAssembler: a FeatureSpec compiled against an item table, assembling
float32 feature rows online (one request x its candidates) and offline (a logged
table of (request, item) rows), both through one native per-row routine, so the
two give the same bytes for the same inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine import _arrow, _core
from engine.features.spec import ITEM, REQUEST, FeatureSpec, Lookup


class FeatureAssembler:
    """Builds feature rows for ``spec`` from ``items`` (and ``item_vectors``).

    ``items``: an Arrow table with a column per item column the spec reads
    (pyarrow Table / RecordBatch, polars DataFrame, anything with
    ``__arrow_c_stream__`` or ``__arrow_c_array__``); row i is item row i.
    Columns are integers, unsigned integers, floats or bools; categorical
    sources (hashed, cross, match, lookup keys) need integers or bools. Nulls
    are missing values (the feature's default, or the missing category). A
    missing column is a ValueError, a wrong type a TypeError, each naming the
    column and the feature that reads it. An ``item_id`` column, if present,
    lets offline tables name items by id.

    ``item_vectors``: float32 ``(n_items, dim)`` (numpy or an Arrow
    FixedSizeList), required when the spec has a dot feature, else ignored;
    NaN or infinity is refused. With ``vector_rows`` (int32, one per item),
    item i's vector is row ``vector_rows[i]`` of ``item_vectors`` (any
    number of rows) and -1 a zero vector: a ranker passes the vector index's
    own rows this way (`engine.bundle.serving`).

    Construction copies what the spec reads into a native store (one record
    of 8-byte values per item, plus the vectors); the assembler is immutable
    and may be shared by any number of threads. ``assemble`` and
    ``assemble_offline`` release the GIL while they compute.
    """

    __slots__ = ("_native", "_spec", "_names")

    def __init__(self, spec: FeatureSpec, items: Any, item_vectors: Any = None, *,
                 vector_rows: np.ndarray | None = None) -> None:
        if not isinstance(spec, FeatureSpec):
            raise TypeError(f"spec: expected a FeatureSpec, got {type(spec).__name__}")
        vectors = None if item_vectors is None else _as_vectors(item_vectors)
        self._native = _core.FeatureAssembler(_native_features(spec), items, vectors, vector_rows)
        self._spec = spec
        self._names = tuple(spec.names)

    def assemble(self, rows: Any, request: dict, out: np.ndarray | None = None) -> np.ndarray:
        """Feature rows for one request and its candidates.

        ``rows``: int64 item row indices ``(n,)`` (other integer arrays and
        lists are converted). ``request``: a dict; the spec's fields are read
        by name, anything else is ignored:

        - scalar fields: int, float, bool, str (numpy scalars too). Numbers
          feed numeric and bucket features; int, bool and str are categories.
          A missing key or None is missing; a value of the wrong kind (str for
          a number, float for a category, a dict for a scalar) is a TypeError.
        - lookup fields: ``dict[int, float]`` (None values are missing).
        - ``"user_vector"``: float ``(dim,)`` numpy array, or None / absent
          (dot features give 0); NaN, infinity or another length is a ValueError.

        Returns float32 ``(n, n_features)``, C-contiguous, or writes into
        ``out`` (float32, C-contiguous, that shape) and returns it. A row out
        of range is a ValueError.
        """
        if type(rows) is not np.ndarray or rows.dtype != np.int64 or rows.ndim != 1 \
                or not rows.flags.c_contiguous:
            rows = _as_rows(rows)
        if type(request) is not dict:
            request = _as_request(request)
        return self._native.assemble(rows, request, out)

    def assemble_offline(self, table: Any, threads: int = 1) -> np.ndarray:
        """Feature rows for a logged table, one row per (request, item) pair.

        ``table`` (pyarrow, polars, any Arrow stream) holds:

        - ``item_row`` (integer): the row in the item table; or, when there is
          no ``item_row`` column, ``item_id`` (integer), looked up in the item
          table's ``item_id`` column (which must then be unique and non-null);
        - one column per request field the spec reads (``request_fields``),
          named as the field: integers, floats, bools or strings ('string',
          'large_string' and polars' string views), null where the request
          had no value; Arrow's null type means missing on every row. Lookup
          fields are ``map<int64, float64>`` or ``list<struct<key: int64,
          value: float64>>`` (polars' form), a null row meaning no map;
        - ``user_vector``: ``FixedSizeList<float32 | float64>[dim]``, null
          where the request had none (only when the spec has a dot feature).

        Other columns are ignored. Types are checked as online (a float
        column where a category is needed is a TypeError). ``threads`` splits
        the rows. Returns float32 ``(n, n_features)``, equal byte for byte to
        what ``assemble`` gives for the same request values and items.
        """
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
        return self._native.assemble_offline(table, int(threads))

    @property
    def spec(self) -> FeatureSpec:
        return self._spec

    @property
    def names(self) -> list[str]:
        """Output column names, in order (the spec's)."""
        return list(self._names)

    @property
    def n_features(self) -> int:
        return len(self._names)

    @property
    def n_items(self) -> int:
        return self._native.n_items

    @property
    def request_fields(self) -> list[str]:
        """Request fields read, in the spec's order of first use."""
        return list(self._native.request_fields)

    @property
    def item_columns(self) -> list[str]:
        return list(self._native.item_columns)

    def __repr__(self) -> str:
        return (f"FeatureAssembler(features={self.n_features}, items={self.n_items}, "
                f"request_fields={self.request_fields})")


def _native_features(spec: FeatureSpec) -> list[tuple]:
    """(kind, name, [(origin, name)], buckets, boundaries, default) per feature."""

    def split(source: str) -> tuple[str, str]:
        if source.startswith(ITEM):
            return ("item", source[len(ITEM):])
        return ("request", source[len(REQUEST):])

    out = []
    for f in spec.features:
        sources = [split(s) for s in f.sources]
        if isinstance(f, Lookup):
            sources = [("request", f.field), split(f.key)]
        out.append((f.kind, f.name, sources, int(getattr(f, "buckets", 0)),
                    list(getattr(f, "boundaries", ())), float(getattr(f, "default", 0.0))))
    return out


def _as_vectors(obj: Any) -> np.ndarray:
    if not isinstance(obj, np.ndarray) and (hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__")):
        obj = _arrow.to_matrix(obj, "item_vectors")
    arr = np.asarray(obj)
    if arr.dtype.kind != "f":
        raise TypeError(f"item_vectors: expected floating-point values, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"item_vectors: expected a 2-D array (n_items, dim), got {arr.ndim}-D")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_rows(rows: Any) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.ndim != 1:
        raise ValueError(f"rows: expected a 1-D array of item rows, got {arr.ndim}-D")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            return np.empty(0, np.int64)
        raise TypeError(f"rows: expected integer item rows, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"rows: {int(arr.max())} is out of range")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_request(request: Any) -> dict:
    if request is None:
        return {}
    if isinstance(request, Mapping):
        return dict(request)
    raise TypeError(f"request: expected a dict of field values, got {type(request).__name__}")
