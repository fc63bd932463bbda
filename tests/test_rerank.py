"""cpp/rerank: business rules, exploration and its logged probabilities."""

import itertools
import threading

import numpy as np
import pytest

from engine import _core


def rerank(value, key=None, merchant=None, category=None, k=5, **kw):
    arr = lambda a: None if a is None else np.asarray(a, dtype=np.int64)  # noqa: E731
    return _core.rerank(np.asarray(value, dtype=np.float32), arr(key), arr(merchant), arr(category), k, **kw)


def test_greedy_is_value_order():
    v = np.array([0.1, 0.9, 0.5, 0.7], np.float32)
    index, choice, propensity = rerank(v, k=3)
    assert index.tolist() == [1, 3, 2]
    assert choice.tolist() == [1.0, 1.0, 1.0]
    assert propensity is None


def test_ties_keep_candidate_order_and_short_lists_are_short():
    index, _, _ = rerank([1, 1, 1], k=10)
    assert index.tolist() == [0, 1, 2]
    assert rerank(np.empty(0), k=3)[0].tolist() == []


@pytest.mark.parametrize("kw", [{}, {"temperature": 0.3, "explore_window": 40, "propensity_samples": 50},
                                {"temperature": 0.3, "explore_window": 8, "propensity_samples": 50}])
def test_selecting_the_shown_items_equals_sorting_every_candidate(kw):
    # Without keys only the best k (or the window) are ordered; distinct keys
    # take the full sort and mean the same policy, so both must agree exactly.
    rng = np.random.default_rng(4)
    v = rng.integers(0, 40, 500).astype(np.float32) / 40  # many ties
    for seed in range(5):
        fast = rerank(v, k=20, seed=seed, **kw)
        full = rerank(v, key=np.arange(500), k=20, seed=seed, **kw)
        for a, b in zip(fast, full):
            assert (a is None and b is None) or a.tolist() == b.tolist()
    index, _, _ = rerank(v, k=20)
    assert index.tolist() == np.argsort(-v, kind="stable")[:20].tolist()


def test_dedupe_keeps_best_copy():
    index, _, _ = rerank([0.2, 0.9, 0.5], key=[7, 8, 7], k=5)
    assert index.tolist() == [1, 2]


def test_merchant_and_category_caps():
    v = [9, 8, 7, 6, 5, 4]
    index, _, _ = rerank(v, merchant=[1, 1, 1, 2, 2, 3], k=6, max_per_merchant=2)
    assert index.tolist() == [0, 1, 3, 4, 5]
    index, _, _ = rerank(v, category=[1, 1, 2, 2, 2, 3], k=6, max_per_category=1)
    assert index.tolist() == [0, 2, 5]


def test_category_decay_interleaves():
    # decay 0.5: the second item of category 1 is worth 4.5 < 6 of category 2
    index, _, _ = rerank([9, 9, 6, 1], category=[1, 1, 2, 3], k=4, category_decay=0.5)
    assert index.tolist() == [0, 2, 1, 3]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="value: NaN at candidate 1"):
        rerank([1, np.nan], k=2)
    with pytest.raises(ValueError, match="k"):
        rerank([1], k=0)
    with pytest.raises(ValueError, match="category_decay"):
        rerank([1], category=[1], k=1, category_decay=0.0)
    with pytest.raises(ValueError, match="merchant"):
        rerank([1], k=1, max_per_merchant=1)
    with pytest.raises(ValueError, match="key: expected 2 values"):
        rerank([1, 2], key=[1], k=1)
    with pytest.raises(TypeError, match="value"):
        _core.rerank(np.ones(3), None, None, None, 2)


def test_exploration_is_deterministic_for_a_seed():
    v = np.linspace(0, 1, 50).astype(np.float32)
    a = rerank(v, k=10, temperature=0.3, seed=11, propensity_samples=50)
    b = rerank(v, k=10, temperature=0.3, seed=11, propensity_samples=50)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = rerank(v, k=10, temperature=0.3, seed=12)
    assert not np.array_equal(a[0], c[0])


def _exact_pl(values, temperature, k):
    """P(ranking) for every top-k permutation of a small candidate set."""
    w = np.exp((np.asarray(values, float) - max(values)) / temperature)
    out = {}
    for perm in itertools.permutations(range(len(values)), k):
        p, left = 1.0, w.sum()
        for i in perm:
            p *= w[i] / left
            left -= w[i]
        out[perm] = p
    return out


def test_choice_probabilities_are_plackett_luce():
    v = [1.0, 0.5, 0.2, 0.0]
    exact = _exact_pl(v, 0.5, 3)
    for seed in range(20):
        index, choice, _ = rerank(v, k=3, temperature=0.5, seed=seed)
        assert np.prod(choice) == pytest.approx(exact[tuple(index)], rel=1e-6)  # values pass through float32


def test_sampled_rankings_follow_plackett_luce():
    v = [1.0, 0.5, 0.2, 0.0]
    exact = _exact_pl(v, 0.5, 2)
    n = 20_000
    counts = {}
    for seed in range(n):
        index, _, _ = rerank(v, k=2, temperature=0.5, seed=seed)
        counts[tuple(index)] = counts.get(tuple(index), 0) + 1
    for perm, p in exact.items():
        sigma = np.sqrt(p * (1 - p) / n)
        assert abs(counts.get(perm, 0) / n - p) < 5 * sigma + 1e-4, perm


def test_propensity_estimates_position_marginals():
    v = [1.0, 0.5, 0.2, 0.0]
    exact = _exact_pl(v, 0.5, 3)
    marginal = np.zeros((4, 3))
    for perm, p in exact.items():
        for pos, i in enumerate(perm):
            marginal[i, pos] += p
    samples = 4000
    index, _, propensity = rerank(v, k=3, temperature=0.5, seed=5, propensity_samples=samples)
    for pos, i in enumerate(index):
        p = marginal[i, pos]
        assert abs(propensity[pos] - p) < 5 * np.sqrt(p * (1 - p) / samples) + 2 / samples
    assert np.all(propensity > 0)


def test_exploration_respects_caps_and_window():
    rng = np.random.default_rng(0)
    v = rng.random(200).astype(np.float32)
    merchant = rng.integers(0, 5, 200)
    for seed in range(20):
        index, _, _ = rerank(v, merchant=merchant, k=20, temperature=0.2, max_per_merchant=3,
                             explore_window=30, seed=seed)
        assert np.bincount(merchant[index]).max() <= 3
        assert len(index) == 15  # 5 merchants x 3
    # With a window, items far below it are only reached greedily after the window runs dry.
    index, _, _ = rerank(v, k=10, temperature=5.0, explore_window=10, seed=1)
    assert set(index.tolist()) == set(np.argsort(-v)[:10].tolist())


def test_underflowing_weights_still_sample():
    # The best item is capped away; the rest sit 1e4 temperatures below it.
    v = [100.0, 0.0, -0.001]
    index, choice, _ = rerank(v, merchant=[1, 1, 2], k=3, temperature=0.01, max_per_merchant=1, seed=3)
    assert index[0] == 0 and len(index) == 2
    assert 0 < choice[1] <= 1


def _merge(parts, recent=(), n_items=100, codes=None):
    rows = [np.asarray(p, np.int64) for p in parts]
    scores = [np.arange(len(p), dtype=np.float32) + 10 * i for i, p in enumerate(parts)]
    return _core.merge_candidates(rows, scores, codes or list(range(len(parts))),
                                  np.asarray(recent, np.int64), n_items)


def test_merge_candidates_keeps_first_copies_in_source_order():
    rows, source, score = _merge([[5, 3, 9], [3, 7, 5, 8], [8, 1]], recent=[9, 1, 1])
    assert rows.tolist() == [5, 3, 7, 8]
    assert source.dtype == np.int8 and source.tolist() == [0, 0, 1, 1]
    assert score.tolist() == [0.0, 1.0, 11.0, 13.0]  # each kept row's score from its own source
    # Nothing carries over between calls.
    assert _merge([[9, 1, 5, 3]])[0].tolist() == [9, 1, 5, 3]


def test_merge_candidates_refuses_rows_outside_the_catalogue():
    with pytest.raises(ValueError, match="source 1: row 100"):
        _merge([[1, 2], [3, 100]])
    with pytest.raises(ValueError, match="recent: row -1"):
        _merge([[1]], recent=[-1])
    assert _merge([[1, 2], [3]], recent=[2])[0].tolist() == [1, 3]  # refusals leave no marks
    with pytest.raises(ValueError, match="scores: source 0"):
        _core.merge_candidates([np.arange(3)], [np.zeros(2, np.float32)], [0], np.empty(0, np.int64), 10)
    with pytest.raises(TypeError, match="rows: expected dtype int64"):
        _core.merge_candidates([np.arange(3, dtype=np.int32)], [np.zeros(3, np.float32)], [0],
                               np.empty(0, np.int64), 10)


def test_merge_candidates_scores_kept_rows_from_vectors():
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((1000, 24)).astype(np.float32)
    query = rng.standard_normal(24).astype(np.float32)
    ann = np.array([4, 8, 15], np.int64)
    popular = rng.permutation(1000)[:300].astype(np.int64)
    rows, source, score = _core.merge_candidates(
        [ann, popular], [np.full(3, 9.0, np.float32), None], [0, 1], np.array([16], np.int64), 1000,
        vectors, query)
    from_ann = source == 0
    assert rows[from_ann].tolist() == ann.tolist() and (score[from_ann] == 9.0).all()
    assert 16 not in rows.tolist()
    exact = vectors[rows[~from_ann]].astype(np.float64) @ query.astype(np.float64)
    np.testing.assert_allclose(score[~from_ann], exact, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="source 1: no scores"):
        _core.merge_candidates([ann, popular], [np.zeros(3, np.float32), None], [0, 1], np.empty(0, np.int64), 1000)
    with pytest.raises(ValueError, match="vectors: expected 1000 rows"):
        _core.merge_candidates([ann], [None], [0], np.empty(0, np.int64), 1000, vectors[:10], query)
    with pytest.raises(ValueError, match="query: expected 24 values"):
        _core.merge_candidates([ann], [None], [0], np.empty(0, np.int64), 1000, vectors, query[:5])


def test_merge_candidates_scores_through_vector_rows():
    """Vectors read through per-item rows (the vector index's copy, -1: no
    vector) score exactly as the plain per-item matrix does."""
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors[rng.random(500) < 0.3] = 0.0
    query = rng.standard_normal(16).astype(np.float32)
    has = rng.permutation(np.flatnonzero(vectors.any(axis=1)))
    vector_rows = np.full(500, -1, np.int32)
    vector_rows[has] = np.arange(len(has), dtype=np.int32)
    popular = rng.permutation(500)[:200].astype(np.int64)
    none = np.empty(0, np.int64)
    plain = _core.merge_candidates([popular], [None], [1], none, 500, vectors, query)
    shared = _core.merge_candidates([popular], [None], [1], none, 500, vectors[has], query, vector_rows)
    for a, b in zip(plain, shared):
        assert a.tobytes() == b.tobytes()
    assert (vector_rows[shared[0]] < 0).any()
    with pytest.raises(ValueError, match="vector_rows: expected 500 values"):
        _core.merge_candidates([popular], [None], [1], none, 500, vectors[has], query, vector_rows[:10])
    wrong = vector_rows.copy()
    wrong[popular[3]] = len(has)
    with pytest.raises(ValueError, match=f"vector_rows: item {popular[3]} names row {len(has)}"):
        _core.merge_candidates([popular], [None], [1], none, 500, vectors[has], query, wrong)


def test_merge_candidates_from_many_threads():
    rng = np.random.default_rng(3)
    cases = [[rng.integers(0, 5000, 300), rng.integers(0, 5000, 80)] for _ in range(40)]
    recents = [rng.integers(0, 5000, 10) for _ in range(40)]

    def expected(parts, recent):
        seen, out = set(recent.tolist()), []
        for p in parts:
            for r in p.tolist():
                if r not in seen:
                    seen.add(r)
                    out.append(r)
        return out

    want = [expected(p, r) for p, r in zip(cases, recents)]
    results = {}

    def work(t):
        results[t] = [_merge(p, r, 5000)[0].tolist() for p, r in zip(cases, recents) for _ in range(5)][::5]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[t] == want for t in range(4))


# ---- the first phase's cut ---------------------------------------------------------------

@pytest.mark.parametrize("n, count", [(0, 5), (1, 1), (10, 3), (500, 128), (100, 100), (50, 80)])
def test_best_positions_are_the_top_scores_in_candidate_order(n, count):
    rng = np.random.default_rng(n * 1000 + count)
    score = rng.integers(0, 20, n).astype(np.float32)  # many ties: the lower position wins
    got = _core.best_positions(score, count)
    expected = np.sort(np.lexsort((np.arange(n), -score))[:count])
    assert got.dtype == np.int64 and np.array_equal(got, expected)


def test_best_positions_refuse_nan():
    with pytest.raises(ValueError, match="score: NaN at candidate 2"):
        _core.best_positions(np.array([1, 2, np.nan], np.float32), 1)
