"""The impression logger across process ends: a normal exit without close()
loses nothing; SIGKILL leaves complete files plus one recoverable .partial."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from test_impressions import assert_same, files, make_record

from engine.impressions import read_impressions, to_records

TESTS = pathlib.Path(__file__).resolve().parent


def run_python(code: str, *args: str, **kw) -> subprocess.Popen:
    # The child must import the installed engine, not the checkout's source
    # folder (no compiled core): -P keeps the working directory off sys.path,
    # and so must PYTHONPATH (an empty entry there means the working directory).
    paths = [str(TESTS), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    return subprocess.Popen([sys.executable, "-P", "-c", textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def finish(proc: subprocess.Popen, timeout: float = 60) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()
    assert err == b"", err.decode()


@pytest.mark.parametrize("how", ["open", "garbage-collected"])
def test_normal_exit_without_close_writes_every_record(tmp_path, how):
    proc = run_python("""
        import gc, sys
        from engine.impressions import ImpressionLogger
        from test_impressions import make_record
        log = ImpressionLogger(sys.argv[1], flush_seconds=3600, batch_records=64, rotate_bytes=64 << 10)
        for seq in range(500):
            log.log(make_record(seq))
        if sys.argv[2] == "garbage-collected":
            del log
            gc.collect()
    """, str(tmp_path), how)
    finish(proc)
    assert files(tmp_path, ".partial") == [] and len(files(tmp_path)) >= 2
    got = to_records(read_impressions(tmp_path))
    assert len(got) == 500
    for seq, r in enumerate(got):
        assert_same(make_record(seq), r)


def test_sigkill_leaves_complete_files_and_a_recoverable_partial(tmp_path):
    proc = run_python("""
        import sys, time
        from engine.impressions import ImpressionLogger
        from test_impressions import make_record
        log = ImpressionLogger(sys.argv[1], rotate_bytes=24 << 10, batch_records=6, flush_seconds=0.002)
        seq = 0
        while True:
            log.log(make_record(seq))
            seq += 1
            if seq % 3 == 0:
                time.sleep(0.0005)
    """, str(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while len(files(tmp_path)) < 4:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the child wrote no files"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    completed = files(tmp_path)
    partial = files(tmp_path, ".partial")
    assert len(completed) >= 4 and len(partial) <= 1

    # Every completed file is intact and holds whole records with consecutive numbers.
    expected_next = 0
    for i, name in enumerate(completed):
        single = tmp_path / f"only-{i}"
        single.mkdir()
        os.link(tmp_path / name, single / name)
        seqs = [int(r.removeprefix("req-")) for r in read_impressions(single).column("request_id").to_pylist()]
        assert seqs == list(range(expected_next, expected_next + len(seqs))) and seqs
        expected_next += len(seqs)

    # The partial file gives back a prefix of what followed (maybe nothing), never garbage.
    got = to_records(read_impressions(tmp_path, include_partial=True))
    assert len(got) >= expected_next
    for seq, r in enumerate(got):
        assert_same(make_record(seq), r)


def test_a_forked_child_drops_its_records_and_leaves_the_parents_files_alone(tmp_path):
    proc = run_python("""
        import os, sys
        from engine.impressions import ImpressionLogger
        from test_impressions import make_record
        log = ImpressionLogger(sys.argv[1], batch_records=2)
        for seq in range(5):
            log.log(make_record(seq))
        pid = os.fork()
        if pid == 0:
            ok = log.log(make_record(99)) is False and log.close(timeout=5)
            s = log.stats
            ok = ok and (s.logged, s.dropped, s.written) == (1, 1, 0) and "fork()" in s.last_error
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        for seq in range(5, 10):
            log.log(make_record(seq))
        log.close()
        sys.exit(os.waitstatus_to_exitcode(status))
    """, str(tmp_path))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert b"forked after the logger was created" in err  # the child's warning
    got = to_records(read_impressions(tmp_path))
    assert [r.request_id for r in got] == [make_record(seq).request_id for seq in range(10)]
