"""Pointwise objectives: each item is scored against its own label.

Per query, ``L_q`` is the sum over the query's items; the loss is the mean of
``L_q`` over queries (``reduction="sum"``: their sum). With ``reduction="sum"``
grad and hess equal LightGBM's ``binary`` and ``regression`` objectives.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.losses._groups import ranking_inputs
from engine.losses._kernels import run, softplus_and_sigmoid


@njit(parallel=True, cache=True)
def _pointwise_kernel(scores, labels, logistic, offsets, scale, grad, hess):
    n_queries = len(offsets) - 1
    losses = np.zeros(n_queries)
    for q in prange(n_queries):
        total = 0.0
        for i in range(offsets[q], offsets[q + 1]):
            s = np.float64(scores[i])
            y = labels[i]
            if logistic:
                softplus, p = softplus_and_sigmoid(s)
                total += softplus - y * s
                grad[i] = scale * (p - y)
                hess[i] = scale * p * (1.0 - p)
            else:
                total += 0.5 * (s - y) ** 2
                grad[i] = scale * (s - y)
                hess[i] = scale
        losses[q] = total
    return losses


def sigmoid_cross_entropy(scores, labels, offsets=None, *, group_sizes=None, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(scores)`` against targets in [0, 1].

    ``L_q = sum_i softplus(s_i) - y_i * s_i``; grad ``sigmoid(s) - y``, hess
    ``p (1 - p)``. Graded labels must be mapped to [0, 1] first (e.g.
    ``labels > 0`` or ``labels / max_grade``).

    Returns ``(loss, grad, hess)``: a float, and two arrays of the scores' dtype.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    if labels.size and labels.max() > 1.0:
        i = int(np.argmax(labels))
        raise ValueError(f"labels: sigmoid_cross_entropy needs targets in [0, 1], got {labels[i]} at index {i}")
    return run(_pointwise_kernel, scores, offsets, reduction, labels, True)


def squared_error(scores, labels, offsets=None, *, group_sizes=None, reduction="mean"):
    """``L_q = sum_i (s_i - y_i)^2 / 2``; grad ``s - y``, hess 1.

    Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(_pointwise_kernel, scores, offsets, reduction, labels, False)
