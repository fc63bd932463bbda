"""Per-query metrics from flat scores + labels with query offsets (or group sizes).

Every function returns one float64 value per query. Items are ranked by
score, descending; tied scores keep their input order (there are no doc ids
to break ties by, as trec_eval does). ``k=None`` means no cutoff.
"""

from __future__ import annotations

import numpy as np

from engine.losses._groups import ranking_inputs
from engine.metrics._kernel import CODES, NO_CUTOFF, metric_table


def as_cutoff(k, name: str = "k") -> int:
    if k is None:
        return NO_CUTOFF
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name}: expected None or an integer >= 1, got {k!r}")
    return int(k)


def _one(code, scores, labels, offsets, group_sizes, k) -> np.ndarray:
    """Per-query values of one metric (no doc ids: ties by input order; no missed items)."""
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    no_doc_ids, nothing_missed = np.zeros((0, 0), np.uint32), np.zeros(len(offsets), np.int64)
    return metric_table(scores, labels, offsets, no_doc_ids, np.empty(0), nothing_missed,
                        np.array([code], np.int64), np.array([as_cutoff(k)], np.int64))[:, 0]


def ndcg(scores, labels, offsets=None, k=None, *, group_sizes=None, gain="linear") -> np.ndarray:
    """NDCG@k. ``gain="linear"``: the label is the gain (trec_eval's ``ndcg_cut``);
    ``"exponential"``: ``2^label - 1`` (Burges et al.; LightGBM's ``ndcg``).
    Discount ``1 / log2(1 + rank)``; a query without gain scores 0."""
    if gain not in ("linear", "exponential"):
        raise ValueError(f"gain: expected 'linear' or 'exponential', got {gain!r}")
    code = CODES["ndcg" if gain == "linear" else "ndcg_burges"]
    return _one(code, scores, labels, offsets, group_sizes, k)


def map(scores, labels, offsets=None, k=None, *, group_sizes=None) -> np.ndarray:
    """Average precision over the top k, divided by the query's number of relevant
    items (trec_eval's ``map_cut``, not by min(k, relevant))."""
    return _one(CODES["map"], scores, labels, offsets, group_sizes, k)


def mrr(scores, labels, offsets=None, k=None, *, group_sizes=None) -> np.ndarray:
    """1 / rank of the first relevant item within the top k, else 0 (trec_eval's
    ``recip_rank`` on the ranking cut at k)."""
    return _one(CODES["mrr"], scores, labels, offsets, group_sizes, k)


def recall(scores, labels, offsets=None, k=None, *, group_sizes=None) -> np.ndarray:
    """Relevant items in the top k / relevant items of the query."""
    return _one(CODES["recall"], scores, labels, offsets, group_sizes, k)


def precision(scores, labels, offsets=None, k=None, *, group_sizes=None) -> np.ndarray:
    """Relevant items in the top k / k, even when the query has fewer than k items
    (trec_eval's ``P``); without k, / the query's length."""
    return _one(CODES["precision"], scores, labels, offsets, group_sizes, k)


def hit_rate(scores, labels, offsets=None, k=None, *, group_sizes=None) -> np.ndarray:
    """1 if a relevant item is in the top k, else 0 (trec_eval's ``success``)."""
    return _one(CODES["hit_rate"], scores, labels, offsets, group_sizes, k)


def auc(scores, labels, offsets=None, *, group_sizes=None) -> np.ndarray:
    """Per-query ROC AUC: the share of (relevant, non-relevant) pairs the scores
    order correctly, tied scores counting 1/2 (no trec_eval counterpart). NaN
    for a query without relevant or without non-relevant items."""
    return _one(CODES["auc"], scores, labels, offsets, group_sizes, None)
