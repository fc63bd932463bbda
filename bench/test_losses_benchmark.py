"""pytest-benchmark suite for engine.losses and engine.metrics.

    python -m pytest bench/test_losses_benchmark.py --benchmark-group-by=group

Not part of the default test run (pyproject ``testpaths = ["tests"]``). Each
loss group times the engine's kernel and the padded torch implementation of
the same loss (forward + backward) on 2,000 lambdarank-shaped queries; the
metrics group times engine, pytrec_eval and ranx on a 1,000-query run. Every
case is checked against the engine before it is timed. Nothing here asserts a
timing; ``python -m bench.losses.run`` writes the full report.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("torch")
pytrec_eval = pytest.importorskip("pytrec_eval")

from bench.losses.run import METRICS, TREC_MEASURES
from bench.losses.torch_losses import padded_step
from bench.losses.workload import labels_for, ranking_batch, trec_run
from engine import (
    losses,
    metrics,
)

N_QUERIES, N_RUN_QUERIES = 2_000, 1_000


@pytest.fixture(scope="module")
def batch():
    return ranking_batch(N_QUERIES)


@pytest.fixture(scope="module")
def run_and_qrels():
    return trec_run(N_RUN_QUERIES)


@pytest.mark.parametrize("name", losses.OBJECTIVES)
def test_engine_loss(benchmark, batch, name):
    scores, labels, offsets = batch
    labels = labels_for(name, labels)
    benchmark.group = f"loss: {name}"
    benchmark.extra_info["queries"] = N_QUERIES
    loss, _, _ = benchmark(losses.OBJECTIVES[name], scores, labels, offsets)
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", losses.OBJECTIVES)
def test_torch_loss(benchmark, batch, name):
    scores, labels, offsets = batch
    labels = labels_for(name, labels)
    step, mask = padded_step(name, scores, labels, offsets)
    want, want_grad, _ = losses.OBJECTIVES[name](scores, labels, offsets)
    got, got_grad = step()
    assert got.item() == pytest.approx(want, rel=1e-9)
    np.testing.assert_allclose(got_grad.numpy()[mask], want_grad, atol=1e-12)
    benchmark.group = f"loss: {name}"
    benchmark.extra_info["queries"] = N_QUERIES
    benchmark(step)


def test_metrics_engine(benchmark, run_and_qrels):
    run, qrels = run_and_qrels
    benchmark.group = "metrics"
    benchmark(metrics.evaluate, run, qrels, METRICS)


def test_metrics_pytrec_eval(benchmark, run_and_qrels):
    run, qrels = run_and_qrels

    def evaluate():
        return pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES.values())).evaluate(run)

    per_query = evaluate()
    ours = metrics.evaluate(run, qrels, METRICS)
    for m in METRICS:
        assert ours[m] == pytest.approx(np.mean([v[TREC_MEASURES[m]] for v in per_query.values()]), abs=1e-9)
    benchmark.group = "metrics"
    benchmark(evaluate)


def test_metrics_ranx(benchmark, run_and_qrels):
    ranx = pytest.importorskip("ranx")
    run, qrels = run_and_qrels
    # ranx breaks score ties its own way, so its means differ slightly from trec_eval's.
    means = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS)
    ours = metrics.evaluate(run, qrels, METRICS)
    assert all(abs(means[m] - ours[m]) < 0.01 for m in METRICS)
    benchmark.group = "metrics"
    benchmark(lambda: ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), METRICS))
