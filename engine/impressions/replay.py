"""Logged impressions -> the offline assembler's input: one row per shown item.

The Ranker logs, per response, the request fields it gave the feature
assembler (the context plus the user-table attributes it looked up) and the
user vector it used. Expanding them over the shown items gives exactly the
table `FeatureAssembler.assemble_offline` reads, so training rows can be
rebuilt from the log and the item table alone, equal byte for byte to the
features served (tests/test_impression_replay.py checks it). That is also how
a new feature spec gets backfilled over old logs.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.features import FeatureSpec, Lookup

_context = msgspec.json.Decoder(dict[str, int | float | str | bool | None | dict[int, float | None]])


def replay_table(log: pa.Table, spec: FeatureSpec) -> pa.Table:
    """(item_id, one column per request field of ``spec``, user_vector) per shown item."""
    counts = pc.list_value_length(log.column("item_ids")).to_numpy(zero_copy_only=False)
    record = np.repeat(np.arange(log.num_rows), counts)
    contexts = [_context.decode(c) for c in log.column("context").to_pylist()]
    lookups = {f.field for f in spec.features if isinstance(f, Lookup)}
    columns = {"item_id": pc.list_flatten(log.column("item_ids"))}
    for field in spec.request_fields:
        per_record = [c.get(field) for c in contexts]
        if field in lookups:
            values = pa.array([None if m is None else list(m.items()) for m in per_record],
                              pa.map_(pa.int64(), pa.float64()))
        else:
            values = pa.array(per_record)
        columns[field] = values.take(pa.array(record))
    if spec.uses_user_vector:
        vectors = log.column("user_vector").to_pylist()
        dims = {len(v) for v in vectors if v is not None}
        if len(dims) > 1:
            raise ValueError(f"log: user vectors of different lengths {sorted(dims)}")
        dim = dims.pop() if dims else 1
        missing = np.array([v is None for v in vectors], dtype=bool)
        dense = np.zeros((len(vectors), dim), dtype=np.float32)
        for i in np.flatnonzero(~missing):
            dense[i] = vectors[i]
        fixed = pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1)), dim, mask=pa.array(missing))
        columns["user_vector"] = fixed.take(pa.array(record))
    return pa.table(columns)
