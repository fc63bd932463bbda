"""A compact UBJSON (Universal Binary JSON, draft 12) decoder, enough for
XGBoost's ``.ubj`` model files, so that compiling a model never needs xgboost.

Values decode to what ``msgspec.json.decode`` gives for the same document
(dict, list, str, int, float, bool, None), except that a strongly typed
numeric array (``[$<type>#<count>``, which XGBoost writes for every node
array) decodes to a 1-D numpy array read in one ``numpy.frombuffer`` call:
big models load fast, and float32 values stay float32 exactly.

Anything malformed (unknown marker, truncated data, negative count, trailing
bytes) raises ``ValueError`` naming the byte offset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Every numeric type marker: its big-endian numpy dtype.
NUMBER_DTYPES = {
    "i": np.dtype(">i1"),
    "U": np.dtype(">u1"),
    "I": np.dtype(">i2"),
    "l": np.dtype(">i4"),
    "L": np.dtype(">i8"),
    "d": np.dtype(">f4"),
    "D": np.dtype(">f8"),
}
CONSTANTS = {"Z": None, "T": True, "F": False}
# Containers deeper than this are refused (hostile files must not exhaust the stack).
MAX_DEPTH = 64


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The value of one whole UBJSON document."""
    reader = _Reader(bytes(data))
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise ValueError(f"UBJSON: {len(reader.data) - reader.pos} unexpected bytes after the value "
                         f"(offset {reader.pos})")
    return value


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"UBJSON: {what} at offset {self.pos}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated data (wanted {n} bytes, {len(self.data) - self.pos} left)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def marker(self) -> str:
        while True:
            m = chr(self.take(1)[0])
            if m != "N":  # no-op padding
                return m

    def number(self, m: str) -> int | float:
        dtype = NUMBER_DTYPES[m]
        value = np.frombuffer(self.take(dtype.itemsize), dtype)[0]
        return float(value) if dtype.kind == "f" else int(value)

    def count(self) -> int:
        m = self.marker()
        if m not in NUMBER_DTYPES or NUMBER_DTYPES[m].kind == "f":
            raise self.fail(f"expected an integer count, got marker {m!r}")
        n = self.number(m)
        if n < 0:
            raise self.fail(f"negative count {n}")
        return n

    def string(self) -> str:
        raw = self.take(self.count())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("a string that is not UTF-8") from None

    def value(self, depth: int, m: str | None = None) -> Any:
        m = self.marker() if m is None else m
        if m in NUMBER_DTYPES:
            return self.number(m)
        if m in CONSTANTS:
            return CONSTANTS[m]
        if m == "S":
            return self.string()
        if m == "C":
            return self.take(1).decode("latin-1")
        if m == "H":  # high-precision number, written as its decimal string
            text = self.string()
            try:
                return int(text) if text.lstrip("-").isdigit() else float(text)
            except ValueError:
                raise self.fail(f"a high-precision number {text!r} that does not parse") from None
        if m in "[{":
            if depth >= MAX_DEPTH:
                raise self.fail(f"containers nested deeper than {MAX_DEPTH}")
            return self.array(depth + 1) if m == "[" else self.object(depth + 1)
        raise self.fail(f"unknown marker {m!r}")

    def container_header(self) -> tuple[str | None, int | None]:
        """The optional ``$type`` and ``#count`` after ``[`` or ``{``."""
        item_type = count = None
        if self.peek() == "$":
            self.pos += 1
            item_type = chr(self.take(1)[0])
            if self.peek() != "#":
                raise self.fail("a typed container without a count")
        if self.peek() == "#":
            self.pos += 1
            count = self.count()
            # A hostile count must not make us loop or allocate for long:
            # every item but a typed constant takes at least one byte.
            if count > len(self.data) and item_type not in NUMBER_DTYPES:
                raise self.fail(f"a count of {count} items in a {len(self.data)}-byte document")
        return item_type, count

    def peek(self) -> str:
        if self.pos >= len(self.data):
            raise self.fail("truncated data (a container is not closed)")
        return chr(self.data[self.pos])

    def array(self, depth: int) -> Any:
        item_type, count = self.container_header()
        if item_type in NUMBER_DTYPES:
            dtype = NUMBER_DTYPES[item_type]
            raw = self.take(count * dtype.itemsize)
            return np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="))
        if count is not None:
            return [self.value(depth, item_type) for _ in range(count)]
        items = []
        while self.peek() != "]":
            items.append(self.value(depth))
        self.pos += 1
        return items

    def object(self, depth: int) -> dict[str, Any]:
        item_type, count = self.container_header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(count):
                key = self.string()
                out[key] = self.value(depth, item_type)
            return out
        while self.peek() != "}":
            key = self.string()
            out[key] = self.value(depth)
        self.pos += 1
        return out

