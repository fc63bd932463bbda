"""Each objective as a LightGBM or XGBoost custom objective and as a torch loss.

GBDT adapters call the loss with ``reduction="sum"``: grad and hess are per
query sums, not means, the scale of LightGBM's built-in ``lambdarank`` (and
of its ``binary`` / ``regression`` for the pointwise losses), so learning
rates and ``min_sum_hessian_in_leaf`` carry over. They pass ``|hess|``: the
same for every objective but ApproxNDCG, whose exact diagonal is negative
where the loss is concave, and a negative hessian turns a Newton step
around (on rank.train, 50 rounds: NDCG@10 0.57 with the signed hessian,
0.74 with its absolute value). The torch loss is the mean over queries, as
the functions in ``engine.losses`` return by default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.losses.lambdarank import lambdarank
from engine.losses.listwise import approx_ndcg, listmle, listnet
from engine.losses.pairwise import ranknet
from engine.losses.pointwise import sigmoid_cross_entropy, squared_error
from engine.losses.sampled_softmax import sampled_softmax

OBJECTIVES: dict[str, Callable] = {
    "sigmoid_cross_entropy": sigmoid_cross_entropy,
    "squared_error": squared_error,
    "ranknet": ranknet,
    "lambdarank": lambdarank,
    "listnet": listnet,
    "listmle": listmle,
    "approx_ndcg": approx_ndcg,
    "sampled_softmax": sampled_softmax,
}
# Arguments the adapters fill in themselves; everything else is a parameter.
_DATA_ARGUMENTS = {"scores", "labels", "offsets", "group_sizes", "reduction"}


def _bound(name: str, params: dict[str, Any]) -> Callable:
    """The loss called ``name``, with ``params`` checked against its signature now
    rather than at the first boosting round."""
    if name not in OBJECTIVES:
        raise ValueError(f"name: unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
    loss = OBJECTIVES[name]
    accepted = set(inspect.signature(loss).parameters) - _DATA_ARGUMENTS
    unknown = set(params) - accepted
    if unknown:
        raise TypeError(f"params: {name} takes {sorted(accepted) or 'no parameters'}, got {sorted(unknown)}")
    return functools.partial(loss, **params)


def _no_weights(weights, where: str) -> None:
    if weights is not None and len(weights) > 0:
        raise ValueError(f"{where}: sample weights are not supported by engine objectives")


def lightgbm_objective(name: str, **params) -> Callable:
    """``fobj(preds, train_data) -> (grad, hess)`` for ``lightgbm.train(params={"objective": fobj})``.

    Query groups come from ``train_data``'s ``group``; ``params`` are the
    loss's own keywords (``lambdarank``: ``k``, ``sigma``, ``norm``,
    ``label_gain``, which are LightGBM's ``lambdarank_truncation_level``,
    ``sigmoid``, ``lambdarank_norm`` and ``label_gain``).
    """
    loss = _bound(name, params)

    def objective(preds: np.ndarray, train_data) -> tuple[np.ndarray, np.ndarray]:
        sizes = train_data.get_group()
        if sizes is None:
            raise ValueError("train_data: has no query groups (lightgbm.Dataset(..., group=sizes))")
        _no_weights(train_data.get_weight(), "train_data")
        _, grad, hess = loss(preds, train_data.get_label(), group_sizes=sizes, reduction="sum")
        return grad, np.abs(hess)

    objective.__name__ = f"engine_{name}"
    return objective


def xgboost_objective(name: str, **params) -> Callable:
    """``obj(predt, dtrain) -> (grad, hess)`` for ``xgboost.train(..., obj=obj)``.

    Query groups come from the DMatrix's ``group`` / ``qid`` (its ``group_ptr``).
    """
    loss = _bound(name, params)

    def objective(predt: np.ndarray, dtrain) -> tuple[np.ndarray, np.ndarray]:
        offsets = dtrain.get_uint_info("group_ptr")
        if len(offsets) == 0:
            raise ValueError("dtrain: has no query groups (xgboost.DMatrix(..., group=sizes or qid=ids))")
        _no_weights(dtrain.get_weight(), "dtrain")
        _, grad, hess = loss(predt.reshape(-1), dtrain.get_label(), offsets.astype(np.int64), reduction="sum")
        return grad, np.abs(hess)

    objective.__name__ = f"engine_{name}"
    return objective


def _as_numpy(obj: Any) -> Any:
    if hasattr(obj, "detach"):  # a torch tensor
        return obj.detach().cpu().numpy()
    return obj


@functools.cache
def _autograd_function():
    import torch
    from torch.autograd.function import once_differentiable

    class EngineLoss(torch.autograd.Function):
        """Forward: the Numba kernel on a CPU copy of the scores; backward: the
        gradient the kernel returned with the loss."""

        @staticmethod
        def forward(ctx, scores, loss, labels, offsets, group_sizes):
            work_dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
            value, grad, _ = loss(scores.detach().to("cpu", work_dtype).numpy(), labels, offsets,
                                  group_sizes=group_sizes)
            ctx.grad = torch.from_numpy(grad).to(scores.device, scores.dtype)
            return torch.tensor(value, dtype=scores.dtype, device=scores.device)

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_output):
            return grad_output * ctx.grad, None, None, None, None

    return EngineLoss


def torch_loss(name: str, **params) -> Callable:
    """``loss_fn(scores, labels, offsets=None, *, group_sizes=None) -> scalar tensor``.

    ``scores`` is a 1-D float tensor on any device (the kernel runs on a CPU
    copy); ``labels`` / ``offsets`` are tensors or arrays, treated as
    constants. The value is the mean over queries and ``backward`` gives its
    gradient, so torch models train with the same code as the GBDT adapters.
    """
    loss = _bound(name, params)
    function = _autograd_function()

    def loss_fn(scores, labels, offsets=None, *, group_sizes=None):
        if scores.ndim != 1:
            raise ValueError(f"scores: expected a 1-D tensor, got {scores.ndim}-D")
        return function.apply(scores, loss, _as_numpy(labels), _as_numpy(offsets), _as_numpy(group_sizes))

    loss_fn.__name__ = f"engine_{name}"
    return loss_fn
