"""What every loss kernel shares: scalar helpers compiled into the kernels,
and the one Python-side call that runs a kernel.

Kernel contract: ``kernel(scores, <inputs>, offsets, scale, grad, hess)``
runs in parallel over queries (``prange``), writes ``scale * dL_q/ds`` and
``scale * d2L_q/ds2`` (the diagonal) for each item into ``grad`` / ``hess``,
and returns the per-query losses ``L_q`` unscaled. Each query owns a disjoint
slice of the outputs, so no two threads write the same element, and the total
is summed outside the parallel loop so it does not depend on scheduling.
Arithmetic is float64 whatever the input dtype; ``grad`` / ``hess`` have the
scores' dtype.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

REDUCTIONS = ("mean", "sum")


@njit(cache=True)
def sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(cache=True)
def softplus_and_sigmoid(x):
    """(log(1 + exp(x)), 1 / (1 + exp(-x))) from one exp, without overflow:
    the loss and the slope of every logistic term."""
    e = math.exp(-abs(x))
    if x > 0.0:
        return x + math.log1p(e), 1.0 / (1.0 + e)
    return math.log1p(e), e / (1.0 + e)


@njit(cache=True)
def descending(values):
    """Positions of ``values`` from largest to smallest; ties keep their input
    order (a stable sort, as LightGBM's std::stable_sort)."""
    return np.argsort(-values, kind="mergesort")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")


def run(kernel, scores: np.ndarray, offsets: np.ndarray, reduction: str, *inputs):
    """(loss, grad, hess) of ``kernel`` with ``reduction`` over queries.

    ``"mean"``: the loss is the mean of the per-query losses and grad / hess
    are its derivatives. ``"sum"``: the plain sum over queries, the scale at
    which LightGBM's and XGBoost's built-in ranking objectives work.
    """
    check_reduction(reduction)
    scale = 1.0 / (len(offsets) - 1) if reduction == "mean" else 1.0
    grad = np.empty_like(scores)
    hess = np.empty_like(scores)
    per_query = kernel(scores, *inputs, offsets, scale, grad, hess)
    return float(per_query.sum() * scale), grad, hess
