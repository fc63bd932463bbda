"""No training-serving skew: the logs alone rebuild the served feature rows, byte for byte."""

import numpy as np
import pyarrow as pa

from engine.bundle.serving import Serving
from engine.impressions import feature_matrix, read_impressions, replay_table


def test_logged_features_are_rebuilt_exactly(pipeline):
    log = read_impressions(pipeline.log_dir)
    assert log.num_rows == len(pipeline.requests)
    served = feature_matrix(log)
    table = replay_table(log, pipeline.spec)
    assert table.num_rows == len(served) > 0
    assembler = Serving(pipeline.logging_bundle).assembler
    rebuilt = assembler.assemble_offline(table, threads=2)
    assert rebuilt.shape == served.shape
    assert np.array_equal(rebuilt.view(np.uint32), served.view(np.uint32))
    # the same from a polars frame of the replayed rows
    import polars as pl

    rebuilt_pl = assembler.assemble_offline(pl.from_arrow(table))
    assert np.array_equal(rebuilt_pl.view(np.uint32), served.view(np.uint32))


def test_logs_hold_what_was_shown(pipeline):
    log = read_impressions(pipeline.log_dir)
    first = log.slice(0, 1).to_pylist()[0]
    assert first["request_id"] == pipeline.requests[0]["request_id"]
    assert first["positions"] == list(range(len(first["item_ids"])))
    names = dict(first["components"])
    assert set(names) == {"retrieval", "retrieval_score"}  # the logging bundle's one term + the source score
    np.testing.assert_array_equal(names["retrieval"], names["retrieval_score"])
    assert first["propensities"] is not None and all(0 < p <= 1 for p in first["propensities"])
    assert first["bundle_version"] and first["surface"] in ("home", "search", "store")
    assert pa.types.is_list(log.schema.field("features").type)
