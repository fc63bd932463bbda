"""engine.datasets.make_catalogue: shapes, determinism and the skew it promises."""


import numpy as np
import pytest

from engine.datasets import Catalogue, make_catalogue
from engine.datasets.catalogue import default_n_clusters


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return make_catalogue(20_000, dim=32, n_merchants=500, n_categories=50, seed=3)


def test_shapes_and_dtypes(cat):
    n = 20_000
    assert len(cat) == n and cat.dim == 32
    assert cat.ids.shape == (n,) and cat.ids.dtype == np.uint64
    assert cat.vectors.shape == (n, 32) and cat.vectors.dtype == np.float32
    assert cat.vectors.flags.c_contiguous
    assert set(cat.attributes) == {"merchant_id", "category_id", "in_stock"}
    assert cat.attributes["merchant_id"].dtype == np.int64
    assert cat.attributes["category_id"].dtype == np.int64
    assert cat.attributes["in_stock"].dtype == np.bool_
    for values in cat.attributes.values():
        assert values.shape == (n,)
    assert cat.cluster.shape == (n,)


def test_ids_unique_sparse_and_shuffled(cat):
    ids = cat.ids
    assert len(np.unique(ids)) == len(ids)
    assert ids.max() < 2**63  # fits int64 for peers that need it
    assert not np.array_equal(np.sort(ids), np.arange(len(ids), dtype=np.uint64))
    assert ids.max() - ids.min() > 2 * len(ids)  # sparse range
    assert (np.diff(ids.astype(np.int64)) < 0).any()  # not in sorted order


def test_unit_norm_and_finite(cat):
    assert np.isfinite(cat.vectors).all()
    np.testing.assert_allclose(np.linalg.norm(cat.vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic_for_a_seed():
    a = make_catalogue(3000, dim=16, seed=7)
    b = make_catalogue(3000, dim=16, seed=7)
    c = make_catalogue(3000, dim=16, seed=8)
    assert np.array_equal(a.ids, b.ids)
    assert np.array_equal(a.vectors, b.vectors)
    for key in a.attributes:
        assert np.array_equal(a.attributes[key], b.attributes[key])
    assert np.array_equal(a.queries(50, seed=2), b.queries(50, seed=2))
    assert not np.array_equal(a.vectors, c.vectors)
    assert not np.array_equal(a.queries(50, seed=2), a.queries(50, seed=3))


def test_attribute_ranges(cat):
    m = cat.attributes["merchant_id"]
    c = cat.attributes["category_id"]
    assert m.min() >= 0 and m.max() < 500
    assert c.min() >= 0 and c.max() < 50
    assert abs(cat.attributes["in_stock"].mean() - 0.9) < 0.01
    none = make_catalogue(2000, dim=8, in_stock_rate=0.0)
    assert not none.attributes["in_stock"].any()


def test_merchants_are_zipf_skewed(cat):
    counts = np.sort(np.bincount(cat.attributes["merchant_id"], minlength=500))[::-1]
    share = counts / counts.sum()
    # Zipf(1) over 500 merchants: the top one holds ~1/H(500) ~ 15 %; uniform would be 0.2 %.
    assert 0.10 < share[0] < 0.20
    assert share[:10].sum() > 0.35
    # Rank-frequency slope on log-log axes is about -1 for the head.
    ranks = np.arange(1, 51)
    slope = np.polyfit(np.log(ranks), np.log(counts[:50]), 1)[0]
    assert -1.3 < slope < -0.7
    # Labels are shuffled: the biggest merchant is not merchant 0.
    assert np.argmax(np.bincount(cat.attributes["merchant_id"])) != 0


def test_clusters_are_skewed_and_tight(cat):
    sizes = np.sort(np.bincount(cat.cluster))[::-1]
    assert sizes[0] > 5 * np.median(sizes)
    # Items are much closer to their own cluster's members than to random items.
    v = cat.vectors
    same = cat.cluster[:500, None] == cat.cluster[None, :]
    sims = v[:500] @ v.T
    assert sims[same].mean() > sims[~same].mean() + 0.3


def test_category_follows_cluster(cat):
    # Each cluster has a dominant category carried by ~80 % of its items.
    big = np.flatnonzero(np.bincount(cat.cluster) >= 50)
    shares = []
    for c in big[:20]:
        cats = cat.attributes["category_id"][cat.cluster == c]
        shares.append(np.bincount(cats).max() / len(cats))
    assert 0.7 < np.mean(shares) < 0.95


def test_queries_are_like_items_but_not_items(cat):
    q = cat.queries(300, seed=5)
    assert q.shape == (300, 32) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    best = (q @ cat.vectors.T).max(axis=1)
    assert best.max() < 0.9999  # never a copy of an item
    assert np.median(best) > 0.5  # but close to some item, like a real query
    assert cat.queries(0).shape == (0, 32)


def test_default_cluster_count():
    assert default_n_clusters(1_000_000) == 3333
    assert default_n_clusters(100) == 1
    assert default_n_clusters(10**8) == 4000
    assert make_catalogue(3000, dim=8).n_clusters == 10
    assert make_catalogue(3000, dim=8, n_clusters=7).n_clusters == 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_items"):
        make_catalogue(0)
    with pytest.raises(ValueError, match="in_stock_rate"):
        make_catalogue(10, in_stock_rate=1.5)


def test_generates_50k_items():
    # Generation time is measured in bench/, not asserted here.
    cat = make_catalogue(50_000)
    assert len(cat.ids) == 50_000 and cat.queries(1000).shape == (1000, 64)
