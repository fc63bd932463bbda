"""The impression logger: ``log()`` enqueues, a background thread writes Arrow IPC files.

Files
-----
``log()`` checks a record and copies it into a bounded native queue that
already has the columns' Arrow layout (``cpp/impressions/staging.hpp``). A
daemon thread takes RecordBatches from it (at most ``batch_records`` records,
and about 32 MiB) and appends them to ``<prefix>-<UTC yyyymmddTHHMMSS>-<pid>-<seq:06d>.arrow.partial``
in the Arrow IPC *file* format. A file ends at the first batch boundary past
``rotate_bytes``, when it is ``rotate_seconds`` old (checked while idle too),
on ``flush()`` and on ``close()``: the writer then writes the footer, fsyncs
the file, renames it to ``.arrow`` and fsyncs the directory. So every
``.arrow`` file is complete and final; names sort chronologically within a
process (``seq`` counts the files of all loggers of the process).

A batch reaches the ``.partial`` file (the operating system, not the disk:
there is no fsync per batch) when it is full or when its oldest record has
waited ``flush_seconds``. A process killed with SIGKILL (or one that crashes)
leaves its current file as ``.partial``: ``read_impressions(directory,
include_partial=True)`` recovers every batch that was written whole, so
what is lost is what was still queued or batched: records younger than
``flush_seconds``, or more if the writer was behind. A power loss can also lose what the operating system had
not yet put on disk for the ``.partial`` file; ``.arrow`` files are fsynced.
The library installs no signal handler: a host that wants SIGTERM to finish
the current file converts it into a normal exit (the default SIGTERM action
kills the process without running ``atexit``), or calls ``close()`` itself.

At interpreter exit an ``atexit`` hook closes every logger still open
(draining its queue). The hook and the thread hold no reference to the
``ImpressionLogger`` itself: a logger that is garbage collected without
``close()`` drains its queue and finishes its file in the background.
Create loggers after ``fork()``: a child process has no writer thread, so a
logger inherited through ``fork()`` drops what the child logs (counted, with
a warning) and leaves the parent's files alone.

Schema (``schema_version`` 1)
----------------------------
One row per record. The schema metadata of each file holds ``format``
(``rank-engine/impressions``), ``schema_version`` (``1``) and
``feature_names``: the JSON list of names of the file's first record (or
``null``). The custom metadata of each record batch holds ``crc32``: the
CRC-32 of the batch's logical content (``_schema.batch_crc``), which the
reader checks, so a damaged batch is refused rather than read as data.

==========================  =============================  ===============================================
column                      Arrow type                     meaning
==========================  =============================  ===============================================
``request_id``              string                         ``ImpressionRecord.request_id``
``timestamp_us``            timestamp[us, tz=UTC]          microseconds since the epoch, UTC
``user_id``                 uint64, nullable               null for anonymous requests
``surface``                 string                         plain (the IPC file format cannot change a
                                                           dictionary between batches)
``context``                 string                         msgspec JSON of the context dict (non-finite
                                                           floats are null, int keys are strings)
``user_vector``             list<float32>, nullable
``item_ids``                list<uint64>                   n items, in position order
``positions``               list<int32>                    n, 0-based
``value``                   list<float32>                  n
``components``              map<string, list<float32>>     name -> n values, in the record's dict order
``n_features``              int32                          F
``features``                list<float32>                  n * F values, row-major: the (n, F) rows
``feature_names``           list<string>, nullable         null: the record's names are the file's
                                                           (metadata); ``[null]``: the record has none
                                                           while the file has; otherwise the names
``propensities``            list<float64>, nullable        n; null when the policy was deterministic
``choice_probabilities``    list<float64>, nullable        n
``bundle_version``          string
``model_versions``          string                         msgspec JSON of the dict
==========================  =============================  ===============================================

``features`` is flat so that, within one record, ``values[o[i]:o[i+1]].reshape(n, F)``
is the served matrix without a copy, and across records with the same F,
``features.values.reshape(-1, F)`` lines up with ``item_ids.values``. The
components are a map because it reads back as ``dict(row["components"])``
in pyarrow and as a MAP in DuckDB. ``read_impressions`` (reader.py) resolves
``feature_names`` per record; its helpers return numpy arrays.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Literal

from engine.impressions.record import ImpressionRecord
from engine.impressions.writer import LoggerStats, _close_at_exit, _Writer

__all__ = ["ImpressionLogger", "LoggerStats"]


class ImpressionLogger:
    """Append impression records to Arrow IPC files in ``directory`` from a background thread.

    ``log(record)`` checks the record and copies it into the queue (~5-15 us
    for a 20-item, 60-feature record; most of it the context's JSON); the
    writer thread builds and writes whole batches, so its Python work (which
    holds the GIL that request threads need back after every native call) is
    per batch, not per record. A malformed record is not queued: ``log()``
    returns False, counts it in ``stats.rejected`` with the reason naming the
    field (``first_rejection``, ``last_error``) and logs an error at most once
    a minute. The record may be reused or modified once ``log()`` returns.

    ``when_full``: ``"block"`` makes ``log()`` wait for room in the queue, so
    a writer that cannot keep up slows the requests that log (backpressure,
    nothing lost); ``"drop"`` drops the record being logged, counts it in
    ``stats.dropped`` and warns through the ``engine.impressions`` logger at
    most once a minute.

    Errors of the writer (disk full, permissions) never reach the caller: they
    are counted in ``stats`` (``last_error``, ``write_errors``, ``dropped``),
    logged at most once a minute, and the next batch tries a new file.
    """

    def __init__(self, directory, *, rotate_bytes: int = 64 << 20, rotate_seconds: float = 3600.0,
                 queue_size: int = 10_000, when_full: Literal["block", "drop"] = "block",
                 batch_records: int = 512, flush_seconds: float = 1.0, prefix: str = "impressions",
                 compression: Literal["zstd", "lz4"] | None = None):
        if when_full not in ("block", "drop"):
            raise ValueError(f"when_full must be 'block' or 'drop', got {when_full!r}")
        if compression not in (None, "zstd", "lz4"):
            raise ValueError(f"compression must be None, 'zstd' or 'lz4', got {compression!r}")
        for name, v in (("rotate_bytes", rotate_bytes), ("queue_size", queue_size), ("batch_records", batch_records)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name, v in (("rotate_seconds", rotate_seconds), ("flush_seconds", flush_seconds)):
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if not isinstance(prefix, str) or not prefix or "/" in prefix or os.sep in prefix or prefix.startswith("."):
            raise ValueError(f"prefix must be a non-empty file name part without '/', got {prefix!r}")
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(f"{directory}: the impression log directory is not writable")
        self._writer = w = _Writer(directory, rotate_bytes, float(rotate_seconds), queue_size, when_full == "drop",
                                   batch_records, float(flush_seconds), prefix, compression)
        self._put = w.put
        self._exit_hook = _ExitHook(weakref.ref(w))
        atexit.register(self._exit_hook)
        # Collected without close(): the thread drains the queue, finishes the file and exits.
        self._finalizer = weakref.finalize(self, w.request_close)
        self._finalizer.atexit = False
        w.thread.start()

    @property
    def directory(self) -> str:
        return self._writer.directory

    def log(self, record: ImpressionRecord) -> bool:
        """Check and enqueue one record. False when it was rejected (malformed)
        or dropped (``when_full="drop"`` and the queue is full). Raises
        RuntimeError after ``close()``."""
        return self._put(record)

    def flush(self, timeout: float | None = None) -> bool:
        """Write every record logged before this call and finish the current
        file, so that ``read_impressions`` sees them in ``.arrow`` files.
        True when done, False when ``timeout`` seconds passed first.
        Records the writer rejected or could not write are in ``stats``."""
        return self._writer.request_flush().wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting records, write the queue, finish the current file and
        join the thread. True when the thread has finished (False: ``timeout``
        passed first; the thread goes on). Idempotent."""
        w = self._writer
        w.request_close()
        w.thread.join(timeout)
        if w.thread.is_alive():
            return False
        atexit.unregister(self._exit_hook)
        self._finalizer.detach()
        return True

    @property
    def stats(self) -> LoggerStats:
        return self._writer.stats()

    @property
    def closed(self) -> bool:
        return self._writer.closing

    def __enter__(self) -> ImpressionLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats
        state = "closed" if self.closed else "open"
        return (f"ImpressionLogger({self._writer.directory!r}, {state}, logged={s.logged}, written={s.written},"
                f" dropped={s.dropped}, rejected={s.rejected})")


class _ExitHook:
    """The atexit callback: a weak reference to the writer state only, so
    loggers can be garbage collected; ``atexit.unregister`` finds it by identity."""

    __slots__ = ("ref",)

    def __init__(self, ref: weakref.ref):
        self.ref = ref

    def __call__(self) -> None:
        _close_at_exit(self.ref)
