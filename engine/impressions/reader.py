"""Reading impression logs back: one Arrow table, and numpy arrays per record.

``read_impressions(directory)`` returns the rows of every completed
``.arrow`` file, in name order (chronological within a process), as one
table with the file schema (logger.py), except that ``feature_names`` is
resolved per record into ``dictionary<int32, list<string>>`` (null: the
record had no names), so files with different feature names share a table.
Each batch is checked on the way: the Arrow structure in full, its CRC-32,
and that every per-item column of a record has its ``n`` items
(``features`` ``n * F``).

The helpers (``to_records``, ``record``, ``record_features``,
``record_components``, ``feature_matrix``) take that table and return numpy
arrays that are read-only views of its memory.
"""

from __future__ import annotations

import os

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from engine.errors import CorruptFileError
from engine.impressions import _schema
from engine.impressions.record import ImpressionRecord

_MAGIC = b"ARROW1\x00\x00"  # the IPC file format's leading magic and padding; the stream format follows
_CONTEXT = dict[str, int | float | str | bool | None | dict[int, float | None]]
_context_typed = msgspec.json.Decoder(_CONTEXT)
_context_any = msgspec.json.Decoder()
_model_versions = msgspec.json.Decoder(dict[str, str])
_names_decoder = msgspec.json.Decoder(list[str] | None)


def read_impressions(directory, *, include_partial: bool = False) -> pa.Table:
    """Every record of the completed files of ``directory``, in file name order.

    ``include_partial``: also read ``.arrow.partial`` files (the current file
    of a live logger, or what a killed process left): every record batch
    that was written whole is recovered, up to the first missing or damaged
    one; a partial file with nothing whole is skipped.

    Raises CorruptFileError, naming the file, for a ``.arrow`` file that is
    truncated, damaged or not an impression log of a known schema version.
    """
    directory = os.fspath(directory)
    tables = []
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".arrow"):
            tables.append(_read_complete(path))
        elif include_partial and name.endswith(".arrow.partial"):
            try:
                table = _read_partial(path)
            except FileNotFoundError:  # a live logger finished the file since the listing
                final = path[:-len(".partial")]
                table = _read_complete(final) if os.path.exists(final) else None
            if table is not None:
                tables.append(table)
    if not tables:
        return _schema.TABLE_SCHEMA.empty_table().replace_schema_metadata(_table_metadata())
    return pa.concat_tables(tables).replace_schema_metadata(_table_metadata())


def _table_metadata() -> dict:
    return {_schema.META_FORMAT: _schema.FORMAT.encode(), _schema.META_VERSION: str(_schema.SCHEMA_VERSION).encode()}


def _corrupt(path: str, why: str) -> CorruptFileError:
    return CorruptFileError(f"{path}: {why}")


def _file_names(path: str, schema: pa.Schema) -> tuple[str, ...] | None:
    """Check the file's schema; its feature names."""
    meta = schema.metadata or {}
    if meta.get(_schema.META_FORMAT) != _schema.FORMAT.encode():
        raise _corrupt(path, f"not an impression log (schema metadata 'format' is {meta.get(_schema.META_FORMAT)!r})")
    version = meta.get(_schema.META_VERSION, b"?").decode(errors="replace")
    if version != str(_schema.SCHEMA_VERSION):
        raise _corrupt(path, f"impression log schema_version {version} is not the version this reader knows"
                             f" ({_schema.SCHEMA_VERSION})")
    if not schema.remove_metadata().equals(_schema.SCHEMA):
        raise _corrupt(path, f"columns differ from the impression log schema version {_schema.SCHEMA_VERSION}:"
                             f" {schema.remove_metadata()}")
    try:
        names = _names_decoder.decode(meta.get(_schema.META_FEATURE_NAMES, b"null"))
    except msgspec.DecodeError as e:
        raise _corrupt(path, f"schema metadata 'feature_names' is not a JSON list of names ({e})") from None
    return None if names is None else tuple(names)


def _read_complete(path: str) -> pa.Table:
    try:
        with pa.memory_map(path) as source:
            reader = ipc.open_file(source)
            names = _file_names(path, reader.schema)
            batches = [reader.get_batch_with_custom_metadata(i) for i in range(reader.num_record_batches)]
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (pa.ArrowException, OSError) as e:
        raise _corrupt(path, f"not a complete Arrow IPC file ({e})") from None
    for i, (batch, meta) in enumerate(batches):
        why = _batch_problem(batch, meta)
        if why is not None:
            raise _corrupt(path, f"record batch {i}: {why}")
    return _resolve_names(pa.Table.from_batches([b for b, _ in batches], _schema.SCHEMA), names)


def _read_partial(path: str) -> pa.Table | None:
    try:
        return _read_complete(path)  # finished, but not renamed before the process ended
    except CorruptFileError:
        pass
    with pa.memory_map(path) as source:
        data = source.read_buffer()
    if data.size < len(_MAGIC) or data[:len(_MAGIC)].to_pybytes() != _MAGIC:
        return None
    try:
        reader = ipc.open_stream(data.slice(len(_MAGIC)))
        names = _file_names(path, reader.schema)
    except (pa.ArrowException, OSError, CorruptFileError):
        return None
    batches = []
    while True:
        try:
            batch, meta = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        except (pa.ArrowException, OSError):  # the batch being written when the process ended
            break
        if _batch_problem(batch, meta) is not None:
            break
        batches.append(batch)
    if not batches:
        return None
    return _resolve_names(pa.Table.from_batches(batches, _schema.SCHEMA), names)


def _lengths(array: pa.Array) -> np.ndarray:
    return np.diff(array.offsets.to_numpy())


def _batch_problem(batch: pa.RecordBatch, meta) -> str | None:
    """Why the batch is not whole, consistent records (None if it is)."""
    try:
        batch.validate(full=True)
    except pa.ArrowException as e:
        return f"invalid Arrow data ({e})"
    try:
        stored = (meta or {}).get(_schema.BATCH_CRC)
        if stored is None:
            return "no checksum in the batch's custom metadata"
        crc = _schema.batch_crc(batch)
        if stored != str(crc).encode():
            return f"checksum mismatch (stored {stored.decode(errors='replace')}, content {crc})"
        return _inconsistency(batch)
    except Exception as e:  # noqa: BLE001 - damaged data can fail in many ways
        return f"unreadable ({type(e).__name__}: {e})"


def _inconsistency(batch: pa.RecordBatch) -> str | None:
    for field, column in zip(batch.schema, batch.columns):
        if not field.nullable and column.null_count:
            return f"column {field.name} has {column.null_count} nulls"
    n = _lengths(batch.column("item_ids"))
    for name in ("positions", "value"):
        if not np.array_equal(_lengths(batch.column(name)), n):
            return f"column {name}: list lengths differ from item_ids"
    n_features = batch.column("n_features").to_numpy()
    if (n_features < 0).any() or not np.array_equal(_lengths(batch.column("features")), n * n_features):
        return "column features: list lengths differ from n items x n_features"
    for name in ("propensities", "choice_probabilities"):
        column = batch.column(name)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        if not np.array_equal(_lengths(column)[valid], n[valid]):
            return f"column {name}: list lengths differ from item_ids"
    components = batch.column("components")
    counts = _lengths(components)
    if not np.array_equal(_lengths(components.items)[components.offsets[0].as_py():components.offsets[-1].as_py()],
                          np.repeat(n, counts)):
        return "column components: list lengths differ from item_ids"
    return None


def _resolve_names(table: pa.Table, file_names: tuple[str, ...] | None) -> pa.Table:
    """feature_names of the file (null = the file's, [null] = None) -> dictionary per record."""
    column = table.column("feature_names").combine_chunks()
    rows = len(column)
    indices = np.zeros(rows, np.int32)
    missing = np.full(rows, file_names is None)
    dictionary: list = []
    index_of: dict = {}
    if file_names is not None:
        dictionary.append(list(file_names))
        index_of[file_names] = 0
    for i in np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False)):  # records whose names differ
        names = column[int(i)].as_py()
        if names == [None]:
            missing[i] = True
            continue
        key = tuple(names)
        if key not in index_of:
            index_of[key] = len(dictionary)
            dictionary.append(names)
        indices[i] = index_of[key]
        missing[i] = False
    resolved = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32(), mask=missing),
                                              pa.array(dictionary, pa.list_(pa.string())))
    index = table.schema.get_field_index("feature_names")
    table = table.set_column(index, pa.field("feature_names", _schema.FEATURE_NAMES_TYPE), resolved)
    return table.replace_schema_metadata(None)


# ---- numpy views of one table -------------------------------------------------------

def _check_table(table: pa.Table) -> None:
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow.Table from read_impressions, got {type(table).__name__}")
    if not table.schema.remove_metadata().equals(_schema.TABLE_SCHEMA):
        raise ValueError("expected a table from read_impressions (its columns differ from the impression schema)")


def _values(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


class _Batch:
    """Numpy views of one record batch, sliced per record."""

    def __init__(self, batch: pa.RecordBatch):
        self.batch = batch
        c = batch.column
        self.lists = {}
        for name in ("user_vector", "item_ids", "positions", "value", "features", "propensities",
                     "choice_probabilities"):
            a = c(name)
            self.lists[name] = (a.offsets.to_numpy(), _values(a.values), _values(a.is_valid()))
        self.n_features = c("n_features").to_numpy()
        comps = c("components")
        self.comp_offsets = comps.offsets.to_numpy()
        self.comp_keys = comps.keys.to_pylist()
        self.comp_item_offsets = comps.items.offsets.to_numpy()
        self.comp_values = _values(comps.items.values)

    def list_value(self, name: str, i: int) -> np.ndarray | None:
        offsets, values, valid = self.lists[name]
        return values[offsets[i]:offsets[i + 1]] if valid[i] else None

    def features(self, i: int) -> np.ndarray:
        return self.list_value("features", i).reshape(-1, int(self.n_features[i]))

    def components(self, i: int) -> dict[str, np.ndarray]:
        out = {}
        for e in range(self.comp_offsets[i], self.comp_offsets[i + 1]):
            out[self.comp_keys[e]] = self.comp_values[self.comp_item_offsets[e]:self.comp_item_offsets[e + 1]]
        return out


def _decode_json(decoder, text: str, request_id: str, column: str):
    try:
        return decoder.decode(text)
    except msgspec.ValidationError:
        if decoder is _context_typed:  # values outside the documented types: as JSON has them
            return _decode_json(_context_any, text, request_id, column)
        raise ValueError(f"record {request_id!r}: column {column} is not the JSON of a dict[str, str]") from None
    except msgspec.DecodeError as e:
        raise ValueError(f"record {request_id!r}: column {column} is not valid JSON ({e})") from None


def to_records(table: pa.Table) -> list[ImpressionRecord]:
    """The table's rows as ImpressionRecords (arrays are read-only views of the table)."""
    _check_table(table)
    out = []
    for batch in table.to_batches():
        b = _Batch(batch)
        c = batch.column
        request_id = c("request_id").to_pylist()
        timestamp = c("timestamp_us").cast(pa.int64()).to_numpy()
        user_valid = _values(c("user_id").is_valid())
        user_id = c("user_id").fill_null(0).to_numpy()
        surface = c("surface").to_pylist()
        context = c("context").to_pylist()
        bundle = c("bundle_version").to_pylist()
        models = c("model_versions").to_pylist()
        names_col = c("feature_names")
        names_valid = _values(names_col.is_valid())
        names_index = _values(names_col.indices.fill_null(0))
        names_dict = [tuple(v) for v in names_col.dictionary.to_pylist()]
        for i in range(batch.num_rows):
            out.append(ImpressionRecord(
                request_id=request_id[i],
                timestamp_us=int(timestamp[i]),
                user_id=int(user_id[i]) if user_valid[i] else None,
                surface=surface[i],
                context=_decode_json(_context_typed, context[i], request_id[i], "context"),
                user_vector=b.list_value("user_vector", i),
                item_ids=b.list_value("item_ids", i),
                positions=b.list_value("positions", i),
                value=b.list_value("value", i),
                components=b.components(i),
                features=b.features(i),
                feature_names=names_dict[names_index[i]] if names_valid[i] else None,
                propensities=b.list_value("propensities", i),
                choice_probabilities=b.list_value("choice_probabilities", i),
                bundle_version=bundle[i],
                model_versions=_decode_json(_model_versions, models[i], request_id[i], "model_versions"),
            ))
    return out


def _row(table: pa.Table, i: int) -> _Batch:
    _check_table(table)
    if not -table.num_rows <= i < table.num_rows:
        raise IndexError(f"record {i} of a table of {table.num_rows} records")
    batches = table.slice(i % table.num_rows, 1).to_batches()
    return _Batch(next(b for b in batches if b.num_rows))


def record(table: pa.Table, i: int) -> ImpressionRecord:
    """Row ``i`` as an ImpressionRecord."""
    _row(table, i)  # checks the table and the index
    return to_records(table.slice(i % table.num_rows, 1))[0]


def record_features(table: pa.Table, i: int) -> np.ndarray:
    """The (n, F) float32 feature rows served in record ``i``."""
    return _row(table, i).features(0)


def record_components(table: pa.Table, i: int) -> dict[str, np.ndarray]:
    """Record ``i``'s components: name -> float32 (n,)."""
    return _row(table, i).components(0)


def feature_matrix(table: pa.Table) -> np.ndarray:
    """All served feature rows, (total items, F) float32, in the order of the
    flattened ``item_ids`` (``pyarrow.compute.list_flatten``). Every record
    must have the same F (records with no items do not count)."""
    _check_table(table)
    n_features = table.column("n_features").to_numpy()
    items = pc.list_value_length(table.column("item_ids")).to_numpy()
    widths = np.unique(n_features[items > 0])
    if len(widths) > 1:
        raise ValueError(f"records have different numbers of features ({widths.tolist()}); select rows of one F")
    width = int(widths[0]) if len(widths) else 0
    chunks = [_values(chunk.flatten()) for chunk in table.column("features").chunks]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return flat.reshape(-1, width) if width else np.zeros((int(items.sum()), 0), np.float32)
