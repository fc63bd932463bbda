"""The impression log's Arrow schema (documented in engine/impressions/logger.py),
the check of a record as it is copied into the native staging (``append``:
scalars here, arrays in bindings/impressions.cpp), and the RecordBatch of a
taken batch's columns (``to_batch``: a few calls per column, no loop over
records) with its checksum (``batch_crc``)."""

from __future__ import annotations

import zlib

import msgspec
import numpy as np
import pyarrow as pa

from engine.impressions.record import ImpressionRecord

FORMAT = "rank-engine/impressions"
SCHEMA_VERSION = 1
# Keys of the schema metadata of every file.
META_FORMAT = b"format"
META_VERSION = b"schema_version"
META_FEATURE_NAMES = b"feature_names"
# Key of the custom metadata of every record batch: the CRC-32 of its content (batch_crc).
BATCH_CRC = b"crc32"

FIELDS = [
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("timestamp_us", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("user_id", pa.uint64()),
    pa.field("surface", pa.string(), nullable=False),
    pa.field("context", pa.string(), nullable=False),
    pa.field("user_vector", pa.list_(pa.float32())),
    pa.field("item_ids", pa.list_(pa.uint64()), nullable=False),
    pa.field("positions", pa.list_(pa.int32()), nullable=False),
    pa.field("value", pa.list_(pa.float32()), nullable=False),
    pa.field("components", pa.map_(pa.string(), pa.list_(pa.float32())), nullable=False),
    pa.field("n_features", pa.int32(), nullable=False),
    pa.field("features", pa.list_(pa.float32()), nullable=False),
    pa.field("feature_names", pa.list_(pa.string())),
    pa.field("propensities", pa.list_(pa.float64())),
    pa.field("choice_probabilities", pa.list_(pa.float64())),
    pa.field("bundle_version", pa.string(), nullable=False),
    pa.field("model_versions", pa.string(), nullable=False),
]
SCHEMA = pa.schema(FIELDS)
NAMES = [f.name for f in FIELDS]

# The reader's table: feature_names resolved per record (see reader.py).
FEATURE_NAMES_TYPE = pa.dictionary(pa.int32(), pa.list_(pa.string()))
TABLE_SCHEMA = pa.schema([pa.field("feature_names", FEATURE_NAMES_TYPE) if f.name == "feature_names" else f
                          for f in FIELDS])


def file_schema(feature_names: tuple[str, ...] | None) -> pa.Schema:
    return SCHEMA.with_metadata({
        META_FORMAT: FORMAT.encode(),
        META_VERSION: str(SCHEMA_VERSION).encode(),
        META_FEATURE_NAMES: msgspec.json.encode(feature_names),
    })


def _enc_hook(obj):
    if isinstance(obj, np.generic):  # numpy scalars in the request context
        return obj.item()
    raise NotImplementedError(f"objects of type {type(obj).__name__} cannot be stored as JSON")


_json = msgspec.json.Encoder(enc_hook=_enc_hook)


class RecordError(ValueError):
    """A record the logger refuses; the message names the record and the field."""


def append(columns, record, names_slot) -> None:
    """Check one record and copy it into ``columns`` (an ``_core.ImpressionColumns``).
    ``names_slot(names)`` gives the writer's number for a feature-names tuple.
    Raises RecordError naming the record and the field."""
    if not isinstance(record, ImpressionRecord):
        raise RecordError(f"expected an ImpressionRecord, got {type(record).__name__}")
    try:
        _append(columns, record, names_slot)
    except Exception as e:  # noqa: BLE001 - any failure makes the record malformed
        raise RecordError(f"record {record.request_id!r}: {e}") from None


def _append(columns, r: ImpressionRecord, names_slot) -> None:
    # The scalars here (cheap in Python); the arrays natively (bindings/impressions.cpp).
    ts = r.timestamp_us
    if type(ts) is not int and not isinstance(ts, np.integer):
        raise TypeError(f"timestamp_us: expected int, got {type(ts).__name__}")
    if not -(1 << 63) <= ts < (1 << 63):
        raise ValueError(f"timestamp_us: {ts} is outside the int64 range")
    uid = r.user_id
    if uid is not None:
        if isinstance(uid, bool) or not isinstance(uid, (int, np.integer)):
            raise TypeError(f"user_id: expected int or None, got {type(uid).__name__}")
        if not 0 <= uid < (1 << 64):
            raise ValueError(f"user_id: {uid} is outside the uint64 range")
        uid = int(uid)
    if not isinstance(r.context, dict):
        raise TypeError(f"context: expected dict, got {type(r.context).__name__}")
    try:
        context = _json.encode(r.context)
    except (TypeError, NotImplementedError, msgspec.EncodeError, UnicodeError) as e:
        raise ValueError(f"context: {e}") from None
    mv = r.model_versions
    if not isinstance(mv, dict) or not all(type(k) is str and type(v) is str for k, v in mv.items()):
        raise TypeError("model_versions: expected dict[str, str]")
    names = r.feature_names
    if names is not None:
        if isinstance(names, list):
            names = tuple(names)
        if not isinstance(names, tuple):
            raise TypeError("feature_names: expected a tuple of str or None")
    columns.append(
        _utf8("request_id", r.request_id), int(ts), uid, _utf8("surface", r.surface), context, r.user_vector,
        r.item_ids, r.positions, r.value, r.components, r.features,
        -1 if names is None else names_slot(names), -1 if names is None else len(names),
        r.propensities, r.choice_probabilities, _utf8("bundle_version", r.bundle_version), _json.encode(mv))


def _utf8(name: str, s) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"{name}: expected str, got {type(s).__name__}")
    try:
        return s.encode()
    except UnicodeError as e:
        raise ValueError(f"{name}: {e}") from None


def check_names(names: tuple) -> None:
    """A feature-names tuple's entries are str (checked once per tuple, by names_slot)."""
    if not all(type(s) is str for s in names):
        raise TypeError("feature_names: expected a tuple of str or None")


# Arrays are built with from_buffers over the native columns: zero copy, and
# never through pa.array(ndarray), which imports pandas on first use (a long
# GIL hold in the writer thread, and a failure at interpreter exit).
def _validity(valid: np.ndarray) -> tuple[pa.Buffer | None, int]:
    nulls = len(valid) - int(np.count_nonzero(valid))
    return (None, 0) if nulls == 0 else (pa.py_buffer(np.packbits(valid, bitorder="little")), nulls)


def _primitive(values: np.ndarray, type_, valid: np.ndarray | None = None) -> pa.Array:
    bitmap, nulls = (None, 0) if valid is None else _validity(valid)
    return pa.Array.from_buffers(type_, len(values), [bitmap, pa.py_buffer(values)], null_count=nulls)


def _strings(a: dict, key: str) -> pa.Array:
    offsets = a[key + ".offsets"]
    return pa.Array.from_buffers(pa.string(), len(offsets) - 1,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(a[key + ".data"])])


def _list(offsets: np.ndarray, values: pa.Array, valid: np.ndarray | None = None) -> pa.Array:
    bitmap, nulls = (None, 0) if valid is None else _validity(valid)
    return pa.Array.from_buffers(pa.list_(values.type), len(offsets) - 1, [bitmap, pa.py_buffer(offsets)],
                                 null_count=nulls, children=[values])


def _lists(a: dict, key: str, type_, nullable: bool = False) -> pa.Array:
    return _list(a[key + ".offsets"], _primitive(a[key + ".values"], type_), a[key + ".valid"] if nullable else None)


def _no_pause() -> None:
    pass


def to_batch(a: dict, names_of_slot: list, file_feature_names: tuple[str, ...] | None,
             pause=_no_pause) -> pa.RecordBatch:
    """One RecordBatch of the file schema from ``ImpressionColumns.to_arrays()``,
    in a few calls per column (a loop over records only for feature names
    that differ from the file's). ``feature_names`` holds null where a record's
    names are the file's, ``[null]`` for None in a file with names, and the
    names otherwise (``names_of_slot``: the names of each ``names_slot``).
    ``pause()`` runs between columns (the writer thread sleeps there, see writer.py)."""
    items = a["items.offsets"]
    builders = [
        lambda: _strings(a, "request_id"),
        lambda: _primitive(a["timestamp_us"], pa.timestamp("us", tz="UTC")),
        lambda: _primitive(a["user_id"], pa.uint64(), a["user_id.valid"]),
        lambda: _strings(a, "surface"),
        lambda: _strings(a, "context"),
        lambda: _lists(a, "user_vector", pa.float32(), nullable=True),
        lambda: _list(items, _primitive(a["item_ids"], pa.uint64())),
        lambda: _list(items, _primitive(a["positions"], pa.int32())),
        lambda: _list(items, _primitive(a["value"], pa.float32())),
        lambda: pa.MapArray.from_arrays(_primitive(a["components.offsets"], pa.int32()),
                                        _strings(a, "components.names"),
                                        _lists(a, "components.values", pa.float32())),
        lambda: _primitive(a["n_features"], pa.int32()),
        lambda: _lists(a, "features", pa.float32()),
        lambda: _feature_names(a["names_slot"], names_of_slot, file_feature_names),
        lambda: _lists(a, "propensities", pa.float64(), nullable=True),
        lambda: _lists(a, "choice_probabilities", pa.float64(), nullable=True),
        lambda: _strings(a, "bundle_version"),
        lambda: _strings(a, "model_versions"),
    ]
    columns = []
    for build in builders:
        columns.append(build())
        pause()
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _feature_names(slots: np.ndarray, names_of_slot: list, file_names) -> pa.Array:
    kind = pa.list_(pa.string())
    distinct = np.unique(slots).tolist()
    names = {s: None if s < 0 else names_of_slot[s] for s in distinct}
    same = {s for s, n in names.items() if n is file_names or n == file_names}
    if len(same) == len(distinct):  # the usual case: every record has the file's names
        return pa.nulls(len(slots), kind)
    # Per record: null (the file's names), [null] (no names in a file with names), or the names.
    lists = [None if s in same else (None,) if names[s] is None else names[s] for s in slots.tolist()]
    words = [w for entry in lists if entry is not None for w in entry]
    encoded = [b"" if w is None else w.encode() for w in words]
    word_offsets = np.zeros(len(words) + 1, np.int32)
    np.cumsum([len(w) for w in encoded], out=word_offsets[1:])
    strings = pa.Array.from_buffers(
        pa.string(), len(words),
        [_validity(np.array([w is not None for w in words], np.uint8))[0], pa.py_buffer(word_offsets),
         pa.py_buffer(b"".join(encoded))])
    offsets = np.zeros(len(lists) + 1, np.int32)
    np.cumsum([0 if entry is None else len(entry) for entry in lists], out=offsets[1:])
    return _list(offsets, strings, np.array([entry is not None for entry in lists], np.uint8))


def batch_crc(batch: pa.RecordBatch, pause=_no_pause) -> int:
    """CRC-32 of a batch's logical content: per column, the validity (when
    there are nulls), list offsets relative to the first, and the bytes of the
    values in range. Equal for a batch and its IPC round trip, whatever the
    compression, slicing or buffer padding. ``pause()`` runs between columns."""
    crc = 0
    for column in batch.columns:
        crc = _crc_array(crc, column)
        pause()
    return crc


def _crc_offsets(crc: int, offsets: np.ndarray) -> tuple[int, int, int]:
    lo, hi = int(offsets[0]), int(offsets[-1])
    return zlib.crc32((offsets - lo).astype(np.int64), crc), lo, hi


# Buffers are read through numpy views, never pyarrow's to_numpy(), which
# imports pandas on first use: 130-175 ms holding the GIL in the writer
# thread on its first batch, a stall of every request thread.
def _own_offsets(array: pa.Array) -> np.ndarray:
    """The int32 offsets of a list, map or string array, as sliced."""
    return np.frombuffer(array.buffers()[1], np.int32, len(array) + 1, 4 * array.offset)


def _valid_bytes(array: pa.Array) -> np.ndarray:
    """One byte (0 or 1) per value: 1 where it is not null."""
    bitmap = np.frombuffer(array.buffers()[0], np.uint8)
    return np.unpackbits(bitmap, bitorder="little")[array.offset:array.offset + len(array)]


def _crc_array(crc: int, array: pa.Array) -> int:
    crc = zlib.crc32(len(array).to_bytes(8, "little"), crc)
    if not len(array):
        return crc
    if array.null_count:
        crc = zlib.crc32(_valid_bytes(array), crc)
    kind = array.type
    if pa.types.is_map(kind):
        crc, lo, hi = _crc_offsets(crc, _own_offsets(array))
        crc = _crc_array(crc, array.keys.slice(lo, hi - lo))
        return _crc_array(crc, array.items.slice(lo, hi - lo))
    if pa.types.is_list(kind):
        crc, lo, hi = _crc_offsets(crc, _own_offsets(array))
        return _crc_array(crc, array.values.slice(lo, hi - lo))
    buffers = array.buffers()
    if pa.types.is_string(kind):
        crc, lo, hi = _crc_offsets(crc, _own_offsets(array))
        return zlib.crc32(memoryview(buffers[2])[lo:hi], crc) if hi > lo else crc
    width = kind.bit_width // 8  # fixed-width numbers and timestamps
    return zlib.crc32(memoryview(buffers[1])[width * array.offset:width * (array.offset + len(array))], crc)
