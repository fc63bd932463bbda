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


@njit(cache=True)
def _doc_after(doc_ids, a, b):
    """Whether doc ``a`` ranks after doc ``b`` among tied scores: trec_eval puts
    the greater id (strcmp; here code points, the same order as UTF-8 bytes) first."""
    for c in range(doc_ids.shape[1]):
        if doc_ids[a, c] != doc_ids[b, c]:
            return doc_ids[a, c] < doc_ids[b, c]
    return False


@njit(cache=True)
def _sort_by_doc(items, doc_ids):
    """``items`` by doc id, descending: a bottom-up merge sort, so a long run of
    tied scores costs m log m comparisons, not m^2."""
    source = items.copy()
    target = np.empty_like(items)
    width = 1
    while width < len(items):
        for lo in range(0, len(items), 2 * width):
            mid = min(lo + width, len(items))
            hi = min(lo + 2 * width, len(items))
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and not _doc_after(doc_ids, source[i], source[j])):
                    target[k] = source[i]
                    i += 1
                else:
                    target[k] = source[j]
                    j += 1
        source, target = target, source
        width *= 2
    return source


@njit(cache=True)
def _rank(scores, doc_ids):
    """Positions by score, descending; tied scores by doc id, descending, when
    ``doc_ids`` has rows (a run), else in input order."""
    order = descending(scores)
    if doc_ids.shape[0] == 0:
        return order
    r = 0
    while r < len(order):
        end = r + 1
        while end < len(order) and scores[order[end]] == scores[order[r]]:
            end += 1
        if end - r > 1:
            order[r:end] = _sort_by_doc(order[r:end], doc_ids)
        r = end
    return order


@njit(parallel=True, cache=True)
def metric_table(scores, labels, offsets, doc_ids, missed, missed_offsets, codes, cutoffs):
    """(n_queries, len(codes)) metric values.

    Query ``q`` ranks items ``offsets[q]:offsets[q + 1]`` (see ``_rank``;
    ``doc_ids`` is an (n, width) code-point matrix, or has no rows).
    ``missed[missed_offsets[q]:missed_offsets[q + 1]]`` are the labels of
    relevant items the ranking did not retrieve: they count for the ideal DCG
    and the number of relevant items only.
    """
    n_queries = len(offsets) - 1
    out = np.empty((n_queries, len(codes)))
    for q in prange(n_queries):
        lo, hi = offsets[q], offsets[q + 1]
        m = hi - lo
        order = _rank(scores[lo:hi], doc_ids[lo:hi] if doc_ids.shape[0] > 0 else doc_ids)
        ranked = labels[lo:hi][order]
        ranked_scores = scores[lo:hi][order]
        judged = np.concatenate((ranked, missed[missed_offsets[q]:missed_offsets[q + 1]]))
        n_relevant = 0
        for i in range(len(judged)):
            n_relevant += judged[i] > 0.0
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
                value = _ndcg(ranked, judged, top, k, code == NDCG_BURGES)
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
