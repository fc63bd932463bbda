"""Inputs and checks shared by the forest parser tests: a synthetic data set
with NaNs and integer-coded categories, edge inputs read off a parsed head
(every threshold and its float32 neighbours, the zero band, infinities,
odd category values, all-NaN rows), and the comparison with a library."""

from __future__ import annotations

import numpy as np

from engine.forest.ir import CATEGORICAL, HeadIR
from engine.forest.reference import reference_predict

N_FEATURES = 100
CATEGORICAL_COLUMNS = {10: 12, 20: 40, 30: 70}  # column: number of categories
ZERO_HEAVY_COLUMNS = (40, 41, 42)  # half their values are exactly 0
ZERO_BAND = np.float32(1e-35)
ODD_CATEGORIES = np.array([-1, -0.5, -1e-36, 0, 1e-36, 0.5, 1.7, 2.5, 31.5, 32, 33.9, 69.99, 70, 1e10,
                           2.0**24, 2.0**24 - 1, 2.0**31, -3, -2.0**31], dtype=np.float32)
ZERO_VALUES = np.array([0.0, -0.0, 1e-36, -1e-36, ZERO_BAND, -ZERO_BAND,
                        np.nextafter(ZERO_BAND, np.float32(1)), -np.nextafter(ZERO_BAND, np.float32(1)),
                        1e-45, -1e-45], dtype=np.float32)


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 (n, 100) with 5 % NaN, a regression target) with signal in
    numeric, categorical and zero-heavy columns."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    for column, n_categories in CATEGORICAL_COLUMNS.items():
        X[:, column] = rng.integers(0, n_categories, n)
    for column in ZERO_HEAVY_COLUMNS:
        X[rng.random(n) < 0.5, column] = 0
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + np.isin(X[:, 10], [0, 3, 7]) - np.isin(X[:, 20], [1, 5, 9, 33])
         + 0.8 * (X[:, 40] == 0) + 0.3 * X[:, 41] + 0.2 * rng.standard_normal(n))
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


def edge_rows(head: HeadIR, base: np.ndarray, infinities: bool = True) -> np.ndarray:
    """Rows of ``base`` (cycled) with one feature each set to an edge value."""
    split = head.feature >= 0
    numeric = split & ((head.flags & CATEGORICAL) == 0)
    features, values = [], []

    def put(f: np.ndarray, v: np.ndarray) -> None:
        features.append(np.asarray(f, dtype=np.int64))
        values.append(np.asarray(v, dtype=np.float32))

    thresholds = head.threshold[numeric]
    for side in (-np.inf, np.inf):
        put(head.feature[numeric], np.nextafter(thresholds, np.float32(side)))
    put(head.feature[numeric], thresholds)
    used = np.unique(head.feature[split])
    for value in ZERO_VALUES:
        put(used, np.full(len(used), value))
    if infinities:
        for value in (np.inf, -np.inf):
            put(used, np.full(len(used), value))
    categorical_features = np.unique(head.feature[split & ((head.flags & CATEGORICAL) != 0)])
    for value in ODD_CATEGORIES:
        put(categorical_features, np.full(len(categorical_features), value))
    f, v = np.concatenate(features), np.concatenate(values)
    finite = np.isfinite(v) | infinities
    f, v = f[finite], v[finite]
    rows = base[np.arange(len(f)) % len(base)].copy()
    rows[np.arange(len(f)), f] = v
    all_missing = np.full((3, base.shape[1]), np.nan, dtype=np.float32)
    return np.concatenate([rows, all_missing])


def assert_raw_and_values(head: HeadIR, X: np.ndarray, raw: np.ndarray, value: np.ndarray | None,
                          exact: bool) -> None:
    """The head's raw scores equal the library's (bit for bit in float32 when
    ``exact``, always within 1e-6) and its values are within 1e-6."""
    got = reference_predict(head, X)
    want = np.asarray(raw).reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    if exact:
        np.testing.assert_array_equal(got, want.astype(np.float32))
    if value is not None:
        np.testing.assert_allclose(reference_predict(head, X, "value"), np.asarray(value).reshape(got.shape),
                                   rtol=0, atol=1e-6)


def assert_same_head(a: HeadIR, b: HeadIR) -> None:
    """Two heads are equal field by field (arrays bit for bit, NaN equal to NaN)."""
    for field in a.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field
            np.testing.assert_array_equal(x, y, err_msg=field)
        else:
            assert x == y, field
