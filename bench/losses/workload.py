"""Benchmark inputs: lambdarank-shaped ranking batches and a 10,000-query run.

Batches take the query lengths (1-27 items, mean 15) and graded labels (0-4)
of ../shared/data/lambdarank/rank.train, repeated to the size asked for, with
seeded normal scores, so pair counts and label mixes are those of real data.
"""

from __future__ import annotations

import pathlib
import string

import numpy as np

DATA = pathlib.Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "lambdarank"
BINARY = ("sigmoid_cross_entropy", "sampled_softmax")  # objectives that take 0/1 labels


def _rank_train():
    with open(DATA / "rank.train") as lines:
        labels = np.array([float(line.split(maxsplit=1)[0]) for line in lines])
    return labels, np.loadtxt(DATA / "rank.train.query", dtype=np.int64)


def ranking_batch(n_queries: int, seed: int = 0):
    """(scores float64, labels, offsets) of n_queries lambdarank-shaped queries."""
    labels, sizes = _rank_train()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    picks = np.arange(n_queries) % len(sizes)
    sizes_out = sizes[picks]
    labels_out = np.concatenate([labels[offsets[q]:offsets[q + 1]] for q in picks])
    scores = np.random.default_rng(seed).standard_normal(len(labels_out))
    return scores, labels_out, np.concatenate([[0], np.cumsum(sizes_out)])


def labels_for(objective: str, labels: np.ndarray) -> np.ndarray:
    return (labels >= 2).astype(np.float64) if objective in BINARY else labels


def padded(values: np.ndarray, offsets: np.ndarray, fill: float = 0.0):
    """A ragged array as (n_queries, longest) plus the mask of real entries."""
    sizes = np.diff(offsets)
    mask = np.arange(sizes.max())[None, :] < sizes[:, None]
    out = np.full(mask.shape, fill, dtype=values.dtype)
    out[mask] = values
    return out, mask


def trec_run(n_queries: int = 10_000, docs_per_query: int = 100, judged_per_query: int = 20, seed: int = 0):
    """A run (query -> {doc: score}) and qrels (query -> {doc: grade}) with
    string ids, scores on a grid of 1/1000 (so some ties), and relevant
    documents both retrieved and missed."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    run, qrels = {}, {}
    for q in range(n_queries):
        pool = ["".join(c) for c in rng.choice(alphabet, (docs_per_query + judged_per_query, 8))]
        scores = np.round(rng.random(docs_per_query), 3).tolist()
        run[f"q{q}"] = dict(zip(pool[:docs_per_query], scores))
        judged = rng.choice(pool, judged_per_query, replace=False).tolist()
        qrels[f"q{q}"] = dict(zip(judged, rng.integers(0, 4, judged_per_query).tolist()))
    return run, qrels
