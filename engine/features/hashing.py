"""The feature spec's hash functions in plain Python: the reference the native
assembler (cpp/features/hash.hpp) is tested against, and what code outside
the engine (a Spark job, a SQL UDF) reimplements to produce the same buckets.

- a categorical value's 64-bit code: ints and bools are their two's-complement
  bit pattern; strings the FNV-1a 64 of their UTF-8 bytes; a missing value
  ``MISSING`` = FNV-1a 64 of the single byte 0xFF (no UTF-8 string has it);
- ``mix64``: splitmix64's output function; ``reduce_to(h, n)``: ``(h * n) >> 64``;
- hashed feature: ``reduce_to(mix64(code), buckets)``;
- cross of sources 0..m-1: ``reduce_to(mix64(XOR_i mix64(code_i + i * GOLDEN)), buckets)``.
"""

from __future__ import annotations

import numpy as np

M64 = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


MISSING = fnv1a64(b"\xff")


def mix64(x: int) -> int:
    z = (x + GOLDEN) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def reduce_to(h: int, buckets: int) -> int:
    return (h * buckets) >> 64


def code(v) -> int | None:
    """A categorical value's 64-bit code; None when missing."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v) & M64
    if isinstance(v, str):
        return fnv1a64(v.encode())
    raise TypeError(f"a categorical value must be an int, bool or str, got {type(v).__name__}")


def hashed(v, buckets: int) -> int:
    c = code(v)
    return reduce_to(mix64(MISSING if c is None else c), buckets)


def cross(values, buckets: int) -> int:
    h = 0
    for i, v in enumerate(values):
        c = code(v)
        h ^= mix64(((MISSING if c is None else c) + i * GOLDEN) & M64)
    return reduce_to(mix64(h), buckets)
