"""engine._core.SurfaceScorer (cpp/rerank/scorer.hpp): a surface's first phase,
heads, value blend and re-rank in one native call give exactly what the same
steps give one call at a time (FirstPhase.keep, Forest.predict, ValueBlend,
_core.rerank), with and without a first phase, caps, diversity and
exploration; bad inputs are refused naming the argument."""

import msgspec
import numpy as np
import pytest
from pipeline_support import candidates_step_by_step, rank_request

from engine import _core
from engine.bundle import with_surfaces
from engine.bundle.serving import Serving
from engine.quickstart import spec as world_spec
from engine.ranking import RerankPolicy, ValueModel, ValueTerm
from engine.ranking.ranker import Ranker, _recent_rows, _request_fields
from engine.ranking.value_model import RETRIEVAL_SCORE

# First phases: one head's first trees (the full heads then continue the
# first phase's sums: scorer.hpp), the second head's (a tree range in the
# middle of the forest), and two heads' (the heads walk every tree again).
FIRST = {
    "two phases": ValueModel(terms=[ValueTerm("click5", 1.0, ["p_click[:5]"]), ValueTerm("ann", 0.2, [RETRIEVAL_SCORE])]),
    "second head's prefix": ValueModel(terms=[ValueTerm("order7", 1.0, ["p_order[:7]"])]),
    "two prefixes": ValueModel(terms=[ValueTerm("click5", 1.0, ["p_click[:5]"]), ValueTerm("order3", 0.5, ["p_order[:3]"])]),
}
POLICIES = {
    "greedy": RerankPolicy(),
    "caps and diversity": RerankPolicy(max_per_merchant=2, max_per_category=3, category_decay=0.7),
    "exploring": RerankPolicy(max_per_merchant=3, temperature=0.3, explore_window=30, propensity_samples=50),
}


@pytest.fixture(scope="module", params=["one phase", *FIRST])
def serving(request, pipeline, tmp_path_factory):
    first = FIRST.get(request.param)
    surfaces = {name: msgspec.structs.replace(s, first_phase=first, rerank_count=40 if first else 0)
                for name, s in world_spec.surfaces(trained=True).items()}
    return Serving(with_surfaces(pipeline.bundle, tmp_path_factory.mktemp("scorer") / "bundle", surfaces))


def _candidates_of(s: Serving, req):
    ranker = Ranker(s)
    row = s.user_row(req.user_id)
    recent = _recent_rows(s, req.recent_item_ids)
    vector = ranker._user_vector(s, req, row, recent)
    rows, _, retrieval = candidates_step_by_step(s, s.manifest.surfaces[req.surface], req.filters, vector, recent)
    return s.assembler.assemble(rows, _request_fields(s, req, row, vector)), rows, retrieval


def _step_by_step(s: Serving, surface: str, X, rows, retrieval, k, p: RerankPolicy, seed: int):
    settings = s.manifest.surfaces[surface]
    keep = np.arange(len(rows))
    if settings.first_phase is not None and 0 < settings.rerank_count < len(rows):
        keep = s.first_phases[surface].keep(X, rows, retrieval, settings.rerank_count)
    rows, retrieval, X = rows[keep], retrieval[keep], X[keep]
    heads = s.forest.predict(X).reshape(len(rows), -1)
    value, terms = s.blends[surface].evaluate(rows, heads, retrieval)
    merchant = s.columns["merchant_id"][rows] if p.max_per_merchant else None
    category = s.columns["category_id"][rows] if p.max_per_category or p.category_decay != 1.0 else None
    index, choice, propensity = _core.rerank(value, None, merchant, category, k, p.max_per_merchant,
                                             p.max_per_category, p.category_decay, p.temperature,
                                             p.explore_window, p.propensity_samples, seed)
    return keep[index], value[index], heads[index].T, terms[:, index], choice, propensity


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_one_call_equals_the_steps_bit_for_bit(serving, pipeline, policy):
    p = POLICIES[policy]
    checked = 0
    for i, r in enumerate(pipeline.requests[:12]):
        req = rank_request(r, explore=False)
        X, rows, retrieval = _candidates_of(serving, req)
        k, seed = 10, 1000 + i
        want = _step_by_step(serving, req.surface, X, rows, retrieval, k, p, seed)
        got = serving.scorers[req.surface].score(X, rows, retrieval, k, p.max_per_merchant, p.max_per_category,
                                                 p.category_decay, p.temperature, p.explore_window,
                                                 p.propensity_samples, seed)
        for name, a, b in zip(("shown", "value", "heads", "terms", "choice"), got[:5], want[:5]):
            np.testing.assert_array_equal(a, b, err_msg=name)
        assert (got[5] is None) == (want[5] is None)
        if want[5] is not None:
            np.testing.assert_array_equal(got[5], want[5])
        assert all(t >= 0 for t in got[6])
        checked += len(rows) > 40
    assert checked, "no request had more candidates than the first phase keeps"


def test_bad_inputs_name_the_argument(serving, pipeline):
    req = rank_request(pipeline.requests[0], explore=False)
    X, rows, retrieval = _candidates_of(serving, req)
    scorer = serving.scorers[req.surface]

    def score(X=X, rows=rows, retrieval=retrieval, merchant_cap=0):
        return scorer.score(X, rows, retrieval, 10, merchant_cap, 0, 1.0, 0.0, 0, 0, 1)

    with pytest.raises(ValueError, match="X"):
        score(X=X[:, :-1].copy())
    with pytest.raises(ValueError, match="X"):
        score(X=X[:-1])
    with pytest.raises(TypeError, match="X"):
        score(X=X.astype(np.float64))
    with pytest.raises(ValueError, match="retrieval"):
        score(retrieval=retrieval[:-1])
    bad = rows.copy()
    bad[3] = serving.manifest.n_items
    with pytest.raises(ValueError, match=r"rows\[3\]"):
        score(rows=bad)
    nan = X.copy()
    nan[:] = np.nan  # missing features are fine (each split's default side)
    assert len(score(X=nan)[0]) == 10
