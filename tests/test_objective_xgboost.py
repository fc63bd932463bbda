"""engine.losses as an XGBoost custom objective on ../shared/data/lambdarank."""

import numpy as np
import pytest
import xgboost

from engine import losses, metrics
from ranking_support import features, group_sizes, labels, one_numba_thread, requires_data  # noqa: F401

pytestmark = requires_data


@pytest.mark.usefixtures("one_numba_thread")
def test_lambdarank_trains_xgboost_as_well_as_its_builtin_ranker():
    train = xgboost.DMatrix(features("rank.train"), label=labels("rank.train"), group=group_sizes("rank.train"))
    test = xgboost.DMatrix(features("rank.test"))
    params = {"eta": 0.1, "max_depth": 6, "nthread": 1, "tree_method": "hist", "seed": 0}
    engine_booster = xgboost.train(params, train, num_boost_round=30,
                                   obj=losses.xgboost_objective("lambdarank", k=30, norm=True))
    builtin_booster = xgboost.train({**params, "objective": "rank:ndcg"}, train, num_boost_round=30)
    ndcg = {name: metrics.ndcg(booster.predict(test), labels("rank.test"), k=10, gain="exponential",
                               group_sizes=group_sizes("rank.test")).mean()
            for name, booster in [("engine", engine_booster), ("builtin", builtin_booster)]}
    # XGBoost's rank:ndcg samples and normalises pairs its own way: close, not equal.
    assert ndcg["engine"] > ndcg["builtin"] - 0.03, ndcg


def test_adapter_reads_groups_and_returns_per_query_sums():
    grades = np.array([2.0, 0.0, 1.0, 0.0, 3.0])
    train = xgboost.DMatrix(np.zeros((5, 1)), label=grades, group=[2, 3])
    scores = np.array([0.1, 0.4, -0.2, 0.3, 0.0], np.float32)
    grad, hess = losses.xgboost_objective("listmle")(scores, train)
    _, mean_grad, mean_hess = losses.listmle(scores, grades, [0, 2, 5])
    np.testing.assert_allclose(grad, 2 * mean_grad, rtol=1e-6)
    np.testing.assert_allclose(hess, 2 * mean_hess, rtol=1e-6)
    with pytest.raises(ValueError, match="dtrain: has no query groups"):
        losses.xgboost_objective("listmle")(scores, xgboost.DMatrix(np.zeros((5, 1)), label=grades))
