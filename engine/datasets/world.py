"""A synthetic shopping world: items, users and their hidden preferences.

Ranking code needs data where the right answer is known. ``make_world``
builds a catalogue (``make_catalogue``: clustered item vectors, Zipf merchants,
categories that follow the product type) and gives it a hidden state, kept in
``World._truth`` and documented with its formulas in ``engine.datasets.truth``:

- items: a latent vector (the catalogue vector; the public embedding is a
  noisy copy), a hidden quality (standard normal), a price (lognormal around
  a per-category median, slightly higher for better items), a margin, a
  listing age, a review count that grows with age and appeal, and a rating
  that is a noisy, shrunk estimate of quality. The newest ~3 % (< 2 days old)
  have no embedding yet: the cold-start items a ranker must handle.
- users: a latent preference vector built from two product types they like,
  a segment (price sensitivity and category taste), three favourite
  categories and an activity rate (lognormal: a few users are much more
  active). ~15 % are cold-start users without an embedding; the public one
  is a noisy copy of the latent vector.
- merchants: a hidden trust that moves P(order | click).

So the observable columns carry every signal, each with noise: a model that
combines the user-item dot product, segment, price, rating and the user's
category clicks beats a popularity ranking (review count), and popularity
beats random because review counts follow quality.

``World.sample_requests`` and ``World.simulate_feedback`` (``sessions.py``)
turn this into logged traffic under a position-based click model.
Everything is vectorised numpy and deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from engine.datasets import sessions, truth
from engine.datasets.catalogue import _draw, make_catalogue
from engine.datasets.truth import SURFACES, Truth

N_SEGMENTS = 8
SENSITIVITY_RANGE = (0.2, 1.5)
SEGMENT_TASTE_SD = 0.5
NEW_ITEM_SHARE = 0.03
NEW_ITEM_DAYS = 2.0
MEAN_AGE_DAYS = 200.0
USER_VECTOR_RATE = 0.85
# Noise norms relative to the unit latent vectors: an item embedding is at
# ~cos 0.93 from its latent vector, a user embedding at ~cos 0.86.
ITEM_VECTOR_NOISE = 0.4
USER_VECTOR_NOISE = 0.6
USER_LATENT_NOISE = 0.4
TASTE_MIX = (0.6, 0.4)
ACTIVITY_SIGMA = 1.2
COLD_USER_ACTIVITY = 0.5
DEVICE_SHARES = (0.45, 0.4, 0.15)
# Reviews: per day listed (capped at two years) times exp(appeal); the displayed
# rating is shrunk towards RATING_PRIOR by RATING_PSEUDO_REVIEWS, as shops do.
REVIEWS_PER_DAY = 0.05
RATING_PRIOR = 4.0
RATING_PSEUDO_REVIEWS = 5.0
CALIBRATION_PAIRS = 20_000


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _noisy_unit(rng: np.random.Generator, x: np.ndarray, noise: float) -> np.ndarray:
    out = rng.standard_normal(x.shape, dtype=np.float32)
    out *= np.float32(noise / np.sqrt(x.shape[1]))
    out += x
    return _unit(out)


def _sorted_lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    return ids[order], order.astype(np.int64)


def _find_rows(name: str, values: Any, lookup: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Row indices of ids, or ValueError naming ``name`` and the first unknown id."""
    ids = np.asarray(values)
    if ids.size == 0:
        return np.zeros(ids.shape, np.int64)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer ids, got dtype {ids.dtype}")
    if ids.dtype.kind == "i" and (ids < 0).any():
        raise ValueError(f"{name}: unknown id {int(ids.flat[np.argmax(ids.ravel() < 0)])}")
    ids = ids.astype(np.uint64, copy=False)
    sorted_ids, rows = lookup
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    found = sorted_ids[pos] == ids
    if not found.all():
        raise ValueError(f"{name}: unknown id {int(ids.flat[np.argmin(found.ravel())])}")
    return rows[pos]


def _row_indices(name: str, values: Any, n: int, what: str = "row") -> np.ndarray:
    rows = np.asarray(values)
    if rows.dtype.kind not in "iu" and rows.size:
        raise ValueError(f"{name}: expected integer {what}s, got dtype {rows.dtype}")
    rows = rows.astype(np.int64)
    bad = (rows < 0) | (rows >= n)
    if bad.any():
        raise ValueError(f"{name}: {what} {int(rows.flat[np.argmax(bad.ravel())])} out of range [0, {n})")
    return rows


def surface_codes(surface: Any) -> np.ndarray:
    """0, 1, 2 for "home", "search", "store" (a str or an array of them)."""
    values = np.asarray(surface)
    if values.dtype.kind not in "UO":
        raise ValueError(f"surface: expected one of {SURFACES} or an array of them, got {surface!r}")
    codes = np.full(values.shape, -1, np.int64)
    for code, name in enumerate(SURFACES):
        codes[values == name] = code
    if (codes < 0).any():
        bad = values.flat[np.argmax(codes.ravel() < 0)]
        raise ValueError(f"surface: unknown surface {str(bad)!r}, expected one of {SURFACES}")
    return codes


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


@dataclass(frozen=True, eq=False)
class World:
    """A generated shop with known click and order probabilities (see the module docstring).

    Public: ``items`` / ``users`` (pyarrow tables, row ``i`` is item / user
    row ``i``), ``item_vectors`` / ``user_vectors`` (float32, unit norm, zero
    rows where ``has_vector`` is False), ``surfaces``, the counts
    ``categories`` and ``merchants``, ``seed``. The hidden state is
    ``_truth``; its formulas are in ``engine.datasets.truth``. Arrays are
    read-only, so a world can be shared between threads and tests.
    """

    items: pa.Table
    item_vectors: np.ndarray
    users: pa.Table
    user_vectors: np.ndarray
    categories: int
    merchants: int
    seed: int
    _truth: Truth = field(repr=False)
    _item_lookup: tuple[np.ndarray, np.ndarray] = field(repr=False)
    _user_lookup: tuple[np.ndarray, np.ndarray] = field(repr=False)
    surfaces: tuple[str, ...] = SURFACES

    def __repr__(self) -> str:
        return (f"World(n_items={self.n_items}, n_users={self.n_users}, dim={self.dim}, "
                f"merchants={self.merchants}, categories={self.categories}, seed={self.seed})")

    @property
    def dim(self) -> int:
        return self.item_vectors.shape[1]

    @property
    def n_items(self) -> int:
        return self.items.num_rows

    @property
    def n_users(self) -> int:
        return self.users.num_rows

    def item_rows(self, item_ids: Any) -> np.ndarray:
        """int64 rows of ``item_ids`` in ``items`` (same shape); ValueError names the first unknown id."""
        return _find_rows("item_ids", item_ids, self._item_lookup)

    def _find_items(self, name: str, item_ids: Any) -> np.ndarray:
        return _find_rows(name, item_ids, self._item_lookup)

    def user_rows(self, user_ids: Any) -> np.ndarray:
        """int64 rows of ``user_ids`` in ``users`` (same shape); ValueError names the first unknown id."""
        return _find_rows("user_ids", user_ids, self._user_lookup)

    def examination(self, surface: str, positions: Any) -> np.ndarray:
        """P(examined) at 0-based ``positions``: ``(1 / (1 + pos)) ** eta`` with eta
        0.6 (home), 1.0 (search), 0.8 (store). 1 at the top, strictly decreasing."""
        if not isinstance(surface, str):
            raise ValueError(f"surface: expected one of {SURFACES}, got {surface!r}")
        code = surface_codes(surface)
        pos = np.asarray(positions)
        if pos.dtype.kind not in "iu" and pos.size:
            raise ValueError(f"positions: expected integer positions, got dtype {pos.dtype}")
        if pos.size and pos.min() < 0:
            raise ValueError(f"positions: expected positions >= 0, got {int(pos.min())}")
        return truth.examination(code, pos.astype(np.float64))

    def _pairs(self, user_rows, item_rows, surface=None, query_category=None):
        parts = [_row_indices("user_rows", user_rows, self.n_users),
                 _row_indices("item_rows", item_rows, self.n_items)]
        if surface is not None:
            parts.append(surface_codes(surface))
            if query_category is None:
                parts.append(np.int64(-1))
            else:
                parts.append(_row_indices("query_category", query_category, self.categories, "category"))
        parts = np.broadcast_arrays(*parts)
        return parts[0].shape, [p.ravel() for p in parts]

    def click_probability(self, user_rows: Any, item_rows: Any, surface: Any,
                          *, query_category: Any = None) -> np.ndarray:
        """P(click | examined) for user rows x item rows (broadcast) on ``surface``
        (a name or an array of names). On "search", items outside ``query_category``
        (broadcast like the rows) lose ``truth.SEARCH_MISMATCH`` (3) from the logit;
        None means every item matches, as results under a search's category filter do."""
        shape, (u, i, s, q) = self._pairs(user_rows, item_rows, surface, query_category)
        return truth.sigmoid(truth.click_logit(self._truth, u, i, s, q)).reshape(shape)

    def order_probability(self, user_rows: Any, item_rows: Any) -> np.ndarray:
        """P(order | click) for user rows x item rows (broadcast); 0 for items out of stock."""
        shape, (u, i) = self._pairs(user_rows, item_rows)
        return truth.order_probability(self._truth, u, i).reshape(shape)

    def relevance(self, user_rows: Any, item_rows: Any, surface: Any,
                  *, query_category: Any = None) -> np.ndarray:
        """Ground-truth gain: ``P(click | examined) * (1 + P(order | click))``, the
        expected clicks plus orders when the item is examined (``query_category``
        as in ``click_probability``)."""
        shape, (u, i, s, q) = self._pairs(user_rows, item_rows, surface, query_category)
        return truth.relevance(self._truth, u, i, s, q).reshape(shape)

    def sample_requests(self, n: int, seed: int) -> list[dict]:
        """``n`` ranking requests, deterministic for (world seed, ``seed``); see ``sessions.py``."""
        return sessions.sample_requests(self, n, seed)

    def simulate_feedback(self, requests: list[dict], shown_item_ids: Any,
                          seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Clicks and orders (bool, shape of ``shown_item_ids``) under the position-based
        model; slots holding 2**64 - 1 are empty. See ``sessions.py``."""
        return sessions.simulate_feedback(self, requests, shown_item_ids, seed)

    def request_relevance(self, requests: list[dict], item_ids: Any) -> np.ndarray:
        """``relevance`` of ``item_ids`` (n_requests, k) for each request's user,
        surface and query category; 0 for empty slots (2**64 - 1)."""
        return sessions.request_relevance(self, requests, item_ids)


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def make_world(n_items: int = 20_000, n_users: int = 2_000, dim: int = 32, n_merchants: int = 300,
               n_categories: int = 40, seed: int = 0) -> World:
    """Generate a world; identical arguments give an identical world (module docstring)."""
    n_items, n_users, dim = (_check_count(k, v) for k, v in
                             (("n_items", n_items), ("n_users", n_users), ("dim", dim)))
    n_merchants = _check_count("n_merchants", n_merchants)
    n_categories = _check_count("n_categories", n_categories)
    seed = _check_count("seed", seed, minimum=0)

    cat = make_catalogue(n_items, dim=dim, n_merchants=n_merchants, n_categories=n_categories,
                         in_stock_rate=0.9, seed=seed)
    rng = np.random.default_rng([seed, 0x3011D])
    category = cat.attributes["category_id"]
    merchant = cat.attributes["merchant_id"]
    in_stock = cat.attributes["in_stock"]
    cluster = cat.cluster
    n_clusters = cat.n_clusters

    # Items. Quality drives clicks, orders, reviews and (a little) price.
    quality = rng.standard_normal(n_items)
    category_median = np.exp(rng.normal(np.log(25.0), 0.9, n_categories))
    price = category_median[category] * np.exp(rng.normal(0.0, 0.45, n_items) + 0.15 * quality)
    price = np.maximum(np.round(price, 2), 0.5).astype(np.float32)
    log_price_rel = np.log(price.astype(np.float64)) - np.log(np.median(price))
    category_margin = rng.uniform(0.08, 0.4, n_categories)
    margin = np.clip(category_margin[category] + rng.normal(0.0, 0.06, n_items), 0.02, 0.6).astype(np.float32)
    new = rng.random(n_items) < NEW_ITEM_SHARE
    age = np.where(new, rng.uniform(0.0, NEW_ITEM_DAYS, n_items),
                   NEW_ITEM_DAYS + rng.exponential(MEAN_AGE_DAYS - NEW_ITEM_DAYS, n_items))
    item_vectors = _noisy_unit(rng, cat.vectors, ITEM_VECTOR_NOISE)
    item_vectors[new] = 0.0
    merchant_trust = rng.normal(0.0, 0.6, n_merchants)

    # Segments and users. Favourite categories: the dominant categories of the
    # two product types a user likes, and one from the segment's taste.
    sensitivity = rng.permutation(np.linspace(*SENSITIVITY_RANGE, N_SEGMENTS))
    segment_taste = rng.normal(0.0, SEGMENT_TASTE_SD, (N_SEGMENTS, n_categories))
    segment = _draw(rng, np.linspace(2.0, 1.0, N_SEGMENTS), n_users).astype(np.int64)
    cluster_items = np.bincount(cluster, minlength=n_clusters).astype(np.float64)
    taste_clusters = _draw(rng, cluster_items, 2 * n_users).reshape(n_users, 2).astype(np.int64)
    dominant = np.bincount(cluster * n_categories + category,
                           minlength=n_clusters * n_categories).reshape(n_clusters, n_categories).argmax(1)
    category_items = np.bincount(category, minlength=n_categories)
    taste_weights = np.exp(segment_taste) * (category_items > 0)
    segment_pick = np.empty(n_users, np.int64)
    for g in range(N_SEGMENTS):  # one draw per segment, not per user
        members = segment == g
        segment_pick[members] = _draw(rng, taste_weights[g], int(members.sum()))
    favourites = np.column_stack([dominant[taste_clusters], segment_pick]).astype(np.int64)
    centres = cat._centres  # the catalogue's product-type centres (same package)
    mix = TASTE_MIX[0] * centres[taste_clusters[:, 0]] + TASTE_MIX[1] * centres[taste_clusters[:, 1]]
    user_latent = _noisy_unit(rng, _unit(mix.astype(np.float32)), USER_LATENT_NOISE)
    user_has_vector = rng.random(n_users) < USER_VECTOR_RATE
    user_vectors = _noisy_unit(rng, user_latent, USER_VECTOR_NOISE)
    user_vectors[~user_has_vector] = 0.0
    activity = np.exp(rng.normal(0.0, ACTIVITY_SIGMA, n_users)) * np.where(user_has_vector, 1.0,
                                                                          COLD_USER_ACTIVITY)
    activity /= activity.sum()
    device = _draw(rng, np.array(DEVICE_SHARES), n_users).astype(np.int64)

    # Reviews follow exposure and appeal (quality, price, how much the segments
    # like the category), with luck; the rating is a shrunk noisy mean.
    segment_share = np.bincount(segment, minlength=N_SEGMENTS) / n_users
    appeal = (truth.QUALITY_WEIGHT * quality - sensitivity.mean() * log_price_rel
              + (segment_share @ segment_taste)[category] + rng.normal(0.0, 0.5, n_items))
    review_count = rng.poisson(REVIEWS_PER_DAY * np.minimum(age, 730.0) * np.exp(appeal)).astype(np.int64)
    true_rating = np.clip(3.9 + 0.55 * quality, 1.0, 5.0)
    mean_rating = true_rating + rng.standard_normal(n_items) / np.sqrt(np.maximum(review_count, 1))
    rating = (review_count * mean_rating + RATING_PSEUDO_REVIEWS * RATING_PRIOR) / (
        review_count + RATING_PSEUDO_REVIEWS)
    rating = np.clip(np.round(rating, 1), 1.0, 5.0).astype(np.float32)

    user_ids = np.uint64(2 * 10**12) + np.cumsum(rng.integers(1, 64, size=n_users, dtype=np.uint64))
    user_ids = user_ids[rng.permutation(n_users)]

    cluster_rows = np.argsort(cluster, kind="stable").astype(np.int64)
    cluster_start = np.concatenate([[0], np.cumsum(cluster_items)]).astype(np.int64)
    t = Truth(item_latent=cat.vectors, quality=quality, log_price_rel=log_price_rel, category=category,
              merchant=merchant, in_stock=in_stock, cluster=cluster, merchant_trust=merchant_trust,
              user_latent=user_latent, segment=segment, favourites=favourites,
              taste_clusters=taste_clusters, activity=activity, device=device, sensitivity=sensitivity,
              segment_taste=segment_taste, click_intercept=np.zeros(3), order_intercept=0.0,
              cluster_rows=cluster_rows, cluster_start=cluster_start)
    # Calibration on fixed random pairs (activity-weighted users, uniform items).
    cal = np.random.default_rng([seed, 0xCA1])
    u = _draw(cal, activity, CALIBRATION_PAIRS).astype(np.int64)
    i = cal.integers(0, n_items, CALIBRATION_PAIRS)
    none = np.full(CALIBRATION_PAIRS, -1, np.int64)
    click_intercept = np.array([truth.solve_intercept(
        truth.click_logit(t, u, i, np.full(CALIBRATION_PAIRS, s, np.int64), none), truth.CLICK_RATE[s])
        for s in range(len(SURFACES))])
    order_intercept = truth.solve_intercept(truth.order_logit(t, u, i), truth.ORDER_RATE)
    t = replace(t, click_intercept=click_intercept, order_intercept=order_intercept)

    items = pa.table({
        "item_id": pa.array(cat.ids, pa.uint64()),
        "merchant_id": pa.array(merchant, pa.int64()),
        "category_id": pa.array(category, pa.int64()),
        "price": pa.array(price, pa.float32()),
        "margin": pa.array(margin, pa.float32()),
        "in_stock": pa.array(in_stock, pa.bool_()),
        "age_days": pa.array(age.astype(np.float32), pa.float32()),
        "rating": pa.array(rating, pa.float32()),
        "review_count": pa.array(review_count, pa.int64()),
        "has_vector": pa.array(~new, pa.bool_()),
    })
    users = pa.table({
        "user_id": pa.array(user_ids, pa.uint64()),
        "segment": pa.array(segment, pa.int64()),
        "has_vector": pa.array(user_has_vector, pa.bool_()),
    })
    _read_only(item_vectors, user_vectors, *(v for v in t.__dict__.values() if isinstance(v, np.ndarray)))
    return World(items=items, item_vectors=item_vectors, users=users, user_vectors=user_vectors,
                 categories=n_categories, merchants=n_merchants, seed=seed, _truth=t,
                 _item_lookup=_sorted_lookup(cat.ids), _user_lookup=_sorted_lookup(user_ids))
