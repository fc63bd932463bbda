"""Exact plans over many rows of an f16 / i8 index nominate candidates from the
row-order codes and re-score them in f32 (ann/search.cpp, scan_codes): every
result matches the filter, carries its exact score, and the top k is the exact
one but for near ties."""

import numpy as np
import pytest

import engine
from conftest import clustered, exact_topk, queries_like, recall

N = 60_000


@pytest.fixture(scope="module")
def world():
    ids, x, attrs = clustered(N, 24, seed=31, n_clusters=90)
    return ids, x, attrs, queries_like(x, 40, seed=32), {}


def _index(world, storage, metric):
    ids, x, attrs, _, cache = world
    if (storage, metric) not in cache:
        index = engine.VectorIndex(24, metric, storage)
        index.add(ids, x, attrs, threads=2)
        cache[storage, metric] = index
    return cache[storage, metric]


def _mask(attrs, filt):
    mask = np.ones(N, bool)
    for key, value in filt.items():
        mask &= np.isin(attrs[key], value if isinstance(value, list) else [value])
    return mask


@pytest.mark.parametrize("storage,metric", [("i8", "ip"), ("i8", "l2"), ("f16", "ip")])
@pytest.mark.parametrize("k", [10, 400])
@pytest.mark.parametrize("filt", [
    {"merchant_id": 1},                           # contiguous rows (the cluster column)
    {"category_id": [3, 7]},                      # scattered rows, two postings runs
    {"category_id": [2, 9], "in_stock": True},    # scattered rows and a per-row check
    {"merchant_id": [3, 4], "in_stock": True},    # contiguous ranges and a check
])
def test_code_scans_return_the_exact_top_k(world, storage, metric, k, filt):
    ids, x, attrs, q, _ = world
    mask = _mask(attrs, filt)
    assert mask.sum() >= 2048 + k + 100, "the filter must match enough rows for a code scan"
    got, scores = _index(world, storage, metric).search(q, k, filter=filt)
    truth, _ = exact_topk(q, x, ids, k, metric=metric, mask=mask)
    assert recall(got, truth) >= 0.98
    assert ((got >= 0).sum(1) == min(k, mask.sum())).all()
    row_of = {int(i): r for r, i in enumerate(ids)}
    rows = np.array([[row_of[int(i)] for i in line] for line in got])
    assert mask[rows].all()
    # Scores are the f32 ones, not the codes' estimates.
    v = x[rows]
    want = (np.einsum("qkd,qd->qk", v, q) if metric == "ip"
            else ((v - q[:, None, :]) ** 2).sum(-1))
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)


def test_exact_request_on_a_code_index_is_exact(world):
    ids, x, attrs, q, _ = world
    filt = {"category_id": [3, 7]}
    got, _ = _index(world, "i8", "ip").search(q, 50, filter=filt, exact=True)
    truth, _ = exact_topk(q, x, ids, 50, mask=_mask(attrs, filt))
    np.testing.assert_array_equal(got, truth)
