"""engine.metrics equals pytrec_eval (trec_eval) to 1e-9: on the predictions of a
LightGBM model trained on ../shared/data/lambdarank, and on random runs full of
tied scores, unjudged and missed documents, and queries without relevant ones."""

import string
from itertools import pairwise

import lightgbm
import numpy as np
import pytest
import pytrec_eval

from engine import metrics
from ranking_support import group_sizes, labels, lightgbm_params, path, requires_data

CUTOFFS = (1, 3, 5, 10, 20)
# engine name -> trec_eval measure (for "@k" names, the cut is appended as "_k")
TREC = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P", "hit_rate": "success"}


def trec_eval(run, qrels, measures):
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def top_k(run, k):
    """The run cut to its first k documents in trec_eval's order."""
    return {q: dict(sorted(docs.items(), key=lambda d: (d[1], d[0]), reverse=True)[:k])
            for q, docs in run.items()}


def assert_matches_trec_eval(run, qrels):
    cuts = ",".join(map(str, CUTOFFS))
    want = trec_eval(run, qrels, {f"{m}.{cuts}" for m in TREC.values()} | {"map", "ndcg", "recip_rank"})
    burges = trec_eval(run, {q: {d: 2 ** g - 1 for d, g in j.items()} for q, j in qrels.items()},
                       {f"ndcg_cut.{cuts}"})
    names = [f"{m}@{k}" for m in TREC for k in CUTOFFS] + ["map", "ndcg", "mrr"]
    names += [f"ndcg_burges@{k}" for k in CUTOFFS] + [f"mrr@{k}" for k in CUTOFFS]
    got = metrics.evaluate_per_query(run, qrels, names)
    assert set(got) == set(want) and len(got) > 0
    for q, values in got.items():
        for m in TREC:
            for k in CUTOFFS:
                assert values[f"{m}@{k}"] == pytest.approx(want[q][f"{TREC[m]}_{k}"], abs=1e-9), (q, m, k)
                assert values[f"ndcg_burges@{k}"] == pytest.approx(burges[q][f"ndcg_cut_{k}"], abs=1e-9)
        assert values["map"] == pytest.approx(want[q]["map"], abs=1e-9)
        assert values["ndcg"] == pytest.approx(want[q]["ndcg"], abs=1e-9)
        assert values["mrr"] == pytest.approx(want[q]["recip_rank"], abs=1e-9)
    for k in CUTOFFS:
        cut = trec_eval(top_k(run, k), qrels, {"recip_rank"})
        for q in got:
            assert got[q][f"mrr@{k}"] == pytest.approx(cut[q]["recip_rank"], abs=1e-9)
    means = metrics.evaluate(run, qrels, ["ndcg@10", "map"])
    assert means["ndcg@10"] == pytest.approx(np.mean([w["ndcg_cut_10"] for w in want.values()]), abs=1e-12)
    assert means["map"] == pytest.approx(np.mean([w["map"] for w in want.values()]), abs=1e-12)


@pytest.fixture(scope="module")
def lightgbm_run():
    """Scores of rank.test by a model trained on rank.train, as flat arrays and as a run."""
    booster = lightgbm.train(lightgbm_params(), lightgbm.Dataset(path("rank.train")), num_boost_round=30)
    scores = booster.predict(path("rank.test"), num_threads=1)
    grades = labels("rank.test")
    offsets = np.concatenate([[0], np.cumsum(group_sizes("rank.test"))])
    # Doc ids that fall with the position, so trec_eval's tie rule (doc id
    # descending) and the offsets API's (input order) rank ties alike.
    run, qrels = {}, {}
    for q, (lo, hi) in enumerate(pairwise(offsets)):
        docs = [f"d{9999 - i:04d}" for i in range(lo, hi)]
        run[f"q{q}"] = dict(zip(docs, scores[lo:hi].tolist()))
        qrels[f"q{q}"] = dict(zip(docs, grades[lo:hi].astype(int).tolist()))
    return scores, grades, offsets, run, qrels


@requires_data
def test_real_run_matches_trec_eval(lightgbm_run):
    _, _, _, run, qrels = lightgbm_run
    assert_matches_trec_eval(run, qrels)


@requires_data
def test_offsets_api_agrees_with_evaluate_on_the_real_run(lightgbm_run):
    scores, grades, offsets, run, qrels = lightgbm_run
    per_query = metrics.evaluate_per_query(run, qrels, ["ndcg@10", "ndcg_burges@5", "map@10", "mrr", "recall@5",
                                                        "precision@3", "hit_rate@1", "auc"])
    columns = {name: np.array([v[name] for v in per_query.values()]) for name in next(iter(per_query.values()))}
    np.testing.assert_allclose(metrics.ndcg(scores, grades, offsets, 10), columns["ndcg@10"], atol=1e-12)
    np.testing.assert_allclose(metrics.ndcg(scores, grades, offsets, 5, gain="exponential"),
                               columns["ndcg_burges@5"], atol=1e-12)
    np.testing.assert_allclose(metrics.map(scores, grades, offsets, 10), columns["map@10"], atol=1e-12)
    np.testing.assert_allclose(metrics.mrr(scores, grades, offsets), columns["mrr"], atol=1e-12)
    np.testing.assert_allclose(metrics.recall(scores, grades, offsets, 5), columns["recall@5"], atol=1e-12)
    np.testing.assert_allclose(metrics.precision(scores, grades, offsets, 3), columns["precision@3"], atol=1e-12)
    np.testing.assert_allclose(metrics.hit_rate(scores, grades, offsets, 1), columns["hit_rate@1"], atol=1e-12)
    np.testing.assert_allclose(metrics.auc(scores, grades, offsets), columns["auc"], atol=1e-12)


def random_run(seed, n_queries=300):
    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_letters + string.digits + "-_"))
    run, qrels = {}, {}
    for q in range(n_queries):
        pool = sorted({"".join(rng.choice(alphabet, rng.integers(1, 6))) for _ in range(rng.integers(1, 40))})
        retrieved = rng.permutation(pool)[: rng.integers(1, len(pool) + 1)].tolist()
        # Scores on a coarse grid: most queries have runs of tied scores.
        run[f"q{q}"] = {d: float(rng.integers(0, 5)) / 4 for d in retrieved}
        if q % 10 == 9:
            continue  # in the run, not in the qrels: not evaluated
        judged = rng.permutation(pool)[: rng.integers(0, len(pool) + 1)].tolist()  # may be empty
        relevant_share = 0.0 if q % 7 == 0 else 0.4  # some queries have nothing relevant
        qrels[f"q{q}"] = {d: int(rng.integers(1, 4)) if rng.random() < relevant_share else 0 for d in judged}
    qrels["judged only"] = {"x": 2}  # in the qrels, not in the run: not evaluated
    return run, qrels


@pytest.mark.parametrize("seed", [0, 1])
def test_random_runs_with_ties_match_trec_eval(seed):
    run, qrels = random_run(seed)
    assert_matches_trec_eval(run, qrels)


def test_auc_counts_pairs_and_halves_ties():
    rng = np.random.default_rng(3)
    sizes = rng.integers(2, 30, 100)
    scores = rng.integers(0, 4, sizes.sum()).astype(float)
    grades = rng.integers(0, 3, sizes.sum()).astype(float)
    got = metrics.auc(scores, grades, group_sizes=sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for q, (lo, hi) in enumerate(pairwise(offsets)):
        pos, neg = scores[lo:hi][grades[lo:hi] > 0], scores[lo:hi][grades[lo:hi] == 0]
        if len(pos) == 0 or len(neg) == 0:
            assert np.isnan(got[q])
        else:
            pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
            assert got[q] == pytest.approx(pairs.mean(), abs=1e-12)


def test_offsets_api_breaks_ties_by_input_order():
    # Both items score 1.0: the first one in the input ranks first.
    assert metrics.mrr([1.0, 1.0], [0, 1], [0, 2]).tolist() == [0.5]
    assert metrics.mrr([1.0, 1.0], [1, 0], [0, 2]).tolist() == [1.0]
