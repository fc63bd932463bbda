"""The hidden ground truth of ``make_world``: parameters and the exact formulas.

Everything a shopper does in the generated world follows from the formulas
below; nothing here is observable to a ranker except through ``World``'s
public tables. Keeping them in one module, as plain constants and functions
of a ``Truth`` record, is what lets position-bias and off-policy estimators be
checked against exact answers rather than against another estimate.

For user ``u`` (segment ``g``) and item ``i`` (category ``c``, merchant ``m``)
on surface ``s``::

    examination(s, pos) = (1 / (1 + pos)) ** ETA[s]                 pos 0-based
    click_logit = CLICK_INTERCEPT[s]                                 calibrated, see below
                + TASTE_WEIGHT[s] * <user latent u, item latent i>
                + QUALITY_WEIGHT * quality_i
                - PRICE_WEIGHT[s] * sensitivity_g * log(price_i / median price)
                + taste_g[c] + FAVOURITE_BOOST * [c in favourites_u]
                - SEARCH_MISMATCH * [s == search and c != query category]
    order_logit = ORDER_INTERCEPT                                    calibrated
                + ORDER_QUALITY_WEIGHT * quality_i
                - ORDER_PRICE_WEIGHT * sensitivity_g * log(price_i / median price)
                + trust_m
    P(click | examined) = sigmoid(click_logit)
    P(order | click)    = sigmoid(order_logit) * in_stock_i
    relevance           = P(click | examined) * (1 + P(order | click))

A store page has no term of its own: its merchant filter keeps the
candidates to one merchant's items. Device and hour are context without
effect. ``relevance`` is the expected number of clicks plus orders when the
item is examined: a continuous gain for NDCG that is exact, has no ties to
break and counts an order as a second unit of value. Intercepts are solved for at
generation time so that the mean P(click | examined) over random (activity
weighted user, item) pairs is ``CLICK_RATE[s]`` and the mean sigmoid of the
order logit is ``ORDER_RATE``: the same rates at every size and dimension, a
few per cent at the top of a good ranking, as on a real site.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SURFACES = ("home", "search", "store")
# Position-bias exponents: the home feed is scrolled (slow decay), search
# results are scanned top-down (fast decay), a store page is in between.
ETA = np.array([0.6, 1.0, 0.8])
# Personal taste matters most on the home feed; on search the query already
# carries the intent; a store page is in between.
TASTE_WEIGHT = np.array([4.0, 2.5, 3.0])
QUALITY_WEIGHT = 0.7
# Searchers compare prices more than feed browsers or loyal store visitors do.
PRICE_WEIGHT = np.array([1.0, 1.3, 0.8])
FAVOURITE_BOOST = 1.0
SEARCH_MISMATCH = 3.0
# Mean P(click | examined) over random pairs (a random item is a poor match;
# the best-ranked items of a good model are clicked several times as often).
CLICK_RATE = np.array([0.01, 0.02, 0.015])
ORDER_QUALITY_WEIGHT = 0.8
ORDER_PRICE_WEIGHT = 0.6
ORDER_RATE = 0.08
# Items per chunk of pairwise work: bounds the gathered (chunk, dim) blocks.
CHUNK = 1 << 15


@dataclass(frozen=True, eq=False)
class Truth:
    """Hidden state: what the world knows and a ranker may only estimate.

    Item arrays are indexed by item row, user arrays by user row, segment
    arrays by segment. ``favourites`` are each user's favourite categories
    (n_users, 3); ``taste_clusters`` the product types their latent vector is
    built from (n_users, 2); ``activity`` the relative request rate.
    """

    item_latent: np.ndarray       # float32 (n_items, dim), unit norm
    quality: np.ndarray           # float64 (n_items,), standard normal
    log_price_rel: np.ndarray     # float64 (n_items,), log(price / median price)
    category: np.ndarray          # int64 (n_items,)
    merchant: np.ndarray          # int64 (n_items,)
    in_stock: np.ndarray          # bool (n_items,)
    cluster: np.ndarray           # int64 (n_items,), product type
    merchant_trust: np.ndarray    # float64 (n_merchants,)
    user_latent: np.ndarray       # float32 (n_users, dim), unit norm
    segment: np.ndarray           # int64 (n_users,)
    favourites: np.ndarray        # int64 (n_users, 3)
    taste_clusters: np.ndarray    # int64 (n_users, 2)
    activity: np.ndarray          # float64 (n_users,), sums to 1
    device: np.ndarray            # int64 (n_users,), the device a user mostly uses
    sensitivity: np.ndarray       # float64 (n_segments,), price sensitivity
    segment_taste: np.ndarray     # float64 (n_segments, n_categories)
    click_intercept: np.ndarray   # float64 (3,), one per surface
    order_intercept: float
    cluster_rows: np.ndarray      # int64 (n_items,), item rows sorted by product type
    cluster_start: np.ndarray     # int64 (n_clusters + 1,), offsets into cluster_rows


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large |x| (warnings are errors in the tests)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def examination(surface_code: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """P(examined) at 0-based ``positions`` on surfaces given by code."""
    return (1.0 / (1.0 + positions)) ** ETA[surface_code]


def click_logit(t: Truth, u: np.ndarray, i: np.ndarray, s: np.ndarray, q: np.ndarray,
                intercept: np.ndarray | None = None) -> np.ndarray:
    """Click logits for flat, equal-length int64 arrays of user rows, item rows,
    surface codes and query categories (-1: none given, every item matches)."""
    intercept = t.click_intercept if intercept is None else intercept
    out = np.empty(len(u), np.float64)
    for lo in range(0, len(u), CHUNK):
        uu, ii, ss, qq = (a[lo:lo + CHUNK] for a in (u, i, s, q))
        dot = np.einsum("ij,ij->i", t.user_latent[uu], t.item_latent[ii], dtype=np.float64)
        g, c = t.segment[uu], t.category[ii]
        x = intercept[ss] + TASTE_WEIGHT[ss] * dot + QUALITY_WEIGHT * t.quality[ii]
        x -= PRICE_WEIGHT[ss] * t.sensitivity[g] * t.log_price_rel[ii]
        x += t.segment_taste[g, c] + FAVOURITE_BOOST * (t.favourites[uu] == c[:, None]).any(axis=1)
        x -= SEARCH_MISMATCH * ((ss == 1) & (qq >= 0) & (qq != c))
        out[lo:lo + CHUNK] = x
    return out


def order_logit(t: Truth, u: np.ndarray, i: np.ndarray, intercept: float | None = None) -> np.ndarray:
    """Order-given-click logits for flat, equal-length user and item rows."""
    intercept = t.order_intercept if intercept is None else intercept
    return (intercept + ORDER_QUALITY_WEIGHT * t.quality[i]
            - ORDER_PRICE_WEIGHT * t.sensitivity[t.segment[u]] * t.log_price_rel[i]
            + t.merchant_trust[t.merchant[i]])


def order_probability(t: Truth, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """P(order | click) for flat user and item rows; 0 for items out of stock."""
    return sigmoid(order_logit(t, u, i)) * t.in_stock[i]


def relevance(t: Truth, u: np.ndarray, i: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Expected clicks plus orders per examination, for flat arrays as in ``click_logit``."""
    return sigmoid(click_logit(t, u, i, s, q)) * (1.0 + order_probability(t, u, i))


def solve_intercept(x: np.ndarray, target: float) -> float:
    """The shift ``b`` with mean(sigmoid(x + b)) == target (bisection; the mean is monotone in b)."""
    lo, hi = -40.0, 40.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if sigmoid(x + mid).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
