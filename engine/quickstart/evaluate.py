"""NDCG@k of served lists against the synthetic world's ground truth.

The gain of an item is the world's `relevance` (expected clicks plus orders
when examined). The ideal list of a request is the best k items of the whole
catalogue that its filters allow, not just of the candidates some system
retrieved, so a ranker is also charged for what its candidate sources
missed, and two rankers with different candidates are comparable.
"""

from __future__ import annotations

import numpy as np

from engine.datasets import World

EMPTY = np.uint64(2**64 - 1)


def scope_mask(world: World, columns: dict[str, np.ndarray], filters: dict) -> np.ndarray:
    mask = np.ones(world.n_items, dtype=bool)
    for name, value in filters.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            mask &= np.isin(columns[name], np.asarray(value))
        else:
            mask &= columns[name] == value
    return mask


def ndcg_at_k(world: World, requests: list[dict], shown: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k per request; ``shown``: uint64 item ids (n_requests, >= k), EMPTY-padded."""
    shown = shown[:, :k]
    gains = world.request_relevance(requests, shown)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gains * discount[: gains.shape[1]]).sum(axis=1)
    columns = {c: world.items.column(c).to_numpy(zero_copy_only=False)
               for c in ("merchant_id", "category_id", "in_stock")}
    ideal = np.empty(len(requests))
    for r, req in enumerate(requests):  # one vectorised call over the scope per request
        rows = np.flatnonzero(scope_mask(world, columns, req["filters"]))
        rel = world.relevance(req["user_row"], rows, req["surface"],
                              query_category=req["context"].get("query_category"))
        top = np.sort(rel)[::-1][:k] if len(rel) > k else np.sort(rel)[::-1]
        ideal[r] = (top * discount[: len(top)]).sum()
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
