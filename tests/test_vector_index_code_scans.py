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


# A long contiguous range (a large merchant) is first scanned from 4-bit
# codes, which nominate 3x the i8 re-scoring's candidates, with a floor taken
# from a sample of every 32nd block of 32 rows (ann/search.cpp, scan_nibbles).
# One query at a time (batches scan f32 together) and an ef covering most
# lists, so that the planner scans the range exactly.

def _one_by_one(index, q, k, filt):
    return np.vstack([index.search(v, k, filter=filt, ef=900)[0] for v in q])


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("k", [10, 100, 150])
def test_long_range_scans_from_4_bit_codes_keep_the_exact_top_k(world, metric, k):
    # merchant 1 holds a quarter of the rows: enough for the 4-bit scan at
    # these k, and for its sampled floor from k = 100 on.
    ids, x, attrs, q, _ = world
    filt = {"merchant_id": 1}
    mask = _mask(attrs, filt)
    assert mask.sum() >= 24 * 3 * (k + max(16, k // 4)), "the merchant must be long enough for a 4-bit scan"
    got = _one_by_one(_index(world, "i8", metric), q[:12], k, filt)
    truth, _ = exact_topk(q[:12], x, ids, k, metric=metric, mask=mask)
    assert recall(got, truth) >= 0.99
    assert ((got >= 0).sum(1) == k).all()
    row_of = {int(i): r for r, i in enumerate(ids)}
    assert mask[[row_of[int(i)] for i in got.ravel()]].all()


@pytest.mark.parametrize("noise,least", [(0.2, 0.98), (0.05, 0.85)])
def test_a_sample_that_overstates_the_range_falls_back_to_a_full_scan(noise, least):
    # The sampled blocks (every 32nd from the range's start) hold the rows
    # nearest the query, so the sample's floor lets through far fewer rows
    # than the scan nominates: it must scan again without it, not return
    # fewer or worse results. With noise 0.05 those rows are near-equal (0.9
    # sigma of the 4-bit error between the i8 100th best and the 4-bit cut):
    # the range is nominated from its i8 codes, whose recall here is 0.90
    # (0.76 from the 4-bit nominees).
    rng = np.random.default_rng(5)
    n, dim, big = 60_000, 24, 16_000
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[0].copy()
    merchants = rng.integers(2, 300, n).astype(np.int64)
    merchants[:big] = 1  # rows [0, big) of the segment: merchant 1 sorts first, its order kept
    sampled = (np.arange(big) // 32) % 32 == 0
    near = q + noise * rng.standard_normal((int(sampled.sum()), dim)).astype(np.float32)
    x[:big][sampled] = near / np.linalg.norm(near, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.uint64) + 1000
    index = engine.VectorIndex(dim, "ip", "i8")
    index.add(ids, x, {"merchant_id": merchants})
    k = 100
    got = _one_by_one(index, q[None, :], k, {"merchant_id": 1})
    truth, _ = exact_topk(q[None, :], x, ids, k, mask=merchants == 1)
    assert (got >= 0).sum() == k
    assert recall(got, truth) >= least
