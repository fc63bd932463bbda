"""The impression log's writer thread: a bounded queue drained into Arrow IPC
files (``.partial`` while written; footer, fsync and rename when finished),
with rotation, the block / drop policy, error accounting and the process
hooks (fork, exit). `ImpressionLogger` (logger.py) is its public face; the
file format is documented there."""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
import weakref

import msgspec
import pyarrow as pa
from pyarrow import ipc

from engine.impressions import _schema

_log = logging.getLogger("engine.impressions")
_monotonic = time.monotonic  # the writer's clock (tests replace it)
_SEQUENCE = itertools.count()  # file numbers, shared by all loggers of the process: names never collide
_MAX_BATCH_BYTES = 32 << 20
_WARN_EVERY = 60.0  # seconds between two warnings about dropped records / write errors
_WRITERS: weakref.WeakSet = weakref.WeakSet()  # every writer state of the process, for fork()


class LoggerStats(msgspec.Struct, frozen=True):
    """Counters of one logger since it was created.

    ``logged == written + dropped + rejected + queue_depth`` at every moment;
    after ``flush()`` or ``close()`` returns, ``queue_depth`` counts only the
    records logged since.
    """

    logged: int  #: calls to log() (records accepted or dropped)
    written: int  #: records in completed files or in the current file
    dropped: int  #: queue full (when_full="drop"), or lost to a write error
    rejected: int  #: malformed records (see first_rejection)
    files_completed: int  #: .arrow files finished by this logger
    bytes_written: int  #: bytes written to files, including the current one
    queue_depth: int  #: logged records not yet written, dropped or rejected
    last_error: str | None  #: the latest write error or rejection
    first_rejection: str | None = None  #: why the first rejected record was refused
    write_errors: int = 0  #: failed file operations (each drops the records it concerned)


class _File:
    __slots__ = ("final", "names", "opened_at", "partial", "records", "sink", "size", "writer")


class _Writer:
    """The state shared by the logger and its thread; holds no reference to the logger."""

    def __init__(self, directory, rotate_bytes, rotate_seconds, queue_size, drop, batch_records,
                 flush_seconds, prefix, compression):
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.queue_size = queue_size
        self.drop = drop
        self.batch_records = batch_records
        self.flush_seconds = flush_seconds
        self.prefix = prefix
        self.max_batch_bytes = max(1, min(_MAX_BATCH_BYTES, rotate_bytes))
        self.options = ipc.IpcWriteOptions(compression=compression)

        self.lock = threading.Lock()
        self.has_work = threading.Condition(self.lock)
        self.has_room = threading.Condition(self.lock)
        self.pending: collections.deque = collections.deque()
        self.first_pending_at = 0.0
        self.blocked = 0  # callers waiting for room
        self.closing = False
        self.finished = False  # the thread has exited
        self.flush_waiters: list[threading.Event] = []
        self.last_drop_warning = -float("inf")
        self.last_error_log = -float("inf")
        # Counters (under the lock).
        self.logged = self.written = self.dropped = self.rejected = 0
        self.files_completed = self.bytes_written = self.write_errors = 0
        self.last_error: str | None = None
        self.first_rejection: str | None = None
        # The thread's own state.
        self.file: _File | None = None
        self.forked = False
        self.thread = threading.Thread(target=self.run, name=f"impressions-writer[{prefix}]", daemon=True)
        _WRITERS.add(self)

    def after_fork_in_child(self) -> None:
        """The child of a fork() has no writer thread (and maybe a lock held by
        it): the logger drops what the child logs, with a warning, instead of
        blocking or writing the parent's files."""
        self.lock = threading.Lock()
        self.has_work = threading.Condition(self.lock)
        self.has_room = threading.Condition(self.lock)
        self.pending = collections.deque()  # the parent writes these
        self.flush_waiters = []
        self.blocked = 0
        self.finished = self.forked = True
        self.file = None  # the parent's open file: never touched here
        self.logged = self.written = self.dropped = self.rejected = 0
        self.files_completed = self.bytes_written = self.write_errors = 0
        self.last_error = ("this process is a fork() of the one that created the ImpressionLogger and has no writer"
                           " thread: its records are dropped (create loggers after fork())")

    # ---- the callers' side ------------------------------------------------
    def put(self, record) -> bool:
        with self.lock:
            if self.closing:
                raise RuntimeError("ImpressionLogger.log() after close()")
            pending = self.pending
            self.logged += 1
            if len(pending) >= self.queue_size and not (self.drop or self.finished):
                self.blocked += 1
                try:
                    while len(pending) >= self.queue_size and not self.finished:
                        self.has_room.wait()
                finally:
                    self.blocked -= 1
            if len(pending) >= self.queue_size or self.finished:
                warning = self._drop()
            else:
                pending.append(record)
                if len(pending) == 1:
                    self.first_pending_at = _monotonic()
                    self.has_work.notify()
                elif len(pending) == self.batch_records:
                    self.has_work.notify()
                return True
        if warning is not None:
            _log.warning(*warning)
        return False

    def _drop(self):
        """Count one dropped record (under the lock); the warning to emit, at most once a minute."""
        self.dropped += 1
        now = _monotonic()
        if now - self.last_drop_warning < _WARN_EVERY:
            return None
        self.last_drop_warning = now
        reason = ("the process was forked after the logger was created (create loggers after fork())" if self.forked
                  else "the writer thread has stopped" if self.finished
                  else f"the queue is full ({self.queue_size} records)")
        return ("impression logger %s: dropping records because %s; %d dropped so far",
                self.directory, reason, self.dropped)

    def request_flush(self) -> threading.Event:
        event = threading.Event()
        with self.lock:
            if self.finished:
                event.set()
            else:
                self.flush_waiters.append(event)
                self.has_work.notify()
        return event

    def request_close(self) -> None:
        with self.lock:
            self.closing = True
            self.has_work.notify()

    def stats(self) -> LoggerStats:
        with self.lock:
            return LoggerStats(
                logged=self.logged, written=self.written, dropped=self.dropped, rejected=self.rejected,
                files_completed=self.files_completed, bytes_written=self.bytes_written,
                queue_depth=self.logged - self.written - self.dropped - self.rejected,
                last_error=self.last_error, first_rejection=self.first_rejection,
                write_errors=self.write_errors)

    # ---- the thread -------------------------------------------------------
    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - a bug: report it, and never leave callers blocked
            _log.exception("impression logger %s: the writer thread failed", self.directory)
            self._abandon_file()
            with self.lock:
                self.last_error = f"the writer thread stopped: {type(e).__name__}: {e}"
                self.pending.clear()  # with the records in flight: all that is not accounted for is lost
                self.dropped = self.logged - self.written - self.rejected
        finally:
            with self.lock:
                self.finished = True
                for event in self.flush_waiters:
                    event.set()
                self.flush_waiters = []
                self.has_room.notify_all()

    def _take(self):
        """Wait for work; returns (records, flush events, exit)."""
        with self.lock:
            while True:
                n = len(self.pending)
                if self.closing or self.flush_waiters:
                    if n == 0 and self.blocked and not self.flush_waiters:
                        self.has_work.wait()  # a caller blocked before close() is about to add its record
                        continue
                    k = n
                    break
                if n >= self.batch_records:
                    k = self.batch_records
                    break
                now = _monotonic()
                timeout = None
                if n:
                    due = self.first_pending_at + self.flush_seconds
                    if now >= due:
                        k = n
                        break
                    timeout = due - now
                if self.file is not None:
                    due = self.file.opened_at + self.rotate_seconds
                    if now >= due:
                        k = 0
                        break
                    timeout = due - now if timeout is None else min(timeout, due - now)
                self.has_work.wait(timeout)
            records = [self.pending.popleft() for _ in range(k)]
            if k and self.blocked:
                self.has_room.notify(k)
            flushes, self.flush_waiters = self.flush_waiters, []
            done = self.closing and not self.pending and not self.blocked
        return records, flushes, done

    def _loop(self) -> None:
        while True:
            records, flushes, done = self._take()
            if records:
                self._process(records)
            if self.file is not None and (flushes or done or self._too_old()):
                self._finish_file()
            for event in flushes:
                event.set()
            if done:
                return

    def _too_old(self) -> bool:
        return _monotonic() - self.file.opened_at >= self.rotate_seconds

    def _process(self, records: list) -> None:
        rows, size = [], 0
        for record in records:
            # Checking a record is ~10 us of Python holding the GIL; without a
            # yield, a request thread could wait for the writer's whole batch
            # (up to the 5 ms switch interval). sleep(0) hands the GIL over.
            time.sleep(0)
            try:
                row = _schema.check(record)
            except Exception as e:  # noqa: BLE001 - a malformed record never stops the writer
                self._reject(str(e))
                continue
            rows.append(row)
            size += row.nbytes
            if len(rows) >= self.batch_records or size >= self.max_batch_bytes:
                self._write(rows)
                rows, size = [], 0
        if rows:
            self._write(rows)

    def _reject(self, why: str, count: int = 1) -> None:
        with self.lock:
            self.rejected += count
            self.last_error = f"rejected: {why}"
            if self.first_rejection is None:
                self.first_rejection = why
        self._log_error("impression logger %s: rejected a record: %s", self.directory, why)

    def _log_error(self, message: str, *args) -> None:
        now = _monotonic()
        if now - self.last_error_log >= _WARN_EVERY:
            self.last_error_log = now
            _log.error(message, *args)

    def _to_batch(self, rows: list, names) -> tuple[pa.RecordBatch | None, int]:
        try:
            return _schema.to_batch(rows, names), len(rows)
        except Exception:  # noqa: BLE001 - find the records that cannot be converted
            good = []
            for row in rows:
                try:
                    _schema.to_batch([row], names)
                    good.append(row)
                except Exception as e:  # noqa: BLE001
                    self._reject(f"record {row.request_id!r}: {type(e).__name__}: {e}")
            try:
                return (_schema.to_batch(good, names), len(good)) if good else (None, 0)
            except Exception as e:  # noqa: BLE001 - each converts alone but not together (a batch too large?)
                self._reject(f"a batch of {len(good)} records: {type(e).__name__}: {e}", len(good))
                return None, 0

    def _write(self, rows: list) -> None:
        if self.file is not None and self._too_old():
            self._finish_file()
        names = self.file.names if self.file is not None else rows[0].feature_names
        batch, count = self._to_batch(rows, names)
        if batch is None:
            return
        try:
            if self.file is None:
                self._open_file(names)
            f = self.file
            f.writer.write_batch(batch, custom_metadata={_schema.BATCH_CRC: str(_schema.batch_crc(batch))})
            size = f.sink.tell()
        except Exception as e:  # noqa: BLE001 - disk full, permissions, ...: never the host's problem
            self._write_failed(count, e)
            return
        with self.lock:
            self.written += count
            self.bytes_written += size - f.size
        f.size = size
        f.records += count
        if size >= self.rotate_bytes:
            self._finish_file()

    def _open_file(self, names) -> None:
        os.makedirs(self.directory, exist_ok=True)  # in case it was removed while running
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        while True:
            final = os.path.join(self.directory, f"{self.prefix}-{stamp}-{os.getpid()}-{next(_SEQUENCE):06d}.arrow")
            partial = final + ".partial"
            if os.path.exists(final):
                continue
            try:
                os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                continue
            break
        f = _File()
        f.final, f.partial, f.names = final, partial, names
        f.opened_at, f.records, f.writer = _monotonic(), 0, None
        try:
            f.sink = pa.OSFile(partial, "wb")
            f.writer = ipc.new_file(f.sink, _schema.file_schema(names), options=self.options)
            f.size = f.sink.tell()
        except BaseException:
            if getattr(f, "sink", None) is not None:
                f.sink.close()
            _remove(partial)
            raise
        self.file = f
        with self.lock:
            self.bytes_written += f.size

    def _finish_file(self) -> None:
        f, self.file = self.file, None
        try:
            f.writer.close()
            size = f.sink.tell()
            os.fsync(f.sink.fileno())
            f.sink.close()
            os.rename(f.partial, f.final)
        except Exception as e:  # noqa: BLE001
            self.file = f
            self._write_failed(0, e)
            return
        with self.lock:
            self.files_completed += 1
            self.bytes_written += size - f.size
        try:
            _fsync_directory(self.directory)
        except OSError as e:  # the file is complete; only its name may not be durable yet
            with self.lock:
                self.write_errors += 1
                self.last_error = f"{self.directory}: fsync of the directory failed: {e}"

    def _write_failed(self, count: int, error: Exception) -> None:
        """Drop ``count`` records and the records of the current file, which
        stays behind as ``.partial`` (its whole batches can be recovered)."""
        f = self.file
        where = f.partial if f is not None else self.directory
        lost = f.records if f is not None else 0
        message = f"{where}: {type(error).__name__}: {error}"
        if lost:
            message += (f"; the file's {lost} records stay in the .partial file"
                        " (read_impressions(..., include_partial=True) recovers its whole batches)")
        self._abandon_file()
        with self.lock:
            self.write_errors += 1
            self.dropped += count + lost
            self.written -= lost
            self.last_error = message
        self._log_error("impression logger: %s", message)

    def _abandon_file(self) -> None:
        f, self.file = self.file, None
        if f is None:
            return
        try:
            f.sink.close()
        except Exception:  # noqa: BLE001, S110 - already failing
            pass
        if f.records == 0:
            _remove(f.partial)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(writer_ref: weakref.ref) -> None:
    writer = writer_ref()
    if writer is not None and not writer.finished:
        writer.request_close()
        writer.thread.join()
