"""engine.ranking.first_phase: the prepared first phase keeps exactly the candidates the
surface's first-phase ValueModel, evaluated factor by factor in numpy, ranks best."""

import numpy as np
import pytest

from engine import _core
from engine.bundle.serving import Serving
from engine.ranking import ValueModel, ValueTerm
from engine.ranking.first_phase import FirstPhase
from engine.ranking.value_model import RETRIEVAL_SCORE, prefix_factor


@pytest.fixture(scope="module")
def serving(pipeline):
    return Serving(pipeline.bundle)


def _reference(model: ValueModel, s: Serving, X, rows, retrieval):
    """The first phase factor by factor: numpy blend over predict_prefix and item columns."""
    factors = {RETRIEVAL_SCORE: retrieval}
    for name in model.factors - factors.keys():
        prefix = prefix_factor(name)
        factors[name] = s.columns[name][rows] if prefix is None else s.forest.predict_prefix(X, *prefix)
    value, _ = model.evaluate(factors)
    return value


MODELS = {
    "one prefix": ValueModel(terms=[ValueTerm("click", 1.0, ["p_click[:5]"])]),
    "two heads, item column, retrieval": ValueModel(terms=[
        ValueTerm("click", 1.0, ["p_click[:7]"]),
        ValueTerm("order", 0.5, ["p_order[:3]", "price"]),
        ValueTerm("retrieval", 0.1, [RETRIEVAL_SCORE]),
    ]),
    "one head, two prefixes": ValueModel(terms=[
        ValueTerm("early", 1.0, ["p_click[:2]"]),
        ValueTerm("later", -0.5, ["p_click[:9]", "p_click[:2]"]),
    ]),
    "the same trees named twice": ValueModel(terms=[
        ValueTerm("a", 1.0, ["p_click[:5]"]),
        ValueTerm("b", 2.0, ["p_click[:05]", "p_order[:4]"]),
    ]),
    "no trees": ValueModel(terms=[ValueTerm("retrieval", 1.0, [RETRIEVAL_SCORE, "price"])]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keeps_what_the_numpy_blend_ranks_best(serving, name):
    model = MODELS[name]
    phase = FirstPhase(model, serving.forest, serving.columns, serving.manifest.n_items)
    rng = np.random.default_rng(7)
    n = 300
    rows = rng.choice(serving.manifest.n_items, n, replace=False).astype(np.int64)
    X = np.ascontiguousarray(rng.normal(size=(n, serving.forest.n_features)), dtype=np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take each split's default side
    retrieval = rng.normal(size=n).astype(np.float32)
    reference = _reference(model, serving, X, rows, retrieval)
    for count in (1, 20, 128, n - 1):
        np.testing.assert_array_equal(phase.keep(X, rows, retrieval, count), _core.best_positions(reference, count))


def test_forest_prefix_trees_names_each_heads_columns(serving):
    f = serving.forest
    X = np.zeros((4, f.n_features), np.float32)
    for head in f.heads:
        begin, end, first, width = f.prefix_trees(head, 3)
        assert (begin, end) == (f.head_trees(head)[0], f.head_trees(head)[0] + 3)
        np.testing.assert_array_equal(f.predict_trees(X, begin, end)[:, first], f.predict_prefix(X, head, 3))
        assert width == 1
    with pytest.raises(ValueError, match="n_trees"):
        f.prefix_trees(f.heads[0], -1)
    with pytest.raises(ValueError, match="begin"):
        f.predict_trees(X, 5, 2)
