"""The impression log's Arrow schema (documented in engine/impressions/logger.py)
and the conversion of validated records into one RecordBatch, with numpy
concatenations and list offsets: the only Python loops are over records and,
within a record, over its named components."""

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
    """A record the writer refuses; the message names the record and the field."""


class Row:
    """A validated record: arrays in the schema's exact dtypes, JSON encoded."""

    __slots__ = ("request_id", "timestamp_us", "user_id", "surface", "context", "user_vector", "item_ids",
                 "positions", "value", "components", "features", "feature_names", "propensities",
                 "choice_probabilities", "bundle_version", "model_versions", "nbytes")


_INT32_MAX = np.iinfo(np.int32).max
# id -> tuple of feature names already checked (the tuple is kept, so its id is not reused).
_checked_names: dict[int, tuple] = {}


def _array(name: str, a, kinds: str, dtype, ndim: int) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if a.dtype.kind not in kinds:
        raise TypeError(f"{name}: expected {np.dtype(dtype)}, got dtype {a.dtype}")
    return a if a.dtype == dtype else a.astype(dtype)


def _per_item(name: str, a, kinds: str, dtype, n: int) -> np.ndarray:
    a = _array(name, a, kinds, dtype, 1)
    if len(a) != n:
        raise ValueError(f"{name}: length {len(a)}, but item_ids has {n} items")
    return a


def _probabilities(name: str, a, n: int) -> np.ndarray | None:
    if a is None:
        return None
    a = _per_item(name, a, "f", np.float64, n)
    if n and not ((a >= 0.0) & (a <= 1.0)).all():
        bad = int((~((a >= 0.0) & (a <= 1.0))).sum())
        raise ValueError(f"{name}: {bad} of {n} values are NaN or outside [0, 1]")
    return a


def _string(name: str, s) -> str:
    if not isinstance(s, str):
        raise TypeError(f"{name}: expected str, got {type(s).__name__}")
    return s


def check(record) -> Row:
    """Validate one record (raises RecordError naming the record and field)."""
    if not isinstance(record, ImpressionRecord):
        raise RecordError(f"expected an ImpressionRecord, got {type(record).__name__}")
    rid = record.request_id
    try:
        return _check(record)
    except RecordError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure makes the record malformed
        raise RecordError(f"record {rid!r}: {e}") from None


def _check(r: ImpressionRecord) -> Row:
    row = Row()
    row.request_id = _string("request_id", r.request_id)
    ts = r.timestamp_us
    if type(ts) is not int and not isinstance(ts, np.integer):
        raise TypeError(f"timestamp_us: expected int, got {type(ts).__name__}")
    if not -(1 << 63) <= ts < (1 << 63):
        raise ValueError(f"timestamp_us: {ts} is outside the int64 range")
    row.timestamp_us = int(ts)
    uid = r.user_id
    if uid is not None:
        if isinstance(uid, bool) or not isinstance(uid, (int, np.integer)):
            raise TypeError(f"user_id: expected int or None, got {type(uid).__name__}")
        if not 0 <= uid < (1 << 64):
            raise ValueError(f"user_id: {uid} is outside the uint64 range")
        uid = int(uid)
    row.user_id = uid
    row.surface = _string("surface", r.surface)
    if not isinstance(r.context, dict):
        raise TypeError(f"context: expected dict, got {type(r.context).__name__}")
    try:
        row.context = _json.encode(r.context)
    except (TypeError, NotImplementedError, msgspec.EncodeError, UnicodeError) as e:
        raise ValueError(f"context: {e}") from None
    row.bundle_version = _string("bundle_version", r.bundle_version)
    mv = r.model_versions
    if not isinstance(mv, dict) or not all(type(k) is str and type(v) is str for k, v in mv.items()):
        raise TypeError("model_versions: expected dict[str, str]")
    row.model_versions = _json.encode(mv)

    ids = _array("item_ids", r.item_ids, "iu", np.uint64, 1)
    n = len(ids)
    if r.item_ids.dtype.kind == "i" and n and r.item_ids.min() < 0:
        raise ValueError("item_ids: negative id")
    row.item_ids = ids
    pos = r.positions
    if not isinstance(pos, np.ndarray) or pos.ndim != 1 or pos.dtype.kind not in "iu":
        raise TypeError("positions: expected a 1-D int32 array, got "
                        + (f"dtype {pos.dtype}, shape {pos.shape}" if isinstance(pos, np.ndarray)
                           else type(pos).__name__))
    if len(pos) != n:
        raise ValueError(f"positions: length {len(pos)}, but item_ids has {n} items")
    if n and (pos.min() < 0 or (pos.dtype.itemsize >= 4 and pos.dtype != np.int32 and pos.max() > _INT32_MAX)):
        raise ValueError("positions: values must lie in [0, 2**31)")
    row.positions = pos if pos.dtype == np.int32 else pos.astype(np.int32)
    row.value = _per_item("value", r.value, "f", np.float32, n)
    feats = _array("features", r.features, "f", np.float32, 2)
    if feats.shape[0] != n:
        raise ValueError(f"features: shape {feats.shape}, but item_ids has {n} items")
    row.features = feats
    if not isinstance(r.components, dict):
        raise TypeError(f"components: expected dict, got {type(r.components).__name__}")
    comps = {}
    for key, a in r.components.items():
        if type(key) is not str:
            raise TypeError(f"components: key {key!r} is not a str")
        comps[key] = _per_item(f"components[{key!r}]", a, "f", np.float32, n)
    row.components = comps
    names = r.feature_names
    if names is not None:
        if isinstance(names, list):
            names = tuple(names)
        if _checked_names.get(id(names)) is not names:  # records usually share one tuple: check it once
            if not isinstance(names, tuple) or not all(type(s) is str for s in names):
                raise TypeError("feature_names: expected a tuple of str or None")
            if len(_checked_names) >= 64:
                _checked_names.clear()
            _checked_names[id(names)] = names
        if len(names) != feats.shape[1]:
            raise ValueError(f"feature_names: {len(names)} names for {feats.shape[1]} feature columns")
    row.feature_names = names
    uv = r.user_vector
    row.user_vector = None if uv is None else _array("user_vector", uv, "f", np.float32, 1)
    row.propensities = _probabilities("propensities", r.propensities, n)
    row.choice_probabilities = _probabilities("choice_probabilities", r.choice_probabilities, n)
    row.nbytes = (feats.size * 4 + n * 24 + 4 * n * len(comps) + len(row.context) + 64
                  + (0 if uv is None else 4 * len(uv)))
    return row


def _offsets(lengths) -> pa.Array:
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    if out[-1] > _INT32_MAX:
        raise ValueError(f"a batch holds {out[-1]} list values, more than int32 offsets address")
    return pa.array(out.astype(np.int32), pa.int32())


def _list(arrays: list[np.ndarray], dtype, type_) -> pa.Array:
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype)
    return pa.ListArray.from_arrays(_offsets([len(a) for a in arrays]), pa.array(values, type_))


def _nullable_list(arrays: list, dtype, type_) -> pa.Array:
    present = [a for a in arrays if a is not None]
    if not present:
        return pa.nulls(len(arrays), pa.list_(type_))
    values = np.concatenate(present)
    lengths = [0 if a is None else len(a) for a in arrays]
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(_offsets(lengths), pa.array(values, type_), mask=mask)


def to_batch(rows: list[Row], file_feature_names: tuple[str, ...] | None) -> pa.RecordBatch:
    """One RecordBatch of the file schema. ``feature_names`` holds null where a
    record's names are the file's, ``[null]`` for None in a file with names,
    and the names otherwise."""
    n = np.fromiter((len(r.item_ids) for r in rows), np.int64, len(rows))
    comp_names: list[str] = []
    comp_arrays: list[np.ndarray] = []
    comp_counts = np.empty(len(rows), np.int64)
    for i, r in enumerate(rows):
        comp_names.extend(r.components)
        comp_arrays.extend(r.components.values())
        comp_counts[i] = len(r.components)
    comp_items = pa.ListArray.from_arrays(
        _offsets(np.repeat(n, comp_counts)),
        pa.array(np.concatenate(comp_arrays) if comp_arrays else np.zeros(0, np.float32), pa.float32()))
    components = pa.MapArray.from_arrays(_offsets(comp_counts), pa.array(comp_names, pa.string()), comp_items)

    n_features = np.fromiter((r.features.shape[1] for r in rows), np.int64, len(rows))
    features = pa.ListArray.from_arrays(
        _offsets(n * n_features),
        pa.array(np.concatenate([r.features.reshape(-1) for r in rows]), pa.float32()))

    names = []
    for r in rows:
        fn = r.feature_names
        if fn is file_feature_names or fn == file_feature_names:
            names.append(None)
        else:
            names.append([None] if fn is None else list(fn))

    user_ids = [r.user_id for r in rows]
    user_mask = np.fromiter((u is None for u in user_ids), np.bool_, len(rows))
    user_values = np.fromiter((0 if u is None else u for u in user_ids), np.uint64, len(rows))

    columns = [
        pa.array([r.request_id for r in rows], pa.string()),
        pa.array(np.fromiter((r.timestamp_us for r in rows), np.int64, len(rows)), pa.timestamp("us", tz="UTC")),
        pa.array(user_values, pa.uint64(), mask=user_mask),
        pa.array([r.surface for r in rows], pa.string()),
        pa.array([r.context for r in rows], pa.string()),
        _nullable_list([r.user_vector for r in rows], np.float32, pa.float32()),
        _list([r.item_ids for r in rows], np.uint64, pa.uint64()),
        _list([r.positions for r in rows], np.int32, pa.int32()),
        _list([r.value for r in rows], np.float32, pa.float32()),
        components,
        pa.array(n_features.astype(np.int32), pa.int32()),
        features,
        pa.array(names, pa.list_(pa.string())),
        _nullable_list([r.propensities for r in rows], np.float64, pa.float64()),
        _nullable_list([r.choice_probabilities for r in rows], np.float64, pa.float64()),
        pa.array([r.bundle_version for r in rows], pa.string()),
        pa.array([r.model_versions for r in rows], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def batch_crc(batch: pa.RecordBatch) -> int:
    """CRC-32 of a batch's logical content: per column, the validity (when
    there are nulls), list offsets relative to the first, and the bytes of the
    values in range. Equal for a batch and its IPC round trip, whatever the
    compression, slicing or buffer padding."""
    crc = 0
    for column in batch.columns:
        crc = _crc_array(crc, column)
    return crc


def _crc_offsets(crc: int, offsets: np.ndarray) -> tuple[int, int, int]:
    lo, hi = int(offsets[0]), int(offsets[-1])
    return zlib.crc32((offsets - lo).astype(np.int64), crc), lo, hi


def _crc_array(crc: int, array: pa.Array) -> int:
    crc = zlib.crc32(len(array).to_bytes(8, "little"), crc)
    if not len(array):
        return crc
    if array.null_count:
        crc = zlib.crc32(array.is_valid().to_numpy(zero_copy_only=False), crc)
    kind = array.type
    if pa.types.is_map(kind):
        crc, lo, hi = _crc_offsets(crc, array.offsets.to_numpy())
        crc = _crc_array(crc, array.keys.slice(lo, hi - lo))
        return _crc_array(crc, array.items.slice(lo, hi - lo))
    if pa.types.is_list(kind):
        crc, lo, hi = _crc_offsets(crc, array.offsets.to_numpy())
        return _crc_array(crc, array.values.slice(lo, hi - lo))
    buffers = array.buffers()
    if pa.types.is_string(kind):
        offsets = np.frombuffer(buffers[1], np.int32, len(array) + 1, 4 * array.offset)
        crc, lo, hi = _crc_offsets(crc, offsets)
        return zlib.crc32(memoryview(buffers[2])[lo:hi], crc) if hi > lo else crc
    width = kind.bit_width // 8  # fixed-width numbers and timestamps
    return zlib.crc32(memoryview(buffers[1])[width * array.offset:width * (array.offset + len(array))], crc)
