"""The UBJSON decoder: every value type, typed arrays read as numpy arrays
(big-endian on the wire), and a ValueError with the byte offset for anything
malformed."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from engine.forest import ubjson


def key(name: str) -> bytes:
    return b"i" + struct.pack(">b", len(name)) + name.encode()


def test_scalars_strings_and_containers():
    doc = (b"{" + key("a") + b"i\xff" + key("b") + b"U\xff" + key("c") + b"I\x01\x00"
           + key("d") + b"l\x00\x01\x00\x00" + key("e") + b"L" + struct.pack(">q", -2**40)
           + key("f") + b"d" + struct.pack(">f", 1.5) + key("g") + b"D" + struct.pack(">d", -0.1)
           + key("h") + b"SU\x03h\xc3\xa9" + key("i") + b"[TFZNCx]" + key("j") + b"HU\x051.5e3"
           + key("k") + b"[#U\x02Si\x01xSi\x00" + b"}")
    assert ubjson.decode(doc) == {"a": -1, "b": 255, "c": 256, "d": 65536, "e": -2**40, "f": 1.5,
                                  "g": -0.1, "h": "hé", "i": [True, False, None, "x"], "j": 1500.0,
                                  "k": ["x", ""]}


@pytest.mark.parametrize("marker, dtype", [("i", ">i1"), ("U", ">u1"), ("I", ">i2"), ("l", ">i4"),
                                           ("L", ">i8"), ("d", ">f4"), ("D", ">f8")])
def test_typed_arrays_become_native_numpy_arrays(marker, dtype):
    values = np.array([0, 1, 2, 100, 7], dtype=dtype)
    data = b"[$" + marker.encode() + b"#l" + struct.pack(">i", len(values)) + values.tobytes()
    out = ubjson.decode(data)
    assert isinstance(out, np.ndarray) and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, values)


def test_typed_object_and_empty_containers():
    data = b"{$i#U\x02" + key("x") + b"\x05" + key("y") + b"\x06}"[:-1]
    assert ubjson.decode(data) == {"x": 5, "y": 6}
    assert ubjson.decode(b"[]") == [] and ubjson.decode(b"{}") == {}
    assert ubjson.decode(b"[$d#i\x00").size == 0


@pytest.mark.parametrize("data, message", [
    (b"", "truncated"),
    (b"[$d#i\x04\x00\x00", "truncated"),
    (b"{" + key("a"), "truncated"),
    (b"[i\x01", "not closed"),
    (b"Q", "unknown marker 'Q'"),
    (b"ii\x01\x02", "unexpected bytes after the value"),
    (b"[#i\xff", "negative count"),
    (b"[$d]", "typed container without a count"),
    (b"[#d\x00\x00\x00\x00", "expected an integer count"),
    (b"[$Z#L" + struct.pack(">q", 2**60), "a count of"),
    (b"SU\x02\xff\xfe", "not UTF-8"),
    (b"HU\x03abc", "high-precision number 'abc'"),
    (b"[" * 100 + b"]" * 100, "nested deeper"),
])
def test_malformed_input_names_the_offset(data, message):
    with pytest.raises(ValueError, match=f"UBJSON: .*{message}"):
        ubjson.decode(data)
