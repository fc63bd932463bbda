"""What a host service sends to `Ranker.rank` and what it gets back.

msgspec Structs: a host can decode a request straight from its JSON body
(`msgspec.json.decode(body, type=RankRequest)`) and encode the response
back; in-process callers construct them directly.
"""

from __future__ import annotations

import msgspec
import numpy as np


class RankRequest(msgspec.Struct, kw_only=True):
    """One shopper, one surface.

    ``user_id`` and/or ``user_vector``: a request with neither (or an unknown
    user without a vector) takes the cold-start path: popularity for the
    surface and its filters. ``filters``: equality or set membership on the
    item attributes the bundle's index holds, e.g. ``{"merchant_id": 42}``
    for a store page or ``{"category_id": [3, 7], "in_stock": True}``.
    ``context``: request fields the feature spec reads (device, hour, query
    category, per-category counts ...). ``recent_item_ids``: the shopper's
    latest items, newest first; they feed the user-encoder hook and are not
    shown again. ``explore``: None follows the surface's setting. ``seed``
    makes exploration reproducible.
    """

    surface: str
    user_id: int | None = None
    user_vector: list[float] | None = None
    k: int | None = None
    filters: dict[str, int | bool | list[int]] = {}
    context: dict[str, int | float | str | bool | dict[int, float] | None] = {}
    recent_item_ids: list[int] | None = None
    request_id: str | None = None
    explore: bool | None = None
    seed: int | None = None


class RankResponse(msgspec.Struct, kw_only=True):
    """The shown items, best first, and how each was valued.

    ``components``: every model head (``p_click`` ...) and every value-model
    term, aligned with ``item_ids``; ``value`` is their blend.
    ``propensities``: each shown item's probability of being at its
    position under the policy (exploration only, else None). ``timings_us``:
    wall time of each stage of this request.
    """

    request_id: str
    item_ids: np.ndarray
    value: np.ndarray
    components: dict[str, np.ndarray]
    propensities: np.ndarray | None
    sources: np.ndarray
    cold_start: bool
    bundle_version: str
    timings_us: dict[str, float]
