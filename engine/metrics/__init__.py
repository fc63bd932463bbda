"""Ranking metrics as Numba kernels, with trec_eval's conventions.

Per-query values from flat ``scores`` + ``labels`` with ``offsets`` (or
``group_sizes=``): ``ndcg``, ``map``, ``mrr``, ``recall``, ``precision``,
``hit_rate``, ``auc``. From dicts: ``evaluate(run, qrels, ["ndcg@10", "map@10"])``
(means) and ``evaluate_per_query``. See ``engine.metrics.run`` for the
conventions (ties, queries without relevant documents), which match
pytrec_eval to 1e-9.
"""

from engine.metrics.arrays import auc, hit_rate, map, mrr, ndcg, precision, recall
from engine.metrics.run import evaluate, evaluate_per_query

__all__ = ["auc", "evaluate", "evaluate_per_query", "hit_rate", "map", "mrr", "ndcg", "precision", "recall"]
