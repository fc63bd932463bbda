"""The impression log's native staging buffer (cpp/impressions/columns.hpp):
records taken in any split come out whole and in order, checks name the field."""

from __future__ import annotations

import re
import threading

import msgspec
import numpy as np
import pytest

from engine import _core
from engine.impressions import _schema
from test_impressions import NAMES, make_record


def slots(names):
    return 0


def columns_of(records):
    c = _core.ImpressionColumns()
    for r in records:
        _schema.append(c, r, slots)
    return c


def request_ids(arrays) -> list[str]:
    o, data = arrays["request_id.offsets"], arrays["request_id.data"].tobytes()
    return [data[o[i]:o[i + 1]].decode() for i in range(len(o) - 1)]


def test_takes_split_by_count_and_bytes_keep_every_record_in_order():
    records = [make_record(seq) for seq in range(1, 301)]  # segments of 64 (cpp/impressions/staging.hpp)
    c = columns_of(records)
    sizes = [columns_of([r]).nbytes for r in records]  # a record's bytes are the same alone or staged
    assert len(c) == 300 and c.nbytes == sum(sizes)
    got, features = [], []
    left = len(c)
    for max_records, max_bytes in [(7, 2**40), (50, 1), (50, 3000), (130, 2**40), (100, 20_000), (1000, 2**40)]:
        taken = c.take(max_records, max_bytes)
        # The oldest records while both limits hold, and always at least one
        # (a budget smaller than any record still moves the first).
        first = len(records) - left
        want = 1
        while want < min(max_records, left) and sum(sizes[first:first + want + 1]) <= max_bytes:
            want += 1
        assert len(taken) == want and taken.nbytes == sum(sizes[first:first + want])
        left -= len(taken)
        assert len(c) == left
        a = taken.to_arrays()
        assert len(taken) == 0  # moved out
        got += request_ids(a)
        o = a["features.offsets"]
        assert o[0] == 0 and a["items.offsets"][0] == 0 and a["components.offsets"][0] == 0
        features += [a["features.values"][o[i]:o[i + 1]] for i in range(len(o) - 1)]
    assert got == [r.request_id for r in records] and len(c) == 0
    for r, f in zip(records, features):
        assert np.array_equal(f, r.features.reshape(-1))


def test_recycled_segments_hold_the_next_records_exactly():
    c = _core.ImpressionColumns()
    for cycle in range(4):  # each batch's segments come back as spares when its arrays are freed
        records = [make_record(seq) for seq in range(cycle * 150 + 1, cycle * 150 + 151)]
        for r in records:
            _schema.append(c, r, slots)
        a = c.take(10**6).to_arrays()
        assert request_ids(a) == [r.request_id for r in records]
        assert np.array_equal(a["item_ids"], np.concatenate([r.item_ids for r in records]))
        del a


def test_arrays_outlive_the_columns_object():
    a = columns_of([make_record(seq) for seq in range(1, 5)]).to_arrays()
    assert request_ids(a) == [f"req-{seq:08d}" for seq in range(1, 5)]


@pytest.mark.parametrize("field, value, message", [
    ("features", np.zeros((4, 6), np.int32), "features: expected float32, got dtype int32"),
    ("features", np.zeros(6, np.float32), "features: expected a 2-D array, got shape (6,)"),
    ("features", np.zeros((5, 6), np.float32), "features: shape (5, 6), but item_ids has 4 items"),
    ("feature_names", ("a", "b"), "feature_names: 2 names for 6 feature columns"),
    ("item_ids", np.array([-1, 2, 3, 4]), "item_ids: negative id"),
    ("item_ids", [1, 2, 3, 4], "item_ids: expected a numpy array, got list"),
    ("positions", np.arange(4.0), "positions: expected a 1-D int32 array, got dtype float64"),
    ("positions", np.array([0, 2**31, 1, 2]), "positions: values must lie in [0, 2**31)"),
    ("value", np.zeros(9, np.float32), "value: length 9, but item_ids has 4 items"),
    ("propensities", np.full(4, np.nan), "propensities: 4 of 4 values are NaN or outside [0, 1]"),
    ("components", {"p": np.zeros(1, np.float64)}, "components['p']: length 1, but item_ids has 4 items"),
    ("components", {1: np.zeros(4, np.float32)}, "components: key 1 is not a str"),
    ("user_vector", np.zeros((2, 2), np.float32), "user_vector: expected a 1-D array"),
])
def test_bad_arrays_are_refused_naming_the_field(field, value, message):
    four_items = msgspec.structs.replace(
        make_record(8), item_ids=np.arange(4, dtype=np.uint64), positions=np.arange(4, dtype=np.int32),
        value=np.zeros(4, np.float32), components={}, features=np.zeros((4, 6), np.float32), feature_names=NAMES,
        propensities=None, choice_probabilities=None)
    c = _core.ImpressionColumns()
    with pytest.raises(_schema.RecordError, match="^record 'req-00000008': " + re.escape(message)):
        _schema.append(c, msgspec.structs.replace(four_items, **{field: value}), slots)
    assert len(c) == 0  # nothing half-appended


def test_concurrent_appends_and_takes_lose_nothing():
    c = _core.ImpressionColumns()
    records = [make_record(seq) for seq in range(1, 41)]
    taken: list[str] = []
    done = threading.Event()

    def take():
        while not done.is_set() or len(c):
            taken.extend(request_ids(c.take(5).to_arrays()) if len(c) else [])

    def append(part):
        for r in part:
            _schema.append(c, r, slots)

    taker = threading.Thread(target=take)
    taker.start()
    threads = [threading.Thread(target=append, args=(records[i::4] * 25,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    taker.join()
    assert sorted(taken) == sorted([r.request_id for r in records] * 25)
