"""engine.losses: every gradient and hessian diagonal against finite differences.

Scores are continuous draws, so no two scores of a query tie and LambdaRank's
|delta NDCG| weights (constant between swaps) do not move under a step of 1e-6.
Query lengths hit the edges: 1 (no pairs), 2, 3, and lengths around 16.
"""

import numpy as np
import pytest

from engine import losses
from ranking_support import one_numba_thread  # noqa: F401

SIZES = np.array([1, 2, 3, 15, 16, 17, 5, 8])
STEP = 1e-6


def ragged(seed=0, sizes=SIZES, binary=False):
    rng = np.random.default_rng(seed)
    n = int(sizes.sum())
    scores = rng.standard_normal(n) * 2.0
    labels = (rng.random(n) < 0.3).astype(float) if binary else rng.integers(0, 5, n).astype(float)
    return scores, labels, np.concatenate([[0], np.cumsum(sizes)])


CASES = [  # (objective, keyword parameters, binary labels?)
    pytest.param("sigmoid_cross_entropy", {}, True, id="sigmoid_cross_entropy"),
    pytest.param("squared_error", {}, False, id="squared_error"),
    pytest.param("ranknet", {"sigma": 1.5}, False, id="ranknet"),
    pytest.param("lambdarank", {}, False, id="lambdarank"),
    pytest.param("lambdarank", {"k": 3, "sigma": 2.0}, False, id="lambdarank_k3"),
    pytest.param("lambdarank", {"k": 5, "label_gain": [0, 1, 3, 4, 10]}, False, id="lambdarank_label_gain"),
    pytest.param("listnet", {}, False, id="listnet"),
    pytest.param("listmle", {}, False, id="listmle"),
    pytest.param("approx_ndcg", {"alpha": 2.0}, False, id="approx_ndcg"),
    pytest.param("sampled_softmax", {}, True, id="sampled_softmax"),
]


@pytest.mark.parametrize(("name", "params", "binary"), CASES)
@pytest.mark.usefixtures("one_numba_thread")
def test_gradient_and_hessian_match_finite_differences(name, params, binary):
    def fn(s, y, o):
        return losses.OBJECTIVES[name](s, y, o, **params)

    scores, labels, offsets = ragged(1, binary=binary)
    loss, grad, hess = fn(scores, labels, offsets)
    assert np.isfinite(loss) and grad.dtype == np.float64 and hess.shape == scores.shape
    fd_grad = np.empty_like(scores)
    fd_hess = np.empty_like(scores)
    for i in range(len(scores)):
        up, down = scores.copy(), scores.copy()
        up[i] += STEP
        down[i] -= STEP
        (l_up, g_up, _), (l_down, g_down, _) = fn(up, labels, offsets), fn(down, labels, offsets)
        fd_grad[i] = (l_up - l_down) / (2 * STEP)
        fd_hess[i] = (g_up[i] - g_down[i]) / (2 * STEP)
    scale = np.abs(grad).max()
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(hess, fd_hess, rtol=1e-5, atol=1e-6 * np.abs(hess).max())


def test_sampled_softmax_log_q_correction_shifts_the_logits():
    scores, labels, offsets = ragged(2, binary=True)
    log_q = np.log(np.random.default_rng(3).uniform(0.01, 0.5, len(scores)))
    corrected = losses.sampled_softmax(scores, labels, offsets, log_q=log_q)
    shifted = losses.sampled_softmax(scores - log_q, labels, offsets)
    for a, b in zip(corrected, shifted):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_lambdarank_norm_scales_like_lightgbm_and_is_not_the_plain_gradient():
    # lambdarank_norm divides weights by 0.01 + |ds| and rescales the query by
    # log2(1 + S) / S: grad is then the gradient with those factors held constant.
    scores, labels, offsets = ragged(4)
    plain = losses.lambdarank(scores, labels, offsets, k=30)
    normed = losses.lambdarank(scores, labels, offsets, k=30, norm=True)
    assert not np.allclose(plain[1], normed[1])
    up = scores.copy()
    up[3] += STEP
    fd = (losses.lambdarank(up, labels, offsets, k=30, norm=True)[0] - normed[0]) / STEP
    assert abs(fd - normed[1][3]) > 1e-3 * abs(normed[1][3])


@pytest.mark.parametrize("name", losses.OBJECTIVES)
def test_float32_reductions_and_inputs_left_alone(name):
    binary = name in ("sigmoid_cross_entropy", "sampled_softmax")
    scores, labels, offsets = ragged(5, binary=binary)
    fn = losses.OBJECTIVES[name]
    kept = scores.copy()
    loss, grad, hess = fn(scores, labels, offsets)
    np.testing.assert_array_equal(scores, kept)
    loss32, grad32, hess32 = fn(scores.astype(np.float32), labels, offsets)
    assert grad32.dtype == hess32.dtype == np.float32
    np.testing.assert_allclose(grad32, grad, rtol=1e-4, atol=1e-6 * np.abs(grad).max())
    assert loss32 == pytest.approx(loss, rel=1e-5)
    n_queries = len(offsets) - 1
    loss_sum, grad_sum, hess_sum = fn(scores, labels, group_sizes=np.diff(offsets), reduction="sum")
    assert loss_sum == pytest.approx(loss * n_queries, rel=1e-12)
    np.testing.assert_allclose(grad_sum, grad * n_queries, rtol=1e-12)
    np.testing.assert_allclose(hess_sum, hess * n_queries, rtol=1e-12)


def test_listmle_is_stable_for_widely_spread_scores():
    scores = np.array([800.0, -800.0, 0.0, 5.0])
    loss, grad, hess = losses.listmle(scores, [0, 3, 2, 1], [0, 4])
    assert np.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(hess).all()
    assert grad.sum() == pytest.approx(0.0, abs=1e-9)  # shifting all scores changes nothing
