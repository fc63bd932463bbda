"""The impression log's writer thread: a bounded queue drained into Arrow IPC
files (``.partial`` while written; footer, fsync and rename when finished),
with rotation, the block / drop policy, error accounting and the process
hooks (fork, exit). `ImpressionLogger` (logger.py) is its public face; the
file format is documented there."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref

import msgspec
import pyarrow as pa
from pyarrow import ipc

from engine import _core
from engine.impressions import _schema

_log = logging.getLogger("engine.impressions")
_monotonic = time.monotonic  # the writer's clock (tests replace it)
_SEQUENCE = itertools.count()  # file numbers, shared by all loggers of the process: names never collide
_MAX_BATCH_BYTES = 32 << 20
_WARN_EVERY = 60.0  # seconds between two warnings about dropped records / write errors
_WRITERS: weakref.WeakSet = weakref.WeakSet()  # every writer state of the process, for fork()
# The thread sleeps this long between the columns of a batch it converts or
# checksums. Those steps hold the GIL, and a request thread coming back from
# a native call waits for the GIL until the writer lets go: a voluntary
# release (sleep(0)) is taken back before the waiting thread wakes up, so
# without a real sleep it could wait for the whole batch (~1 ms) or the 5 ms
# switch interval. A batch then takes ~34 pauses longer, which nobody waits for.
_PAUSE_SECONDS = 20e-6


def _pause() -> None:
    time.sleep(_PAUSE_SECONDS)


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
        # Records logged and not yet taken by the thread, checked and copied in Arrow
        # layout (cpp/impressions/staging.hpp): the thread's Python work is per batch.
        self.pending = _core.ImpressionColumns()
        self.queued = 0  # len(self.pending), kept under the lock
        self.names: list = []  # feature-name tuples of the queued records, by names_slot
        self.slot_of: dict = {}  # id(tuple) -> (tuple, slot) and tuple -> slot
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
        self.pending = _core.ImpressionColumns()  # the parent writes these
        self.queued = 0
        self.names, self.slot_of = [], {}
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
            self.logged += 1
            if self.queued >= self.queue_size and not (self.drop or self.finished):
                self.blocked += 1
                try:
                    while self.queued >= self.queue_size and not self.finished:
                        self.has_room.wait()
                finally:
                    self.blocked -= 1
            if self.queued >= self.queue_size or self.finished:
                warning = self._drop()
            else:
                try:
                    _schema.append(self.pending, record, self._names_slot)
                except _schema.RecordError as e:
                    warning = self._reject(str(e))
                else:
                    self.queued += 1
                    if self.queued == 1:
                        self.first_pending_at = _monotonic()
                        self.has_work.notify()
                    elif self.queued == self.batch_records:
                        self.has_work.notify()
                    return True
        _emit(warning)
        return False

    def _names_slot(self, names: tuple) -> int:
        """The number of a feature-names tuple in self.names (under the lock):
        records share one tuple, found by identity; equal tuples share a number."""
        hit = self.slot_of.get(id(names))
        if hit is not None and hit[0] is names:
            return hit[1]
        slot = self.slot_of.get(names)
        if slot is None:
            _schema.check_names(names)
            slot = self.slot_of[names] = len(self.names)
            self.names.append(names)
        self.slot_of[id(names)] = (names, slot)
        return slot

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
        return _log.warning, ("impression logger %s: dropping records because %s; %d dropped so far",
                              self.directory, reason, self.dropped)

    def _reject(self, why: str, count: int = 1):
        """Count rejected records (under the lock); the error to log, at most once a minute."""
        self.rejected += count
        self.last_error = f"rejected: {why}"
        if self.first_rejection is None:
            self.first_rejection = why
        return self._error("impression logger %s: rejected a record: %s", self.directory, why)

    def _error(self, message: str, *args):
        """(under the lock) The error to log, or None within a minute of the last one."""
        now = _monotonic()
        if now - self.last_error_log < _WARN_EVERY:
            return None
        self.last_error_log = now
        return _log.error, (message, *args)

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
                self.pending, self.queued = _core.ImpressionColumns(), 0  # lost, with the records in flight
                self.dropped = self.logged - self.written - self.rejected
        finally:
            with self.lock:
                self.finished = True
                for event in self.flush_waiters:
                    event.set()
                self.flush_waiters = []
                self.has_room.notify_all()

    def _take(self):
        """Wait for work; returns (records taken, their feature names by slot, flush events, exit)."""
        with self.lock:
            while True:
                n = self.queued
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
            records = self.pending.take(k) if k else None  # a swap when k is all of them
            names = self.names
            self.queued -= k
            if self.queued == 0 and len(self.names) > 64:  # forget the names of many past records
                self.names, self.slot_of = [], {}
            if k and self.blocked:
                self.has_room.notify(k)
            flushes, self.flush_waiters = self.flush_waiters, []
            done = self.closing and not self.queued and not self.blocked
        return records, names, flushes, done

    def _loop(self) -> None:
        while True:
            records, names, flushes, done = self._take()
            while records is not None and len(records):
                self._write(records.take(self.batch_records, self.max_batch_bytes), names)
            if self.file is not None and (flushes or done or self._too_old()):
                self._finish_file()
            for event in flushes:
                event.set()
            if done:
                return

    def _too_old(self) -> bool:
        return _monotonic() - self.file.opened_at >= self.rotate_seconds

    def _log_error(self, message: str, *args) -> None:
        with self.lock:
            error = self._error(message, *args)
        _emit(error)

    def _write(self, records, names_of_slot: list) -> None:
        """Write one batch of records (an ImpressionColumns) to the current file."""
        if self.file is not None and self._too_old():
            self._finish_file()
        count = len(records)
        arrays = records.to_arrays()
        first = int(arrays["names_slot"][0])
        names = self.file.names if self.file is not None else None if first < 0 else names_of_slot[first]
        try:
            batch = _schema.to_batch(arrays, names_of_slot, names, _pause)
        except Exception as e:  # noqa: BLE001 - a bug, not the records' fault (they were checked): never stop
            with self.lock:
                error = self._reject(f"a batch of {count} records: {type(e).__name__}: {e}", count)
            _emit(error)
            return
        try:
            if self.file is None:
                self._open_file(names)
            f = self.file
            crc = _schema.batch_crc(batch, _pause)
            f.writer.write_batch(batch, custom_metadata={_schema.BATCH_CRC: str(crc)})
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


def _emit(message) -> None:
    """Log a (logging function, arguments) pair made under the lock, if any."""
    if message is not None:
        emit, args = message
        emit(*args)


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
