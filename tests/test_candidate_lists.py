"""Popular and new item lists: scope by filter, ordering, file checks."""

from pathlib import Path

import numpy as np
import pytest

from engine.errors import CorruptFileError
from engine.ranking.popularity import CandidateLists


@pytest.fixture
def lists():
    rng = np.random.default_rng(0)
    n = 1000
    attrs = {"merchant_id": rng.integers(0, 20, n), "category_id": rng.integers(0, 10, n),
             "in_stock": rng.random(n) < 0.8}
    popularity = rng.random(n)
    is_new = rng.random(n) < 0.05
    age = rng.random(n) * 2
    return CandidateLists.build(np.where(is_new, np.nan, popularity), is_new, attrs, age), attrs, popularity, is_new, age


def test_popular_by_scope(lists):
    cl, attrs, pop, is_new, _ = lists
    rows = cl.rows("popular", {}, attrs, 10)
    expected = np.argsort(-np.where(is_new, -np.inf, pop))[:10]
    assert rows.tolist() == expected.tolist()
    rows = cl.rows("popular", {"merchant_id": 3, "in_stock": True}, attrs, 5)
    assert np.all(attrs["merchant_id"][rows] == 3) and np.all(attrs["in_stock"][rows])
    assert np.all(np.diff(pop[rows]) <= 0) and not is_new[rows].any()
    rows = cl.rows("popular", {"category_id": [2, 5]}, attrs, 50)
    assert set(attrs["category_id"][rows]) <= {2, 5} and len(rows) == 50
    assert cl.rows("popular", {"merchant_id": 999}, attrs, 5).size == 0


def _numpy_rows(cl, source, filters, attributes, n):
    """The lists' rules written out in numpy: the reference for the native call."""
    a = cl._a
    scope = next((name for name in ("merchant_id", "category_id") if name in filters), None)
    if scope is None:
        rows = a[f"{source}.all"]
    else:
        keys, offsets, grouped = (a[f"{source}.{scope}.{p}"] for p in ("keys", "offsets", "rows"))
        wanted = np.unique(np.atleast_1d(np.asarray(filters[scope], dtype=np.int64)))
        parts = [grouped[offsets[i]:offsets[i + 1]] for i, key in zip(np.searchsorted(keys, wanted), wanted)
                 if i < len(keys) and keys[i] == key]
        rows = np.concatenate(parts) if parts else np.empty(0, np.int64)
    checks = [(k, v) for k, v in filters.items() if k != scope]
    if not checks:
        return rows[:n]
    head = rows[: max(4 * n, 256)]
    keep = np.ones(len(head), bool)
    for name, value in checks:
        keep &= np.isin(attributes[name][head], np.atleast_1d(value))
    return head[keep][:n]


def test_native_rows_match_numpy(lists):
    cl, attrs, *_ = lists
    rng = np.random.default_rng(9)
    for trial in range(300):
        filters = {}
        if rng.random() < 0.4:
            filters["merchant_id"] = int(rng.integers(0, 25)) if rng.random() < 0.5 else \
                rng.integers(0, 25, rng.integers(0, 5)).tolist()
        if rng.random() < 0.4:
            filters["category_id"] = rng.integers(0, 12, rng.integers(1, 4)).tolist()
        if rng.random() < 0.5:
            filters["in_stock"] = bool(rng.random() < 0.8) if rng.random() < 0.8 else [True, False]
        source = "popular" if trial % 3 else "new"
        n = int(rng.choice([1, 5, 80, 400]))
        got = cl.rows(source, filters, attrs, n)
        assert got.dtype == np.int64
        assert got.tolist() == _numpy_rows(cl, source, filters, attrs, n).tolist(), (source, filters, n)


def test_new_items_newest_first(lists):
    cl, attrs, _, is_new, age = lists
    rows = cl.rows("new", {}, attrs, 100)
    assert is_new[rows].all() and len(rows) == is_new.sum()
    assert np.all(np.diff(age[rows]) >= 0)


def test_save_load_and_corruption(lists, tmp_path):
    cl, attrs, *_ = lists
    path = str(tmp_path / "c.safetensors")
    cl.save(path)
    back = CandidateLists.load(path, 1000)
    assert back.rows("popular", {"category_id": 1}, attrs, 7).tolist() == cl.rows(
        "popular", {"category_id": 1}, attrs, 7).tolist()
    with pytest.raises(CorruptFileError, match="built for 1000 items"):
        CandidateLists.load(path, 999)
    data = bytearray(Path(path).read_bytes())
    data[-3] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="c.safetensors"):
        CandidateLists.load(path, 1000)
