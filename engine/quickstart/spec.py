"""The feature spec and per-surface settings the quickstart uses on the
synthetic world (engine.datasets.make_world): what a recommendation team
would write for such a catalogue."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.features import Bucket, Cross, Dot, FeatureSpec, Hashed, Lookup, Match, Numeric
from engine.ranking import RerankPolicy, SurfaceSettings, ValueModel, ValueTerm

K = 20
# Request context fields the spec reads (besides the user table's `segment`
# and the per-category click counts).
CONTEXT_FIELDS = ("device", "hour", "query_category", "merchant_id")


PROMOTED_MERCHANT_SHARE = 0.05


def items_table(world) -> pa.Table:
    """The world's items plus ``merchant_boost``: 1 for the ~5 % of merchants
    the platform promotes (a business input, not a signal shoppers respond to)."""
    rng = np.random.default_rng([world.seed, 0xB00])
    promoted = rng.random(world.merchants) < PROMOTED_MERCHANT_SHARE
    merchant = world.items.column("merchant_id").to_numpy()
    return world.items.append_column("merchant_boost", pa.array(promoted[merchant].astype(np.float32)))


def feature_spec() -> FeatureSpec:
    return FeatureSpec(features=[
        Numeric("price", "item.price"),
        Numeric("margin", "item.margin"),
        Numeric("rating", "item.rating"),
        Numeric("review_count", "item.review_count"),
        Numeric("age_days", "item.age_days"),
        Numeric("in_stock", "item.in_stock"),
        Numeric("has_vector", "item.has_vector"),
        Numeric("hour", "request.hour", default=-1.0),
        Bucket("price_bucket", "item.price", [5, 10, 20, 35, 50, 75, 100, 150, 250, 500]),
        Bucket("hour_bucket", "request.hour", [6, 10, 14, 18, 22]),
        Hashed("category", "item.category_id", 1024),
        Hashed("merchant", "item.merchant_id", 4096),
        Hashed("device", "request.device", 16),
        Hashed("segment", "request.segment", 16),
        Cross("segment_x_category", ["request.segment", "item.category_id"], 4096),
        Cross("device_x_category", ["request.device", "item.category_id"], 4096),
        Cross("segment_x_merchant", ["request.segment", "item.merchant_id"], 8192),
        Dot("user_item_dot"),
        Lookup("category_clicks", "category_clicks", "item.category_id"),
        Match("query_category_match", ["request.query_category", "item.category_id"]),
        Match("store_match", ["request.merchant_id", "item.merchant_id"]),
    ])


def surfaces(*, trained: bool, explore: bool = False, popularity: bool = False,
             first_phase_trees: int = 20) -> dict[str, SurfaceSettings]:
    """Value models and rules per surface.

    ``trained``: the blend of the model heads (expected clicks, orders and a
    little GMV and merchant promotion); else the first logging policy
    (retrieval score, exploring when ``explore``) or, with ``popularity``,
    a popularity ranker (review count), the baseline a shop starts from.
    """
    first_phase, rerank_count = None, 0
    if trained:
        # Two phases: the click head's first 20 trees pick 150 of the ~500 candidates
        # for the full heads (same NDCG or better on this world, ~2x less latency).
        first = f"p_click[:{first_phase_trees}]"
        first_phase, rerank_count = ValueModel(terms=[ValueTerm("click", 1.0, [first])]), 150
        value = ValueModel(terms=[
            ValueTerm("click", 1.0, ["p_click"]),
            ValueTerm("order", 1.0, ["p_click", "p_order"]),
            ValueTerm("gmv", 0.0005, ["p_click", "p_order", "price"]),
            ValueTerm("merchant", 0.002, ["merchant_boost"]),
        ])
    elif popularity:
        value = ValueModel(terms=[ValueTerm("popularity", 1.0, ["review_count"])])
    else:
        value = ValueModel(terms=[ValueTerm("retrieval", 1.0, ["retrieval_score"])])
    temperature = 0.05 if explore else 0.0
    mixed = RerankPolicy(max_per_merchant=3, category_decay=0.9, temperature=temperature, explore_window=60)
    store = RerankPolicy(temperature=temperature, explore_window=60)
    phases = dict(first_phase=first_phase, rerank_count=rerank_count)
    return {
        "home": SurfaceSettings(value_model=value, rerank=mixed, k=K, **phases),
        "search": SurfaceSettings(value_model=value, rerank=mixed, k=K, **phases),
        "store": SurfaceSettings(value_model=value, rerank=store, k=K, ann_candidates=300, **phases),
    }
