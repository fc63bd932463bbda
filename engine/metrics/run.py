"""Metrics of a run against qrels, as trec_eval computes them.

``run``: query id -> {doc id: score}; ``qrels``: query id -> {doc id: grade}.
Doc ids are strings. trec_eval's conventions, checked against pytrec_eval:

- Ranking: score descending, tied scores by doc id descending (byte order, as
  trec_eval's strcmp); the order of the run's dicts does not matter.
- Queries: only queries in the run with at least one judgment in the qrels
  are evaluated (trec_eval without ``-c``); a judged query with no relevant
  document scores 0 on every metric (AUC: undefined, NaN).
- Relevance: grade > 0 (trec_eval's relevance level 1 for integer grades).
  Unjudged documents count as non-relevant; relevant documents the run did
  not retrieve still count for the ideal DCG, recall and MAP.
"""

from __future__ import annotations

import math
import re
from itertools import chain

import numpy as np

from engine.metrics._kernel import AUC, CODES, metric_table
from engine.metrics.arrays import as_cutoff

_NAME = re.compile(r"^(?P<metric>[a-z_]+?)(@(?P<k>\d+))?$")


def parse_metrics(names) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Metric names (``"ndcg@10"``, ``"map"``, ...) -> (names, codes, cutoffs)."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError("metrics: expected at least one metric name")
    codes, cutoffs = [], []
    for name in names:
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None or match["metric"] not in CODES or (match["metric"] == "auc" and match["k"]):
            raise ValueError(f"metrics: unknown metric {name!r}; expected one of "
                             f"{', '.join(m + '[@k]' for m in CODES if m != 'auc')}, auc")
        codes.append(CODES[match["metric"]])
        cutoffs.append(as_cutoff(None if match["k"] is None else int(match["k"]), f"metrics ({name!r})"))
    return names, np.array(codes, np.int64), np.array(cutoffs, np.int64)


def _flatten(run: dict, qrels: dict):
    """The run's judged queries as ranked flat arrays: per query its retrieved
    documents in trec_eval's order, then the relevant documents it missed."""
    if not isinstance(run, dict) or not isinstance(qrels, dict):
        raise TypeError("run, qrels: expected dicts of query id -> {doc id: value}")
    queries = [q for q in run if qrels.get(q)]  # an empty judgment dict is no judgment, as in a qrels file
    if not queries:
        raise ValueError("run: none of its queries has judgments in qrels")
    sizes = np.array([len(run[q]) for q in queries], np.int64)
    docs = np.array(list(chain.from_iterable(run[q].keys() for q in queries)), dtype=str)
    scores = np.fromiter(chain.from_iterable(run[q].values() for q in queries), np.float64, int(sizes.sum()))
    grades = np.fromiter((qrels[q].get(d, 0) for q in queries for d in run[q]), np.float64, int(sizes.sum()))
    missed = [[g for d, g in qrels[q].items() if g > 0 and d not in run[q]] for q in queries]
    query_of = np.repeat(np.arange(len(queries)), sizes)
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"run[{queries[query_of[i]]!r}][{str(docs[i])!r}]: score must be finite, got {scores[i]}")
    judged = np.fromiter(chain.from_iterable(qrels[q].values() for q in queries), np.float64)
    bad = ~(np.isfinite(judged) & (judged >= 0))
    if bad.any():
        raise ValueError(f"qrels: grades must be finite and >= 0, got {judged[bad][0]}")
    # Ascending by (query, score, doc id), then each query's run reversed:
    # score descending, ties by doc id descending.
    order = np.lexsort((docs, scores, query_of)) if docs.size else np.empty(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    reverse = starts[query_of] + starts[query_of + 1] - 1 - np.arange(len(order))
    order = order[reverse]
    n_missed = np.array([len(m) for m in missed], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes + n_missed)])
    # Retrieved documents first in each query, then its missed relevant ones.
    at = np.concatenate([offsets[query_of] + (np.arange(len(order)) - starts[query_of]),
                         np.repeat(offsets[:-1] + sizes, n_missed) + _ranks_within(n_missed)])
    flat_scores = np.full(offsets[-1], -np.inf)
    flat_labels = np.empty(offsets[-1])
    flat_scores[at[:len(order)]] = scores[order]
    flat_labels[at] = np.concatenate([grades[order], np.fromiter(chain.from_iterable(missed), np.float64)])
    return queries, flat_scores, flat_labels, offsets, sizes


def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., counts[0] - 1, 0, 1, ..., counts[1] - 1, ..."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts


def _values(run: dict, qrels: dict, metrics):
    names, codes, cutoffs = parse_metrics(metrics)
    queries, scores, labels, offsets, retrieved = _flatten(run, qrels)
    return names, codes, queries, metric_table(scores, labels, offsets, retrieved, True, codes, cutoffs)


def evaluate_per_query(run: dict, qrels: dict, metrics) -> dict:
    """{query id: {metric name: value}} for the queries in both run and qrels,
    the shape pytrec_eval returns."""
    names, _, queries, values = _values(run, qrels, metrics)
    return {q: dict(zip(names, row.tolist())) for q, row in zip(queries, values)}


def evaluate(run: dict, qrels: dict, metrics) -> dict[str, float]:
    """{metric name: mean over the queries in both run and qrels}.

    Names: ``ndcg``, ``ndcg_burges``, ``map``, ``mrr``, ``recall``,
    ``precision``, ``hit_rate``, each optionally ``@k``, and ``auc`` (whose
    mean skips queries where it is undefined). ``ndcg@k`` is trec_eval's
    ``ndcg_cut_k`` (linear gain), ``ndcg_burges@k`` uses ``2^grade - 1``,
    ``map@k`` is ``map_cut_k``, ``precision@k`` is ``P_k``, ``mrr`` is
    ``recip_rank`` and ``hit_rate@k`` is ``success_k``.
    """
    names, codes, _, values = _values(run, qrels, metrics)
    means = {}
    for name, code, column in zip(names, codes, values.T):
        if code == AUC:
            column = column[~np.isnan(column)]
        means[name] = float(column.mean()) if column.size else math.nan
    return means
