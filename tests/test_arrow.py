"""Arrow C Data Interface import: engine._core.arrow_matrix / arrow_column / arrow_columns.

Zero copy is proven by buffer addresses, lifetimes by pyarrow's allocator,
and malformed structs (built with ctypes) must raise, never crash.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pyarrow as pa
import pytest

pl = pytest.importorskip("polars")


from engine import _arrow, _core  # noqa: E402


# ---- helpers -----------------------------------------------------------------


def fsl(values: np.ndarray) -> pa.FixedSizeListArray:
    """A (n, dim) numpy matrix as FixedSizeList<float>[dim]."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def child_values_address(a: pa.FixedSizeListArray, row: int = 0) -> int:
    """Address of row `row` of a fixed-size list, both offsets applied."""
    child = a.values  # the whole child, ignoring the list's offset
    width = child.type.byte_width
    return child.buffers()[1].address + (child.offset + (a.offset + row) * a.type.list_size) * width


def matrix(n: int, dim: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(dtype)


# ---- matrices: FixedSizeList<float32 | float64> --------------------------------


def test_matrix_float32_is_zero_copy_and_read_only():
    x = matrix(10, 7)
    a = fsl(x)
    out = _core.arrow_matrix(a)
    assert out.dtype == np.float32 and out.shape == (10, 7)
    np.testing.assert_array_equal(out, x)
    assert address(out) == child_values_address(a)
    child = np.frombuffer(a.values.buffers()[1], dtype=np.float32)
    assert np.shares_memory(out, child)
    # Arrow memory belongs to the producer: the view must not write into it.
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0] = 1.0


@pytest.mark.parametrize("start,length", [(1, 5), (3, 0), (9, 1), (0, 10), (4, 6)])
def test_matrix_slice_honours_offset(start, length):
    x = matrix(10, 5, seed=1)
    a = fsl(x).slice(start, length)
    assert a.offset == start
    out = _core.arrow_matrix(a)
    assert out.shape == (length, 5)
    np.testing.assert_array_equal(out, x[start : start + length])
    if length:
        assert address(out) == child_values_address(a)


def test_matrix_child_offset_and_list_offset_combine():
    flat = np.arange(40, dtype=np.float32)
    child = pa.array(flat).slice(3, 36)  # the child has its own offset
    a = pa.FixedSizeListArray.from_arrays(child, 4).slice(2, 5)
    assert a.values.offset == 3 and a.offset == 2
    out = _core.arrow_matrix(a)
    np.testing.assert_array_equal(out, flat[3:39].reshape(9, 4)[2:7])
    assert address(out) == child_values_address(a)


def test_matrix_float64_child_converts_to_float32():
    x = matrix(6, 3, seed=2, dtype=np.float64)
    a = fsl(x).slice(1)
    out = _core.arrow_matrix(a)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    np.testing.assert_array_equal(out, x[1:].astype(np.float32))
    assert not np.shares_memory(out, np.frombuffer(a.values.buffers()[1], dtype=np.float64))


def test_chunked_matrix_concatenates():
    x, y = matrix(4, 3, seed=3), matrix(6, 3, seed=4)
    chunked = pa.chunked_array([fsl(x), fsl(y).slice(2, 3)])
    out = _core.arrow_matrix(chunked)
    np.testing.assert_array_equal(out, np.concatenate([x, y[2:5]]))
    assert out.flags.writeable and out.flags.c_contiguous  # a fresh copy


def test_chunked_float64_matrix_converts():
    x, y = matrix(2, 3, dtype=np.float64), matrix(3, 3, seed=9, dtype=np.float64)
    out = _core.arrow_matrix(pa.chunked_array([fsl(x), fsl(y)]))
    np.testing.assert_array_equal(out, np.concatenate([x, y]).astype(np.float32))


def test_single_chunk_stream_is_zero_copy():
    a = fsl(matrix(8, 4, seed=5))
    out = _core.arrow_matrix(pa.chunked_array([a]))
    assert address(out) == child_values_address(a)


def test_empty_chunks_are_skipped_so_one_real_chunk_stays_zero_copy():
    a = fsl(matrix(8, 4, seed=5))
    out = _core.arrow_matrix(pa.chunked_array([a.slice(0, 0), a, a.slice(8)]))
    assert address(out) == child_values_address(a)


def test_empty_matrix_inputs_keep_dim():
    empty_type = pa.list_(pa.float32(), 6)
    assert _core.arrow_matrix(pa.array([], type=empty_type)).shape == (0, 6)
    assert _core.arrow_matrix(pa.chunked_array([], type=empty_type)).shape == (0, 6)


def test_polars_array_series():
    x = matrix(9, 5, seed=6)
    s = pl.Series("v", x, dtype=pl.Array(pl.Float32, 5))
    np.testing.assert_array_equal(_core.arrow_matrix(s), x)
    np.testing.assert_array_equal(_core.arrow_matrix(s.slice(2, 4)), x[2:6])


def test_polars_multi_chunk_series_concatenates():
    x, y = matrix(3, 2, seed=7), matrix(4, 2, seed=8)
    array_type = pl.Array(pl.Float32, 2)
    parts = [pl.Series("v", x, dtype=array_type), pl.Series("v", y, dtype=array_type)]
    s = pl.concat(parts, rechunk=False)
    assert s.n_chunks() == 2
    np.testing.assert_array_equal(_core.arrow_matrix(s), np.concatenate([x, y]))


def test_list_level_null_raises_value_error_with_row():
    a = pa.array([[1, 2], [3, 4], None], type=pa.list_(pa.float32(), 2))
    with pytest.raises(ValueError, match="null.*row 2"):
        _core.arrow_matrix(a)


def test_value_null_inside_list_raises_value_error_with_row():
    a = pa.array([[1, 2], [3, None]], type=pa.list_(pa.float32(), 2))
    with pytest.raises(ValueError, match="null.*row 1"):
        _core.arrow_matrix(a)


def test_nulls_outside_the_slice_are_not_reported():
    a = pa.array([None, [1, 2], [3, 4], [5, None]], type=pa.list_(pa.float32(), 2))
    np.testing.assert_array_equal(_core.arrow_matrix(a.slice(1, 2)), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="row 2"):
        _core.arrow_matrix(a.slice(1))


@pytest.mark.parametrize(
    "value,fmt",
    [
        (pa.array(["a", "b"]), "'u'"),
        (pa.array([[1.0, 2.0]], type=pa.list_(pa.float32())), "'+l'"),
        (pa.array([[1, 2]], type=pa.list_(pa.int32(), 2)), "'i'"),
        (pa.array([[1, 2]], type=pa.list_(pa.float16(), 2)), "'e'"),
        (pa.array([1.0, 2.0], type=pa.float32()), "'f'"),
    ],
    ids=["string", "variable-list", "int-matrix", "half-matrix", "flat-floats"],
)
def test_matrix_wrong_type_names_format(value, fmt):
    with pytest.raises(TypeError, match=fmt.replace("+", r"\+")):
        _core.arrow_matrix(value)


def test_wrapper_prefixes_argument_name():
    with pytest.raises(TypeError, match=r"^vectors: .*'u'"):
        _arrow.to_matrix(pa.array(["x"]), "vectors")
    with pytest.raises(ValueError, match=r"^ids: .*null"):
        _arrow.to_column(pa.array([1, None]), "ids")


# ---- lifetimes -------------------------------------------------------------------


def test_matrix_outlives_pyarrow_source_and_is_released_once():
    gc.collect()
    baseline = pa.total_allocated_bytes()
    x = matrix(1000, 16, seed=10)
    # From a list, so the buffers come from pyarrow's pool (pa.array of a
    # numpy array would borrow numpy's memory and the pool would not see it).
    a = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel().tolist(), pa.float32()), 16)
    out = _core.arrow_matrix(a)
    del a
    gc.collect()
    assert pa.total_allocated_bytes() > baseline  # our view still holds the buffers
    np.testing.assert_array_equal(out, x)
    del out
    gc.collect()
    assert pa.total_allocated_bytes() == baseline  # ... and released them


def test_stream_chunk_outlives_table_and_is_released_once():
    gc.collect()
    baseline = pa.total_allocated_bytes()
    ids = np.arange(5000, dtype=np.int64)
    values = pa.array(matrix(5000, 4, seed=11).ravel().tolist(), pa.float32())  # pool memory
    id_column = pa.array(ids.tolist(), pa.int64())
    table = pa.table({"id": id_column, "v": pa.FixedSizeListArray.from_arrays(values, 4)})
    del id_column
    del values
    cols = _core.arrow_columns(table.select(["id"]))
    col = _core.arrow_column(table["id"])
    vectors = _core.arrow_matrix(table["v"])
    assert address(col) == table["id"].chunk(0).buffers()[1].address
    del table
    gc.collect()
    np.testing.assert_array_equal(cols["id"], ids)
    np.testing.assert_array_equal(col, ids)
    assert vectors.shape == (5000, 4)
    del cols, col, vectors
    gc.collect()
    assert pa.total_allocated_bytes() == baseline


# ---- primitive columns ---------------------------------------------------------

INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize(
    "dtype", INT_TYPES + [np.float32, np.float64], ids=lambda t: np.dtype(t).name
)
def test_every_primitive_width_round_trips_zero_copy(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    values = np.array([info.min, 0, 1, info.max, 7, 3], dtype=dtype)
    a = pa.array(values)
    out = _core.arrow_column(a)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, values)
    assert address(out) == a.buffers()[1].address
    sliced = a.slice(2, 3)
    out = _core.arrow_column(sliced)
    np.testing.assert_array_equal(out, values[2:5])
    assert address(out) == a.buffers()[1].address + 2 * values.itemsize


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda t: np.dtype(t).name)
def test_integer_columns_from_polars(dtype):
    values = np.array([np.iinfo(dtype).max, 0, np.iinfo(dtype).min], dtype=dtype)
    out = _core.arrow_column(pl.Series("x", values))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, values)


def test_bool_unpacks_with_every_offset():
    bits = np.random.default_rng(12).random(300) < 0.5
    a = pa.array(bits)
    for start in range(0, 20):
        for length in (0, 1, 7, 8, 9, 63, 64, 65, 200):
            out = _core.arrow_column(a.slice(start, length))
            assert out.dtype == np.bool_
            np.testing.assert_array_equal(out, bits[start : start + length])


def test_bool_from_polars_and_chunked():
    bits = np.array([True, False, False, True, True, False, True, True, False, True])
    np.testing.assert_array_equal(_core.arrow_column(pl.Series("b", bits)), bits)
    chunked = pa.chunked_array([pa.array(bits[:3]), pa.array(bits).slice(5)])
    np.testing.assert_array_equal(_core.arrow_column(chunked), np.concatenate([bits[:3], bits[5:]]))


def test_chunked_column_concatenates():
    a, b = np.arange(10, dtype=np.int32), np.arange(100, 120, dtype=np.int32)
    out = _core.arrow_column(pa.chunked_array([pa.array(a).slice(3), pa.array(b)]))
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, np.concatenate([a[3:], b]))


def test_large_concatenation_is_correct():
    # Above the size where the copy runs with the GIL released.
    parts = [np.arange(i * 300_000, (i + 1) * 300_000, dtype=np.int64) for i in range(4)]
    out = _core.arrow_column(pa.chunked_array([pa.array(p) for p in parts]))
    np.testing.assert_array_equal(out, np.concatenate(parts))


def test_unaligned_buffer_is_copied_not_misread():
    raw = pa.py_buffer(np.arange(9, dtype=np.int32).tobytes())[1:33]
    assert raw.address % 4 != 0
    a = pa.Array.from_buffers(pa.int32(), 8, [None, raw])
    out = _core.arrow_column(a)
    np.testing.assert_array_equal(out, np.frombuffer(raw.to_pybytes(), dtype=np.int32))


def test_empty_columns_keep_dtype():
    assert _core.arrow_column(pa.array([], pa.uint16())).dtype == np.uint16
    assert _core.arrow_column(pa.chunked_array([], pa.bool_())).dtype == np.bool_


@pytest.mark.parametrize("start", [0, 1, 7, 8, 9, 63, 64, 65])
def test_null_found_at_every_position(start):
    # Positions across the bit, byte and 64-bit word paths of the bitmap scan.
    n = 200
    for position in (0, 1, 7, 8, 63, 64, 65, 127, 128, 150, 199):
        values = [1] * n
        values[position] = None
        a = pa.array(values, pa.int64()).slice(start)
        if position < start:
            assert len(_core.arrow_column(a)) == n - start
        else:
            with pytest.raises(ValueError, match=f"row {position - start}$"):
                _core.arrow_column(a)


def test_column_nulls_raise_value_error():
    with pytest.raises(ValueError, match="null.*row 1"):
        _core.arrow_column(pa.array([1, None, 3]))
    with pytest.raises(ValueError, match="null"):
        _core.arrow_column(pa.array([True, None]))
    np.testing.assert_array_equal(_core.arrow_column(pa.array([1, None, 3]).slice(2)), [3])


@pytest.mark.parametrize(
    "value,fmt",
    [
        (pa.array(["a"]), "'u'"),
        (pa.array(["a"], pa.large_string()), "'U'"),
        (pa.array([1.0], pa.float16()), "'e'"),
        (pa.array([[1]], pa.list_(pa.int64())), "'+l'"),
        (pa.array([1], pa.timestamp("us")), "'tsu:'"),
        (pa.array(["a", "a"]).dictionary_encode(), "dictionary"),
        (pa.record_batch({"a": [1]}), "'+s'"),
    ],
    ids=["string", "large-string", "float16", "list", "timestamp", "dictionary", "struct"],
)
def test_column_wrong_type_names_format(value, fmt):
    with pytest.raises(TypeError, match=fmt.replace("+", r"\+")):
        _core.arrow_column(value)


def test_not_arrow_raises_type_error():
    for value in (np.arange(3), [1, 2], None, 5):
        with pytest.raises(TypeError, match="__arrow_c_array__"):
            _core.arrow_column(value)


# ---- record batches and tables -------------------------------------------------


def sample_batch(n: int = 50, seed: int = 13) -> tuple[pa.RecordBatch, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cols = {
        "merchant": rng.integers(0, 100, n).astype(np.int32),
        "category": rng.integers(0, 1 << 40, n).astype(np.int64),
        "in_stock": rng.random(n) < 0.5,
        "small": rng.integers(0, 200, n).astype(np.uint8),
    }
    return pa.record_batch(cols), cols


def test_record_batch_columns_zero_copy():
    batch, cols = sample_batch()
    out = _core.arrow_columns(batch)
    assert list(out) == list(cols)
    for name, values in cols.items():
        assert out[name].dtype == values.dtype
        np.testing.assert_array_equal(out[name], values)
    assert address(out["merchant"]) == batch.column("merchant").buffers()[1].address


def test_sliced_record_batch_offsets_reach_children():
    batch, cols = sample_batch()
    out = _core.arrow_columns(batch.slice(11, 23))
    for name, values in cols.items():
        np.testing.assert_array_equal(out[name], values[11:34])


def test_table_with_many_batches_concatenates():
    b1, c1 = sample_batch(30, seed=14)
    b2, c2 = sample_batch(20, seed=15)
    table = pa.Table.from_batches([b1, b2.slice(5)])
    out = _core.arrow_columns(table)
    for name in c1:
        np.testing.assert_array_equal(out[name], np.concatenate([c1[name], c2[name][5:]]))


def test_single_batch_table_is_zero_copy():
    batch, _ = sample_batch()
    out = _core.arrow_columns(pa.Table.from_batches([batch]))
    assert address(out["category"]) == batch.column("category").buffers()[1].address


def test_polars_dataframe_columns():
    _, cols = sample_batch(40, seed=16)
    df = pl.DataFrame(cols)
    out = _core.arrow_columns(df)
    for name, values in cols.items():
        np.testing.assert_array_equal(out[name], values)
    both = pl.concat([df, df.slice(3, 4)], rechunk=False)
    out = _core.arrow_columns(both)
    for name, values in cols.items():
        np.testing.assert_array_equal(out[name], np.concatenate([values, values[3:7]]))


def test_empty_table_columns():
    schema = pa.schema([("a", pa.int16()), ("b", pa.bool_())])
    out = _core.arrow_columns(schema.empty_table())
    assert out["a"].dtype == np.int16 and out["b"].dtype == np.bool_ and len(out["a"]) == 0


def test_columns_reject_bad_tables():
    with pytest.raises(TypeError, match=r"column 's'.*'u'"):
        _core.arrow_columns(pa.table({"a": [1], "s": ["x"]}))
    with pytest.raises(ValueError, match=r"column 'a'.*null.*row 1"):
        _core.arrow_columns(pa.table({"a": [1, None]}))
    with pytest.raises(ValueError, match="duplicate column name 'a'"):
        _core.arrow_columns(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]))
    with pytest.raises(TypeError, match=r"'\+s'.*'l'"):
        _core.arrow_columns(pa.array([1, 2]))
    with pytest.raises(TypeError, match=r"'\+s'"):
        _core.arrow_columns(pa.chunked_array([[1, 2]]))


def test_null_struct_rows_raise():
    a = pa.array([{"x": 1}, None], type=pa.struct([("x", pa.int64())]))
    with pytest.raises(ValueError, match="null.*row 1"):
        _core.arrow_columns(a)


def test_stream_error_carries_producer_message():
    schema = pa.schema([("a", pa.int64())])

    def batches():
        yield pa.record_batch({"a": [1, 2]}, schema=schema)
        raise RuntimeError("catalog shard 7 unreadable")

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    with pytest.raises(ValueError, match="get_next.*catalog shard 7 unreadable"):
        _core.arrow_columns(reader)


def test_array_protocol_preferred_over_stream():
    a = pa.array([1, 2, 3], pa.int16())

    class Both:
        def __arrow_c_array__(self, requested_schema=None):
            assert requested_schema is None
            return a.__arrow_c_array__()

        def __arrow_c_stream__(self, requested_schema=None):
            raise AssertionError("the stream must not be used when an array is offered")

    out = _core.arrow_column(Both())
    assert address(out) == a.buffers()[1].address


# ---- malformed C structs: errors, never a crash ----------------------------------


class CSchema(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("metadata", ctypes.c_char_p),
        ("flags", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


class CArray(ctypes.Structure):
    _fields_ = [
        ("length", ctypes.c_int64),
        ("null_count", ctypes.c_int64),
        ("offset", ctypes.c_int64),
        ("n_buffers", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("buffers", ctypes.c_void_p),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


_RELEASE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_noop_release = _RELEASE(lambda ptr: None)  # the fakes own their memory; nothing to free
_NOOP = ctypes.cast(_noop_release, ctypes.c_void_p).value

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class FakeArray:
    """An int32 column [10, 20, 30, 40] (or a +w:2 list of it) built by hand,
    so one field at a time can be broken."""

    def __init__(self, matrix: bool = False):
        self.values = (ctypes.c_int32 * 4)(10, 20, 30, 40)
        self.buffers = (ctypes.c_void_p * 2)(None, ctypes.addressof(self.values))
        self.schema = CSchema(format=b"i", n_children=0, release=_NOOP)
        buffers = ctypes.addressof(self.buffers)
        self.array = CArray(length=4, null_count=0, n_buffers=2, buffers=buffers, release=_NOOP)
        self.schema_name, self.array_name = b"arrow_schema", b"arrow_array"
        if matrix:
            self.child_schema, self.child_array = self.schema, self.array
            self.child_schema.format = b"f"
            self.schema_children = (ctypes.c_void_p * 1)(ctypes.addressof(self.child_schema))
            self.array_children = (ctypes.c_void_p * 1)(ctypes.addressof(self.child_array))
            self.list_buffers = (ctypes.c_void_p * 1)(None)
            self.schema = CSchema(
                format=b"+w:2",
                n_children=1,
                children=ctypes.addressof(self.schema_children),
                release=_NOOP,
            )
            self.array = CArray(
                length=2, null_count=0, n_buffers=1, buffers=ctypes.addressof(self.list_buffers),
                n_children=1, children=ctypes.addressof(self.array_children), release=_NOOP,
            )

    def __arrow_c_array__(self, requested_schema=None):
        # No capsule destructor: the fake's memory lives as long as the fake.
        return (
            _capsule_new(ctypes.addressof(self.schema), self.schema_name, None),
            _capsule_new(ctypes.addressof(self.array), self.array_name, None),
        )


def test_fake_producer_is_well_formed():
    np.testing.assert_array_equal(_core.arrow_column(FakeArray()), [10, 20, 30, 40])
    fake = FakeArray(matrix=True)
    assert _core.arrow_matrix(fake).shape == (2, 2)


COLUMN_BREAKS = [
    ("array", "length", -1, ValueError, "negative length"),
    ("array", "offset", -1, ValueError, "negative offset"),
    ("array", "offset", 2**63 - 1, ValueError, "overflows"),
    ("array", "null_count", -2, ValueError, "null_count"),
    ("array", "null_count", 1, ValueError, "no validity bitmap"),
    ("array", "n_buffers", 1, ValueError, "expected 2 buffers"),
    ("array", "n_buffers", 3, ValueError, "expected 2 buffers"),
    ("array", "buffers", None, ValueError, "buffers is null"),
    ("array", "n_children", 1, ValueError, "expected 0 children"),
    ("array", "release", None, ValueError, "released"),
    ("schema", "format", None, ValueError, "no format"),
    ("schema", "format", b"zz", TypeError, "'zz'"),
    ("schema", "n_children", -1, ValueError, "negative n_children"),
    ("schema", "n_children", 2, ValueError, "children is null"),
    ("schema", "release", None, ValueError, "released"),
]


@pytest.mark.parametrize("target,field,value,error,message", COLUMN_BREAKS)
def test_malformed_column_raises(target, field, value, error, message):
    fake = FakeArray()
    setattr(getattr(fake, target), field, value)
    with pytest.raises(error, match=message):
        _core.arrow_column(fake)


def test_null_values_buffer_raises():
    fake = FakeArray()
    fake.buffers[1] = None
    with pytest.raises(ValueError, match="values buffer is null"):
        _core.arrow_column(fake)


MATRIX_BREAKS = [
    ("schema", "format", b"+w:", ValueError, "no size"),
    ("schema", "format", b"+w:2x", ValueError, "malformed"),
    ("schema", "format", b"+w:-2", ValueError, "malformed"),
    ("schema", "format", b"+w:99999999999", ValueError, "too large"),
    ("schema", "n_children", 0, ValueError, "expected 1 child"),
    ("array", "n_children", 0, ValueError, "expected 1 children"),
    ("array", "children", None, ValueError, "children is null"),
    ("array", "n_buffers", 2, ValueError, "expected 1 buffers"),
    ("array", "length", 3, ValueError, "needs 6 child values"),
    ("array", "offset", 1, ValueError, "needs 6 child values"),
    ("child_array", "length", 3, ValueError, "needs 4 child values"),
    ("child_array", "n_buffers", 0, ValueError, "expected 2 buffers"),
    ("child_schema", "format", b"i", TypeError, "'i'"),
]


@pytest.mark.parametrize("target,field,value,error,message", MATRIX_BREAKS)
def test_malformed_matrix_raises(target, field, value, error, message):
    fake = FakeArray(matrix=True)
    setattr(getattr(fake, target), field, value)
    with pytest.raises(error, match=message):
        _core.arrow_matrix(fake)


def test_null_child_pointer_raises():
    fake = FakeArray(matrix=True)
    fake.array_children[0] = None
    with pytest.raises(ValueError, match="child 0 is null"):
        _core.arrow_matrix(fake)
    fake = FakeArray(matrix=True)
    fake.schema_children[0] = None
    with pytest.raises(ValueError, match="child 0 is null"):
        _core.arrow_matrix(fake)


def test_wrong_capsules_raise_type_error():
    fake = FakeArray()
    fake.array_name = b"not_an_arrow_array"
    with pytest.raises(TypeError, match="arrow_array"):
        _core.arrow_column(fake)

    class NotAPair:
        def __arrow_c_array__(self, requested_schema=None):
            return 42

    with pytest.raises(TypeError, match="pair"):
        _core.arrow_column(NotAPair())

    class WrongStream:
        def __arrow_c_stream__(self, requested_schema=None):
            return FakeArray().__arrow_c_array__()[1]

    with pytest.raises(TypeError, match="arrow_array_stream"):
        _core.arrow_column(WrongStream())


class CStream(ctypes.Structure):
    pass


_GET_SCHEMA = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_GET_NEXT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# c_void_p, not c_char_p: a ctypes callback cannot return a char* it made.
_LAST_ERROR = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
CStream._fields_ = [
    ("get_schema", _GET_SCHEMA),
    ("get_next", _GET_NEXT),
    ("get_last_error", _LAST_ERROR),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class FakeStream:
    """A stream whose get_schema or get_next fails with an errno and a message."""

    def __init__(self, fail_schema: bool):
        def get_schema(stream, out):
            if fail_schema:
                return 5  # EIO
            pa.int32()._export_to_c(out)
            return 0

        def get_next(stream, out):
            return 22  # EINVAL

        self.message = ctypes.create_string_buffer(b"shard offline")
        last_error = _LAST_ERROR(lambda stream: ctypes.addressof(self.message))
        self.callbacks = (_GET_SCHEMA(get_schema), _GET_NEXT(get_next), last_error)
        self.stream = CStream(*self.callbacks, _NOOP, None)

    def __arrow_c_stream__(self, requested_schema=None):
        return _capsule_new(ctypes.addressof(self.stream), b"arrow_array_stream", None)


@pytest.mark.parametrize(
    "fail_schema,call,code", [(True, "get_schema", 5), (False, "get_next", 22)]
)
def test_stream_error_codes_raise_with_last_error(fail_schema, call, code):
    with pytest.raises(ValueError, match=f"{call} failed with error code {code}: shard offline"):
        _core.arrow_column(FakeStream(fail_schema))
