"""engine.losses as LightGBM custom objectives on ../shared/data/lambdarank.

The engine's LambdaRank, with LightGBM's parameters, grows the same first
tree as LightGBM's built-in ``lambdarank`` from any starting scores (ties
included) and reaches the same test NDCG@10 within 1 %. Every other objective
trains through the same adapter.
"""

import lightgbm
import numba
import numpy as np
import pytest

from engine import losses, metrics
from ranking_support import group_sizes, labels, lightgbm_params, one_numba_thread, path, requires_data  # noqa: F401

pytestmark = requires_data
# LightGBM's defaults for lambdarank, under both names.
DEFAULTS = {"lambdarank_truncation_level": 30, "lambdarank_norm": True, "sigmoid": 1.0}


def engine_params(lightgbm_names):
    return {"k": lightgbm_names["lambdarank_truncation_level"], "norm": lightgbm_names["lambdarank_norm"],
            "sigma": lightgbm_names["sigmoid"]}


def test_test_ndcg_at_10_within_1_percent_of_builtin_lambdarank():
    ndcg = {}
    for name, objective in [("builtin", "lambdarank"),
                            ("engine", losses.lightgbm_objective("lambdarank", **engine_params(DEFAULTS)))]:
        train = lightgbm.Dataset(path("rank.train"))
        test = lightgbm.Dataset(path("rank.test"), reference=train)
        history = {}
        lightgbm.train(lightgbm_params(objective=objective, metric="ndcg", eval_at=[10], **DEFAULTS), train,
                       num_boost_round=50, valid_sets=[test], valid_names=["test"],
                       callbacks=[lightgbm.record_evaluation(history)])
        ndcg[name] = history["test"]["ndcg@10"][-1]
    assert ndcg["builtin"] > 0.7
    assert abs(ndcg["engine"] - ndcg["builtin"]) <= 0.01 * ndcg["builtin"], ndcg


@pytest.mark.parametrize("options", [
    DEFAULTS,
    {"lambdarank_truncation_level": 5, "lambdarank_norm": False, "sigmoid": 2.0},
    {"lambdarank_truncation_level": 1000, "lambdarank_norm": True, "sigmoid": 0.5},
])
def test_first_tree_equals_builtin_from_tied_starting_scores(options):
    # Scores on a 0.1 grid: most queries have ties, which both sides break by
    # input order. The only difference left is LightGBM's sigmoid lookup table.
    start = np.round(np.random.default_rng(0).standard_normal(len(labels("rank.train"))), 1)
    trees = [
        lightgbm.train(lightgbm_params(objective=objective, **options),
                       lightgbm.Dataset(path("rank.train"), init_score=start), num_boost_round=1)
        for objective in ("lambdarank", losses.lightgbm_objective("lambdarank", **engine_params(options)))]
    builtin, engine_tree = (tree.predict(path("rank.test"), num_threads=1) for tree in trees)
    assert np.ptp(builtin) > 0
    np.testing.assert_allclose(engine_tree, builtin, atol=1e-4 * np.abs(builtin).max())


@pytest.mark.parametrize("name", losses.OBJECTIVES)
@pytest.mark.usefixtures("one_numba_thread")
def test_every_objective_trains_through_the_adapter(name):
    grades = labels("rank.train")
    binary = name in ("sigmoid_cross_entropy", "sampled_softmax")
    train = lightgbm.Dataset(path("rank.train"), label=(grades >= 2).astype(float) if binary else None)
    booster = lightgbm.train(lightgbm_params(objective=losses.lightgbm_objective(name)), train, num_boost_round=20)
    scores = booster.predict(path("rank.test"), num_threads=1)
    ndcg = metrics.ndcg(scores, labels("rank.test"), k=10, gain="exponential", group_sizes=group_sizes("rank.test"))
    assert ndcg.mean() > 0.68  # random scores: 0.58; 20 rounds of any objective here: 0.70-0.75


def test_adapter_returns_per_query_sums_and_refuses_weights():
    train = lightgbm.Dataset(path("rank.train")).construct()
    scores = np.random.default_rng(1).standard_normal(train.num_data())
    grad, hess = losses.lightgbm_objective("lambdarank", k=30)(scores, train)
    _, mean_grad, mean_hess = losses.lambdarank(scores, train.get_label(), k=30, group_sizes=train.get_group())
    n_queries = len(train.get_group())
    np.testing.assert_allclose(grad, mean_grad * n_queries, rtol=1e-12)
    np.testing.assert_allclose(hess, mean_hess * n_queries, rtol=1e-12)
    weighted = lightgbm.Dataset(path("rank.train"), weight=np.linspace(1, 2, train.num_data())).construct()
    with pytest.raises(ValueError, match="train_data: sample weights are not supported"):
        losses.lightgbm_objective("listnet")(scores, weighted)
    ungrouped = lightgbm.Dataset(np.zeros((4, 2)), label=np.zeros(4)).construct()
    with pytest.raises(ValueError, match="train_data: has no query groups"):
        losses.lightgbm_objective("listnet")(np.zeros(4), ungrouped)


def test_threads_do_not_change_results():
    # Each query owns its slice of the outputs and the total is summed after
    # the parallel loop, so 1 and 2 threads give bit-identical results.
    scores = np.random.default_rng(2).standard_normal(len(labels("rank.train")))
    grades, sizes = labels("rank.train"), group_sizes("rank.train")
    results = {}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        outputs = [fn(scores, grades, group_sizes=sizes) for name, fn in losses.OBJECTIVES.items()
                   if name != "sigmoid_cross_entropy"]  # needs labels in [0, 1]
        results[threads] = [np.asarray(part) for output in outputs for part in output]
        results[threads].append(metrics.ndcg(scores, grades, k=10, group_sizes=sizes))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # as it was
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)
