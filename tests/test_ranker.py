"""engine.Ranker on a small generated world: stages, rules, cold start, bad input, threads, swap."""

import threading

import numpy as np
import pytest
from pipeline_support import candidates_step_by_step, rank_request, same_response

from engine import _core
from engine.ranking import Ranker, RankRequest


@pytest.fixture(scope="module")
def ranker(pipeline):
    with Ranker.load(pipeline.bundle) as r:
        yield r


def _by_surface(pipeline, surface, n=5):
    return [r for r in pipeline.requests if r["surface"] == surface][:n]


def test_rank_returns_k_unique_items_with_components(ranker, pipeline):
    req = rank_request(_by_surface(pipeline, "home")[0], explore=False)
    resp = ranker.rank(req)
    assert len(resp.item_ids) == 20 and len(set(resp.item_ids.tolist())) == 20
    assert resp.item_ids.dtype == np.uint64
    assert {"p_click", "p_order", "click", "order", "gmv", "merchant"} <= set(resp.components)
    total = sum(resp.components[t] for t in ("click", "order", "gmv", "merchant"))
    np.testing.assert_allclose(resp.value, total, rtol=1e-5, atol=1e-7)
    assert np.all((resp.components["p_click"] > 0) & (resp.components["p_click"] < 1))
    assert resp.propensities is None and not resp.cold_start
    assert set(resp.timings_us) >= {"candidates", "features", "heads", "value", "rerank", "total"}
    # home feed: at most 3 items per merchant
    world = pipeline.world
    merchants = world.items.column("merchant_id").to_numpy()[world.item_rows(resp.item_ids)]
    assert np.bincount(merchants).max() <= 3


def test_filters_hold(ranker, pipeline):
    world = pipeline.world
    store = _by_surface(pipeline, "store")[0]
    resp = ranker.rank(rank_request(store, explore=False))
    rows = world.item_rows(resp.item_ids)
    assert len(rows) > 0
    assert np.all(world.items.column("merchant_id").to_numpy()[rows] == store["filters"]["merchant_id"])
    search = _by_surface(pipeline, "search")[0]
    resp = ranker.rank(rank_request(search, explore=False, filters={**search["filters"], "in_stock": True}))
    rows = world.item_rows(resp.item_ids)
    assert np.all(world.items.column("in_stock").to_numpy()[rows])
    assert np.all(np.isin(world.items.column("category_id").to_numpy()[rows], search["filters"]["category_id"]))


def test_recent_items_are_not_shown_again(ranker, pipeline):
    req = rank_request(_by_surface(pipeline, "home")[1], explore=False)
    first = ranker.rank(req)
    req.recent_item_ids = first.item_ids[:5].tolist()
    again = ranker.rank(req)
    assert not set(first.item_ids[:5].tolist()) & set(again.item_ids.tolist())


def test_cold_start_user(ranker, pipeline):
    base = _by_surface(pipeline, "home")[0]
    req = rank_request(base, explore=False, user_id=2**63 + 12345, recent_item_ids=None)
    resp = ranker.rank(req)
    assert resp.cold_start and len(resp.item_ids) == 20
    assert set(np.unique(resp.sources).tolist()) <= {1, 2}  # popular and new sources only


def test_new_items_reach_shoppers(ranker, pipeline):
    world = pipeline.world
    no_vector = ~world.items.column("has_vector").to_numpy()
    shown_new = 0
    for r in pipeline.requests[:60]:
        resp = ranker.rank(rank_request(r, explore=False))
        rows = world.item_rows(resp.item_ids)
        shown_new += int(no_vector[rows].sum())
        # only the new-item source reaches items without an embedding, and it holds nothing else
        assert np.array_equal(resp.sources == 2, no_vector[rows])
    assert shown_new > 0


@pytest.mark.parametrize("change, match", [
    (dict(surface="checkout"), "surface: unknown 'checkout'"),
    (dict(filters={"colour": 3}), "filters: unknown attribute 'colour'"),
    (dict(k=0), "k: expected an integer >= 1"),
    (dict(k=True), "k: expected an integer >= 1"),
    (dict(user_vector=[float("nan")] * 16), "user_vector: holds NaN"),
    (dict(user_vector=[0.1] * 3), "user_vector: expected 16 values"),
    (dict(context={"device": "ios"}), "context: missing field"),
])
def test_bad_requests_name_the_field(ranker, pipeline, change, match):
    req = rank_request(_by_surface(pipeline, "home")[0], **change)
    with pytest.raises(ValueError, match=match):
        ranker.rank(req)


@pytest.mark.parametrize("change, match", [
    (dict(filters={"merchant_id": "shoes"}), r"filter\['merchant_id'\]: attribute is integer"),
    (dict(filters={"in_stock": 3}), r"filter\['in_stock'\]: attribute is boolean"),
    (dict(filters={"category_id": [1.5]}), r"filter\['category_id'\]"),
    # a cold-start request never reaches the index: the ranker checks the values itself
    (dict(filters={"merchant_id": "shoes"}, user_id=2**63 + 7, recent_item_ids=None), r"filter\['merchant_id'\]"),
])
def test_filter_values_of_the_wrong_type(ranker, pipeline, change, match):
    req = rank_request(_by_surface(pipeline, "home")[0], **change)
    with pytest.raises(TypeError, match=match):
        ranker.rank(req)


def test_exploration_logs_propensities_and_is_seeded(pipeline):
    with Ranker.load(pipeline.logging_bundle) as r:
        req = rank_request(_by_surface(pipeline, "home")[0], seed=42)
        a, b = r.rank(req), r.rank(req)
        assert np.array_equal(a.item_ids, b.item_ids)
        assert a.propensities is not None and np.all((a.propensities > 0) & (a.propensities <= 1))
        others = []
        for seed in range(43, 53):
            req.seed = seed
            others.append(r.rank(req).item_ids)
        assert any(not np.array_equal(o, a.item_ids) for o in others)
        req.explore = False
        assert r.rank(req).propensities is None


def test_json_request_decodes():
    import msgspec

    body = b'{"surface": "home", "user_id": 5, "k": 10, "filters": {"in_stock": true}, "context": {"hour": 3}}'
    req = msgspec.json.decode(body, type=RankRequest)
    assert req.k == 10 and req.filters == {"in_stock": True}


def test_threads_and_batch_agree_with_serial(ranker, pipeline):
    reqs = [rank_request(r, explore=False) for r in pipeline.requests[:80]]
    serial = [ranker.rank(r) for r in reqs]
    batch = ranker.rank_batch(reqs, threads=2)
    assert all(same_response(a, b) for a, b in zip(serial, batch))
    results = [None] * 4

    def worker(t):
        results[t] = [ranker.rank(r) for r in reqs]

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        assert all(same_response(a, b) for a, b in zip(serial, got))


def test_swap_under_load_never_mixes_bundles(pipeline):
    """Requests in flight during swaps each see exactly one bundle, and never fail."""
    reqs = [rank_request(r, explore=False) for r in pipeline.requests[:40]]
    with Ranker.load(pipeline.bundle) as a_ranker, Ranker.load(pipeline.logging_bundle) as b_ranker:
        expected = {a_ranker.bundle_version: [a_ranker.rank(r) for r in reqs],
                    b_ranker.bundle_version: [b_ranker.rank(r) for r in reqs]}
    ranker = Ranker.load(pipeline.bundle)
    stop = threading.Event()
    errors, seen = [], []

    def serve():
        while not stop.is_set():
            for i, r in enumerate(reqs):
                try:
                    resp = ranker.rank(r)
                except Exception as e:  # noqa: BLE001 - any failure is the test's failure
                    errors.append(e)
                    return
                seen.append((i, resp))

    workers = [threading.Thread(target=serve) for _ in range(3)]
    for w in workers:
        w.start()
    for n in range(6):
        ranker.swap(pipeline.logging_bundle if n % 2 == 0 else pipeline.bundle, verify=False)
    stop.set()
    for w in workers:
        w.join()
    assert not errors
    versions = {resp.bundle_version for _, resp in seen}
    assert versions <= set(expected) and len(seen) > 0
    for i, resp in seen:
        assert same_response(resp, expected[resp.bundle_version][i])


def test_swap_to_a_bad_bundle_keeps_serving(pipeline, tmp_path):
    ranker = Ranker.load(pipeline.bundle)
    version = ranker.bundle_version
    with pytest.raises(ValueError, match="not a bundle"):
        ranker.swap(tmp_path)
    assert ranker.bundle_version == version
    ranker.rank(rank_request(pipeline.requests[0]))


def test_first_phase_keeps_the_best_candidates_for_the_heads(pipeline, tmp_path):
    """With rerank_count = k and no rules, the shown items are exactly the k best by the
    first-phase model (here the retrieval score), whatever the heads say."""
    import msgspec

    from engine.bundle import with_surfaces
    from engine.quickstart import spec as world_spec
    from engine.ranking import RerankPolicy, ValueModel, ValueTerm

    by_retrieval = ValueModel(terms=[ValueTerm("retrieval", 1.0, ["retrieval_score"])])
    trained = world_spec.surfaces(trained=True)
    two_phase = {name: msgspec.structs.replace(s, first_phase=by_retrieval, rerank_count=20, rerank=RerankPolicy())
                 for name, s in trained.items()}
    plain = {name: msgspec.structs.replace(s, value_model=by_retrieval, rerank=RerankPolicy(), first_phase=None,
                                           rerank_count=0)
             for name, s in trained.items()}
    a = with_surfaces(pipeline.bundle, tmp_path / "two_phase", two_phase)
    b = with_surfaces(pipeline.bundle, tmp_path / "plain", plain)
    with Ranker.load(a) as two, Ranker.load(b) as one:
        for r in pipeline.requests[:20]:
            req = rank_request(r, explore=False)
            x, y = two.rank(req), one.rank(req)
            assert set(x.item_ids.tolist()) == set(y.item_ids.tolist())
            assert "p_click" in x.components  # the heads still ran, on the 20 kept


def test_first_phase_cannot_read_heads(pipeline, tmp_path):
    from engine.bundle import build_bundle
    from engine.quickstart import spec as world_spec
    from engine.ranking import SurfaceSettings, ValueModel, ValueTerm

    world = pipeline.world
    bad = {"home": SurfaceSettings(value_model=ValueModel(terms=[ValueTerm("c", 1.0, ["p_click"])]),
                                   first_phase=ValueModel(terms=[ValueTerm("c", 1.0, ["p_click"])]),
                                   rerank_count=50)}
    with pytest.raises(ValueError, match=r"first_phase.*p_click"):
        build_bundle(tmp_path / "b", items=world_spec.items_table(world), item_vectors=world.item_vectors,
                     feature_spec=pipeline.spec, surfaces=bad, models=pipeline.bundle + "/forest.ref")


def test_first_phase_on_a_heads_first_trees(pipeline, tmp_path):
    """first_phase "p_click[:5]": the kept candidates are the best by the first 5 trees' raw score."""
    import msgspec

    from engine.bundle import with_surfaces
    from engine.quickstart import spec as world_spec
    from engine.ranking import RerankPolicy, ValueModel, ValueTerm
    from engine.ranking.ranker import _recent_rows, _request_fields

    prefix = ValueModel(terms=[ValueTerm("click5", 1.0, ["p_click[:5]"])])
    surfaces = {name: msgspec.structs.replace(s, first_phase=prefix, rerank_count=20, rerank=RerankPolicy())
                for name, s in world_spec.surfaces(trained=True).items()}
    out = with_surfaces(pipeline.bundle, tmp_path / "prefix", surfaces)
    with Ranker.load(out) as ranker:
        s = ranker._serving
        for r in pipeline.requests[:15]:
            req = rank_request(r, explore=False)
            resp = ranker.rank(req)
            row = s.user_row(req.user_id)
            recent = _recent_rows(s, req.recent_item_ids)
            vector = ranker._user_vector(s, req, row, recent)
            rows, _, _ = candidates_step_by_step(s, s.manifest.surfaces[req.surface], req.filters, vector, recent)
            X = s.assembler.assemble(rows, _request_fields(s, req, row, vector))
            score = dict(zip(s.item_ids[rows].tolist(), s.forest.predict_prefix(X, "p_click", 5).tolist()))
            # a few trees give few distinct scores: compare the kept scores, not which of tied items
            kept = sorted((score[i] for i in resp.item_ids.tolist()), reverse=True)
            assert kept == sorted(score.values(), reverse=True)[:20]


def test_first_phase_prefix_is_checked(pipeline, tmp_path):
    import msgspec

    from engine.bundle import with_surfaces
    from engine.quickstart import spec as world_spec
    from engine.ranking import ValueModel, ValueTerm

    base = world_spec.surfaces(trained=True)["home"]
    for factor, match in (("p_click[:100000]", "at least 100000 trees"), ("p_view[:5]", "p_view")):
        bad = {"home": msgspec.structs.replace(base, first_phase=ValueModel(terms=[ValueTerm("x", 1.0, [factor])]),
                                               rerank_count=10)}
        with pytest.raises(ValueError, match=match):
            with_surfaces(pipeline.bundle, tmp_path / "bad", bad)
    in_value_model = {"home": msgspec.structs.replace(
        base, value_model=ValueModel(terms=[ValueTerm("x", 1.0, ["p_click[:5]"])]))}
    with pytest.raises(ValueError, match=r"p_click\[:5\]"):
        with_surfaces(pipeline.bundle, tmp_path / "bad2", in_value_model)


def test_rank_batch_with_logging_loses_nothing(pipeline, tmp_path):
    from engine.impressions import ImpressionLogger, read_impressions

    reqs = [rank_request(r, explore=False) for r in pipeline.requests[:120]]
    with ImpressionLogger(tmp_path / "logs", batch_records=16) as logger, \
            Ranker.load(pipeline.bundle, logger=logger) as ranker:
        responses = ranker.rank_batch(reqs, threads=2)
    log = read_impressions(tmp_path / "logs")
    assert sorted(log.column("request_id").to_pylist()) == sorted(r.request_id for r in reqs)
    by_id = {r.request_id: r for r in responses}
    for rec in log.slice(0, 10).to_pylist():
        assert rec["item_ids"] == by_id[rec["request_id"]].item_ids.tolist()


def test_concurrent_batches_with_different_thread_counts(ranker, pipeline):
    reqs = [rank_request(r, explore=False) for r in pipeline.requests[:40]]
    serial = [ranker.rank(r) for r in reqs]
    results, errors = {}, []

    def run(threads):
        try:
            for _ in range(3):
                results[threads] = ranker.rank_batch(reqs, threads=threads)
        except Exception as e:  # noqa: BLE001 - any failure is the test's failure
            errors.append(e)

    workers = [threading.Thread(target=run, args=(t,)) for t in (2, 3, 4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    for got in results.values():
        assert all(same_response(a, b) for a, b in zip(serial, got))


def test_native_candidate_stage_equals_the_step_by_step_path(ranker, pipeline):
    """Serving.candidates (search, lists and merge in one native call) gives
    candidates_step_by_step's rows, sources and scores bit for bit: with and without a
    user vector, store / category / stock filters alone and together, lists
    of values, a value with no items, recent items dropped, no ANN share."""
    import msgspec

    from engine.ranking.ranker import _conditions, _recent_rows

    s = ranker._serving
    store = next(r for r in pipeline.requests if r["surface"] == "store")
    search = next(r for r in pipeline.requests if r["surface"] == "search")
    merchant, category = store["filters"]["merchant_id"], np.ravel(search["filters"]["category_id"])[0].item()
    variants = [None, {}, {"in_stock": True}, {"in_stock": False}, {"merchant_id": merchant},
                {"merchant_id": merchant, "in_stock": True}, {"category_id": category, "in_stock": True},
                {"category_id": [category, category, 10**9]}, {"merchant_id": [merchant], "category_id": category},
                {"merchant_id": 10**9}, {"category_id": []}]
    compared = 0
    for r in pipeline.requests[:24]:
        for filters in variants:
            req = rank_request(r, explore=False)
            if filters is not None:
                req.filters = filters
            recent = _recent_rows(s, req.recent_item_ids)
            conditions = _conditions(s, req.filters)
            for vector in (ranker._user_vector(s, req, s.user_row(req.user_id), recent), None):
                for settings in (s.manifest.surfaces[req.surface],
                                 msgspec.structs.replace(s.manifest.surfaces[req.surface], ann_candidates=0)):
                    expected = candidates_step_by_step(s, settings, req.filters, vector, recent)
                    got = s.candidates.run(vector, settings.ann_candidates, conditions, settings.ann_ef or 0,
                                           settings.popular_candidates, settings.new_item_candidates, recent)
                    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(got, expected))
                    compared += len(got[0])
    assert compared > 10_000


def test_native_candidate_stage_refuses_bad_arguments(ranker):
    s = ranker._serving
    none = np.empty(0, np.int64)
    v = np.ones(s.manifest.dim, np.float32)
    with pytest.raises(ValueError, match="filters: unknown attribute 'colour'"):
        s.candidates.run(v, 10, [("colour", np.array([1]))], 0, 5, 5, none)
    with pytest.raises(ValueError, match="user_vector: holds NaN"):
        s.candidates.run(np.full(s.manifest.dim, np.nan, np.float32), 10, [], 0, 5, 5, none)
    with pytest.raises(ValueError, match="user_vector: expected"):
        s.candidates.run(v[:3], 10, [], 0, 5, 5, none)
    with pytest.raises(TypeError, match="filter values: expected dtype int64"):
        s.candidates.run(v, 10, [("in_stock", np.array([True]))], 0, 5, 5, none)
    with pytest.raises(ValueError, match="recent: row"):
        s.candidates.run(v, 10, [], 0, 5, 5, np.array([-1]))


def test_candidates_are_unique_without_recent_items_and_the_bitmap_is_left_clean(ranker, pipeline):
    from engine.ranking.ranker import _conditions, _recent_rows

    s = ranker._serving
    for r in pipeline.requests[:60]:
        req = rank_request(r, explore=False)
        recent = _recent_rows(s, req.recent_item_ids)
        vector = ranker._user_vector(s, req, s.user_row(req.user_id), recent)
        rows, source, retrieval = candidates_step_by_step(s, s.manifest.surfaces[req.surface], req.filters, vector, recent)
        assert len(np.unique(rows)) == len(rows) == len(source) == len(retrieval)
        assert not np.isin(rows, recent).any()
        # The native merge's bitmap is clear again: the same rows, and the
        # recent ones, all come back from a merge with nothing recent.
        again = np.concatenate([rows, np.unique(recent)])
        kept, _, _ = _core.merge_candidates([again], [np.zeros(len(again), np.float32)], [0],
                                            np.empty(0, np.int64), s.manifest.n_items)
        assert np.array_equal(kept, again)
    dup = rank_request(_by_surface(pipeline, "search")[0], explore=False)
    dup.filters = {"category_id": [dup.filters["category_id"][0]] * 2}
    shown = ranker.rank(dup).item_ids
    assert len(shown) and len(set(shown.tolist())) == len(shown)
