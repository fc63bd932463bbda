"""engine.Forest: a compiled tree ensemble evaluated by the native core."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from engine import _arrow, _core
from engine.errors import CorruptFileError
from engine.forest import forest_file

OUTPUTS = ("value", "raw")


class Forest:
    """Tree-ensemble heads compiled by ``engine.compile_forest``, evaluated in
    one pass over the rows.

    Immutable once loaded: one Forest may serve any number of threads, and
    ``predict`` releases the GIL while it runs.
    """

    __slots__ = ("_native", "_header", "_path", "_n_features")

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True, verify: bool = True) -> Forest:
        """Load and validate a Forest file.

        Every structural invariant is checked (child indices in range and
        after their parent, one parent per node, feature ids below the
        feature count, bitset ranges, heads consistent with the arrays),
        with ``verify=False`` too; ``verify`` adds the per-array CRC-32.
        A truncated, corrupt or foreign file raises ``CorruptFileError``.
        """
        path = os.fspath(path)
        header, arrays = forest_file.read(path, mmap=mmap, verify=verify)
        _check_header(path, header)
        stray = sorted(set(arrays) - set(forest_file.ARRAYS))
        if stray:
            raise CorruptFileError(f"{path}: unexpected arrays {stray}")
        heads = [
            {"name": h.name, "n_outputs": h.n_outputs, "transform": h.transform,
             "sigmoid_alpha": h.sigmoid_alpha, "accumulate": h.accumulate, "n_trees": h.n_trees,
             "leaf_width": h.leaf_width, "base_score": h.base_score}
            for h in header.heads
        ]
        try:
            native = _core.Forest(header.n_features, heads, arrays)
        except (_core.FormatError, ValueError, TypeError, OverflowError) as e:
            raise CorruptFileError(f"{path}: {e}") from None
        forest = cls.__new__(cls)
        forest._native = native
        forest._header = header
        forest._path = path
        forest._n_features = header.n_features  # read on every call: a slot, not the header
        return forest

    def predict(self, X: Any, output: str = "value", threads: int = 1) -> np.ndarray:
        """Scores of every head for the rows of ``X``.

        ``X``: a 2-D numpy array with one column per feature, in
        ``feature_names`` order (float32 C-contiguous is used as is; other
        numeric dtypes and layouts are converted to float32, the precision
        XGBoost also evaluates in), or an Arrow table / record batch (pyarrow,
        polars, ...) whose columns are matched to the features by name, in any
        order. NaN is a missing value (each split's default direction);
        Arrow nulls are refused, fill them with NaN. ``output="raw"`` gives
        margins (base score plus the trees), ``"value"`` applies each head's
        transform (sigmoid, softmax). Returns float32 ``(n,)`` for a single
        output, else ``(n, n_outputs)`` with columns ``output_names``.
        """
        if output == "raw" or output == "value":
            raw = output == "raw"
        else:
            raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
        if type(threads) is not int and (isinstance(threads, bool) or not isinstance(threads, np.integer)):
            raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
        if threads < 1:
            raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
        if type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous \
                and X.shape[1] == self._n_features:
            # The request path's case, checked in a few hundred nanoseconds.
            result = self._native.predict(X, raw, int(threads))
        elif isinstance(X, np.ndarray):
            result = self._native.predict(self._matrix(X), raw, int(threads))
        elif hasattr(X, "__arrow_c_stream__") or hasattr(X, "__arrow_c_array__"):
            columns, n = self._columns(X)
            result = self._native.predict_columns(columns, n, raw, int(threads))
        else:
            raise TypeError(f"X: expected a 2-D numpy array or an Arrow table, got {type(X).__name__}")
        return result[:, 0] if result.shape[1] == 1 else result

    def head_trees(self, head: str) -> tuple[int, int]:
        """The range of ``head``'s trees in the forest's global tree order (heads follow each other)."""
        begin = 0
        for h in self._header.heads:
            if h.name == head:
                return begin, begin + h.n_trees
            begin += h.n_trees
        raise ValueError(f"head: unknown {head!r} (heads: {self.heads})")

    def predict_prefix(self, X: np.ndarray, head: str, n_trees: int) -> np.ndarray:
        """Raw score of ``head`` from its first ``n_trees`` trees only (base score included):
        what the training library gives with ``num_iteration`` / ``iteration_range``. A boosted
        model's first trees are a cheaper, weaker model of the same target, fit for a first
        phase that picks the candidates the whole forest then scores. ``X`` as in `predict`
        (float32 numpy rows); returns float32 ``(n,)`` (a multi-output head: ``(n, outputs)``)."""
        begin, end, first, width = self.prefix_trees(head, n_trees)
        out = self.predict_trees(X, begin, end)
        return out[:, first] if width == 1 else out[:, first:first + width]

    def prefix_trees(self, head: str, n_trees: int) -> tuple[int, int, int, int]:
        """(begin, end, first, width) for ``head``'s first ``n_trees`` trees: their range in
        the forest's global tree order, and the head's output columns of `predict_trees`."""
        begin, end = self.head_trees(head)
        if isinstance(n_trees, bool) or not isinstance(n_trees, (int, np.integer)) or not 0 <= n_trees <= end - begin:
            raise ValueError(f"n_trees: expected an integer in [0, {end - begin}] for head {head!r}, got {n_trees!r}")
        at = [h.name for h in self._header.heads].index(head)
        first = sum(h.n_outputs for h in self._header.heads[:at])
        return begin, begin + int(n_trees), first, self._header.heads[at].n_outputs

    def predict_trees(self, X: np.ndarray, begin: int, end: int) -> np.ndarray:
        """Raw scores ``(n, n_outputs)`` (float32, base scores included) of the trees
        ``[begin, end)`` of the global tree order only, one thread. ``X`` as in `predict`
        (float32 numpy rows)."""
        if not (type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous
                and X.shape[1] == self._n_features):
            X = self._matrix(np.asarray(X))
        return self._native.predict_trees(X, int(begin), int(end), 1)

    def _matrix(self, X: np.ndarray) -> np.ndarray:
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (rows x {self.n_features} features), "
                             f"got {X.ndim}-D; use X.reshape(1, -1) for one row")
        if X.shape[1] != self.n_features:
            raise ValueError(f"X: expected {self.n_features} feature columns, got {X.shape[1]}")
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)
                or X.dtype == np.bool_):
            raise TypeError(f"X: expected a numeric dtype, got {X.dtype}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def _columns(self, table: Any) -> tuple[list, int]:
        by_name = _arrow.to_columns(table, "X")
        missing = [n for n in self.feature_names if n not in by_name and n not in self.optional_features]
        if missing:
            raise ValueError(f"X: missing feature columns {missing[:10]}"
                             f"{' ...' if len(missing) > 10 else ''} (declare them optional when compiling "
                             "to let them be missing values)")
        lengths = {len(c) for c in by_name.values()}
        n = lengths.pop() if lengths else 0
        columns = []
        for name in self.feature_names:
            col = by_name.get(name)
            if col is not None and not (np.issubdtype(col.dtype, np.number) or col.dtype == np.bool_):
                raise TypeError(f"X: column {name!r} has dtype {col.dtype}, expected a number")
            columns.append(None if col is None else np.ascontiguousarray(col, dtype=np.float32))
        return columns, n

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def feature_names(self) -> list[str]:
        return list(self._header.feature_names)

    @property
    def optional_features(self) -> list[str]:
        return list(self._header.optional_features)

    @property
    def heads(self) -> list[str]:
        return [h.name for h in self._header.heads]

    @property
    def output_names(self) -> list[str]:
        """One per output column: the head's name, or ``name[i]`` for multi-output heads."""
        return [h.name if h.n_outputs == 1 else f"{h.name}[{i}]"
                for h in self._header.heads for i in range(h.n_outputs)]

    def summary(self) -> dict:
        """Trees, leaves, depth, heads and features, for logs and the command line."""
        n = self._native
        return {
            "path": self._path, "trees": n.n_trees, "nodes": n.n_nodes, "leaves": n.n_leaves,
            "max_depth": n.max_depth, "features": self.n_features,
            "heads": [{"name": h.name, "outputs": h.n_outputs, "trees": h.n_trees,
                       "transform": h.transform, "source": h.source} for h in self._header.heads],
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"Forest({s['path']!r}, heads={self.heads}, trees={s['trees']}, "
                f"features={s['features']}, max_depth={s['max_depth']})")


def _check_header(path: str, header: forest_file.Header) -> None:
    names = header.feature_names
    if len(names) != header.n_features:
        raise CorruptFileError(f"{path}: {len(names)} feature names for {header.n_features} features")
    if len(set(names)) != len(names):
        raise CorruptFileError(f"{path}: duplicate feature names")
    unknown = sorted(set(header.optional_features) - set(names))
    if unknown:
        raise CorruptFileError(f"{path}: optional features {unknown} are not features")
    if not header.heads or len({h.name for h in header.heads}) != len(header.heads):
        raise CorruptFileError(f"{path}: heads missing or with duplicate names")
