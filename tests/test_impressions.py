"""The impression logger and reader: exact round trips, rotation, backpressure and
dropping, rejected records, writer errors, damaged and partial files."""

from __future__ import annotations

import errno
import gc
import logging
import os
import re
import shutil
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import ipc

from engine.errors import CorruptFileError
from engine.impressions import (
    ImpressionLogger, ImpressionRecord, LoggerStats, _schema, feature_matrix, read_impressions, record,
    record_components, record_features, to_records,
)
from engine.impressions import writer as writer_module

NAMES = tuple(f"f{j}" for j in range(6))
OTHER_NAMES = tuple(f"g{j}" for j in range(6))


def make_record(seq: int, request_id: str | None = None) -> ImpressionRecord:
    """A deterministic record: its content depends on ``seq`` only, and it
    varies everything optional (None fields, F, names, components, special floats)."""
    rng = np.random.default_rng(seq)
    n = seq % 7
    width = 3 if seq % 17 == 0 else 6
    names = (None if seq % 13 == 0 else tuple(f"h{j}" for j in range(3)) if width == 3
             else OTHER_NAMES if seq % 11 == 0 else NAMES)
    value = rng.standard_normal(n).astype(np.float32)
    if n >= 2 and seq % 3 == 0:
        value[0], value[1] = np.nan, -0.0  # bit patterns must survive
    components = {"p_click": rng.random(n, dtype=np.float32)}
    if seq % 2:
        components["p_order"] = rng.random(n, dtype=np.float32)
        components["margin_term"] = rng.standard_normal(n).astype(np.float32)
    return ImpressionRecord(
        request_id=request_id or f"req-{seq:08d}",
        timestamp_us=1_700_000_000_000_000 + 1000 * seq,
        user_id=None if seq % 5 == 0 else (2**64 - 1 - seq if seq % 2 else seq),
        surface=("home", "search", "store")[seq % 3],
        context={"hour": seq % 24, "price_cap": 12.5, "query": f"q{seq}", "logged_in": bool(seq % 2),
                 "category_affinity": {int(seq % 9): 0.25, 100 + seq: 1.5}},
        user_vector=rng.standard_normal(8).astype(np.float32) if seq % 4 else None,
        item_ids=rng.integers(0, 2**63, n).astype(np.uint64) * np.uint64(2),
        positions=np.arange(n, dtype=np.int32),
        value=value,
        components=components,
        features=rng.standard_normal((n, width)).astype(np.float32),
        feature_names=names,
        propensities=rng.random(n) if seq % 2 else None,
        choice_probabilities=rng.random(n) if seq % 3 == 0 else None,
        bundle_version=f"bundle-{seq // 100}",
        model_versions={"click": "v3", "order": f"v{seq % 4}"},
    )


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.dtype(f"u{a.dtype.itemsize}")) if a.dtype.kind == "f" else a


def assert_same(a: ImpressionRecord, b: ImpressionRecord) -> None:
    for field in ImpressionRecord.__struct_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if field == "components":
            assert list(x) == list(y), field
            for key in x:
                assert x[key].dtype == y[key].dtype and np.array_equal(_bits(x[key]), _bits(y[key])), (field, key)
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert (x is None) == (y is None), field
            if x is not None:
                assert x.dtype == y.dtype and x.shape == y.shape, (field, x.dtype, y.dtype, x.shape, y.shape)
                assert np.array_equal(_bits(x), _bits(y)), field
        else:
            assert x == y and type(x) is type(y), (field, x, y)


def assert_records(directory, expected: list[ImpressionRecord], **kw) -> None:
    got = to_records(read_impressions(directory, **kw))
    assert [r.request_id for r in got] == [r.request_id for r in expected]
    for a, b in zip(expected, got):
        assert_same(a, b)


def files(directory, suffix=".arrow") -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(suffix))


def wait_until(condition, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


class Stall:
    """Holds the writer thread inside its first batch write until released."""

    def __init__(self, monkeypatch):
        self.entered = threading.Event()
        self.release = threading.Event()
        original = writer_module._Writer._write

        def stalled(writer, *args):
            self.entered.set()
            assert self.release.wait(30)
            return original(writer, *args)

        monkeypatch.setattr(writer_module._Writer, "_write", stalled)


# ---- round trips ----------------------------------------------------------------------

@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_round_trip_is_exact_and_in_order(tmp_path, compression):
    expected = [make_record(seq) for seq in range(400)]
    with ImpressionLogger(tmp_path, batch_records=32, compression=compression) as log:
        for r in expected:
            assert log.log(r) is True
    s = log.stats
    assert (s.logged, s.written, s.dropped, s.rejected, s.queue_depth) == (400, 400, 0, 0, 0)
    assert s.files_completed == 1 and s.last_error is None
    assert files(tmp_path, ".partial") == [] and len(files(tmp_path)) == 1
    assert s.bytes_written == os.path.getsize(tmp_path / files(tmp_path)[0])
    assert_records(tmp_path, expected)


def test_file_name_schema_and_metadata(tmp_path):
    with ImpressionLogger(tmp_path, prefix="feed") as log:
        log.log(make_record(1))
    (name,) = files(tmp_path)
    assert re.fullmatch(rf"feed-\d{{8}}T\d{{6}}-{os.getpid()}-\d{{6}}\.arrow", name)
    with pa.memory_map(str(tmp_path / name)) as source:
        schema = ipc.open_file(source).schema
    assert schema.metadata[b"schema_version"] == b"1"
    assert schema.metadata[b"format"] == b"rank-engine/impressions"
    assert schema.metadata[b"feature_names"] == b'["f0","f1","f2","f3","f4","f5"]'
    assert schema.field("timestamp_us").type == pa.timestamp("us", tz="UTC")
    assert schema.field("components").type == pa.map_(pa.string(), pa.list_(pa.float32()))
    table = read_impressions(tmp_path)
    assert table.column("feature_names").to_pylist() == [list(NAMES)]
    assert table.column("components")[0].as_py()[0][0] == "p_click"


def test_helpers_return_numpy_arrays_of_any_row_and_slice(tmp_path):
    expected = [make_record(seq) for seq in range(60)]
    with ImpressionLogger(tmp_path, batch_records=7) as log:
        for r in expected:
            log.log(r)
    table = read_impressions(tmp_path)
    for i in (0, 17, 34, 59, -1):
        r = expected[i]
        f = record_features(table, i)
        assert f.dtype == np.float32 and np.array_equal(f, r.features)
        comps = record_components(table, i)
        assert list(comps) == list(r.components)
        assert_same(record(table, i), r)
    for a, b in zip(expected[13:41], to_records(table.slice(13, 28))):
        assert_same(a, b)
    with pytest.raises(IndexError):
        record_features(table, 60)
    # One F: the served rows line up with the flattened item ids.
    six = read_impressions(tmp_path).filter(pa.compute.equal(table.column("n_features"), 6))
    m = feature_matrix(six)
    rows = [r for r in expected if r.features.shape[1] == 6]
    assert np.array_equal(m, np.concatenate([r.features for r in rows]))
    assert len(m) == len(pa.compute.list_flatten(six.column("item_ids")))
    with pytest.raises(ValueError, match="different numbers of features"):
        feature_matrix(table)


def test_feature_names_stored_per_file_resolved_per_record(tmp_path):
    base = make_record(1)
    variants = [None, NAMES, OTHER_NAMES, NAMES, None, OTHER_NAMES]
    expected = [msgspec_replace(base, request_id=f"r{i}", feature_names=v) for i, v in enumerate(variants)]
    with ImpressionLogger(tmp_path) as log:
        for r in expected:
            log.log(r)
    table = read_impressions(tmp_path)
    assert table.column("feature_names").to_pylist() == [None if v is None else list(v) for v in variants]
    assert_records(tmp_path, expected)


def test_context_values_outside_the_documented_types_read_back_as_json_has_them(tmp_path):
    r = msgspec_replace(make_record(2), context={"tags": ["a", "b"], "score": np.float32(0.5), "n": np.int64(3)})
    with ImpressionLogger(tmp_path) as log:
        log.log(r)
    (back,) = to_records(read_impressions(tmp_path))
    assert back.context == {"tags": ["a", "b"], "score": 0.5, "n": 3}


def msgspec_replace(r: ImpressionRecord, **changes) -> ImpressionRecord:
    import msgspec

    return msgspec.structs.replace(r, **changes)


def test_flush_finishes_the_file_and_logging_goes_on(tmp_path):
    expected = [make_record(seq) for seq in range(25)]
    log = ImpressionLogger(tmp_path, flush_seconds=3600, batch_records=1000)
    try:
        for r in expected[:10]:
            log.log(r)
        assert log.flush(timeout=30)
        assert files(tmp_path, ".partial") == []
        assert_records(tmp_path, expected[:10])
        assert log.flush(timeout=30)  # nothing new: no empty file
        assert len(files(tmp_path)) == 1
        for r in expected[10:]:
            log.log(r)
    finally:
        assert log.close(timeout=30)
    assert len(files(tmp_path)) == 2 and log.stats.files_completed == 2
    assert_records(tmp_path, expected)


def test_close_is_idempotent_and_log_after_close_raises(tmp_path):
    log = ImpressionLogger(tmp_path)
    log.log(make_record(3))
    assert log.close() and log.close() and log.closed
    assert log.flush(timeout=1)
    with pytest.raises(RuntimeError, match="after close"):
        log.log(make_record(4))
    assert log.stats.logged == 1 and log.stats.written == 1
    assert isinstance(log.stats, LoggerStats) and "closed" in repr(log)


def test_empty_directory_reads_as_an_empty_table(tmp_path):
    with ImpressionLogger(tmp_path):
        pass
    assert os.listdir(tmp_path) == []
    table = read_impressions(tmp_path)
    assert table.num_rows == 0 and to_records(table) == []


@pytest.mark.parametrize("kw", [{"when_full": "wait"}, {"compression": "gzip"}, {"queue_size": 0},
                                {"rotate_bytes": 0}, {"flush_seconds": 0}, {"rotate_seconds": -1},
                                {"batch_records": 1.5}, {"prefix": "a/b"}, {"prefix": ""}])
def test_bad_options_are_refused(tmp_path, kw):
    with pytest.raises(ValueError):
        ImpressionLogger(tmp_path, **kw)


# ---- rotation -------------------------------------------------------------------------

def test_rotation_by_size_gives_several_complete_files(tmp_path):
    expected = [make_record(seq) for seq in range(300)]
    with ImpressionLogger(tmp_path, rotate_bytes=16 << 10, batch_records=8) as log:
        for r in expected:
            log.log(r)
    names = files(tmp_path)
    assert len(names) >= 4 and log.stats.files_completed == len(names)
    assert files(tmp_path, ".partial") == []
    assert sum(os.path.getsize(tmp_path / n) for n in names) == log.stats.bytes_written
    counts = []
    for i, name in enumerate(names):  # each file is complete on its own
        single = tmp_path / f"one-{i}"
        single.mkdir()
        shutil.copy(tmp_path / name, single / name)
        counts.append(read_impressions(single).num_rows)
    assert sum(counts) == 300 and min(counts) > 0
    assert_records(tmp_path, expected)


def test_rotation_by_age(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(writer_module, "_monotonic", lambda: clock[0])
    expected = [make_record(seq) for seq in range(15)]
    with ImpressionLogger(tmp_path, rotate_seconds=10, batch_records=5) as log:
        for group in range(3):
            for r in expected[5 * group:5 * group + 5]:
                log.log(r)  # a full batch: written without waiting for flush_seconds
            wait_until(lambda n=5 * group + 5: log.stats.written == n, "the batch to be written")
            clock[0] += 11 if group != 1 else 1  # the second batch joins the first file's successor
    assert len(files(tmp_path)) == 2
    first, second = (read_impressions_one(tmp_path, n) for n in files(tmp_path))
    assert first == 5 and second == 10
    assert_records(tmp_path, expected)


def read_impressions_one(directory, name) -> int:
    with pa.memory_map(str(directory / name)) as source:
        return ipc.open_file(source).read_all().num_rows


def test_an_idle_old_file_is_completed_without_flush(tmp_path):
    expected = [make_record(seq) for seq in range(3)]
    with ImpressionLogger(tmp_path, rotate_seconds=0.2, flush_seconds=0.01) as log:
        for r in expected:
            log.log(r)
        wait_until(lambda: log.stats.files_completed == 1, "the age rotation of an idle file")
        assert files(tmp_path, ".partial") == []
        assert_records(tmp_path, expected)
    assert log.stats.files_completed == 1


# ---- a full queue ---------------------------------------------------------------------

def test_drop_counts_every_dropped_record(tmp_path, monkeypatch, caplog):
    stall = Stall(monkeypatch)
    expected = [make_record(seq) for seq in range(15)]
    log = ImpressionLogger(tmp_path, queue_size=4, when_full="drop", batch_records=1)
    try:
        assert log.log(expected[0])
        assert stall.entered.wait(30)  # the writer holds record 0
        with caplog.at_level(logging.WARNING, logger="engine.impressions"):
            assert [log.log(r) for r in expected[1:]] == [True] * 4 + [False] * 10
        s = log.stats
        assert (s.logged, s.dropped, s.queue_depth) == (15, 10, 5)
        warnings = [r for r in caplog.records if r.name == "engine.impressions"]
        assert len(warnings) == 1 and "queue is full" in warnings[0].getMessage()  # once a minute at most
    finally:
        stall.release.set()
        assert log.close(timeout=30)
    s = log.stats
    assert (s.logged, s.written, s.dropped, s.rejected, s.queue_depth) == (15, 5, 10, 0, 0)
    assert s.logged == s.written + s.dropped
    assert_records(tmp_path, expected[:5])


def test_block_waits_for_room_and_never_drops(tmp_path, monkeypatch):
    stall = Stall(monkeypatch)
    log = ImpressionLogger(tmp_path, queue_size=2, when_full="block", batch_records=1)
    first = [make_record(seq) for seq in range(4)]
    try:
        log.log(first[0])
        assert stall.entered.wait(30)
        log.log(first[1])
        log.log(first[2])  # the queue is full now
        blocked = threading.Thread(target=log.log, args=(first[3],))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive()  # cannot return before the writer makes room
        assert log.stats.queue_depth == 4  # the blocked call counts as logged
    finally:
        stall.release.set()
    blocked.join(30)
    assert not blocked.is_alive()
    more = {t: [make_record(100 * (t + 1) + k, f"t{t}-{k:04d}") for k in range(150)] for t in range(2)}
    threads = [threading.Thread(target=lambda rs=rs: [log.log(r) for r in rs]) for rs in more.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert log.close(timeout=30)
    s = log.stats
    assert (s.logged, s.written, s.dropped) == (304, 304, 0)
    got = [r.request_id for r in to_records(read_impressions(tmp_path))]
    assert got[:4] == [r.request_id for r in first]
    for t, rs in more.items():
        assert [g for g in got if g.startswith(f"t{t}-")] == [r.request_id for r in rs]


def test_close_lets_callers_blocked_before_it_finish(tmp_path, monkeypatch):
    stall = Stall(monkeypatch)
    log = ImpressionLogger(tmp_path, queue_size=1, batch_records=1)
    rs = [make_record(seq) for seq in range(3)]
    log.log(rs[0])
    assert stall.entered.wait(30)
    log.log(rs[1])
    blocked = threading.Thread(target=log.log, args=(rs[2],))
    blocked.start()
    wait_until(lambda: log._writer.blocked == 1, "the caller to block")
    closer = threading.Thread(target=log.close)
    closer.start()
    wait_until(lambda: log.closed, "close() to start")
    stall.release.set()
    blocked.join(30)
    closer.join(30)
    assert log.stats.written == 3
    assert_records(tmp_path, rs)


def test_eight_threads_log_every_record_exactly_once(tmp_path):
    per_thread = 400
    with ImpressionLogger(tmp_path, queue_size=64, batch_records=50, rotate_bytes=256 << 10) as log:
        def work(t):
            for k in range(per_thread):
                log.log(make_record(k % 50, request_id=f"{t}:{k}"))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    got = read_impressions(tmp_path).column("request_id").to_pylist()
    assert len(got) == len(set(got)) == 8 * per_thread
    for t in range(8):  # and in each thread's order
        assert [int(g.split(":")[1]) for g in got if g.startswith(f"{t}:")] == list(range(per_thread))
    s = log.stats
    assert (s.written, s.dropped, s.rejected) == (8 * per_thread, 0, 0)


# ---- bad records and failing disks ----------------------------------------------------

def test_malformed_records_are_rejected_and_the_writer_goes_on(tmp_path):
    good = [make_record(seq) for seq in range(1, 9)]
    r = good[0]
    n = len(r.item_ids)
    bad = [
        msgspec_replace(r, request_id="bad-features", features=np.zeros((n + 1, 6), np.float32)),
        msgspec_replace(r, request_id="bad-propensities", propensities=np.full(n, 0.5)[:-1]),
        msgspec_replace(r, request_id="bad-probability", propensities=np.full(n, 1.5)),
        msgspec_replace(r, request_id="bad-positions", positions=-np.ones(n, np.int32)),
        msgspec_replace(r, request_id="bad-context", context={"when": object()}),
        msgspec_replace(r, request_id="bad-names", feature_names=("a", "b")),
        msgspec_replace(r, request_id="bad-ids", item_ids=[1, 2, 3]),
        msgspec_replace(r, request_id="bad-component", components={"p_click": np.zeros(n + 2, np.float32)}),
        msgspec_replace(r, request_id="bad-user", user_id=-5),
        msgspec_replace(r, request_id=7),
        "not a record",
    ]
    with ImpressionLogger(tmp_path, batch_records=4) as log:
        for k in range(len(bad)):
            if k < len(good):
                assert log.log(good[k]) is True
            assert log.log(bad[k]) is False  # checked in log(), counted, never raised
    s = log.stats
    assert (s.logged, s.written, s.rejected, s.dropped) == (len(good) + len(bad), len(good), len(bad), 0)
    assert s.first_rejection.startswith("record 'bad-features': features: shape")
    assert s.last_error.startswith("rejected: expected an ImpressionRecord, got str")
    assert_records(tmp_path, good)


def test_a_record_that_fails_conversion_is_isolated(tmp_path):
    good = [make_record(seq) for seq in range(1, 6)]
    bad = msgspec_replace(good[0], request_id="bad-\ud800")  # a lone surrogate cannot be UTF-8
    with ImpressionLogger(tmp_path, batch_records=10) as log:
        for r in good[:2] + [bad] + good[2:]:
            log.log(r)
    assert (log.stats.written, log.stats.rejected) == (5, 1)
    assert_records(tmp_path, good)


def test_a_failure_to_create_a_file_drops_that_batch_only(tmp_path, monkeypatch):
    original = writer_module._Writer._open_file
    calls = []

    def full_disk(writer, names):
        calls.append(names)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(writer, names)

    monkeypatch.setattr(writer_module._Writer, "_open_file", full_disk)
    expected = [make_record(seq) for seq in range(10)]
    with ImpressionLogger(tmp_path, batch_records=5) as log:
        for r in expected:
            log.log(r)
    s = log.stats
    assert (s.written, s.dropped, s.write_errors) == (5, 5, 1)
    assert "No space left on device" in s.last_error and str(tmp_path) in s.last_error
    assert_records(tmp_path, expected[5:])


def test_a_failing_write_leaves_a_recoverable_partial_and_the_next_batch_a_new_file(tmp_path, monkeypatch):
    real_new_file = ipc.new_file
    writes = []

    class FailingSecondWrite:
        def __init__(self, writer):
            self.writer = writer

        def write_batch(self, batch, **kw):
            writes.append(batch.num_rows)
            if len(writes) == 2:
                raise OSError(errno.EIO, "Input/output error")
            self.writer.write_batch(batch, **kw)

        def close(self):
            self.writer.close()

    monkeypatch.setattr(writer_module.ipc, "new_file", lambda *a, **k: FailingSecondWrite(real_new_file(*a, **k)))
    expected = [make_record(seq) for seq in range(15)]
    with ImpressionLogger(tmp_path, batch_records=5) as log:
        for r in expected:
            log.log(r)
        wait_until(lambda: len(writes) == 3, "three batch writes")
    s = log.stats
    assert (s.written, s.dropped, s.write_errors, s.files_completed) == (5, 10, 1, 1)
    assert "Input/output error" in s.last_error and ".arrow.partial" in s.last_error
    assert len(files(tmp_path, ".partial")) == 1
    assert_records(tmp_path, expected[10:])
    assert_records(tmp_path, expected[:5] + expected[10:], include_partial=True)


def test_a_dead_writer_thread_never_blocks_callers(tmp_path, monkeypatch):
    def bug(writer, *args):
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(writer_module._Writer, "_write", bug)
    log = ImpressionLogger(tmp_path, queue_size=2, batch_records=1)
    log.log(make_record(1))
    wait_until(lambda: log._writer.finished, "the writer thread to stop")
    assert [log.log(make_record(seq)) for seq in range(5)] == [False] * 5  # dropped, not blocked
    s = log.stats
    assert (s.logged, s.dropped, s.written, s.queue_depth) == (6, 6, 0, 0)
    assert "RuntimeError: a bug in the writer" in s.last_error
    assert log.flush(timeout=5) and log.close(timeout=5)


# ---- damaged and partial files --------------------------------------------------------

@pytest.fixture(scope="module")
def five_batches(tmp_path_factory):
    """A completed file of 50 records in 5 batches."""
    directory = tmp_path_factory.mktemp("five")
    with ImpressionLogger(directory, batch_records=10) as log:
        for seq in range(50):
            log.log(make_record(seq))
    (name,) = files(directory)
    return (directory / name).read_bytes(), name


def test_truncated_or_damaged_completed_files_are_refused_by_name(tmp_path, five_batches):
    blob, name = five_batches
    for cut in sorted({0, 1, 7, 8, 100, len(blob) // 2, len(blob) - 40, len(blob) - 11, len(blob) - 1}):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        (folder / name).write_bytes(blob[:cut])
        with pytest.raises(CorruptFileError, match=re.escape(str(folder / name))):
            read_impressions(folder)
    footer = int.from_bytes(blob[-10:-6], "little")
    damaged = bytearray(blob)
    damaged[-10 - footer:-10] = b"\xff" * footer
    (tmp_path / "footer").mkdir()
    (tmp_path / "footer" / name).write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError, match=re.escape(str(tmp_path / "footer" / name))):
        read_impressions(tmp_path / "footer")


def test_foreign_and_inconsistent_arrow_files_are_refused(tmp_path, five_batches):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with ipc.new_file(str(foreign / "x.arrow"), pa.schema([("a", pa.int64())])) as w:
        w.write_table(pa.table({"a": [1, 2]}))
    with pytest.raises(CorruptFileError, match="x.arrow: not an impression log"):
        read_impressions(foreign)
    # The impression schema, but a record whose positions miss an item.
    blob, name = five_batches
    source = tmp_path / "src"
    source.mkdir()
    (source / name).write_bytes(blob)
    with pa.memory_map(str(source / name)) as f:
        reader = ipc.open_file(f)
        schema, batch = reader.schema, reader.get_batch(0)
    positions = batch.column("positions")
    n = np.diff(positions.offsets.to_numpy())
    row = int(np.flatnonzero(n > 0)[0])
    offsets = positions.offsets.to_numpy().copy()
    offsets[row + 1:] -= 1
    short = pa.ListArray.from_arrays(pa.array(offsets), positions.values.slice(0, int(offsets[-1])))
    broken = batch.set_column(batch.schema.get_field_index("positions"), schema.field("positions"), short)
    bad = tmp_path / "bad"
    bad.mkdir()
    with ipc.new_file(str(bad / name), schema) as w:
        w.write_batch(broken, custom_metadata={b"crc32": str(_schema.batch_crc(broken))})
    with pytest.raises(CorruptFileError, match=rf"{re.escape(name)}: record batch 0: column positions"):
        read_impressions(bad)


def test_a_flipped_bit_in_the_data_fails_the_batch_checksum(tmp_path, five_batches):
    blob, name = five_batches
    victim = make_record(33)  # in the fourth batch
    at = blob.find(victim.features.tobytes())
    assert at > 0 and blob.find(victim.features.tobytes(), at + 1) == -1
    damaged = bytearray(blob)
    damaged[at + 5] ^= 0x10
    (tmp_path / "arrow").mkdir()
    (tmp_path / "arrow" / name).write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError, match=rf"{re.escape(name)}: record batch 3: checksum mismatch"):
        read_impressions(tmp_path / "arrow")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / (name + ".partial")).write_bytes(bytes(damaged[:-100]))
    got = to_records(read_impressions(tmp_path / "partial", include_partial=True))
    assert [r.request_id for r in got] == [make_record(seq).request_id for seq in range(30)]


def test_partial_files_give_back_whole_batches_only(tmp_path, five_batches):
    blob, name = five_batches
    expected = [make_record(seq) for seq in range(50)]
    rng = np.random.default_rng(5)
    cuts = sorted({0, 4, 8, 9, 200, len(blob) - 1, len(blob)} | set(rng.integers(0, len(blob), 40).tolist()))
    recovered = set()
    for cut in cuts:
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        (folder / (name + ".partial")).write_bytes(blob[:cut])
        assert read_impressions(folder).num_rows == 0  # partial files only on request
        got = to_records(read_impressions(folder, include_partial=True))
        assert len(got) % 10 == 0  # whole batches
        for a, b in zip(expected, got):  # a prefix, never garbage
            assert_same(a, b)
        recovered.add(len(got))
    assert 0 in recovered and 50 in recovered and len(recovered) >= 4


def test_a_garbage_collected_logger_finishes_its_file(tmp_path):
    log = ImpressionLogger(tmp_path, flush_seconds=3600)
    writer = log._writer
    expected = [make_record(seq) for seq in range(20)]
    for r in expected:
        log.log(r)
    del log
    gc.collect()
    writer.thread.join(30)
    assert not writer.thread.is_alive()
    assert files(tmp_path, ".partial") == [] and len(files(tmp_path)) == 1
    assert_records(tmp_path, expected)


def test_many_feature_name_sets_empty_and_oversized_records_round_trip(tmp_path):
    # Over 64 distinct name tuples (the writer's table of them is reset when
    # its queue empties), a record with no items, and one larger than a batch
    # may be (rotate_bytes caps batches): each comes back exactly.
    records = []
    for seq in range(1, 140):
        r = make_record(seq)
        if r.feature_names is not None:
            r = msgspec_replace(r, feature_names=tuple(f"n{seq}_{j}" for j in range(r.features.shape[1])))
        records.append(r)
    empty = msgspec_replace(make_record(7), request_id="empty", item_ids=np.zeros(0, np.uint64),
                            positions=np.zeros(0, np.int32), value=np.zeros(0, np.float32), components={},
                            features=np.zeros((0, 6), np.float32), propensities=None, choice_probabilities=None)
    n = 6_000  # 6,000 x 60 float32: 1.4 MB, over the 1 MiB batch cap below
    big = msgspec_replace(make_record(8), request_id="big", item_ids=np.arange(n, dtype=np.uint64),
                          positions=np.arange(n, dtype=np.int32), value=np.ones(n, np.float32),
                          components={"p": np.ones(n, np.float32)},
                          features=np.random.default_rng(0).random((n, 60), dtype=np.float32),
                          feature_names=tuple(f"f{j}" for j in range(60)), propensities=None,
                          choice_probabilities=None)
    expected = records[:70] + [empty, big] + records[70:]
    with ImpressionLogger(tmp_path, batch_records=16, flush_seconds=0.05, rotate_bytes=1 << 20) as log:
        assert all(log.log(r) for r in expected)
    s = log.stats
    assert (s.written, s.rejected, s.dropped) == (len(expected), 0, 0)
    assert_records(tmp_path, expected)
