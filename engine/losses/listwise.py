"""Listwise objectives: ListNet, ListMLE, ApproxNDCG.

Each query's loss ``L_q`` is a function of its whole list; the loss is the
mean of ``L_q`` over queries (``reduction="sum"``: their sum). hess is the
exact diagonal of the Hessian of that loss.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.losses._groups import ranking_inputs
from engine.losses._kernels import descending, run, sigmoid

LN2 = math.log(2.0)


@njit(parallel=True, cache=True)
def softmax_cross_entropy_kernel(scores, labels, log_q, softmax_targets, offsets, scale, grad, hess):
    """Cross-entropy of softmax(scores - log_q) against per-query targets:
    softmax(labels) (ListNet) or labels / sum(labels) (sampled softmax, where a
    query whose labels are all 0 has no target and contributes nothing)."""
    n_queries = len(offsets) - 1
    losses = np.zeros(n_queries)
    for q in prange(n_queries):
        lo, hi = offsets[q], offsets[q + 1]
        s = scores[lo:hi].astype(np.float64)
        if len(log_q) > 0:
            s -= log_q[lo:hi]
        y = labels[lo:hi]
        if softmax_targets:
            target = np.exp(y - y.max())
        else:
            target = y.copy()
        total = target.sum()
        if total == 0.0:
            grad[lo:hi] = 0.0
            hess[lo:hi] = 0.0
            continue
        target /= total
        m = s.max()
        log_z = m + math.log(np.exp(s - m).sum())
        loss = 0.0
        for i in range(hi - lo):
            p = math.exp(s[i] - log_z)
            loss += target[i] * (log_z - s[i])
            grad[lo + i] = scale * (p - target[i])
            hess[lo + i] = scale * p * (1.0 - p)
        losses[q] = loss
    return losses


@njit(parallel=True, cache=True)
def _listmle_kernel(scores, labels, offsets, scale, grad, hess):
    n_queries = len(offsets) - 1
    losses = np.zeros(n_queries)
    for q in prange(n_queries):
        lo, hi = offsets[q], offsets[q + 1]
        n = hi - lo
        perm = descending(labels[lo:hi])
        s = scores[lo:hi].astype(np.float64)[perm]
        # log_z[i] = log sum_{j >= i} exp(s[j]), accumulated from the end.
        log_z = np.empty(n)
        log_z[n - 1] = s[n - 1]
        for i in range(n - 2, -1, -1):
            a, b = s[i], log_z[i + 1]
            log_z[i] = max(a, b) + math.log1p(math.exp(-abs(a - b)))
        loss = 0.0
        # d L / d s[r] = p_r * sum_{i <= r} exp(log_z[r] - log_z[i]) - 1 with
        # p_r = exp(s[r] - log_z[r]); the sums are carried as running values
        # whose factors exp(log_z[r] - log_z[r - 1]) are <= 1, so nothing overflows.
        run_1 = 0.0
        run_2 = 0.0
        for r in range(n):
            loss += log_z[r] - s[r]
            step = math.exp(log_z[r] - log_z[r - 1]) if r > 0 else 0.0
            run_1 = run_1 * step + 1.0
            run_2 = run_2 * step * step + 1.0
            p = math.exp(s[r] - log_z[r])
            grad[lo + perm[r]] = scale * (p * run_1 - 1.0)
            hess[lo + perm[r]] = scale * (p * run_1 - p * p * run_2)
        losses[q] = loss
    return losses


@njit(parallel=True, cache=True)
def _approx_ndcg_kernel(scores, labels, alpha, offsets, scale, grad, hess):
    n_queries = len(offsets) - 1
    losses = np.zeros(n_queries)
    for q in prange(n_queries):
        lo, hi = offsets[q], offsets[q + 1]
        n = hi - lo
        s = scores[lo:hi].astype(np.float64)
        gain = np.exp2(labels[lo:hi]) - 1.0
        ideal = np.sort(gain)[::-1]
        max_dcg = 0.0
        for r in range(n):
            max_dcg += ideal[r] / math.log2(2.0 + r)
        if max_dcg == 0.0:
            grad[lo:hi] = 0.0
            hess[lo:hi] = 0.0
            continue
        # rank_i = 1 + sum_{j != i} sigmoid(alpha (s_j - s_i)); each pair's
        # sigmoid is computed once, as sigmoid(-x) = 1 - sigmoid(x).
        rank = np.ones(n)
        for i in range(n):
            for j in range(i + 1, n):
                t = sigmoid(alpha * (s[j] - s[i]))
                rank[i] += t
                rank[j] += 1.0 - t
        # c = gain * D'(rank) / maxDCG and e = gain * D''(rank) / maxDCG for D(rank) = 1 / log2(1 + rank).
        c = np.empty(n)
        e = np.empty(n)
        approx_dcg = 0.0
        for i in range(n):
            log_1p_rank = math.log1p(rank[i])
            approx_dcg += gain[i] * LN2 / log_1p_rank
            d1 = -LN2 / (log_1p_rank * log_1p_rank * (1.0 + rank[i]))
            c[i] = gain[i] * d1 / max_dcg
            e[i] = -gain[i] * d1 / (1.0 + rank[i]) * (2.0 / log_1p_rank + 1.0) / max_dcg
        # grad_k = -alpha sum_i slope_ik (c_i - c_k); hess_k = -alpha^2 [sum_i e_i slope_ik^2
        # + (c_i - c_k) slope_ik (1 - 2 t_ki) + e_k (sum_i slope_ik)^2], t_ki = sigmoid(alpha (s_k - s_i)).
        g = np.zeros(n)
        h = np.zeros(n)
        slope_sum = np.zeros(n)
        for i in range(n):
            for k in range(i + 1, n):
                t = sigmoid(alpha * (s[k] - s[i]))
                slope = t * (1.0 - t)
                curve = (c[i] - c[k]) * slope * (1.0 - 2.0 * t)  # the same seen from i and from k
                g[k] += slope * (c[i] - c[k])
                g[i] -= slope * (c[i] - c[k])
                h[k] += e[i] * slope * slope + curve
                h[i] += e[k] * slope * slope + curve
                slope_sum[k] += slope
                slope_sum[i] += slope
        for k in range(n):
            grad[lo + k] = -scale * alpha * g[k]
            hess[lo + k] = -scale * alpha * alpha * (h[k] + e[k] * slope_sum[k] * slope_sum[k])
        losses[q] = -approx_dcg / max_dcg
    return losses


def listnet(scores, labels, offsets=None, *, group_sizes=None, reduction="mean"):
    """ListNet, top-one form: ``L_q = -sum_i softmax(y)_i * log softmax(s)_i``.

    The target is the softmax of the labels (Cao et al., 2007); a query whose
    labels are all equal still has the uniform target. grad ``softmax(s) -
    softmax(y)``, hess ``p (1 - p)``. Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(softmax_cross_entropy_kernel, scores, offsets, reduction, labels, np.empty(0), True)


def listmle(scores, labels, offsets=None, *, group_sizes=None, reduction="mean"):
    """ListMLE: minus the Plackett-Luce log-likelihood of the items ordered by label.

    ``L_q = sum_i [log sum_{j >= i} exp(s_pi(j)) - s_pi(i)]`` with ``pi`` the
    items by label, descending; items with equal labels keep their input order
    (deterministic, unlike implementations that shuffle ties). Linear in the
    query's length. Returns ``(loss, grad, hess)``.
    """
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(_listmle_kernel, scores, offsets, reduction, labels)


def approx_ndcg(scores, labels, offsets=None, *, group_sizes=None, alpha=10.0, reduction="mean"):
    """ApproxNDCG (Qin et al., 2010; TF-Ranking's ``ApproxNDCGLoss``): minus NDCG
    with each rank replaced by the smooth ``1 + sum_{j != i} sigmoid(alpha (s_j - s_i))``.

    ``L_q = -sum_i (2^y_i - 1) / log2(1 + rank_i) / maxDCG`` (no truncation);
    a query without gain contributes 0. Not convex: hess, the exact diagonal,
    can be negative. Cost is quadratic in the query's length.
    Returns ``(loss, grad, hess)``.
    """
    alpha = float(alpha)
    if not alpha > 0.0 or not math.isfinite(alpha):
        raise ValueError(f"alpha: must be a finite number > 0, got {alpha}")
    scores, labels, offsets = ranking_inputs(scores, labels, offsets, group_sizes)
    return run(_approx_ndcg_kernel, scores, offsets, reduction, labels, alpha)
