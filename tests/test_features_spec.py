"""engine.FeatureSpec: construction, JSON round trip and every validation error."""

from __future__ import annotations

import math

import msgspec
import pytest

import engine
from engine.features import Bucket, Cross, Dot, FeatureSpec, Hashed, Lookup, Match, Numeric


def every_kind() -> FeatureSpec:
    return FeatureSpec([
        Numeric("price", "item.price"),
        Numeric("hour", "request.hour", default=-1.0),
        Bucket("price_bucket", "item.price", [1, 10.5, 100], default=-2),
        Hashed("category", "item.category_id", 1000),
        Cross("segment_x_category", ["request.segment", "item.category_id"], 4096),
        Dot("user_item"),
        Lookup("category_clicks", "category_clicks", "item.category_id", default=0.5),
        Match("query_category_match", ["request.query_category", "item.category_id"]),
    ], version=3)


def test_engine_exports():
    assert engine.FeatureSpec is FeatureSpec
    assert "FeatureSpec" in engine.__all__ and "FeatureAssembler" in engine.__all__
    import engine.features as f

    for name in ("Numeric", "Bucket", "Hashed", "Cross", "Dot", "Lookup", "Match", "FeatureAssembler"):
        assert name in f.__all__


def test_json_round_trip_keeps_every_field():
    spec = every_kind()
    text = spec.to_json()
    assert isinstance(text, str)
    again = FeatureSpec.from_json(text)
    assert again == spec
    assert FeatureSpec.from_json(text.encode()) == spec
    assert again.version == 3
    assert [f.kind for f in again.features] == ["numeric", "numeric", "bucket", "hashed", "cross", "dot",
                                                "lookup", "match"]
    assert again.features[2].boundaries == (1.0, 10.5, 100.0) and again.features[2].default == -2.0
    assert again.features[6].default == 0.5


def test_json_is_a_tagged_union_on_kind():
    doc = msgspec.json.decode(every_kind().to_json())
    assert doc["version"] == 3
    assert doc["features"][0] == {"kind": "numeric", "name": "price", "source": "item.price", "default": 0.0}
    assert doc["features"][4] == {"kind": "cross", "name": "segment_x_category",
                                  "sources": ["request.segment", "item.category_id"], "buckets": 4096}
    assert doc["features"][5] == {"kind": "dot", "name": "user_item"}


def test_names_and_inputs():
    spec = every_kind()
    assert spec.names == ["price", "hour", "price_bucket", "category", "segment_x_category", "user_item",
                          "category_clicks", "query_category_match"]
    assert spec.item_columns == ["price", "category_id"]
    assert spec.request_fields == ["hour", "segment", "category_clicks", "query_category"]
    assert spec.uses_user_vector
    assert not FeatureSpec([Numeric("a", "item.a")]).uses_user_vector
    assert spec.features[6].sources == ("request.category_clicks", "item.category_id")
    assert spec.features[5].sources == ()


def test_positional_arguments_follow_the_documented_order():
    assert Numeric("a", "item.x", 2.0).default == 2.0
    assert Bucket("b", "item.x", [1, 2], 5.0).default == 5.0
    assert Hashed("c", "request.x", 7).buckets == 7
    assert Cross("d", ["item.x", "request.y"], 9).buckets == 9
    assert Lookup("e", "clicks", "item.cat", 3.0).default == 3.0
    assert Match("f", ["item.x", "request.y"]).sources == ("item.x", "request.y")


def test_specs_are_frozen_values():
    spec = every_kind()
    with pytest.raises(AttributeError):
        spec.version = 2
    with pytest.raises(AttributeError):
        spec.features[0].source = "item.other"
    assert isinstance(spec.features, tuple) and isinstance(spec.features[4].sources, tuple)
    assert hash(spec) == hash(FeatureSpec.from_json(spec.to_json()))


def test_integer_numbers_are_accepted_as_floats():
    f = Bucket("b", "item.x", [1, 2, 3], default=-1)
    assert all(type(b) is float for b in f.boundaries) and type(f.default) is float


# ---- every validation error, from Python and from JSON ---------------------------

INVALID = [
    # (builder, exception, message fragment)
    (lambda: FeatureSpec([]), ValueError, "at least one feature"),
    (lambda: FeatureSpec("item.x"), TypeError, "expected a list"),
    (lambda: FeatureSpec([Numeric("a", "item.x"), Numeric("a", "item.y")]), ValueError, "duplicate name 'a'"),
    (lambda: FeatureSpec(["item.x"]), TypeError, "features[0]"),
    (lambda: FeatureSpec([Numeric("a", "item.x")], version=0), ValueError, "version"),
    (lambda: Numeric("", "item.x"), ValueError, "non-empty"),
    (lambda: Numeric("a", "x"), ValueError, "'item.<column>' or 'request.<field>'"),
    (lambda: Numeric("a", "item."), ValueError, "'item.<column>'"),
    (lambda: Numeric("a", "user.x"), ValueError, "'user.x'"),
    (lambda: Numeric("a", 3), TypeError, "source must be a str"),
    (lambda: Numeric("a", "request.user_vector"), ValueError, "reserved"),
    (lambda: Numeric("a", "request.item_row"), ValueError, "reserved"),
    (lambda: Numeric("a", "item.x", default=math.nan), ValueError, "default must be finite"),
    (lambda: Numeric("a", "item.x", default="0"), TypeError, "default must be a number"),
    (lambda: Bucket("a", "item.x", [2, 1]), ValueError, "strictly increasing"),
    (lambda: Bucket("a", "item.x", [1, 1]), ValueError, "strictly increasing"),
    (lambda: Bucket("a", "item.x", []), ValueError, "must not be empty"),
    (lambda: Bucket("a", "item.x", [1, math.inf]), ValueError, "finite"),
    (lambda: Bucket("a", "item.x", [math.nan]), ValueError, "finite"),
    (lambda: Bucket("a", "item.x", ["1"]), TypeError, "must be a number"),
    (lambda: Bucket("a", "item.x", 5), TypeError, "list of numbers"),
    (lambda: Hashed("a", "item.x", 0), ValueError, "buckets must be in [1, 2**24]"),
    (lambda: Hashed("a", "item.x", -5), ValueError, "buckets"),
    (lambda: Hashed("a", "item.x", 2**24 + 1), ValueError, "2**24"),
    (lambda: Hashed("a", "item.x", 10.0), TypeError, "buckets must be an int"),
    (lambda: Hashed("a", "item.x", True), TypeError, "buckets must be an int"),
    (lambda: Cross("a", ["item.x"], 10), ValueError, "at least 2 sources"),
    (lambda: Cross("a", ["item.x", "item.x"], 10), ValueError, "repeated"),
    (lambda: Cross("a", "item.x", 10), TypeError, "list of str"),
    (lambda: Cross("a", ["item.x", "request.y"], 0), ValueError, "buckets"),
    (lambda: Match("a", ["item.x", "request.y", "request.z"]), ValueError, "exactly 2"),
    (lambda: Match("a", ["item.x"]), ValueError, "exactly 2"),
    (lambda: Lookup("a", "request.clicks", "item.cat"), ValueError, "without the prefix"),
    (lambda: Lookup("a", "clicks", "request.cat"), ValueError, "item column"),
    (lambda: Lookup("a", "", "item.cat"), TypeError, "non-empty str"),
    (lambda: Lookup("a", "user_vector", "item.cat"), ValueError, "reserved"),
    (lambda: FeatureSpec([Lookup("a", "clicks", "item.cat"), Hashed("b", "request.clicks", 4)]),
     ValueError, "request field 'clicks' is a map"),
    (lambda: Dot(""), ValueError, "non-empty"),
]


@pytest.mark.parametrize("build,error,fragment", INVALID)
def test_invalid_specs_raise_naming_the_problem(build, error, fragment):
    with pytest.raises(error) as info:
        build()
    assert fragment in str(info.value)


_F = {"kind": "numeric", "name": "a", "source": "item.x"}
INVALID_DOCUMENTS = [
    ({"features": []}, "at least one feature"),
    ({"features": [_F, dict(_F, source="item.y")]}, "duplicate name 'a'"),
    ({"features": [_F], "version": 0}, "version"),
    ({"features": [dict(_F, source="x")]}, "'item.<column>' or 'request.<field>'"),
    ({"features": [dict(_F, source="request.user_vector")]}, "reserved"),
    ({"features": [{"kind": "bucket", "name": "a", "source": "item.x", "boundaries": [2, 1]}]},
     "strictly increasing"),
    ({"features": [{"kind": "bucket", "name": "a", "source": "item.x", "boundaries": []}]}, "must not be empty"),
    ({"features": [{"kind": "hashed", "name": "a", "source": "item.x", "buckets": 0}]}, "buckets must be in"),
    ({"features": [{"kind": "cross", "name": "a", "sources": ["item.x"], "buckets": 3}]}, "at least 2 sources"),
    ({"features": [{"kind": "match", "name": "a", "sources": ["item.x"]}]}, "exactly 2"),
    ({"features": [{"kind": "lookup", "name": "a", "field": "clicks", "key": "request.c"}]}, "item column"),
    ({"features": [{"kind": "lookup", "name": "a", "field": "clicks", "key": "item.cat"},
                   {"kind": "hashed", "name": "b", "source": "request.clicks", "buckets": 4}]},
     "request field 'clicks' is a map"),
]


@pytest.mark.parametrize("doc,fragment", INVALID_DOCUMENTS)
def test_invalid_documents_are_refused_by_from_json(doc, fragment):
    with pytest.raises(msgspec.ValidationError) as info:
        FeatureSpec.from_json(msgspec.json.encode(doc))
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,fragment", [
    (b'{"features":[{"kind":"embedding","name":"a"}]}', "kind"),
    (b'{"features":[{"kind":"numeric","name":"a","source":"item.x","extra":1}]}', "unknown field"),
    (b'{"features":[{"kind":"numeric","name":"a"}]}', "source"),
    (b'{"features":[{"kind":"hashed","name":"a","source":"item.x","buckets":"10"}]}', "Expected `int`"),
    (b'{"features":[{"kind":"numeric","name":"a","source":"item.x"}],"spec":1}', "unknown field"),
    (b'{"features":[', "truncated"),
])
def test_from_json_refuses_malformed_documents(text, fragment):
    with pytest.raises(msgspec.DecodeError) as info:
        FeatureSpec.from_json(text)
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)
