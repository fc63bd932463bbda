"""VectorIndex answers: exact search equals numpy, approximate search keeps recall."""

import numpy as np
import pytest

import engine
from conftest import clustered, exact_topk, queries_like, recall


@pytest.fixture(scope="module")
def built(catalogue):
    ids, x, attrs = catalogue
    out = {}
    for storage in ("f32", "f16", "i8"):
        index = engine.VectorIndex(32, "ip", storage)
        index.add(ids, x, attrs, threads=2)
        out[storage] = index
    return out


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_exact_search_equals_numpy(metric):
    ids, x, attrs = clustered(3000, 19, seed=3)
    x = x * np.random.default_rng(0).uniform(0.5, 2.0, (len(x), 1)).astype(np.float32)
    q = queries_like(x, 25)
    index = engine.VectorIndex(19, metric)
    index.add(ids, x, attrs)
    got_ids, got_scores = index.search(q, 10, exact=True)
    want_ids, want_scores = exact_topk(q, x, ids, 10, metric)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4)
    assert recall(got_ids, want_ids) > 0.999  # only exact ties may swap
    assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32


@pytest.mark.parametrize("storage", ["f32", "f16", "i8"])
def test_approximate_recall_at_10(built, catalogue, storage):
    ids, x, _ = catalogue
    q = queries_like(x, 200)
    index = built[storage]
    assert index.stats()["segments"][0]["nlist"] > 0  # the IVF path is what is tested
    got, scores = index.search(q, 10)
    truth, _ = exact_topk(q, x, ids, 10)
    assert recall(got, truth) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_ef_trades_recall_for_work(built, catalogue):
    ids, x, _ = catalogue
    q = queries_like(x, 200, seed=5)
    truth, _ = exact_topk(q, x, ids, 10)
    index = built["f32"]
    low = recall(index.search(q, 10, ef=1)[0], truth)
    high = recall(index.search(q, 10, ef=10_000)[0], truth)
    assert low < 0.95 <= high
    assert high == pytest.approx(1.0, abs=1e-3)


def test_exact_flag_is_exact_for_every_storage(built, catalogue):
    ids, x, _ = catalogue
    q = queries_like(x, 30, seed=9)
    truth, truth_scores = exact_topk(q, x, ids, 10)
    for index in built.values():
        got, scores = index.search(q, 10, exact=True)
        np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-5)


def test_single_query_is_a_batch_of_one(built, catalogue):
    _, x, _ = catalogue
    ids, scores = built["f32"].search(x[0], 5)
    assert ids.shape == (1, 5) and scores.shape == (1, 5)


def test_threads_give_the_same_results(built, catalogue):
    _, x, _ = catalogue
    q = queries_like(x, 101, seed=11)
    a = built["i8"].search(q, 10, threads=1)
    b = built["i8"].search(q, 10, threads=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_l2_scores_are_squared_distances():
    ids, x, attrs = clustered(25_000, 16, seed=4)
    index = engine.VectorIndex(16, "l2", "f16")
    index.add(ids, x * 3.0, attrs)
    q = queries_like(x, 20) * 3.0
    got, dist = index.search(q, 10)
    row = {int(i): r for r, i in enumerate(ids)}
    for qi in range(len(q)):
        expect = ((x[[row[int(i)] for i in got[qi]]] * 3.0 - q[qi]) ** 2).sum(1)
        np.testing.assert_allclose(dist[qi], expect, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # nearest first
    truth, _ = exact_topk(q, x * 3.0, ids, 10, "l2")
    assert recall(got, truth) >= 0.95


def test_fewer_rows_than_k_pads():
    index = engine.VectorIndex(4)
    index.add([7, 8], np.eye(4, dtype=np.float32)[:2])
    ids, scores = index.search(np.ones(4, np.float32), 5)
    assert ids[0, :2].tolist() in ([7, 8], [8, 7])
    assert ids[0, 2:].tolist() == [-1, -1, -1]
    assert np.isnan(scores[0, 2:]).all()


def test_empty_index_returns_padding():
    index = engine.VectorIndex(4)
    ids, scores = index.search(np.ones((2, 4), np.float32), 3)
    assert (ids == -1).all() and np.isnan(scores).all()


def test_zero_vectors_do_not_inflate_the_default_ef():
    # Items stored before they have an embedding are zero vectors: they score
    # 0 with everything, so as calibration queries they would ask for every
    # list (684 of 693 here before they were skipped).
    ids, x, _ = clustered(30_000, 16, seed=9, n_clusters=60)
    plain = engine.VectorIndex(16, "ip", "f32")
    plain.add(ids, x)
    x[::10] = 0.0
    index = engine.VectorIndex(16, "ip", "f32")
    index.add(ids, x)
    seg, ref = index.stats()["segments"][0], plain.stats()["segments"][0]
    assert seg["default_nprobe"] <= 2 * ref["default_nprobe"] < seg["nlist"] / 2
    q = queries_like(x[1::10], 50, seed=10)
    got, _ = index.search(q, 10)
    truth, _ = exact_topk(q, x, ids, 10)
    assert recall(got, truth) >= 0.9


@pytest.mark.parametrize("k", [65, 200, 999])
def test_large_k_keeps_the_best_k_with_ties_and_signs(k):
    # Results beyond 64 are kept in a buffer that is cut back to the best k by
    # a radix selection on the scores' bits whenever it fills: with many
    # exactly tied, negative and zero scores, the cut must keep exactly what a
    # search for every row ranks first (ties broken the same way).
    rng = np.random.default_rng(7)
    distinct = rng.standard_normal((40, 8)).astype(np.float32)
    distinct[0] = 0.0
    x = distinct[rng.integers(0, 40, 3000)]
    ids = rng.permutation(10**6)[:3000].astype(np.int64)
    index = engine.VectorIndex(8, "ip")
    index.add(ids, x)
    q = rng.standard_normal((6, 8)).astype(np.float32)
    everything, all_scores = index.search(q, 3000, exact=True)
    got, scores = index.search(q, k, exact=True)
    np.testing.assert_array_equal(got, everything[:, :k])
    np.testing.assert_array_equal(scores, all_scores[:, :k])
    assert (all_scores[:, k - 1] == all_scores[:, k]).all(), "the k-th score must be tied past k"
    # The buffer's radix sort orders ties as the small-k layout's comparison
    # sort does (by segment, then row), +0 and -0 as equal: a zero query ties
    # every row, its scores signed zeros.
    q_zero = np.vstack([q, np.zeros((1, 8), np.float32), -q[:1] * 0])
    small, _ = index.search(q_zero, 64, exact=True)
    large, large_scores = index.search(q_zero, k, exact=True)
    np.testing.assert_array_equal(large[:, :64], small)
    assert (large_scores[-2:] == 0).all()
