"""Live catalogue: add and remove after build, snapshots under concurrent searches."""

import threading

import numpy as np
import pytest

import engine
from conftest import clustered, exact_topk, queries_like, recall


def _split(n, parts, seed=0):
    ids, x, attrs = clustered(n, 16, seed=seed)
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for b, e in zip(bounds[:-1], bounds[1:]):
        yield ids[b:e], x[b:e], {k: v[b:e] for k, v in attrs.items()}


def test_incremental_adds_equal_one_build():
    ids, x, attrs = clustered(40_000, 16, seed=1)
    index = engine.VectorIndex(16, "ip", "i8")
    index.add(ids[:25_000], x[:25_000], {k: v[:25_000] for k, v in attrs.items()})
    for b in range(25_000, 40_000, 1_000):  # many small adds after the first IVF build
        index.add(ids[b:b + 1000], x[b:b + 1000], {k: v[b:b + 1000] for k, v in attrs.items()})
    assert len(index) == 40_000
    assert len(index.stats()["segments"]) <= 6  # merged, not one segment per add
    q = queries_like(x, 150)
    truth, _ = exact_topk(q, x, ids, 10)
    assert recall(index.search(q, 10)[0], truth) >= 0.95
    filt = {"in_stock": True, "category_id": [1, 2]}
    mask = attrs["in_stock"] & np.isin(attrs["category_id"], [1, 2])
    truth, _ = exact_topk(q, x, ids, 10, mask=mask)
    assert recall(index.search(q, 10, filter=filt)[0], truth) >= 0.95


def test_small_adds_before_any_ivf_build():
    index = engine.VectorIndex(16)
    all_ids, all_x = [], []
    for ids, x, attrs in _split(3000, 30, seed=2):
        index.add(ids, x, attrs)
        all_ids.append(ids)
        all_x.append(x)
    ids, x = np.concatenate(all_ids), np.concatenate(all_x)
    q = queries_like(x, 20)
    got, scores = index.search(q, 10)
    truth, truth_scores = exact_topk(q, x, ids, 10)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-5, atol=1e-5)


def test_remove_hides_rows_and_unknown_ids_raise():
    ids, x, attrs = clustered(30_000, 16, seed=3)
    index = engine.VectorIndex(16, "ip", "f16")
    index.add(ids, x, attrs)
    q = queries_like(x, 50)
    first, _ = index.search(q, 10)
    gone = np.unique(first[:, :3].ravel())
    assert index.remove(gone) == len(gone)
    assert len(index) == 30_000 - len(gone)
    after, _ = index.search(q, 10)
    assert not set(after.ravel().tolist()) & set(gone.tolist())
    keep = ~np.isin(ids, gone)
    truth, _ = exact_topk(q, x[keep], ids[keep], 10)
    assert recall(after, truth) >= 0.95
    with pytest.raises(ValueError, match=f"id {int(gone[0])} is not in the index"):
        index.remove(gone[:1])
    assert index.remove(np.concatenate([gone[:1], ids[keep][:1].astype(np.int64)]), missing_ok=True) == 1
    # A removed id may come back with a new vector.
    index.add(gone[:1], -x[0:1], {k: v[:1] for k, v in attrs.items()})
    got, _ = index.search(-x[0], 1, exact=True)
    assert got[0, 0] == gone[0]


def test_remove_everything_then_add_again():
    index = engine.VectorIndex(8)
    index.add([1, 2, 3], np.eye(8, dtype=np.float32)[:3])
    index.remove([1, 2, 3])
    assert len(index) == 0
    assert (index.search(np.ones(8, np.float32), 2)[0] == -1).all()
    index.add([2], np.eye(8, dtype=np.float32)[:1])
    assert index.search(np.eye(8, dtype=np.float32)[0], 1)[0][0, 0] == 2


def test_duplicate_ids_are_refused():
    index = engine.VectorIndex(4)
    index.add([1, 2], np.eye(4, dtype=np.float32)[:2])
    with pytest.raises(ValueError, match="id 2 is already in the index"):
        index.add([3, 2], np.eye(4, dtype=np.float32)[2:4])
    assert len(index) == 2  # nothing of the failed add went in
    with pytest.raises(ValueError, match="duplicate id 5"):
        index.add([5, 5], np.eye(4, dtype=np.float32)[:2])


def test_compact_keeps_answers():
    ids, x, attrs = clustered(30_000, 16, seed=4)
    index = engine.VectorIndex(16, "ip", "i8")
    index.add(ids[:22_000], x[:22_000], {k: v[:22_000] for k, v in attrs.items()})
    index.add(ids[22_000:], x[22_000:], {k: v[22_000:] for k, v in attrs.items()})
    index.remove(ids[:100])
    index.compact(threads=2)
    assert len(index.stats()["segments"]) == 1 and len(index) == 29_900
    q = queries_like(x, 100)
    truth, _ = exact_topk(q, x[100:], ids[100:], 10)
    assert recall(index.search(q, 10)[0], truth) >= 0.95


def test_concurrent_searches_match_serial():
    ids, x, attrs = clustered(30_000, 16, seed=5)
    index = engine.VectorIndex(16, "ip", "i8")
    index.add(ids, x, attrs)
    q = queries_like(x, 64)
    filters = [None, {"in_stock": True}, {"merchant_id": [1, 2, 3]}]
    serial = [index.search(q, 10, filter=f) for f in filters]
    errors, results = [], {}

    def worker(t):
        try:
            for rep in range(5):
                f = (t + rep) % len(filters)
                results[(t, rep)] = (f, index.search(q, 10, filter=filters[f]))
        except Exception as e:  # pragma: no cover - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for f, (got_ids, got_scores) in results.values():
        assert np.array_equal(got_ids, serial[f][0]) and np.array_equal(got_scores, serial[f][1])


def test_searches_never_see_a_torn_add_or_remove():
    """A batch added or removed in one call is seen whole or not at all."""
    ids, x, attrs = clustered(25_000, 16, seed=6)
    index = engine.VectorIndex(16)
    index.add(ids, x, attrs)
    batch = np.arange(10**9, 10**9 + 64, dtype=np.uint64)
    rng = np.random.default_rng(0)
    bx = rng.standard_normal((64, 16)).astype(np.float32)
    battrs = {"merchant_id": np.full(64, 999_999), "category_id": np.zeros(64, np.int64),
              "in_stock": np.ones(64, bool)}
    stop = threading.Event()
    seen, errors = [], []

    def searcher():
        try:
            while not stop.is_set():
                got, _ = index.search(bx[:4], 100, filter={"merchant_id": 999_999})
                seen.extend((got >= 0).sum(1).tolist())
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(30):
        index.add(batch, bx, battrs)
        index.remove(batch)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert set(seen) <= {0, 64} and seen


def test_native_calls_release_the_gil():
    """While one thread is inside a long native search, Python code keeps running."""
    ids, x, attrs = clustered(60_000, 32, seed=7)
    index = engine.VectorIndex(32)
    index.add(ids, x, attrs)
    q = queries_like(x, 4000)
    entered, done = threading.Event(), threading.Event()

    def worker():
        entered.set()
        index.search(q, 10, exact=True)  # a few hundred milliseconds of native work
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    entered.wait()
    ticks = 0
    while not done.is_set():
        ticks += 1
    t.join()
    # With the GIL held this thread would run only between switch intervals
    # around the call; released, it spins for the whole call.
    assert ticks > 100_000
