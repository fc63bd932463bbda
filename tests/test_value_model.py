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
