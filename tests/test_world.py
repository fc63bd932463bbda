"""engine.datasets.make_world: schema, determinism, requests, and feedback that follows the known model."""

import numpy as np
import pyarrow as pa
import pytest

from engine.datasets import World, make_world, truth
from engine.metrics import ndcg

PAD = np.uint64(2**64 - 1)
ITEM_SCHEMA = pa.schema([
    ("item_id", pa.uint64()), ("merchant_id", pa.int64()), ("category_id", pa.int64()),
    ("price", pa.float32()), ("margin", pa.float32()), ("in_stock", pa.bool_()),
    ("age_days", pa.float32()), ("rating", pa.float32()), ("review_count", pa.int64()),
    ("has_vector", pa.bool_()),
])
USER_SCHEMA = pa.schema([("user_id", pa.uint64()), ("segment", pa.int64()), ("has_vector", pa.bool_())])


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(seed=2)


@pytest.fixture(scope="module")
def requests(world):
    return world.sample_requests(20_000, seed=11)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def candidates(world, request, rng, k):
    """Up to k random items that pass the request's filters."""
    items = world.items
    f = request["filters"]
    keep = np.ones(items.num_rows, bool)
    if f.get("in_stock"):
        keep &= col(items, "in_stock")
    if "category_id" in f:
        keep &= np.isin(col(items, "category_id"), f["category_id"])
    if "merchant_id" in f:
        keep &= col(items, "merchant_id") == f["merchant_id"]
    pool = np.flatnonzero(keep)
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


def test_schema_and_shapes(world):
    assert world.items.schema == ITEM_SCHEMA
    assert world.users.schema == USER_SCHEMA
    assert world.items.num_rows == 20_000 and world.users.num_rows == 2_000
    assert world.item_vectors.shape == (20_000, 32) and world.item_vectors.dtype == np.float32
    assert world.user_vectors.shape == (2_000, 32) and world.user_vectors.dtype == np.float32
    assert world.surfaces == ("home", "search", "store")
    assert (world.dim, world.categories, world.merchants, world.seed) == (32, 40, 300, 2)
    assert repr(world) == "World(n_items=20000, n_users=2000, dim=32, merchants=300, categories=40, seed=2)"


def test_item_columns(world):
    items = world.items
    price, margin = col(items, "price"), col(items, "margin")
    assert (price > 0).all() and np.isfinite(price).all()
    assert margin.min() >= 0.02 and margin.max() <= 0.6
    assert abs(col(items, "in_stock").mean() - 0.9) < 0.01
    rating = col(items, "rating")
    assert rating.min() >= 1 and rating.max() <= 5
    assert (col(items, "review_count") >= 0).all()
    assert col(items, "merchant_id").min() >= 0 and col(items, "merchant_id").max() < 300
    assert col(items, "category_id").min() >= 0 and col(items, "category_id").max() < 40
    # ~3 % of items are new (< 2 days) and exactly those have no embedding yet.
    age, has_vector = col(items, "age_days"), col(items, "has_vector")
    assert abs((age < 2).mean() - 0.03) < 0.005
    assert np.array_equal(has_vector, age >= 2)
    # Prices are lognormal around a per-category median: medians differ between categories.
    category = col(items, "category_id")
    medians = np.array([np.median(price[category == c]) for c in np.unique(category)])
    assert medians.max() > 4 * medians.min()


def test_user_columns(world):
    segment = col(world.users, "segment")
    assert segment.min() >= 0 and segment.max() < 8 and len(np.unique(segment)) == 8
    assert abs(col(world.users, "has_vector").mean() - 0.85) < 0.03


def test_vectors_unit_norm_or_zero(world):
    for vectors, table in ((world.item_vectors, world.items), (world.user_vectors, world.users)):
        has = col(table, "has_vector")
        np.testing.assert_allclose(np.linalg.norm(vectors[has], axis=1), 1.0, atol=1e-5)
        assert not vectors[~has].any()
        assert (~has).any()


def test_ids_unique_sparse_and_shuffled(world):
    for ids in (col(world.items, "item_id"), col(world.users, "user_id")):
        assert len(np.unique(ids)) == len(ids)
        assert ids.max() < 2**63
        assert ids.max() - ids.min() > 2 * len(ids)
        assert (np.diff(ids.astype(np.int64)) < 0).any()
    assert not np.isin(col(world.items, "item_id"), col(world.users, "user_id")).any()


def test_arrays_are_read_only(world):
    with pytest.raises(ValueError):
        world.item_vectors[0, 0] = 1.0
    with pytest.raises(ValueError):
        world._truth.quality[0] = 1.0


def test_deterministic_for_a_seed():
    a, b, c = make_world(3000, 300, dim=8, seed=5), make_world(3000, 300, dim=8, seed=5), \
        make_world(3000, 300, dim=8, seed=6)
    assert a.items.equals(b.items) and a.users.equals(b.users)
    assert np.array_equal(a.item_vectors, b.item_vectors) and np.array_equal(a.user_vectors, b.user_vectors)
    assert np.array_equal(a._truth.click_intercept, b._truth.click_intercept)
    assert not a.items.equals(c.items)
    ra, rb = a.sample_requests(200, seed=1), b.sample_requests(200, seed=1)
    assert [r["request_id"] for r in ra] == [r["request_id"] for r in rb]
    for x, y in zip(ra, rb):
        assert np.array_equal(x.pop("recent_item_ids"), y.pop("recent_item_ids")) and x == y
    assert [r["user_id"] for r in a.sample_requests(200, seed=2)] != [r["user_id"] for r in rb]
    shown = col(a.items, "item_id")[:2000].reshape(200, 10)
    fa, fb = a.simulate_feedback(ra, shown, seed=3), b.simulate_feedback(rb, shown, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))


def test_row_lookup(world):
    item_ids, user_ids = col(world.items, "item_id"), col(world.users, "user_id")
    rows = np.array([[5, 0], [19_999, 7]])
    assert np.array_equal(world.item_rows(item_ids[rows]), rows)
    assert np.array_equal(world.user_rows(user_ids[[3, 1, 3]]), [3, 1, 3])
    assert world.item_rows(item_ids[[2]].astype(np.int64)).tolist() == [2]
    unknown = int(item_ids.max()) + 1
    with pytest.raises(ValueError, match=f"item_ids: unknown id {unknown}"):
        world.item_rows(np.array([item_ids[0], unknown], np.uint64))
    with pytest.raises(ValueError, match="user_ids: unknown id 7"):
        world.user_rows(np.array([user_ids[0], 7], np.uint64))
    with pytest.raises(ValueError, match="item_ids: expected integer"):
        world.item_rows(np.array([1.5]))


def test_examination_curves(world):
    pos = np.arange(50)
    curves = {s: world.examination(s, pos) for s in world.surfaces}
    for s, eta in zip(world.surfaces, truth.ETA):
        e = curves[s]
        assert e.dtype == np.float64 and e[0] == 1.0
        assert (np.diff(e) < 0).all()
        np.testing.assert_allclose(e, (1.0 / (1.0 + pos)) ** eta)
    assert not np.allclose(curves["home"], curves["search"])
    assert not np.allclose(curves["search"], curves["store"])
    with pytest.raises(ValueError, match="surface"):
        world.examination("cart", pos)
    with pytest.raises(ValueError, match="positions"):
        world.examination("home", [-1, 0])


def test_probabilities(world):
    u, i = np.arange(50)[:, None], np.arange(200)[None, :]
    p = world.click_probability(u, i, "home")
    assert p.shape == (50, 200) and p.dtype == np.float64
    assert (p > 0).all() and (p < 1).all()
    mixed = np.array(["home", "search", "store"])[np.arange(50) % 3][:, None]
    expected = np.where(mixed == "home", p, np.where(mixed == "search", world.click_probability(u, i, "search"),
                                                     world.click_probability(u, i, "store")))
    np.testing.assert_array_equal(world.click_probability(u, i, mixed), expected)
    # A search click is much less likely on an item outside the query's category.
    category = col(world.items, "category_id")[:200]
    q = world.click_probability(u, i, "search", query_category=category[0])
    free = world.click_probability(u, i, "search")
    match = category == category[0]
    assert np.array_equal(q[:, match], free[:, match])
    logit_shift = np.log(q / (1 - q)) - np.log(free / (1 - free))
    np.testing.assert_allclose(logit_shift[:, ~match], -truth.SEARCH_MISMATCH, atol=1e-6)
    order = world.order_probability(u, i)
    assert order.shape == (50, 200) and (order >= 0).all() and (order < 1).all()
    assert not order[:, ~col(world.items, "in_stock")[:200]].any()
    np.testing.assert_allclose(world.relevance(u, i, "store"), world.click_probability(u, i, "store") * (1 + order))


def test_calibrated_rates(world):
    # Mean P(click | examined) over fresh random (activity-weighted user, item) pairs.
    rng = np.random.default_rng(0)
    u = rng.choice(world.users.num_rows, 50_000, p=world._truth.activity)
    i = rng.integers(0, world.items.num_rows, 50_000)
    for s, rate in zip(world.surfaces, truth.CLICK_RATE):
        assert abs(world.click_probability(u, i, s).mean() / rate - 1) < 0.15


def test_probability_arguments(world):
    with pytest.raises(ValueError, match="user_rows: row 2000 out of range"):
        world.click_probability([2000], [0], "home")
    with pytest.raises(ValueError, match="item_rows"):
        world.order_probability([0], [-1])
    with pytest.raises(ValueError, match="item_rows: expected integer"):
        world.relevance([0], [0.5], "home")
    with pytest.raises(ValueError, match="surface: unknown surface 'cart'"):
        world.click_probability([0], [0], np.array(["home", "cart"]))
    with pytest.raises(ValueError, match="query_category"):
        world.click_probability([0], [0], "search", query_category=40)


def test_request_fields(world, requests):
    user_ids, category = col(world.users, "user_id"), col(world.items, "category_id")
    assert len({r["request_id"] for r in requests}) == len(requests)
    for r in requests[:2000]:
        assert set(r) == {"request_id", "user_id", "user_row", "surface", "context", "filters",
                          "recent_item_ids", "category_clicks"}
        assert isinstance(r["request_id"], str) and isinstance(r["user_id"], int)
        assert user_ids[r["user_row"]] == r["user_id"]
        ctx, f = r["context"], r["filters"]
        assert ctx["device"] in ("ios", "android", "web") and 0 <= ctx["hour"] <= 23
        if r["surface"] == "search":
            assert set(ctx) == {"device", "hour", "query_category"} and 0 <= ctx["query_category"] < 40
            assert f == {"category_id": [ctx["query_category"]]}
        elif r["surface"] == "store":
            assert set(ctx) == {"device", "hour", "merchant_id"}
            assert f == {"merchant_id": ctx["merchant_id"]}
        else:
            assert r["surface"] == "home" and set(ctx) == {"device", "hour"}
            assert f in ({}, {"in_stock": True})
        recent = r["recent_item_ids"]
        assert recent.dtype == np.uint64 and len(recent) <= 20
        cats, counts = np.unique(category[world.item_rows(recent)], return_counts=True)  # known ids
        assert r["category_clicks"] == dict(zip(cats.tolist(), counts.astype(float).tolist()))


def test_request_mix(world, requests):
    n = len(requests)
    surfaces = np.array([r["surface"] for r in requests])
    for s, share in (("home", 0.5), ("search", 0.3), ("store", 0.2)):
        assert abs((surfaces == s).mean() - share) < 4 * np.sqrt(share * (1 - share) / n)
    # Skewed users: the busiest 5 % of users send far more than 5 % of the requests.
    per_user = np.sort(np.bincount([r["user_row"] for r in requests], minlength=2000))[::-1]
    assert per_user[:100].sum() > 0.25 * n
    # Store pages follow merchant size; searches follow the user's favourite categories.
    store = np.array([r["context"]["merchant_id"] for r in requests if r["surface"] == "store"])
    size = np.bincount(col(world.items, "merchant_id"), minlength=300)
    assert size[store].mean() > 3 * size.mean()
    fav = world._truth.favourites
    hits = [r["context"]["query_category"] in fav[r["user_row"]] for r in requests if r["surface"] == "search"]
    assert np.mean(hits) > 0.8
    # Recent clicks come from the user's taste: closer to the user's latent vector than random items.
    t = world._truth
    rows = [(r["user_row"], world.item_rows(r["recent_item_ids"])) for r in requests[:3000]]
    own = np.mean([(t.item_latent[i] @ t.user_latent[u]).mean() for u, i in rows if len(i)])
    assert own > (t.item_latent[:2000] @ t.user_latent[:300].T).mean() + 0.2


def test_sample_requests_arguments(world):
    assert world.sample_requests(0, seed=1) == []
    with pytest.raises(ValueError, match="n:"):
        world.sample_requests(-1, seed=1)
    with pytest.raises(ValueError, match="seed"):
        world.sample_requests(3, seed=-2)


def test_feedback_follows_the_position_based_model(world, requests):
    """Per (surface, position): clicks match sum(examination * P(click)) within 4 sigma; orders likewise."""
    k = 10
    rng = np.random.default_rng(1)
    item_ids = col(world.items, "item_id")
    # Random items; on search mostly items of the query's category, some outside it
    # (the mismatch term is part of the model).
    shown_rows = rng.integers(0, world.items.num_rows, (len(requests), k))
    category = col(world.items, "category_id")
    by_category = [np.flatnonzero(category == c) for c in range(world.categories)]
    for j, r in enumerate(requests):
        if r["surface"] == "search" and rng.random() < 0.7:
            pool = by_category[r["context"]["query_category"]]
            shown_rows[j] = pool[rng.integers(0, len(pool), k)]
    clicks, orders = world.simulate_feedback(requests, item_ids[shown_rows], seed=4)
    assert clicks.shape == orders.shape == (len(requests), k)
    assert clicks.dtype == orders.dtype == np.bool_
    assert not (orders & ~clicks).any()

    u = np.array([r["user_row"] for r in requests])[:, None]
    surface = np.array([r["surface"] for r in requests])[:, None]
    query = np.array([r["context"].get("query_category", 0) for r in requests])[:, None]
    exam = np.stack([world.examination(s, np.arange(k)) for s in surface[:, 0]])
    p_click = exam * world.click_probability(u, shown_rows, surface, query_category=query)
    p_order = p_click * world.order_probability(u, shown_rows)
    position = np.arange(k)[None, :]
    groups = {f"{s}@{pos}": (surface == s) & (position == pos) for s in world.surfaces for pos in range(k)}
    groups["search, outside the query's category"] = (surface == "search") & (category[shown_rows] != query)
    groups["all slots"] = np.ones_like(clicks)
    for name, group in groups.items():
        for p, observed in ((p_click, clicks), (p_order, orders)):
            expected, sigma = p[group].sum(), np.sqrt((p[group] * (1 - p[group])).sum())
            assert abs(observed[group].sum() - expected) < 4 * sigma + 1, name
    # Given the clicks, orders are Bernoulli(P(order | click)).
    q_order = world.order_probability(u, shown_rows)[clicks]
    assert abs(orders[clicks].sum() - q_order.sum()) < 4 * np.sqrt((q_order * (1 - q_order)).sum()) + 1
    for s in world.surfaces:  # position bias is visible: more clicks at the top than at the bottom
        assert clicks[surface[:, 0] == s, 0].sum() > 2 * clicks[surface[:, 0] == s, -1].sum()
    assert 0.01 < clicks[:, 0].mean() < 0.1


def test_feedback_padding_and_bad_ids(world, requests):
    item_ids = col(world.items, "item_id")
    reqs = requests[:3000]
    shown = np.full((len(reqs), 6), PAD)
    shown[:, 3:] = item_ids[:9000].reshape(3000, 3)
    shown[::2, 1] = item_ids[-1500:]
    clicks, orders = world.simulate_feedback(reqs, shown, seed=2)
    assert not clicks[shown == PAD].any() and not orders[shown == PAD].any()
    assert clicks.any()
    signed = shown.astype(np.int64)  # -1 is the same padding as int64
    assert np.array_equal(world.simulate_feedback(reqs, signed, seed=2)[0], clicks)
    unknown = int(item_ids.max()) + 3
    bad = shown.copy()
    bad[7, 4] = unknown
    with pytest.raises(ValueError, match=f"shown_item_ids: unknown id {unknown}"):
        world.simulate_feedback(reqs, bad, seed=2)
    with pytest.raises(ValueError, match="shown_item_ids: expected shape"):
        world.simulate_feedback(reqs, shown[:10], seed=2)
    with pytest.raises(ValueError, match="shown_item_ids: expected uint64"):
        world.simulate_feedback(reqs, shown.astype(np.float64), seed=2)
    with pytest.raises(ValueError, match="seed"):
        world.simulate_feedback(reqs, shown, seed=-1)
    search = next(r for r in reqs if r["surface"] == "search")
    broken = {**search, "context": {"device": "web", "hour": 3}}
    with pytest.raises(ValueError, match=r"requests\[0\]: a search request needs context\['query_category'\]"):
        world.simulate_feedback([broken], shown[:1], seed=2)
    with pytest.raises(ValueError, match=r"requests\[0\]: unknown surface 'cart'"):
        world.simulate_feedback([{**search, "surface": "cart"}], shown[:1], seed=2)
    with pytest.raises(ValueError, match=r"requests\[0\]: unknown user_id 5"):
        world.simulate_feedback([{**search, "user_id": 5, "user_row": 0}], shown[:1], seed=2)
    with pytest.raises(ValueError, match=r"requests\[0\]: user_row"):
        world.simulate_feedback([{**search, "user_row": (search["user_row"] + 1) % 2000}], shown[:1], seed=2)


def test_request_relevance(world, requests):
    reqs = requests[:50]
    shown = col(world.items, "item_id")[:500].reshape(50, 10).copy()
    shown[:, -1] = PAD
    rel = world.request_relevance(reqs, shown)
    assert rel.shape == (50, 10) and not rel[:, -1].any()
    for j in (0, 1, 2, 3, 4):
        r = reqs[j]
        expected = world.relevance(r["user_row"], np.arange(10 * j, 10 * j + 9), r["surface"],
                                   query_category=r["context"].get("query_category"))
        np.testing.assert_allclose(rel[j, :9], expected)


def test_rankings_against_ground_truth(world, requests):
    """Sorting by true relevance beats review counts; review counts and the observable
    dot product both beat random on NDCG@10 over filtered candidates."""
    rng = np.random.default_rng(5)
    review_count = col(world.items, "review_count").astype(np.float64)
    item_ids = col(world.items, "item_id")
    scores = {"truth": [], "reviews": [], "dot": [], "random": []}
    labels, sizes = [], []
    for r in requests[:400]:
        rows = candidates(world, r, rng, 100)
        rel = world.request_relevance([r], item_ids[rows][None, :])[0]
        labels.append(rel)
        sizes.append(len(rows))
        scores["truth"].append(rel)
        scores["reviews"].append(review_count[rows])
        scores["dot"].append(world.item_vectors[rows] @ world.user_vectors[r["user_row"]])
        scores["random"].append(rng.random(len(rows)))
    labels = np.concatenate(labels)
    mean = {k: ndcg(np.concatenate(v), labels, group_sizes=sizes, k=10).mean() for k, v in scores.items()}
    assert mean["truth"] == pytest.approx(1.0)
    assert mean["truth"] > mean["reviews"] + 0.3
    assert mean["reviews"] > mean["random"] + 0.1
    assert mean["dot"] > mean["random"] + 0.1


def test_bad_arguments():
    for kwargs, name in (({"n_items": 0}, "n_items"), ({"n_users": 1.5}, "n_users"), ({"dim": 0}, "dim"),
                         ({"n_merchants": True}, "n_merchants"), ({"n_categories": -3}, "n_categories"),
                         ({"seed": -1}, "seed")):
        with pytest.raises(ValueError, match=name):
            make_world(**kwargs)


def test_tiny_world():
    w = make_world(n_items=10, n_users=3, dim=2, n_merchants=1, n_categories=1, seed=0)
    reqs = w.sample_requests(50, seed=0)
    shown = np.tile(col(w.items, "item_id"), (50, 1))
    clicks, orders = w.simulate_feedback(reqs, shown, seed=0)
    assert clicks.shape == (50, 10) and not (orders & ~clicks).any()
