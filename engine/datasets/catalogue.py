"""A generated product catalogue shaped like real item embeddings.

Real catalogues are lumpy: a few product types (phone cases, T-shirts) hold a
large share of the items, a few merchants sell most of them, and each product
type sits mostly in one category. Uniform random vectors have none of that
and make ANN benchmarks and filter tests misleading, so this generator draws:

- ``n_clusters`` product types with Zipf-distributed sizes; an item is its
  type's centre plus Gaussian noise of a per-type spread, L2-normalised;
- ``merchant_id``: Zipf over ``n_merchants`` (independent of the type), with
  merchant labels shuffled so that id order says nothing about size;
- ``category_id``: each type has a dominant category that most of its items
  carry, the rest are spread uniformly;
- ``in_stock``: Bernoulli(``in_stock_rate``);
- ``ids``: unique uint64 values from a sparse range, in random order, so code
  that confuses ids with row numbers fails.

Everything is vectorised numpy and deterministic for a seed; 1,000,000 x 64
takes a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Zipf exponents: cluster sizes are milder than merchant sizes (the biggest
# product type holds a few per cent of a million-item catalogue; the biggest
# merchant about a tenth of it).
CLUSTER_ZIPF = 0.7
MERCHANT_ZIPF = 1.0
# Share of a cluster's items that carry its dominant category.
DOMINANT_CATEGORY_SHARE = 0.8
# Per-cluster noise norm relative to the (unit) centre: items of a tight
# cluster sit at ~cos 0.9 from its centre, of a loose one at ~cos 0.7.
SPREAD_RANGE = (0.5, 1.0)
ITEMS_PER_CLUSTER = 300
MAX_CLUSTERS = 4000


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Probabilities proportional to 1 / rank**exponent for ranks 1..n."""
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return w / w.sum()


def _draw(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn from a discrete distribution (inverse CDF, vectorised)."""
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(weights) - 1)


def _points(
    rng: np.random.Generator, centres: np.ndarray, spread: np.ndarray, cluster: np.ndarray
) -> np.ndarray:
    """Unit vectors: the cluster's centre plus isotropic noise of the cluster's spread."""
    dim = centres.shape[1]
    out = rng.standard_normal((len(cluster), dim), dtype=np.float32)
    out *= (spread[cluster] / np.sqrt(dim))[:, None]
    out += centres[cluster]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Items of a generated catalogue; row ``i`` of every array is one item.

    ``ids``: unique uint64 (n,); ``vectors``: unit-norm float32 (n, dim);
    ``attributes``: ``merchant_id`` and ``category_id`` (int64) and
    ``in_stock`` (bool), each (n,); ``cluster``: the product type of each
    item (int64, for tests and analysis; not an attribute a shop would have).
    """

    ids: np.ndarray
    vectors: np.ndarray
    attributes: dict[str, np.ndarray]
    cluster: np.ndarray = field(repr=False)
    seed: int
    _centres: np.ndarray = field(repr=False)
    _cluster_weights: np.ndarray = field(repr=False)
    _spread: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def n_clusters(self) -> int:
        return len(self._centres)

    def queries(self, n: int, seed: int = 1) -> np.ndarray:
        """``n`` unit-norm float32 query vectors drawn like the items.

        A query picks a cluster with the same Zipf weights as the items (busy
        product types get more traffic) and adds fresh noise, so queries are
        near items but never copies of them. Deterministic for
        (catalogue seed, ``seed``).
        """
        if n < 0:
            raise ValueError(f"n: must be >= 0, got {n}")
        rng = np.random.default_rng([self.seed, 0x9E3779B9, seed])
        cluster = _draw(rng, self._cluster_weights, n)
        return _points(rng, self._centres, self._spread, cluster)


def default_n_clusters(n_items: int) -> int:
    """About one product type per 300 items, at most 4000."""
    return int(min(MAX_CLUSTERS, max(1, round(n_items / ITEMS_PER_CLUSTER))))


def make_catalogue(
    n_items: int,
    dim: int = 64,
    n_clusters: int | None = None,
    n_merchants: int = 5000,
    n_categories: int = 200,
    in_stock_rate: float = 0.9,
    seed: int = 0,
) -> Catalogue:
    """Generate ``n_items`` products; see the module docstring for the shape.

    ``n_clusters`` defaults to ``default_n_clusters(n_items)`` (~n/300, at most
    4000). The result is identical for identical arguments.
    """
    for name, value in (("n_items", n_items), ("dim", dim), ("n_merchants", n_merchants),
                        ("n_categories", n_categories)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if not 0.0 <= in_stock_rate <= 1.0:
        raise ValueError(f"in_stock_rate: expected a value in [0, 1], got {in_stock_rate!r}")
    n_clusters = default_n_clusters(n_items) if n_clusters is None else int(n_clusters)
    if n_clusters < 1:
        raise ValueError(f"n_clusters: expected a positive integer, got {n_clusters!r}")

    rng = np.random.default_rng([seed, 0x5EED])
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(*SPREAD_RANGE, size=n_clusters).astype(np.float32)
    cluster_weights = zipf_weights(n_clusters, CLUSTER_ZIPF)

    cluster = _draw(rng, cluster_weights, n_items).astype(np.int64)
    vectors = _points(rng, centres, spread, cluster)

    merchant_label = rng.permutation(n_merchants).astype(np.int64)
    merchant_id = merchant_label[_draw(rng, zipf_weights(n_merchants, MERCHANT_ZIPF), n_items)]

    dominant = rng.integers(0, n_categories, size=n_clusters)
    category_id = np.where(
        rng.random(n_items) < DOMINANT_CATEGORY_SHARE,
        dominant[cluster],
        rng.integers(0, n_categories, size=n_items),
    ).astype(np.int64)

    in_stock = rng.random(n_items) < in_stock_rate

    # Strictly increasing values with random gaps from a large base, then shuffled.
    sparse = np.uint64(10**12) + np.cumsum(rng.integers(1, 64, size=n_items, dtype=np.uint64))
    ids = sparse[rng.permutation(n_items)]

    return Catalogue(
        ids=ids,
        vectors=vectors,
        attributes={"merchant_id": merchant_id, "category_id": category_id, "in_stock": in_stock},
        cluster=cluster,
        seed=int(seed),
        _centres=centres,
        _cluster_weights=cluster_weights,
        _spread=spread,
    )
