"""The VectorIndex file: one safetensors file, arrays per segment plus a
versioned msgspec header in ``__metadata__``."""

from __future__ import annotations

from typing import Literal

import msgspec

from engine import _core, _safetensors
from engine._validate import AttributeColumn
from engine.errors import CorruptFileError

FORMAT = "rank-engine/vector-index"
FORMAT_VERSION = 1
_HEADER_KEY = "rank_engine.vector_index"


class _Segment(msgspec.Struct, forbid_unknown_fields=True):
    dim: int
    metric: str
    storage: str
    n_columns: int
    cluster_column: int
    default_nprobe: int
    nlist: int
    rows: int
    live: int


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    format_version: int
    dim: int
    metric: Literal["ip", "cos", "l2"]
    storage: Literal["f32", "f16", "i8"]
    nlist: int
    min_ivf_rows: int
    seed: int
    columns: list[AttributeColumn]
    segments: list[_Segment]


def save(index, path: str) -> None:
    native = index._native
    segments = native.segments()
    arrays = {}
    for i, seg in enumerate(segments):
        for name, array in seg["arrays"].items():
            arrays[f"s{i}.{name}"] = array
    header = _Header(
        format=FORMAT, format_version=FORMAT_VERSION, dim=native.dim, metric=native.metric,
        storage=native.storage, nlist=native.nlist_option, min_ivf_rows=native.min_ivf_rows,
        seed=native.seed, columns=[AttributeColumn(n, k) for n, k in index._kinds.items()],
        segments=[msgspec.convert(seg["meta"], _Segment) for seg in segments],
    )
    _safetensors.write_versioned(path, arrays, _HEADER_KEY, header)


def load(cls, path: str, *, mmap: bool, verify: bool):
    arrays, header = _safetensors.read_versioned(path, _HEADER_KEY, _Header, FORMAT, FORMAT_VERSION,
                                                  mmap=mmap, verify=verify)
    segments = []
    for i, seg in enumerate(header.segments):
        prefix = f"s{i}."
        segments.append({
            "meta": msgspec.to_builtins(seg),
            "arrays": {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
        })
    expected = {f"s{i}." for i in range(len(header.segments))}
    stray = sorted({k.split(".", 1)[0] + "." for k in arrays} - expected)
    if stray:
        raise CorruptFileError(f"{path}: arrays for segments not in the header: {stray}")
    index = cls.__new__(cls)
    try:
        index._native = _core.Index(header.dim, header.metric, header.storage, header.nlist,
                                    max(1, header.min_ivf_rows), max(0, header.seed))
        index._native.restore([c.name for c in header.columns], segments)
    except (_core.FormatError, ValueError, TypeError, OverflowError) as e:
        raise CorruptFileError(f"{path}: {e}") from None
    index._kinds = {c.name: c.kind for c in header.columns}
    return index
