"""The peer: each engine loss written directly in torch, vectorised over a
padded (n_queries, longest) batch, as torch ranking libraries (allRank,
pytorchltr) write them. The runner checks each against the engine's loss
value before timing it; backward is torch autograd."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG = -1e30  # padding score: exp() of it is 0, and it never ranks above a real item


def _gains_and_max_dcg(labels, mask):
    gains = torch.where(mask, 2.0 ** labels - 1.0, 0.0)
    discount = 1.0 / torch.log2(torch.arange(labels.shape[1], dtype=labels.dtype) + 2.0)
    max_dcg = (gains.sort(dim=1, descending=True).values * discount).sum(1)
    return gains, discount, max_dcg


def sigmoid_cross_entropy(s, y, mask):
    return torch.where(mask, F.softplus(s) - y * s, 0.0).sum() / len(s)


def squared_error(s, y, mask):
    return torch.where(mask, 0.5 * (s - y) ** 2, 0.0).sum() / len(s)


def _pairs(y, mask):
    return (y[:, :, None] > y[:, None, :]) & mask[:, :, None] & mask[:, None, :]


def ranknet(s, y, mask):
    diff = s[:, :, None] - s[:, None, :]
    return torch.where(_pairs(y, mask), F.softplus(-diff), 0.0).sum() / len(s)


def lambdarank(s, y, mask):
    """|delta NDCG| weights from the current ranks, held constant (no truncation, no norm)."""
    with torch.no_grad():
        order = torch.where(mask, s, NEG).argsort(dim=1, descending=True, stable=True)
        rank = order.argsort(dim=1)
        gains, _, max_dcg = _gains_and_max_dcg(y, mask)
        discount = 1.0 / torch.log2(rank.to(s.dtype) + 2.0)
        weight = (gains[:, :, None] - gains[:, None, :]).abs() * (discount[:, :, None] - discount[:, None, :]).abs()
        weight = weight / torch.where(max_dcg > 0, max_dcg, 1.0)[:, None, None]
    diff = s[:, :, None] - s[:, None, :]
    return torch.where(_pairs(y, mask), weight * F.softplus(-diff), 0.0).sum() / len(s)


def listnet(s, y, mask):
    target = torch.softmax(torch.where(mask, y, NEG), dim=1)
    return -(target * torch.where(mask, torch.log_softmax(torch.where(mask, s, NEG), 1), 0.0)).sum() / len(s)


def listmle(s, y, mask):
    order = torch.where(mask, y, -1.0).argsort(dim=1, descending=True, stable=True)
    ordered = torch.where(mask, s, NEG).gather(1, order)  # padding sorts last
    tail = torch.logcumsumexp(ordered.flip(1), dim=1).flip(1)
    return torch.where(mask, tail - ordered, 0.0).sum() / len(s)


def approx_ndcg(s, y, mask, alpha=10.0):
    pair_valid = mask[:, None, :]
    rank = 0.5 + torch.where(pair_valid, torch.sigmoid(alpha * (s[:, None, :] - s[:, :, None])), 0.0).sum(2)
    gains, _, max_dcg = _gains_and_max_dcg(y, mask)
    dcg = (gains / torch.log2(1.0 + rank)).sum(1)
    return -(torch.where(max_dcg > 0, dcg / torch.where(max_dcg > 0, max_dcg, 1.0), 0.0)).sum() / len(s)


def sampled_softmax(s, y, mask):
    total = y.sum(1, keepdim=True)
    target = y / torch.where(total > 0, total, 1.0)
    return -(target * torch.where(mask, torch.log_softmax(torch.where(mask, s, NEG), 1), 0.0)).sum() / len(s)


LOSSES = {f.__name__: f for f in (sigmoid_cross_entropy, squared_error, ranknet, lambdarank, listnet, listmle,
                                  approx_ndcg, sampled_softmax)}


def padded_step(name: str, scores, labels, offsets):
    """(step, mask): ``step()`` runs the torch loss ``name`` forward and backward on
    the batch padded to (n_queries, longest) and returns (loss tensor, gradient
    tensor); ``mask`` marks the real entries of the padded layout."""
    from bench.losses.workload import padded

    s_pad, mask = padded(scores, offsets)
    y_pad, _ = padded(labels, offsets)
    s_t, y_t, mask_t = torch.tensor(s_pad), torch.tensor(y_pad), torch.tensor(mask)

    def step():
        leaf = s_t.clone().requires_grad_()
        value = LOSSES[name](leaf, y_t, mask_t)
        value.backward()
        return value, leaf.grad

    return step, mask
