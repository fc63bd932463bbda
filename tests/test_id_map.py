"""cpp/common/id_map.hpp: the request path's id -> row lookups."""

import threading

import numpy as np
import pytest

from engine import _core


def _ids():
    rng = np.random.default_rng(11)
    ids = rng.integers(0, 2**64 - 1, 50_000, dtype=np.uint64, endpoint=True)
    ids[:4] = [0, 2**64 - 1, 7, 7]  # the extremes and a duplicate
    return ids


def test_rows_match_a_dict_and_unknown_ids_are_minus_one():
    ids = _ids()
    map_ = _core.IdMap(ids)
    expected = {}
    for r, i in enumerate(ids.tolist()):
        expected.setdefault(i, r)  # a duplicated id keeps its first row
    assert len(map_) == len(ids)
    assert map_.row(7) == 2 and map_.row(0) == 0 and map_.row(2**64 - 1) == 1
    queries = np.concatenate([ids, np.arange(1, 1000, dtype=np.uint64) * 3_000_017]).astype(np.uint64)
    want = np.array([expected.get(i, -1) for i in queries.tolist()], np.int64)
    np.testing.assert_array_equal(map_.rows(queries), want)
    assert (map_.rows(queries[len(ids):])[want[len(ids):] < 0] == -1).all()
    assert _core.IdMap(np.empty(0, np.uint64)).row(5) == -1
    # known_rows: the same rows with the unknown ids dropped, in order
    mixed = np.random.default_rng(3).permutation(queries)
    np.testing.assert_array_equal(map_.known_rows(mixed), [r for r in map_.rows(mixed) if r >= 0])
    assert map_.known_rows(np.empty(0, np.uint64)).dtype == np.int64


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="ids: expected dtype uint64"):
        _core.IdMap(np.arange(5))
    with pytest.raises(TypeError, match="ids: expected a C-contiguous array"):
        _core.IdMap(np.arange(10, dtype=np.uint64)[::2])
    with pytest.raises(TypeError, match="ids: expected dtype uint64"):
        _core.IdMap(np.arange(5, dtype=np.uint64)).rows(np.arange(3))
    with pytest.raises(TypeError, match="ids: expected dtype uint64"):
        _core.IdMap(np.arange(5, dtype=np.uint64)).known_rows(np.arange(3))


def test_one_map_serves_many_threads():
    ids = _ids()
    map_ = _core.IdMap(ids)
    want = map_.rows(ids)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            pick = rng.integers(0, len(ids), 64)
            if not np.array_equal(map_.rows(ids[pick]), want[pick]):
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
