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
from itertools import chain, repeat

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
    """The run's judged queries as flat arrays for ``metric_table``: per query
    its retrieved documents (scores, grades, doc ids as code points) and the
    grades of the relevant documents it missed."""
    if not isinstance(run, dict) or not isinstance(qrels, dict):
        raise TypeError("run, qrels: expected dicts of query id -> {doc id: value}")
    queries = [q for q in run if qrels.get(q)]  # an empty judgment dict is no judgment, as in a qrels file
    if not queries:
        raise ValueError("run: none of its queries has judgments in qrels")
    offsets = np.zeros(len(queries) + 1, np.int64)
    np.cumsum([len(run[q]) for q in queries], out=offsets[1:])
    n = int(offsets[-1])
    scores = np.fromiter(chain.from_iterable(run[q].values() for q in queries), np.float64, n)
    grades = np.fromiter(chain.from_iterable(map(qrels[q].get, run[q], repeat(0)) for q in queries), np.float64, n)
    doc_ids = np.array(list(chain.from_iterable(run[q] for q in queries)), dtype=str)
    missed = [[g for d, g in qrels[q].items() if g > 0 and d not in run[q]] for q in queries]
    missed_offsets = np.zeros(len(queries) + 1, np.int64)
    np.cumsum([len(m) for m in missed], out=missed_offsets[1:])
    bad = ~np.isfinite(scores)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        q = int(np.searchsorted(offsets, i, side="right")) - 1
        raise ValueError(f"run[{queries[q]!r}][{str(doc_ids[i])!r}]: score must be finite, got {scores[i]}")
    judged = np.fromiter(chain.from_iterable(qrels[q].values() for q in queries), np.float64)
    bad = ~(np.isfinite(judged) & (judged >= 0))
    if bad.any():
        raise ValueError(f"qrels: grades must be finite and >= 0, got {judged[bad][0]}")
    # numpy stores str as fixed-width UCS-4: one row of code points per doc id.
    code_points = doc_ids.view(np.uint32).reshape(n, -1) if n else np.zeros((0, 0), np.uint32)
    missed_grades = np.fromiter(chain.from_iterable(missed), np.float64, int(missed_offsets[-1]))
    return queries, (scores, grades, offsets, np.ascontiguousarray(code_points), missed_grades, missed_offsets)


def _values(run: dict, qrels: dict, metrics):
    names, codes, cutoffs = parse_metrics(metrics)
    queries, arrays = _flatten(run, qrels)
    return names, codes, queries, metric_table(*arrays, codes, cutoffs)


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
