"""Pairwise logistic objectives: RankNet, and the kernel LambdaRank shares.

For every pair of items of one query with different labels, the higher
labelled item ``h`` should score above the lower one ``l``:
``w_hl * log(1 + exp(-sigma * (s_h - s_l)))``. RankNet weighs every pair 1;
LambdaRank (``engine.losses.lambdarank``) weighs it by |delta NDCG|.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.losses._groups import ranking_inputs
from engine.losses._kernels import descending, run, softplus_and_sigmoid

NO_TRUNCATION = np.iinfo(np.int64).max


@njit(cache=True)
def inverse_max_dcg(labels, gains, discount, k):
    """1 / DCG@k of the ideal order, as LightGBM's CalMaxDCGAtK: items ordered
    by label (not gain), 0 when no item has a gain."""
    ideal = descending(labels)
    dcg = 0.0
    for r in range(min(k, len(labels))):
        dcg += gains[ideal[r]] * discount[r]
    return 1.0 / dcg if dcg > 0.0 else 0.0


@njit(parallel=True, cache=True)
def _pairwise_kernel(scores, labels, gains, k, sigma, ndcg_weighted, norm, offsets, scale, grad, hess):
    # Follows LightGBM's LambdarankNDCG::CalculatePairwiseLambdas pair for pair
    # (src/objective/rank_objective.hpp), with an exact sigmoid instead of its
    # lookup table, and adds the loss value it never computes.
    n_queries = len(offsets) - 1
    losses = np.zeros(n_queries)
    for q in prange(n_queries):
        lo, hi = offsets[q], offsets[q + 1]
        n = hi - lo
        s = scores[lo:hi].astype(np.float64)
        y = labels[lo:hi]
        g = gains[lo:hi]
        order = descending(s)
        discount = np.empty(n)
        for r in range(n):
            discount[r] = 1.0 / math.log2(2.0 + r)
        inv_max_dcg = inverse_max_dcg(y, g, discount, k) if ndcg_weighted else 1.0
        scores_differ = s[order[0]] != s[order[n - 1]]
        q_grad = np.zeros(n)
        q_hess = np.zeros(n)
        loss = 0.0
        sum_lambdas = 0.0
        # Pairs with at least one item ranked above the truncation level.
        for i in range(min(n - 1, k)):
            for j in range(i + 1, n):
                a, b = order[i], order[j]
                if y[a] == y[b]:
                    continue
                if y[a] > y[b]:
                    high, low, high_rank, low_rank = a, b, i, j
                else:
                    high, low, high_rank, low_rank = b, a, j, i
                delta = s[high] - s[low]
                weight = 1.0
                if ndcg_weighted:
                    weight = (g[high] - g[low]) * abs(discount[high_rank] - discount[low_rank]) * inv_max_dcg
                    if norm and scores_differ:
                        weight /= 0.01 + abs(delta)
                pair_loss, p = softplus_and_sigmoid(-sigma * delta)  # p: P(the pair is misordered)
                lam = sigma * weight * p
                h = sigma * sigma * weight * p * (1.0 - p)
                loss += weight * pair_loss
                q_grad[high] -= lam
                q_grad[low] += lam
                q_hess[high] += h
                q_hess[low] += h
                sum_lambdas += 2.0 * lam
        factor = 1.0
        if norm and sum_lambdas > 0.0:
            factor = math.log2(1.0 + sum_lambdas) / sum_lambdas
        for i in range(n):
            grad[lo + i] = scale * factor * q_grad[i]
            hess[lo + i] = scale * factor * q_hess[i]
        losses[q] = factor * loss
    return losses


def check_sigma(sigma) -> float:
    sigma = float(sigma)
    if not sigma > 0.0 or not math.isfinite(sigma):
        raise ValueError(f"sigma: must be a finite number > 0, got {sigma}")
    return sigma


def ranknet(scores, labels, offsets=None, *, group_sizes=None, sigma=1.0, reduction="mean"):
    """RankNet: ``L_q = sum over pairs y_h > y_l of log(1 + exp(-sigma (s_h - s_l)))``.

    hess is the exact diagonal, ``sum sigma^2 p (1 - p)`` over the item's pairs.
    Cost is quadratic in the query's length. Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(_pairwise_kernel, scores, offsets, reduction,
               labels, labels, NO_TRUNCATION, check_sigma(sigma), False, False)
