"""The README's main job, small: the whole loop runs and the trained ranker learns something."""

import os

import pyarrow as pa

from engine.bundle import read_manifest
from engine.impressions import read_impressions
from engine.quickstart import QuickstartConfig, run


def test_quickstart_end_to_end(tmp_path):
    lines = []
    summary = run(QuickstartConfig(out=str(tmp_path), items=5000, users=1000, dim=16, train_requests=5000,
                                   eval_requests=200, rounds=60, threads=2, progress=False), echo=lines.append)
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
