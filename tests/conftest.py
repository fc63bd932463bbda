"""Shared fixtures: a small clustered catalogue with known exact answers."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def clustered(n: int, dim: int, seed: int = 0, n_clusters: int = 64):
    """Unit vectors around Zipf-sized clusters, with merchant / category / stock attributes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, n_clusters + 1)
    cluster = rng.choice(n_clusters, size=n, p=weights / weights.sum())
    x = centres[cluster] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    merchants = np.minimum(rng.zipf(1.3, n), 2000).astype(np.int64)
    attrs = {
        "merchant_id": merchants,
        "category_id": (cluster % 17).astype(np.int64),
        "in_stock": rng.random(n) < 0.9,
    }
    ids = rng.permutation(10 * n)[:n].astype(np.uint64)
    return ids, x.astype(np.float32), attrs


def queries_like(x: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x), n)] + 0.3 * rng.standard_normal((n, x.shape[1])).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_topk(q, x, ids, k, metric="ip", mask=None):
    """Ground truth by numpy: ids (padded -1) and scores in the engine's convention."""
    if metric == "l2":
        s = -((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) if len(x) < 3000 else (
            2 * q @ x.T - (x * x).sum(1)[None, :] - (q * q).sum(1)[:, None])
    elif metric == "cos":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        s = qn @ xn.T
    else:
        s = q @ x.T
    if mask is not None:
        s = np.where(mask[None, :], s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(s, order, 1)
    out_ids = np.where(np.isfinite(top), ids[order].astype(np.int64), -1)
    return out_ids, (-top if metric == "l2" else top)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = total = 0
    for f, t in zip(found, truth):
        t = set(int(v) for v in t if v >= 0)
        hits += len(t & set(int(v) for v in f))
        total += len(t)
    return hits / max(total, 1)


@pytest.fixture(scope="session")
def catalogue():
    return clustered(30_000, 32)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """A small world served, logged, trained and bundled (tests/pipeline_support.py)."""
    from pipeline_support import build_pipeline

    return build_pipeline(str(tmp_path_factory.mktemp("pipeline")))
