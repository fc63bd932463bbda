"""Filtered search: only matching rows, recall >= 0.95 at every selectivity."""

import numpy as np
import pytest

import engine
from conftest import clustered, exact_topk, queries_like, recall

N = 60_000


@pytest.fixture(scope="module")
def world():
    ids, x, attrs = clustered(N, 24, seed=21, n_clusters=120)
    indexes = {}
    for storage in ("f32", "i8"):
        index = engine.VectorIndex(24, "ip", storage)
        index.add(ids, x, attrs, threads=2)
        indexes[storage] = index
    return ids, x, attrs, indexes, queries_like(x, 150, seed=22)


def _merchants_for_share(merchants: np.ndarray, share: float) -> list[int]:
    """A set of merchants whose rows make up about `share` of the catalogue."""
    values, counts = np.unique(merchants, return_counts=True)
    target = share * len(merchants)
    single = int(np.argmin(np.abs(counts - target)))
    if abs(counts[single] - target) <= 0.25 * target:
        return [int(values[single])]
    order = np.argsort(counts)  # many small merchants add up to the share
    picked, total = [], 0
    for i in order:
        if total >= target:
            break
        picked.append(int(values[i]))
        total += counts[i]
    return picked


def _mask(attrs, filt):
    mask = np.ones(N, bool)
    for key, value in filt.items():
        values = value if isinstance(value, list) else [value]
        mask &= np.isin(attrs[key], values)
    return mask


@pytest.mark.parametrize("storage", ["f32", "i8"])
@pytest.mark.parametrize("share", [0.0001, 0.001, 0.01, 0.1, 0.5, 1.0])
def test_merchant_filters_keep_recall(world, storage, share):
    ids, x, attrs, indexes, q = world
    filt = {} if share == 1.0 else {"merchant_id": _merchants_for_share(attrs["merchant_id"], share)}
    mask = _mask(attrs, filt)
    got, scores = indexes[storage].search(q, 10, filter=filt or None)
    truth, _ = exact_topk(q, x, ids, 10, mask=mask)
    allowed = set(ids[mask].tolist())
    assert all(int(i) in allowed for i in got.ravel() if i >= 0)
    assert recall(got, truth) >= 0.95, f"selectivity {mask.mean():.5f}"
    # Exactly as many results as there are matching rows, up to k.
    assert ((got >= 0).sum(1) == min(10, mask.sum())).all()


@pytest.mark.parametrize("filt", [
    {"in_stock": True},
    {"in_stock": False},
    {"category_id": [3, 7]},
    {"category_id": 5, "in_stock": True},
    {"merchant_id": [1, 2], "in_stock": True, "category_id": list(range(10))},
])
def test_other_attributes_and_conjunctions(world, filt):
    ids, x, attrs, indexes, q = world
    mask = _mask(attrs, filt)
    got, _ = indexes["f32"].search(q, 10, filter=filt)
    truth, _ = exact_topk(q, x, ids, 10, mask=mask)
    allowed = set(ids[mask].tolist())
    assert all(int(i) in allowed for i in got.ravel() if i >= 0)
    assert recall(got, truth) >= 0.95


@pytest.mark.parametrize("size", [5, 300, 20_000])
def test_allow_list_of_ids(world, size):
    ids, x, attrs, indexes, q = world
    rng = np.random.default_rng(size)
    allow = rng.choice(ids, size, replace=False)
    mask = np.isin(ids, allow)
    got, _ = indexes["i8"].search(q, 10, filter=allow)
    truth, _ = exact_topk(q, x, ids, 10, mask=mask)
    assert set(got[got >= 0].tolist()) <= set(allow.tolist())
    assert recall(got, truth) >= 0.95


def test_allow_list_with_unknown_ids_ignores_them(world):
    ids, _, _, indexes, q = world
    unknown = np.array([int(ids.max()) + 1, int(ids.max()) + 2], dtype=np.uint64)
    got, scores = indexes["f32"].search(q[:3], 4, filter=np.concatenate([unknown, ids[:2]]))
    assert set(got[:, :2].ravel().tolist()) == set(ids[:2].tolist())
    assert (got[:, 2:] == -1).all() and np.isnan(scores[:, 2:]).all()


def test_filter_matching_nothing_returns_padding(world):
    _, _, _, indexes, q = world
    for filt in ({"merchant_id": 10**9}, {"merchant_id": []}, {"category_id": 1, "merchant_id": []}):
        got, scores = indexes["f32"].search(q[:4], 10, filter=filt)
        assert (got == -1).all() and np.isnan(scores).all()


def test_exact_with_filter_is_exact(world):
    ids, x, attrs, indexes, q = world
    filt = {"in_stock": True, "category_id": [1, 2, 3]}
    got, scores = indexes["i8"].search(q, 10, filter=filt, exact=True)
    _, truth_scores = exact_topk(q, x, ids, 10, mask=_mask(attrs, filt))
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("storage", ["f32", "i8"])
def test_sparse_and_negative_attribute_values(storage):
    # Dense columns count a filter's rows through a per-value table; a column
    # spread over a huge range falls back to its postings. Both, and values
    # below zero, must select exactly the matching rows.
    ids, x, attrs = clustered(20_000, 16, seed=5, n_clusters=40)
    rng = np.random.default_rng(5)
    attrs = {
        "shard": rng.integers(-50, 50, len(ids)).astype(np.int64),         # dense, negative
        "brand": rng.integers(0, 300, len(ids)).astype(np.int64) * 10**12,  # sparse
    }
    index = engine.VectorIndex(16, "ip", storage)
    index.add(ids, x, attrs)
    q = queries_like(x, 40, seed=6)
    brands = sorted(set(attrs["brand"].tolist()))
    for filt in ({"shard": -7}, {"shard": list(range(-50, -20))}, {"shard": list(range(-50, 50, 3))},
                 {"brand": brands[:20]}, {"brand": brands[5]}, {"shard": [-3, 4], "brand": brands[::2]}):
        mask = np.ones(len(ids), bool)
        for key, value in filt.items():
            mask &= np.isin(attrs[key], value if isinstance(value, list) else [value])
        got, _ = index.search(q, 10, filter=filt)
        truth, _ = exact_topk(q, x, ids, 10, mask=mask)
        assert set(got[got >= 0].tolist()) <= set(ids[mask].tolist()), filt
        assert recall(got, truth) >= 0.95, filt


@pytest.mark.parametrize("value", [1, 0, [0, 1], 2, [2, 1]])
def test_zero_one_int_columns_check_from_their_bits(value):
    # A column whose values are all 0 or 1 is checked from one bit a row
    # (ann/segment.hpp, list_bits): an int column too, and values it never
    # holds (2) match nothing.
    ids, x, attrs = clustered(30_000, 16, seed=23, n_clusters=60)
    flag = (np.random.default_rng(24).random(len(ids)) < 0.7).astype(np.int64)
    index = engine.VectorIndex(16, "ip", "i8")
    index.add(ids, x, {"flag": flag, "merchant_id": attrs["merchant_id"]})
    q = queries_like(x, 40, seed=25)
    mask = np.isin(flag, value if isinstance(value, list) else [value])
    got = np.vstack([index.search(v, 10, filter={"flag": value})[0] for v in q])
    allowed = set(ids[mask].tolist())
    assert all(int(i) in allowed for i in got.ravel() if i >= 0)
    if not mask.any():
        assert (got == -1).all()
    else:
        truth, _ = exact_topk(q, x, ids, 10, mask=mask)
        assert recall(got, truth) >= 0.95
