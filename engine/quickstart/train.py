"""Training the model heads from impression logs, as served.

The rows are the logged feature vectors themselves (what serving computed,
so there is no training-serving skew by construction) and the labels are
the shoppers' feedback joined on request id and position.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CLICK_PARAMS = {"objective": "binary", "learning_rate": 0.08, "num_leaves": 63, "max_depth": 8, "min_data_in_leaf": 50,
                "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "verbose": -1}
ORDER_PARAMS = {**CLICK_PARAMS, "num_leaves": 31, "min_data_in_leaf": 20}


def training_rows(log: pa.Table, request_ids: list[str], clicks: np.ndarray, orders: np.ndarray):
    """(features (n, F) float32, clicked (n,), ordered (n,)) for every logged impression
    of a request in ``request_ids``; ``clicks`` / ``orders`` are (requests, positions)."""
    import pyarrow.compute as pc

    from engine.impressions import feature_matrix

    where = {r: i for i, r in enumerate(request_ids)}
    request = np.array([where.get(r, -1) for r in log.column("request_id").to_pylist()], dtype=np.int64)
    per_item = np.repeat(request, pc.list_value_length(log.column("item_ids")).to_numpy())
    position = pc.list_flatten(log.column("positions")).to_numpy()
    # In (request, position) order: the logger writes records as a batch's
    # threads finish them, and bagging picks rows by index, so the log's order
    # would otherwise change the trained heads from run to run.
    keep = np.flatnonzero(per_item >= 0)
    keep = keep[np.lexsort((position[keep], per_item[keep]))]
    X = feature_matrix(log)[keep]
    return X, clicks[per_item[keep], position[keep]], orders[per_item[keep], position[keep]]


def train_heads(X: np.ndarray, clicked: np.ndarray, ordered: np.ndarray, feature_names: list[str],
                rounds: int = 300, threads: int = 2, seed: int = 0) -> dict:
    """{"p_click": Booster (P(click)), "p_order": Booster (P(order | click), trained on clicked rows)}."""
    import lightgbm as lgb

    # deterministic + force_row_wise: the same heads from the same rows on every
    # run with the same thread count.
    params = {"num_threads": threads, "seed": seed, "deterministic": True, "force_row_wise": True}
    click = lgb.train({**CLICK_PARAMS, **params},
                      lgb.Dataset(X, clicked.astype(np.float32), feature_name=feature_names, free_raw_data=True),
                      num_boost_round=rounds)
    on_click = clicked.astype(bool)
    order = lgb.train({**ORDER_PARAMS, **params},
                      lgb.Dataset(X[on_click], ordered[on_click].astype(np.float32), feature_name=feature_names),
                      num_boost_round=max(rounds // 2, 1))
    return {"p_click": click, "p_order": order}
