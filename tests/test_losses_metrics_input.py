"""Bad input to engine.losses and engine.metrics raises an error naming the argument."""

import numpy as np
import pytest

from engine import losses, metrics

FUNCTIONS = {**losses.OBJECTIVES, **{f"metrics.{f.__name__}": f for f in (
    metrics.ndcg, metrics.map, metrics.mrr, metrics.recall, metrics.precision, metrics.hit_rate, metrics.auc)}}
SCORES = np.array([0.5, 0.1, -0.3, 0.9, 0.2])
LABELS = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
OFFSETS = np.array([0, 2, 5])

BAD = [  # (id, scores, labels, {offsets or group_sizes}, error, message)
    ("labels too short", SCORES, LABELS[:4], {"offsets": OFFSETS}, ValueError, "labels: expected 5 values"),
    ("offsets not monotone", SCORES, LABELS, {"offsets": [0, 3, 2, 5]}, ValueError, "offsets: must be strictly"),
    ("empty query", SCORES, LABELS, {"offsets": [0, 2, 2, 5]}, ValueError, "offsets: must be strictly"),
    ("offsets short of the end", SCORES, LABELS, {"offsets": [0, 2, 4]}, ValueError, "offsets: must start at 0 and end at 5"),
    ("offsets not from 0", SCORES, LABELS, {"offsets": [1, 2, 5]}, ValueError, "offsets: must start at 0"),
    ("one offset", SCORES, LABELS, {"offsets": [5]}, ValueError, "offsets: expected at least 2"),
    ("fractional offsets", SCORES, LABELS, {"offsets": [0, 2.5, 5]}, TypeError, "offsets: expected integers"),
    ("sizes off", SCORES, LABELS, {"group_sizes": [2, 2]}, ValueError, "group_sizes: sizes add up to 4"),
    ("size 0", SCORES, LABELS, {"group_sizes": [0, 5]}, ValueError, "group_sizes: expected one or more"),
    ("both groupings", SCORES, LABELS, {"offsets": OFFSETS, "group_sizes": [2, 3]}, TypeError, "offsets: give exactly one"),
    ("no grouping", SCORES, LABELS, {}, TypeError, "offsets: give exactly one"),
    ("NaN score", [0.5, np.nan, 0, 0, 0], LABELS, {"offsets": OFFSETS}, ValueError, "scores: NaN or infinity at index 1"),
    ("infinite score", [0.5, 0, 0, -np.inf, 0], LABELS, {"offsets": OFFSETS}, ValueError, "scores: NaN or infinity at index 3"),
    ("2-D scores", SCORES[None], LABELS, {"offsets": OFFSETS}, ValueError, "scores: expected a 1-D array"),
    ("text scores", ["a"] * 5, LABELS, {"offsets": OFFSETS}, TypeError, "scores: expected numbers"),
    ("negative label", SCORES, [1, 0, -1, 0, 0], {"offsets": OFFSETS}, ValueError, "labels: expected finite values >= 0, got -1.0 at index 2"),
    ("NaN label", SCORES, [1, 0, 0, np.nan, 0], {"offsets": OFFSETS}, ValueError, "labels: expected finite values >= 0"),
]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(("scores", "labels", "groups", "error", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_bad_groups_scores_and_labels(name, scores, labels, groups, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(")):
        FUNCTIONS[name](scores, labels, **groups)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: losses.lambdarank(SCORES, LABELS, OFFSETS, k=0), "k: expected None or an integer >= 1"),
    (lambda: losses.lambdarank(SCORES, LABELS, OFFSETS, sigma=0.0), "sigma: must be a finite number > 0"),
    (lambda: losses.ranknet(SCORES, LABELS, OFFSETS, sigma=np.nan), "sigma: must be a finite number > 0"),
    (lambda: losses.lambdarank(SCORES, [0, 1, 2, 3, 4], OFFSETS, label_gain=[0, 1, 3]), "labels: with label_gain"),
    (lambda: losses.lambdarank(SCORES, LABELS, OFFSETS, label_gain=[[0, 1]]), "label_gain: expected a 1-D"),
    (lambda: losses.listnet(SCORES, LABELS, OFFSETS, reduction="avg"), "reduction: expected 'mean' or 'sum'"),
    (lambda: losses.sigmoid_cross_entropy(SCORES, [0, 2, 0, 0, 0], OFFSETS), "labels: sigmoid_cross_entropy needs"),
    (lambda: losses.sampled_softmax(SCORES, LABELS, OFFSETS, log_q=[0.0] * 4), "log_q: expected 5 values"),
    (lambda: losses.sampled_softmax(SCORES, LABELS, OFFSETS, log_q=[np.nan] * 5), "log_q: NaN or infinity"),
    (lambda: losses.approx_ndcg(SCORES, LABELS, OFFSETS, alpha=-1), "alpha: must be a finite number > 0"),
    (lambda: metrics.ndcg(SCORES, LABELS, OFFSETS, k=0), "k: expected None or an integer >= 1"),
    (lambda: metrics.ndcg(SCORES, LABELS, OFFSETS, gain="log"), "gain: expected 'linear' or 'exponential'"),
    (lambda: losses.lightgbm_objective("lambdamart"), "name: unknown objective 'lambdamart'"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"q": {"d": 1}}, ["ndcg@0"]), r"metrics \('ndcg@0'\): expected"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"q": {"d": 1}}, ["auc@5"]), "metrics: unknown metric 'auc@5'"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"q": {"d": 1}}, ["ndcg_cut_10"]), "metrics: unknown metric"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"q": {"d": 1}}, []), "metrics: expected at least one"),
    (lambda: metrics.evaluate({"q": {"d": np.nan}}, {"q": {"d": 1}}, "map"), r"run\['q'\]\['d'\]: score must be finite"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"q": {"e": -1}}, "map"), "qrels: grades must be finite and >= 0"),
    (lambda: metrics.evaluate({"q": {"d": 1.0}}, {"p": {"d": 1}}, "map"), "run: none of its queries has judgments"),
])
def test_bad_parameters(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_objective_parameters_are_checked_when_the_adapter_is_made():
    with pytest.raises(TypeError, match=r"params: lambdarank takes \['k', 'label_gain', 'norm', 'sigma'\], got \['truncation'\]"):
        losses.lightgbm_objective("lambdarank", truncation=10)
    with pytest.raises(TypeError, match="params: listnet takes no parameters"):
        losses.xgboost_objective("listnet", sigma=1.0)
    with pytest.raises(TypeError, match="run, qrels: expected dicts"):
        metrics.evaluate([("q", "d", 1.0)], {}, "map")


def test_accepted_conversions():
    # float16 scores, integer labels, loadtxt-style float group sizes, int32 offsets
    value = losses.listnet(SCORES.astype(np.float16), [1, 0, 1, 0, 0], group_sizes=np.array([2.0, 3.0]))
    assert value[1].dtype == np.float32
    np.testing.assert_allclose(metrics.ndcg(SCORES, LABELS, OFFSETS.astype(np.int32)),
                               metrics.ndcg(SCORES, LABELS, group_sizes=[2, 3]))
