"""The value model blend and the surface settings' validation."""

import msgspec
import numpy as np
import pytest

from engine.ranking import RerankPolicy, SurfaceSettings, ValueModel, ValueTerm


def test_blend_and_components():
    vm = ValueModel(terms=[
        ValueTerm("click", 1.0, ["p_click"]),
        ValueTerm("gmv", 0.5, ["p_click", "p_order", "price"]),
        ValueTerm("merchant", 0.1, ["merchant_boost"]),
    ])
    f = {"p_click": np.array([0.1, 0.2], np.float32), "p_order": np.array([0.5, 0.25], np.float32),
         "price": np.array([10, 40], np.float32), "merchant_boost": np.array([1, 0], np.float32)}
    total, terms = vm.evaluate(f)
    np.testing.assert_allclose(terms["gmv"], 0.5 * f["p_click"] * f["p_order"] * f["price"], rtol=1e-6)
    np.testing.assert_allclose(total, f["p_click"] + terms["gmv"] + 0.1 * f["merchant_boost"], rtol=1e-6)
    assert total.dtype == np.float32 and all(t.dtype == np.float32 for t in terms.values())
    # the inputs are not modified
    assert f["p_click"].tolist() == pytest.approx([0.1, 0.2])


def test_native_blend_equals_numpy_bit_for_bit():
    # Random factors of every kind, gathered at random rows; evaluate() is the reference.
    rng = np.random.default_rng(8)
    n_items, n = 5000, 700
    columns = {"price": (rng.lognormal(3, 1, n_items)).astype(np.float32),
               "stock": rng.integers(-3, 2**40, n_items),  # int64: numpy multiplies in float64
               "in_stock": rng.random(n_items) < 0.7,
               "margin": rng.standard_normal(n_items).astype(np.float32)}
    columns["margin"][:50] = np.nan
    vm = ValueModel(terms=[
        ValueTerm("click", 1.0, ["p_click"]),
        ValueTerm("gmv", 0.02, ["p_click", "p_order", "price"]),
        ValueTerm("stock", 1e-9, ["stock", "p_order"]),
        ValueTerm("avail", 0.3, ["in_stock", "retrieval_score", "margin"]),
        ValueTerm("later_int", -0.7, ["p_click", "stock"]),
    ])
    heads = ["p_order", "p_click"]
    rows = rng.integers(0, n_items, n)
    scores = rng.random((n, 2)).astype(np.float32)
    retrieval = rng.standard_normal(n).astype(np.float32)
    blend = vm.compile(heads, columns, n_items)
    total, by_term = blend.evaluate(rows, scores, retrieval)
    factors = {"p_order": scores[:, 0], "p_click": scores[:, 1], "retrieval_score": retrieval}
    factors.update({name: c[rows] for name, c in columns.items()})
    want_total, want_terms = vm.evaluate(factors)
    np.testing.assert_array_equal(total, want_total)
    for i, t in enumerate(vm.terms):
        np.testing.assert_array_equal(by_term[i], want_terms[t.name])
    assert total.dtype == np.float32 and by_term.shape == (5, n)
    with pytest.raises(ValueError, match="rows: row 5000 at candidate 1"):
        blend.evaluate(np.array([0, 5000]), scores[:2], retrieval[:2])
    with pytest.raises(ValueError, match=r"heads: expected \(3, 2\)"):
        blend.evaluate(rows[:3], scores[:2], retrieval[:3])
    with pytest.raises(TypeError, match="an item column must be float32, int64 or bool"):
        vm.compile(heads, {**columns, "price": columns["price"].astype(np.float64)}, n_items)


def test_json_round_trip():
    s = SurfaceSettings(value_model=ValueModel(terms=[ValueTerm("c", 2.0, ["p_click", "price"])]),
                        rerank=RerankPolicy(max_per_merchant=2, temperature=0.1), k=10)
    back = msgspec.json.decode(msgspec.json.encode(s), type=SurfaceSettings)
    assert back == s


@pytest.mark.parametrize("make, match", [
    (lambda: ValueModel(terms=[]), "at least one term"),
    (lambda: ValueModel(terms=[ValueTerm("a", 1.0, ["x"]), ValueTerm("a", 1.0, ["y"])]), "unique"),
    (lambda: ValueModel(terms=[ValueTerm("a", 1.0, [])]), "factor"),
    (lambda: ValueModel(terms=[ValueTerm("a", float("nan"), ["x"])]), "weight"),
    (lambda: RerankPolicy(category_decay=0.0), "category_decay"),
    (lambda: RerankPolicy(temperature=-1.0), "temperature"),
    (lambda: RerankPolicy(max_per_merchant=-1), "max_per_merchant"),
])
def test_invalid_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_settings_decoded_from_json_are_validated():
    bad = b'{"value_model": {"terms": [["a", 1.0, ["x"]]]}, "k": 0}'
    with pytest.raises(msgspec.ValidationError, match="k"):
        msgspec.json.decode(bad, type=SurfaceSettings)


def test_unknown_factor_is_named():
    vm = ValueModel(terms=[ValueTerm("a", 1.0, ["p_click", "margin"])])
    with pytest.raises(ValueError, match=r"surfaces\['home'\].*\['margin'\]"):
        vm.check({"p_click", "price"}, "surfaces['home']")
    vm.check({"p_click", "margin"}, "x")
