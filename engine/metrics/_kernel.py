"""One Numba kernel computes any set of ranking metrics in one pass per query.

Each query is sorted once and every requested (metric, cutoff) is read off
the ranked labels, so ``evaluate`` with ten metrics costs one sort per query.
Conventions are trec_eval's: an item is relevant when its label is > 0; the
ideal ranking for NDCG and the relevant count for recall and MAP include
judged items the ranking did not retrieve; a query with nothing relevant
scores 0 on every metric except AUC, which is undefined there (NaN).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.losses._kernels import descending

NDCG, NDCG_BURGES, MAP, MRR, RECALL, PRECISION, HIT_RATE, AUC = range(8)
CODES = {"ndcg": NDCG, "ndcg_burges": NDCG_BURGES, "map": MAP, "mrr": MRR, "recall": RECALL,
         "precision": PRECISION, "hit_rate": HIT_RATE, "auc": AUC}
NO_CUTOFF = np.iinfo(np.int64).max


@njit(cache=True)
def _gain(label, exponential):
    return 2.0 ** label - 1.0 if exponential else label


@njit(cache=True)
def _ndcg(ranked, labels, top, k, exponential):
    dcg = 0.0
    for r in range(top):
        dcg += _gain(ranked[r], exponential) / math.log2(r + 2.0)
    ideal = np.sort(labels)[::-1]
    max_dcg = 0.0
    for r in range(min(k, len(ideal))):
        max_dcg += _gain(ideal[r], exponential) / math.log2(r + 2.0)
    return dcg / max_dcg if max_dcg > 0.0 else 0.0


@njit(cache=True)
def _auc(scores, ranked, n_relevant):
    """Share of (relevant, non-relevant) pairs ordered correctly, ties counting
    one half; relevant items not retrieved rank below every retrieved one."""
    n_irrelevant = 0
    for r in range(len(ranked)):
        n_irrelevant += ranked[r] <= 0.0
    if n_relevant == 0 or n_irrelevant == 0:
        return np.nan
    correct = 0.0
    relevant_above = 0
    r = 0
    while r < len(ranked):  # one run of tied scores at a time
        end = r
        relevant = 0
        while end < len(ranked) and scores[end] == scores[r]:
            relevant += ranked[end] > 0.0
            end += 1
        irrelevant = end - r - relevant
        correct += irrelevant * (relevant_above + 0.5 * relevant)
        relevant_above += relevant
        r = end
    return correct / (n_relevant * n_irrelevant)


@njit(parallel=True, cache=True)
def metric_table(scores, labels, offsets, n_retrieved, presorted, codes, cutoffs):
    """(n_queries, len(codes)) metric values.

    Query ``q`` holds items ``offsets[q]:offsets[q + 1]``; the first
    ``n_retrieved[q]`` were retrieved, the rest are judged items the ranking
    missed. ``presorted``: retrieved items are already in rank order (a run
    sorted by trec_eval's rule); otherwise they are ranked by score,
    descending, ties in input order.
    """
    n_queries = len(offsets) - 1
    out = np.empty((n_queries, len(codes)))
    for q in prange(n_queries):
        lo = offsets[q]
        labels_q = labels[lo:offsets[q + 1]]
        m = n_retrieved[q]
        order = np.arange(m) if presorted else descending(scores[lo:lo + m])
        ranked = labels_q[:m][order]
        ranked_scores = scores[lo:lo + m][order]
        n_relevant = 0
        for i in range(len(labels_q)):
            n_relevant += labels_q[i] > 0.0
        for c in range(len(codes)):
            k = cutoffs[c]
            top = min(k, m)
            hits = 0
            first_hit = -1
            average_precision = 0.0
            for r in range(top):
                if ranked[r] > 0.0:
                    hits += 1
                    average_precision += hits / (r + 1.0)
                    if first_hit < 0:
                        first_hit = r
            code = codes[c]
            if code == NDCG or code == NDCG_BURGES:
                value = _ndcg(ranked, labels_q, top, k, code == NDCG_BURGES)
            elif code == MAP:
                value = average_precision / n_relevant if n_relevant > 0 else 0.0
            elif code == MRR:
                value = 1.0 / (first_hit + 1.0) if first_hit >= 0 else 0.0
            elif code == RECALL:
                value = hits / n_relevant if n_relevant > 0 else 0.0
            elif code == PRECISION:
                value = hits / (k if k != NO_CUTOFF else max(m, 1))
            elif code == HIT_RATE:
                value = 1.0 if hits > 0 else 0.0
            else:
                value = _auc(ranked_scores, ranked, n_relevant)
            out[q, c] = value
    return out
