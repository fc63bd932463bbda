"""engine.losses against direct torch autograd implementations of the same formulas,
and engine.losses.torch_loss as a torch.autograd.Function.

The torch references are written for clarity, one query at a time; loss,
autograd gradient and the Hessian's diagonal (torch.autograd.functional) must
match the kernels' to 1e-10 in float64.
"""

from itertools import pairwise

import numpy as np
import pytest
import torch

from engine import losses

torch.set_num_threads(1)


def ranknet_ref(s, y):
    diff = s[:, None] - s[None, :]
    better = torch.as_tensor(y[:, None] > y[None, :])
    return torch.nn.functional.softplus(-diff)[better].sum()


def lambdarank_ref(s, y):
    # |delta NDCG| weights from the current ranks, held constant (as LambdaRank does).
    order = np.argsort(-s.detach().numpy(), kind="stable")
    rank = np.empty(len(y), int)
    rank[order] = np.arange(len(y))
    gain, discount = 2.0 ** y - 1, 1 / np.log2(2 + rank)
    max_dcg = (np.sort(gain)[::-1] / np.log2(2 + np.arange(len(y)))).sum()
    weight = np.abs(gain[:, None] - gain[None, :]) * np.abs(discount[:, None] - discount[None, :])
    weight = torch.as_tensor(weight / max_dcg if max_dcg > 0 else 0 * weight)
    better = torch.as_tensor(y[:, None] > y[None, :])
    return (weight * torch.nn.functional.softplus(-(s[:, None] - s[None, :])))[better].sum()


def listnet_ref(s, y):
    return -(torch.softmax(torch.as_tensor(y), 0) * torch.log_softmax(s, 0)).sum()


def listmle_ref(s, y):
    ordered = s[torch.as_tensor(np.argsort(-y, kind="stable"))]
    return (torch.logcumsumexp(ordered.flip(0), 0).flip(0) - ordered).sum()


def approx_ndcg_ref(s, y, alpha=10.0):
    # TF-Ranking's approx_ranks: 0.5 + sum_j sigmoid(alpha (s_j - s_i)), j = i included.
    rank = 0.5 + torch.sigmoid(alpha * (s[None, :] - s[:, None])).sum(1)
    gain = torch.as_tensor(2.0 ** y - 1)
    max_dcg = (np.sort(2.0 ** y - 1)[::-1] / np.log2(2 + np.arange(len(y)))).sum()
    return -(gain / torch.log2(1 + rank)).sum() / max_dcg if max_dcg > 0 else 0 * s.sum()


def sampled_softmax_ref(s, y, log_q):
    target = torch.as_tensor(y / y.sum()) if y.sum() > 0 else torch.zeros(len(y), dtype=s.dtype)
    return -(target * torch.log_softmax(s - torch.as_tensor(log_q), 0)).sum()


REFERENCES = {
    "ranknet": ranknet_ref,
    "lambdarank": lambdarank_ref,
    "listnet": listnet_ref,
    "listmle": listmle_ref,
    "approx_ndcg": approx_ndcg_ref,
}


def batch(seed, sizes=(1, 2, 3, 7, 16, 17, 4)):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    return rng.standard_normal(n), rng.integers(0, 5, n).astype(float), np.concatenate([[0], np.cumsum(sizes)])


def reference_mean(ref, scores, labels, offsets, *extra):
    """Loss, autograd gradient and Hessian diagonal of the mean over queries."""
    s = torch.tensor(scores, requires_grad=True)
    parts = [(lo, hi) for lo, hi in pairwise(offsets)]

    def query_loss(lo, hi):
        return lambda x: ref(x, labels[lo:hi], *(e[lo:hi] for e in extra))

    loss = sum(query_loss(lo, hi)(s[lo:hi]) for lo, hi in parts) / len(parts)
    (grad,) = torch.autograd.grad(loss, s)
    hess = np.concatenate([
        torch.autograd.functional.hessian(query_loss(lo, hi), s[lo:hi].detach()).diagonal().numpy()
        for lo, hi in parts]) / len(parts)
    return loss.item(), grad.numpy(), hess


@pytest.mark.parametrize("name", REFERENCES)
def test_kernel_matches_torch_autograd(name):
    scores, labels, offsets = batch(7)
    want = reference_mean(REFERENCES[name], scores, labels, offsets)
    got = losses.OBJECTIVES[name](scores, labels, offsets)
    assert got[0] == pytest.approx(want[0], rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-9, atol=1e-12)


def test_sampled_softmax_matches_torch_autograd():
    scores, _, offsets = batch(8)
    rng = np.random.default_rng(9)
    labels = (rng.random(len(scores)) < 0.2).astype(float)
    log_q = np.log(rng.uniform(0.001, 0.2, len(scores)))
    want = reference_mean(sampled_softmax_ref, scores, labels, offsets, log_q)
    got = losses.sampled_softmax(scores, labels, offsets, log_q=log_q)
    assert got[0] == pytest.approx(want[0], rel=1e-10)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_loss_backward_returns_the_kernel_gradient(dtype):
    scores, labels, offsets = batch(10)
    fn = losses.torch_loss("listmle")
    s = torch.tensor(scores, dtype=dtype, requires_grad=True)
    value = fn(s, torch.tensor(labels), torch.tensor(offsets))
    (3.0 * value).backward()
    loss, grad, _ = losses.listmle(scores.astype(np.float32 if dtype == torch.float32 else np.float64),
                                   labels, offsets)
    assert value.dtype == dtype and value.item() == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(s.grad.numpy(), 3.0 * grad, rtol=1e-6)


def test_torch_model_trains_with_an_engine_loss():
    # A linear scorer learns to rank items whose label depends on their features.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    sizes = rng.integers(5, 20, 200)
    x = torch.tensor(rng.standard_normal((sizes.sum(), 8)), dtype=torch.float32)
    truth = x @ torch.linspace(-1, 1, 8)
    labels = torch.bucketize(truth, torch.tensor([-1.0, 0.0, 1.0])).float()
    model = torch.nn.Linear(8, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    fn = losses.torch_loss("lambdarank", k=10)
    history = []
    for _ in range(60):
        optimiser.zero_grad()
        value = fn(model(x).squeeze(1), labels, group_sizes=sizes)
        value.backward()
        optimiser.step()
        history.append(value.item())
    assert history[-1] < 0.5 * history[0]
    learned = model.weight.detach().squeeze()
    assert torch.corrcoef(torch.stack([learned, torch.linspace(-1, 1, 8)]))[0, 1] > 0.9


def test_torch_loss_refuses_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="name: unknown objective"):
        losses.torch_loss("softmax")
    with pytest.raises(TypeError, match="params: listmle takes no parameters"):
        losses.torch_loss("listmle", k=10)
    with pytest.raises(ValueError, match="scores: expected a 1-D tensor"):
        losses.torch_loss("listnet")(torch.zeros(2, 2), [0, 1], [0, 2])
