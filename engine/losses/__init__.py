"""Ranking losses as Numba kernels: loss, gradient and hessian over query groups.

Every loss takes ``scores`` and ``labels`` (1-D, float32 or float64 scores;
labels >= 0) and the query groups as ``offsets`` (query ``q`` is
``offsets[q]:offsets[q + 1]``) or ``group_sizes=``, and returns
``(loss, grad, hess)``: the mean over queries of the per-query loss, its
gradient with respect to the scores and the diagonal of its Hessian (for
LambdaRank, the diagonal with the |delta NDCG| weights held constant). Kernels
run in parallel over queries and are compiled once per dtype and cached on
disk. Bad input raises ``ValueError`` / ``TypeError`` naming the argument.

``lightgbm_objective``, ``xgboost_objective`` and ``torch_loss`` wrap any of
them, by name, for those libraries.
"""

from engine.losses.adapters import OBJECTIVES, lightgbm_objective, torch_loss, xgboost_objective
from engine.losses.lambdarank import lambdarank
from engine.losses.listwise import approx_ndcg, listmle, listnet
from engine.losses.pairwise import ranknet
from engine.losses.pointwise import sigmoid_cross_entropy, squared_error
from engine.losses.sampled_softmax import sampled_softmax

__all__ = [
    "OBJECTIVES",
    "approx_ndcg",
    "lambdarank",
    "lightgbm_objective",
    "listmle",
    "listnet",
    "ranknet",
    "sampled_softmax",
    "sigmoid_cross_entropy",
    "squared_error",
    "torch_loss",
    "xgboost_objective",
]
