"""safetensors files written and read without copies, with checksums.

The format (an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then the raw bytes) is read by any
safetensors reader; tests check that ``safetensors.numpy.load_file`` opens
our files. We write and read it here because the library's numpy API copies
every tensor into memory, and an index or model file should stream to disk
and map back zero-copy. Each tensor's CRC-32 goes into ``__metadata__``.
"""

from __future__ import annotations

import mmap as mmap_module
import os
import tempfile
import zlib
from typing import Any

import msgspec
import numpy as np

from engine.errors import CorruptFileError

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_CHECKSUMS = "rank_engine.crc32"
_MAX_HEADER = 64 << 20


class _TensorInfo(msgspec.Struct, forbid_unknown_fields=True):
    dtype: str
    shape: list[int]
    data_offsets: tuple[int, int]


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B"))


def write(path: str, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write atomically: a temporary file in the same folder, fsync, rename."""
    # Largest element size first: with no gaps allowed between tensors, this
    # keeps every tensor aligned to its element size for zero-copy mapping.
    names = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    header: dict[str, Any] = {}
    offset = 0
    checksums = {}
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        arrays[name] = a
        if a.dtype not in _NAMES:
            raise TypeError(f"{name}: dtype {a.dtype} cannot be stored in safetensors")
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        checksums[name] = _crc(a)
    meta = dict(metadata)
    for key, value in metadata.items():
        checksums["__metadata__." + key] = zlib.crc32(value.encode())
    meta[_CHECKSUMS] = msgspec.json.encode(checksums).decode()
    header["__metadata__"] = meta
    blob = msgspec.json.encode(header)
    blob += b" " * (-(8 + len(blob)) % 64)  # data starts 64-byte aligned

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(blob).to_bytes(8, "little"))
            f.write(blob)
            for name in names:
                if arrays[name].size:  # memoryview cannot cast an empty N-d view
                    f.write(memoryview(arrays[name].reshape(-1)).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read(path: str, *, mmap: bool = True, verify: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays (read-only views of the mapped file) and the string metadata.

    Raises CorruptFileError naming ``path`` for anything that is not a
    complete, consistent safetensors file (and, with ``verify``, one whose
    bytes do not match the stored checksums).
    """
    def corrupt(why: str) -> CorruptFileError:
        return CorruptFileError(f"{path}: {why}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise corrupt("too short to be a safetensors file")
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(size - 8, _MAX_HEADER):
            raise corrupt(f"header length {n} does not fit the file size {size}")
        try:
            raw = msgspec.json.decode(f.read(n), type=dict[str, Any])
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise corrupt(f"header is not valid JSON ({e})") from None
        if size == 8 + n:
            data: Any = b""
        elif mmap:
            data = mmap_module.mmap(f.fileno(), 0, access=mmap_module.ACCESS_READ)
        else:
            f.seek(0)
            data = f.read()
    meta = raw.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise corrupt("__metadata__ must map strings to strings")
    start = 8 + n
    infos = {}
    for name, value in raw.items():
        try:
            info = msgspec.convert(value, _TensorInfo)
        except msgspec.ValidationError as e:
            raise corrupt(f"tensor {name!r}: {e}") from None
        if info.dtype not in _DTYPES:
            raise corrupt(f"tensor {name!r}: unknown dtype {info.dtype!r}")
        b, e = info.data_offsets
        count = int(np.prod(info.shape, dtype=np.int64)) if info.shape else 1
        itemsize = np.dtype(_DTYPES[info.dtype]).itemsize
        if any(s < 0 for s in info.shape) or b < 0 or e - b != count * itemsize:
            raise corrupt(f"tensor {name!r}: shape {info.shape} does not match its byte range")
        infos[name] = info
    # The spec forbids holes and overlaps: the ranges must tile the data region.
    end = 0
    for name, info in sorted(infos.items(), key=lambda kv: tuple(kv[1].data_offsets)):
        if info.data_offsets[0] != end:
            raise corrupt(f"tensor {name!r}: byte ranges leave a gap or overlap")
        end = info.data_offsets[1]
    if start + end != size:
        raise corrupt(f"data region holds {size - start} bytes, tensors describe {end} (truncated?)")

    arrays = {}
    for name, info in infos.items():
        dtype = np.dtype(_DTYPES[info.dtype])
        b, e = info.data_offsets
        if e == b:  # frombuffer refuses an offset at the end of the buffer
            arrays[name] = np.empty(info.shape, dtype)
            continue
        a = np.frombuffer(data, dtype=dtype, count=(e - b) // dtype.itemsize, offset=start + b)
        if not a.flags.aligned:  # a file from another writer: copy rather than misread
            a = a.copy()
        arrays[name] = a.reshape(info.shape)
    if verify:
        try:
            expected = msgspec.json.decode(meta.get(_CHECKSUMS, "{}"), type=dict[str, int])
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            raise corrupt(f"checksum table unreadable ({e})") from None
        for name, a in arrays.items():
            if name not in expected:
                raise corrupt(f"tensor {name!r} has no checksum")
            if _crc(a) != expected[name]:
                raise corrupt(f"tensor {name!r} fails its checksum (corrupt data)")
        for key, value in meta.items():
            if key != _CHECKSUMS and zlib.crc32(value.encode()) != expected.get("__metadata__." + key):
                raise corrupt(f"metadata {key!r} fails its checksum (corrupt header)")
    return arrays, {k: v for k, v in meta.items() if k != _CHECKSUMS}


def write_versioned(path: str, arrays: dict[str, np.ndarray], key: str, header: msgspec.Struct) -> None:
    """write() with a msgspec header (carrying ``format`` and ``format_version``) under ``key``."""
    write(path, arrays, {key: msgspec.json.encode(header).decode()})


def read_versioned(path: str, key: str, header_type: type, fmt: str, version: int, *,
                   mmap: bool = True, verify: bool = True) -> tuple[dict[str, np.ndarray], Any]:
    """read(), then decode and check the header written by write_versioned()."""
    arrays, meta = read(path, mmap=mmap, verify=verify)
    if key not in meta:
        raise CorruptFileError(f"{path}: not a {fmt} file (no {key} metadata)")
    try:
        header = msgspec.json.decode(meta[key], type=header_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise CorruptFileError(f"{path}: header invalid ({e})") from None
    if header.format != fmt:
        raise CorruptFileError(f"{path}: format {header.format!r}, expected {fmt!r}")
    if header.format_version != version:
        raise CorruptFileError(
            f"{path}: format version {header.format_version}; this build reads {version}"
        )
    return arrays, header
