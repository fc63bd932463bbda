"""LambdaRank weighted by |delta NDCG@k|, compatible with LightGBM's ``lambdarank``.

Items are ranked by score (descending; ties keep their input order, as
LightGBM's stable sort). Every pair ``(h, l)`` of one query with
``y_h > y_l`` and at least one of the two ranked within the top ``k`` gets

    w_hl = (gain(y_h) - gain(y_l)) * |1/log2(2 + r_h) - 1/log2(2 + r_l)| / maxDCG@k

(``r`` the 0-based rank, ``gain(y) = 2^y - 1`` unless ``label_gain`` is given,
maxDCG@k of the items ordered by label), and the query's loss is

    L_q = sum_hl w_hl * log(1 + exp(-sigma * (s_h - s_l)))

with grad and hess (``sum sigma^2 w p (1 - p)``) taken with the weights held
constant, as LambdaRank does. The weights change only where two scores swap
order, so with ``norm=False`` grad is exactly the gradient of the returned
loss wherever scores are distinct (tests check it by finite differences).

``norm=True`` reproduces LightGBM's ``lambdarank_norm`` (its default): each
weight is divided by ``0.01 + |s_h - s_l|`` (unless all of the query's scores
are equal) and the query's lambdas, hessians and loss are multiplied by
``log2(1 + S) / S``, ``S`` the sum of |lambda| over its pairs. Both factors
move continuously with the scores, so the returned grad is then the gradient
with those factors held constant, not the gradient of the loss: that option
breaks the finite-difference consistency.

LightGBM's defaults are ``k=30`` (``lambdarank_truncation_level``),
``norm=True``, ``sigma=1`` (``sigmoid``); this function defaults to no
truncation and no normalisation, the plain form. Pass LightGBM's values to
reproduce its built-in objective; ``reduction="sum"`` gives its scale.
"""

from __future__ import annotations

import numpy as np

from engine.losses._groups import ranking_inputs
from engine.losses._kernels import run
from engine.losses.pairwise import NO_TRUNCATION, _pairwise_kernel, check_sigma


def check_k(k) -> int:
    if k is None:
        return NO_TRUNCATION
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected None or an integer >= 1, got {k!r}")
    return int(k)


def gains_of(labels: np.ndarray, label_gain) -> np.ndarray:
    """Per-item gains: ``2^label - 1``, or ``label_gain[label]`` for integer labels."""
    if label_gain is None:
        return np.exp2(labels) - 1.0
    table = np.asarray(label_gain, dtype=np.float64)
    if table.ndim != 1 or not np.isfinite(table).all():
        raise ValueError("label_gain: expected a 1-D array of finite gains, one per label value")
    if not (labels == np.round(labels)).all() or labels.max() >= len(table):
        raise ValueError(f"labels: with label_gain, labels must be integers below {len(table)}")
    return table[labels.astype(np.int64)]


def lambdarank(scores, labels, offsets=None, k=None, sigma=1.0, *, norm=False, label_gain=None,
               group_sizes=None, reduction="mean"):
    """LambdaRank loss, gradient and hessian (see the module docstring for the formulas).

    ``k``: truncation level (None: all positions). ``sigma``: the sigmoid's
    slope. ``norm``: LightGBM's ``lambdarank_norm``. ``label_gain``: gain per
    integer label (default ``2^l - 1``). Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(_pairwise_kernel, scores, offsets, reduction, labels, gains_of(labels, label_gain),
               check_k(k), check_sigma(sigma), True, bool(norm))
