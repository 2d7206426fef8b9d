"""Object/Tuple types and nested attributes (provider/nested.py)."""

import json

import msgpack
import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.provider import _decode_state, _encode_state
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, Number, String, Unknown
from tf.utils import Diagnostics, read_dynamic_value, to_dynamic_value

from provider.nested import NestedAttribute, Nesting, Object, Tuple, implied_type

NODE = Object({"name": String(), "cpu": Number(), "labels": Map(String()), "addresses": List(String())})


def test_object_encode_fills_missing_attributes_with_null():
    assert NODE.encode({"name": "a", "cpu": 2}) == {"name": "a", "cpu": 2, "labels": None, "addresses": None}


def test_object_rejects_unknown_attributes():
    with pytest.raises(ValueError, match="unexpected object attributes \\['gpu'\\]"):
        NODE.encode({"name": "a", "gpu": 1})
    with pytest.raises(ValueError):
        NODE.decode({"nope": 1})


def test_object_null_and_unknown_pass_through():
    for v in (None, Unknown):
        assert NODE.encode(v) is v
        assert NODE.decode(v) is v


def test_object_msgpack_round_trip_with_unknown_inside():
    value = {"name": "a", "cpu": Unknown, "labels": {"zone": "north"}, "addresses": ["10.0.0.1"]}
    dv = to_dynamic_value(NODE.encode(value))
    assert NODE.decode(read_dynamic_value(dv)) == value


def test_object_json_wire_decodes():
    # Terraform sends JSON for some calls (e.g. UpgradeResourceState raw state).
    dv = pb.DynamicValue(json=json.dumps({"name": "a", "cpu": 1.5, "labels": None, "addresses": []}).encode())
    assert NODE.decode(read_dynamic_value(dv))["cpu"] == 1.5


def test_object_type_json():
    t = Object({"b": Number(), "a": List(String())}, optional=["b"])
    assert json.loads(t.tf_type()) == ["object", {"a": ["list", "string"], "b": "number"}, ["b"]]
    assert json.loads(Object({"a": Bool()}).tf_type()) == ["object", {"a": "bool"}]
    with pytest.raises(ValueError):
        Object({"a": Bool()}, optional=["z"])


def test_object_semantic_equality_uses_attribute_types():
    t = Object({"s": String()})
    assert t.semantically_equal({"s": "x"}, {"s": "x"})
    assert not t.semantically_equal({"s": "x"}, {"s": "y"})
    assert not t.semantically_equal(None, {"s": "x"})
    assert t.semantically_equal(None, None)


def test_tuple():
    t = Tuple([String(), Number(), Object({"a": Bool()})])
    assert json.loads(t.tf_type()) == ["tuple", ["string", "number", ["object", {"a": "bool"}]]]
    assert t.encode(["x", 1, {}]) == ["x", 1, {"a": None}]
    assert t.decode(msgpack.unpackb(msgpack.packb(["x", 1, {"a": True}]))) == ["x", 1, {"a": True}]
    with pytest.raises(ValueError, match="tuple of 3 elements"):
        t.encode(["x"])
    assert t.semantically_equal(["x", 1, {"a": True}], ["x", 1, {"a": True}])
    assert not t.semantically_equal(["x", 1, {"a": True}], ["x", 2, {"a": True}])


INNER = [Attribute("cpu", Number(), optional=True), Attribute("arch", String(), optional=True)]


@pytest.mark.parametrize("nesting,wire", [
    (Nesting.SINGLE, ["object", {"arch": "string", "cpu": "number"}]),
    (Nesting.LIST, ["list", ["object", {"arch": "string", "cpu": "number"}]]),
    (Nesting.SET, ["set", ["object", {"arch": "string", "cpu": "number"}]]),
    (Nesting.MAP, ["map", ["object", {"arch": "string", "cpu": "number"}]]),
])
def test_implied_type_matches_terraform(nesting, wire):
    # configschema drops optional markers from the implied (wire) type.
    assert json.loads(implied_type(INNER, nesting).tf_type()) == wire


def test_nested_attribute_emits_nested_type_not_type():
    a = NestedAttribute("requirements", INNER, Nesting.SINGLE, optional=True, description="what a service needs")
    out = a.to_pb()
    assert out.type == b""
    assert out.HasField("nested_type")
    assert out.nested_type.nesting == pb.Schema.Object.NestingMode.SINGLE
    assert [x.name for x in out.nested_type.attributes] == ["cpu", "arch"]
    assert all(x.optional and x.type for x in out.nested_type.attributes)
    assert out.optional and not out.computed and out.description == "what a service needs"


def test_nested_attribute_list_with_bounds_and_nesting_inside():
    inner = NestedAttribute("gpu", [Attribute("count", Number(), optional=True)], Nesting.SINGLE, optional=True)
    a = NestedAttribute("pools", [Attribute("name", String(), required=True), inner], Nesting.LIST, min_items=1, max_items=3, required=True)
    out = a.to_pb()
    assert out.nested_type.nesting == pb.Schema.Object.NestingMode.LIST
    assert (out.nested_type.min_items, out.nested_type.max_items) == (1, 3)
    assert out.nested_type.attributes[1].nested_type.attributes[0].name == "count"
    assert json.loads(a.type.tf_type()) == ["list", ["object", {"gpu": ["object", {"count": "number"}], "name": "string"}]]


def test_nested_attribute_state_through_tf_servicer_helpers():
    # tf's servicer encodes/decodes every attribute through its type: a nested attribute needs nothing more.
    nodes = NestedAttribute("nodes", [Attribute("name", String(), computed=True), Attribute("gpus", Number(), computed=True)], Nesting.LIST, computed=True)
    attrs = {"id": Attribute("id", String(), computed=True), "nodes": nodes}
    state = {"id": "x", "nodes": [{"name": "a", "gpus": 0}, {"name": "b"}]}
    dv = _encode_state(attrs, {}, state, None)
    raw = msgpack.unpackb(dv.msgpack)
    assert raw["nodes"][1] == {"name": "b", "gpus": None}
    diags = Diagnostics()
    _, decoded = _decode_state(diags, attrs, {}, dv)
    assert not diags.has_errors()
    assert decoded["nodes"] == [{"name": "a", "gpus": 0}, {"name": "b", "gpus": None}]


def test_schema_with_nested_attribute_serialises():
    schema = Schema(version=0, attributes=[NestedAttribute("nodes", INNER, Nesting.LIST, computed=True)]).to_pb()
    assert schema.block.attributes[0].nested_type.nesting == pb.Schema.Object.NestingMode.LIST


def test_number_reads_the_text_terraform_sends_for_a_number_no_float64_holds():
    """cty's msgpack writes 0.1 (not exactly a float64) as the string "0.1": decoded, it must equal
    the 0.1 the state holds, or every plan of `cpu = 0.1` shows an update (nested too)."""
    from provider.nested import Number as Num

    reqs = NestedAttribute("requirements", [Attribute("cpu", Num(), optional=True)], Nesting.SINGLE, optional=True)
    attrs = {"n": Attribute("n", Num(), optional=True), "requirements": reqs}
    diags = Diagnostics()
    _, sent = _decode_state(diags, attrs, {}, pb.DynamicValue(msgpack=msgpack.packb({"n": "0.3", "requirements": {"cpu": "0.1"}})))
    assert not diags.has_errors()
    assert sent == {"n": 0.3, "requirements": {"cpu": 0.1}}
    assert reqs.type.semantically_equal(sent["requirements"], {"cpu": 0.1})
    assert Num().decode("123456789012345678901") == 123456789012345678901  # an integer beyond 53 bits stays exact
    assert (Num().decode(2), Num().decode(0.5), Num().decode(None)) == (2, 0.5, None)
    assert Num().decode("lots") == "lots"  # not a number: left for the resource's checks
