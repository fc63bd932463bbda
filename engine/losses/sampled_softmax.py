"""Softmax cross-entropy over a positive and sampled negatives, with log-Q
correction, for two-tower retrieval training.

Each group is one training example: the scores of its positive item(s) and of
the negatives sampled for it (in-batch negatives: one row of the batch's
user x item score matrix). Sampling favours popular items, so their scores
are corrected by the log of their sampling probability before the softmax
(Yi et al., 2019, "Sampling-bias-corrected neural modeling"):
``s'_i = s_i - log_q_i``.
"""

from __future__ import annotations

import numpy as np

from engine.losses._groups import as_scores, ranking_inputs
from engine.losses._kernels import run
from engine.losses.listwise import softmax_cross_entropy_kernel


def sampled_softmax(scores, labels, offsets=None, *, group_sizes=None, log_q=None, reduction="mean"):
    """``L_q = -sum_i t_i log softmax(s - log_q)_i`` with ``t = labels / sum(labels)``.

    ``labels``: 1 for the positive, 0 for sampled negatives (several positives
    share the target in proportion to their labels); a group without a
    positive contributes 0. ``log_q``: log sampling probability of each item
    (None: no correction). grad ``softmax(s') - t``, hess ``p (1 - p)``.
    Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    if log_q is None:
        correction = np.empty(0)
    else:
        correction = as_scores(log_q, "log_q").astype(np.float64, copy=False)
        if len(correction) != len(scores):
            raise ValueError(f"log_q: expected {len(scores)} values (one per score), got {len(correction)}")
    return run(softmax_cross_entropy_kernel, scores, offsets, reduction, labels, correction, False)
