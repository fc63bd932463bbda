"""The README's main job, small: the whole loop runs and the trained ranker learns something."""

import os

import numpy as np
import pyarrow as pa

from engine.bundle import read_manifest
from engine.impressions import read_impressions
from engine.quickstart import QuickstartConfig, run
from engine.quickstart.train import training_rows


def test_quickstart_end_to_end(tmp_path):
    lines = []
    config = QuickstartConfig(out=str(tmp_path), items=5000, users=1000, dim=16, train_requests=5000,
                              eval_requests=200, rounds=60, threads=2, progress=False)
    summary = run(config, echo=lines.append)
    text = "\n".join(lines)
    assert "NDCG@10" in text and "p99" in text and str(tmp_path) in text
    ndcg = summary["ndcg@10"]
    assert set(ndcg) == {"trained", "popularity", "logging policy"}
    assert all(0.0 < v <= 1.0 for v in ndcg.values())
    # the world's signal is strong: a model of the logged features beats ranking by popularity
    assert ndcg["trained"] > ndcg["popularity"], ndcg
    assert ndcg["trained"] > ndcg["logging policy"] + 0.1, ndcg
    assert set(summary["latency_us"]) >= {"candidates", "features", "heads", "value", "rerank", "log", "total"}
    m = read_manifest(os.path.join(tmp_path, "bundle"))
    assert m.heads == ["p_click", "p_order"]
    served = read_impressions(os.path.join(tmp_path, "logs", "serve"))
    assert served.num_rows == 200 and isinstance(served, pa.Table)
    assert read_impressions(os.path.join(tmp_path, "logs", "train")).num_rows == 5000
    # The training rows do not depend on the order the logger wrote records in
    # (a batch's threads finish in any order): the heads are the same every run.
    log = read_impressions(os.path.join(tmp_path, "logs", "train"))
    ids = sorted(set(log.column("request_id").to_pylist()))
    labels = np.arange(len(ids) * 40, dtype=np.float32).reshape(len(ids), 40)
    X, clicked, _ = training_rows(log, ids, labels, labels)
    shuffled = log.take(np.random.default_rng(0).permutation(log.num_rows))
    X2, clicked2, _ = training_rows(shuffled, ids, labels, labels)
    assert np.array_equal(X, X2, equal_nan=True) and np.array_equal(clicked, clicked2)
    # Run again into the same folder: the earlier run's logs are not trained on
    # twice, and the heads (so the NDCG) come out the same.
    again = run(config, echo=lambda line: None)
    assert again["training_rows"] == summary["training_rows"]
    assert again["ndcg@10"] == summary["ndcg@10"]
    assert read_impressions(os.path.join(tmp_path, "logs", "train")).num_rows == 5000
