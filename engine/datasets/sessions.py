"""Traffic in a generated world: ranking requests and the feedback to what was shown.

``sample_requests`` draws requests the way a shop receives them:

- users in proportion to a lognormal activity rate (a few users are much
  more active; cold-start users, without an embedding, half as active);
- the surface with fixed shares: home 50 %, search 30 %, store 20 %;
- a device (each user mostly uses one) and an hour from a daily curve; these
  are context features that do not move the ground truth;
- search: a query category from the user's favourites (85 %) or else a
  category in proportion to its size, with a matching category filter;
- store: a merchant in proportion to its number of items, with a merchant filter;
- home: an in-stock filter;
- recent clicks: 0..20 items (Poisson, mean 6; 0.5 for cold-start users)
  from the two product types the user likes (50 % / 30 %) or any type (20 %),
  and their counts per category as ``category_clicks``.

``simulate_feedback`` applies the position-based model of
``engine.datasets.truth`` to a (n_requests, k) matrix of shown item ids:
examined ~ Bernoulli(examination(surface, position)), click = examined and
Bernoulli(P(click | examined)), order = click and Bernoulli(P(order | click)).
The uniforms are drawn for every slot in a fixed order, so the result depends
only on the seeds and the input, never on how requests group by surface. Two
rankings of the same requests simulated with the same seed therefore share
their random numbers slot by slot (common random numbers: a comparison of two
policies has less noise); use different seeds for independent logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.datasets import truth
from engine.datasets.catalogue import _draw
from engine.datasets.truth import SURFACES

if TYPE_CHECKING:
    from engine.datasets.world import World

ID_PADDING = np.uint64(2**64 - 1)
SURFACE_SHARES = np.array([0.5, 0.3, 0.2])
DEVICES = ("ios", "android", "web")
DEVICE_LOYALTY = 0.85
# Requests per hour of the day: quiet at night, a lunch bump, an evening peak.
HOUR_WEIGHTS = np.array([3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 6, 5, 5, 6, 7, 8, 9, 10, 10, 8, 5], float)
QUERY_FROM_FAVOURITES = 0.85
FAVOURITE_WEIGHTS = np.array([0.5, 0.3, 0.2])
RECENT_MEAN = 6.0
RECENT_MEAN_COLD = 0.5
MAX_RECENT = 20
RECENT_TASTE_SHARES = (0.5, 0.3)  # first and second liked product type; the rest: any type


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {value!r}")
    return int(value)


def sample_requests(world: World, n: int, seed: int) -> list[dict]:
    """``n`` request dicts (module docstring); deterministic for (world seed, ``seed``)."""
    n, seed = _check_int("n", n), _check_int("seed", seed)
    t = world._truth
    rng = np.random.default_rng([world.seed, 0x5E55, seed])
    user = _draw(rng, t.activity, n).astype(np.int64)
    surface = _draw(rng, SURFACE_SHARES, n)
    device = np.where(rng.random(n) < DEVICE_LOYALTY, t.device[user], rng.integers(0, len(DEVICES), n))
    hour = _draw(rng, HOUR_WEIGHTS, n)
    category_items = np.bincount(t.category, minlength=world.categories).astype(np.float64)
    query = np.where(rng.random(n) < QUERY_FROM_FAVOURITES,
                     t.favourites[user, _draw(rng, FAVOURITE_WEIGHTS, n)],
                     _draw(rng, category_items, n))
    merchant = _draw(rng, np.bincount(t.merchant, minlength=world.merchants).astype(np.float64), n)

    has_vector = world.users["has_vector"].to_numpy(zero_copy_only=False)
    lengths = np.minimum(rng.poisson(np.where(has_vector[user], RECENT_MEAN, RECENT_MEAN_COLD)), MAX_RECENT)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    owner = np.repeat(np.arange(n), lengths)
    r = rng.random(len(owner))
    which = (r >= RECENT_TASTE_SHARES[0]).astype(np.int64) + (r >= sum(RECENT_TASTE_SHARES))
    cluster_size = np.diff(t.cluster_start).astype(np.float64)
    cluster = np.where(which < 2, t.taste_clusters[user[owner], np.minimum(which, 1)],
                       _draw(rng, cluster_size, len(owner)))
    size = cluster_size[cluster]
    picked = np.minimum((rng.random(len(owner)) * size).astype(np.int64), size.astype(np.int64) - 1)
    recent_rows = t.cluster_rows[t.cluster_start[cluster] + picked]
    recent_ids = world.items["item_id"].to_numpy()[recent_rows]

    # Clicks per (request, category) of the recent items, as sorted runs per request.
    key, counts = np.unique(owner * world.categories + t.category[recent_rows], return_counts=True)
    run = np.searchsorted(key // world.categories, np.arange(n + 1)).tolist()
    click_category = (key % world.categories).tolist()
    click_count = counts.astype(np.float64).tolist()

    user_ids = world.users["user_id"].to_numpy()[user].tolist()
    recent = np.split(recent_ids, offsets[1:-1]) if n else []
    prefix = f"w{world.seed}-s{seed}-"
    out = []
    for j, (s, u, uid, d, h, q, m) in enumerate(zip(surface.tolist(), user.tolist(), user_ids,
                                                      device.tolist(), hour.tolist(), query.tolist(),
                                                      merchant.tolist())):
        context: dict[str, Any] = {"device": DEVICES[d], "hour": h}
        if s == 1:
            context["query_category"] = q
            filters: dict[str, Any] = {"category_id": [q]}
        elif s == 2:
            context["merchant_id"] = m
            filters = {"merchant_id": m}
        else:
            filters = {"in_stock": True}
        a, b = run[j], run[j + 1]
        out.append({"request_id": prefix + str(j), "user_id": uid, "user_row": u, "surface": SURFACES[s],
                    "context": context, "filters": filters, "recent_item_ids": recent[j],
                    "category_clicks": dict(zip(click_category[a:b], click_count[a:b]))})
    return out


def _request_columns(world: World, requests: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User rows, surface codes and query categories (-1 off search) of ``requests``."""
    if not isinstance(requests, (list, tuple)):
        raise ValueError(f"requests: expected a list of request dicts, got {type(requests).__name__}")
    code = {name: c for c, name in enumerate(SURFACES)}
    user_ids, given_rows, surface, query = [], [], [], []
    for j, r in enumerate(requests):
        if not isinstance(r, dict) or "user_id" not in r or "surface" not in r:
            raise ValueError(f"requests[{j}]: expected a dict with 'user_id' and 'surface'")
        if r["surface"] not in code:
            raise ValueError(f"requests[{j}]: unknown surface {r['surface']!r}, expected one of {SURFACES}")
        s = code[r["surface"]]
        q = -1
        if s == 1:
            context = r.get("context")
            q = context.get("query_category") if isinstance(context, dict) else None
            if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 0 <= q < world.categories:
                raise ValueError(f"requests[{j}]: a search request needs context['query_category'] in "
                                 f"[0, {world.categories}), got {q!r}")
        uid = r["user_id"]
        if isinstance(uid, bool) or not isinstance(uid, (int, np.integer)) or uid < 0:
            raise ValueError(f"requests[{j}]: unknown user_id {uid!r}")
        row = r.get("user_row", -1)
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise ValueError(f"requests[{j}]: user_row must be an integer, got {row!r}")
        user_ids.append(int(uid))
        given_rows.append(int(row))
        surface.append(s)
        query.append(q)
    ids = np.array(user_ids, np.uint64)
    known = np.isin(ids, world._user_lookup[0])
    if not known.all():
        j = int(np.argmin(known))
        raise ValueError(f"requests[{j}]: unknown user_id {user_ids[j]}")
    rows = world.user_rows(ids)
    given = np.array(given_rows, np.int64)
    wrong = (given >= 0) & (given != rows)
    if wrong.any():
        j = int(np.argmax(wrong))
        raise ValueError(f"requests[{j}]: user_row {given[j]} is not the row of user_id {user_ids[j]} ({rows[j]})")
    return rows, np.array(surface, np.int64), np.array(query, np.int64)


def _shown_rows(world: World, name: str, values: Any, n_requests: int) -> tuple[np.ndarray, np.ndarray]:
    """Item rows (0 in empty slots) and the empty-slot mask of a (n_requests, k) id matrix."""
    ids = np.asarray(values)
    if ids.ndim != 2 or ids.shape[0] != n_requests:
        raise ValueError(f"{name}: expected shape ({n_requests}, k) (one row per request), "
                         f"got {ids.shape}")
    if ids.dtype.kind not in "iu" and ids.size:
        raise ValueError(f"{name}: expected uint64 ids, got dtype {ids.dtype}")
    if ids.dtype.kind == "i" and (ids < -1).any():  # -1 is the padding id as int64
        raise ValueError(f"{name}: unknown id {int(ids[ids < -1][0])}")
    ids = ids.astype(np.uint64)
    empty = ids == ID_PADDING
    rows = np.zeros(ids.shape, np.int64)
    rows[~empty] = world._find_items(name, ids[~empty])
    return rows, empty


def simulate_feedback(world: World, requests: list[dict], shown_item_ids: Any,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clicks and orders, bool (n_requests, k), for items shown at positions 0..k-1."""
    seed = _check_int("seed", seed)
    u, s, q = _request_columns(world, requests)
    rows, empty = _shown_rows(world, "shown_item_ids", shown_item_ids, len(u))
    n, k = rows.shape
    rng = np.random.default_rng([world.seed, 0xFEED, seed])
    examined = (rng.random((n, k)) < truth.examination(s[:, None], np.arange(k, dtype=np.float64))) & ~empty
    click_draw, order_draw = rng.random((n, k)), rng.random((n, k))
    t = world._truth
    clicks = np.zeros((n, k), bool)
    req, pos = np.nonzero(examined)
    p_click = truth.sigmoid(truth.click_logit(t, u[req], rows[req, pos], s[req], q[req]))
    clicks[req, pos] = click_draw[req, pos] < p_click
    orders = np.zeros((n, k), bool)
    req, pos = np.nonzero(clicks)
    orders[req, pos] = order_draw[req, pos] < truth.order_probability(t, u[req], rows[req, pos])
    return clicks, orders


def request_relevance(world: World, requests: list[dict], item_ids: Any) -> np.ndarray:
    """Ground-truth relevance, float64 (n_requests, k); 0 in empty slots."""
    u, s, q = _request_columns(world, requests)
    rows, empty = _shown_rows(world, "item_ids", item_ids, len(u))
    out = np.zeros(rows.shape)
    req, pos = np.nonzero(~empty)
    out[req, pos] = truth.relevance(world._truth, u[req], rows[req, pos], s[req], q[req])
    return out
