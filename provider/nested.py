"""Object/Tuple types and protocol-6 nested attributes for `tf` 1.2.0.

`tf` only knows primitive, list, set and map types, and its `Attribute` always
emits a plain `type`. Terraform's plugin protocol 6 also has object and tuple
types and *nested attributes* (`nested_type`, nesting SINGLE/LIST/SET/MAP),
which give users `requirements = { cpu = 1 }` syntax and typed computed lists
such as `nodes`. This module adds both on top of `tf` without changing it:

- `Object` / `Tuple` are ordinary `tf.types.TfType`s, so `tf`'s servicer
  encodes and decodes them like any other attribute type.
- `Number` decodes the decimal string Terraform sends for a number that no
  float64 holds exactly (0.1, 0.3: cty's msgpack writes those as text), so
  `cpu = 0.1` compares equal with the 0.1 the state holds.
- `NestedAttribute` is a `tf.schema.Attribute` whose `type` is the implied
  type of its nested object (what Terraform puts on the wire), and whose
  `to_pb()` emits `nested_type` instead of `type`.

Wire format (msgpack or JSON, as Terraform sends it): an object is a map
holding *every* attribute (null when unset), a tuple is an array.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Iterable, Optional

from tf.gen import tfplugin_pb2 as pb
from tf.schema import Attribute
from tf.types import List, Map, Set, TfType, Unknown
from tf.types import Number as _TfNumber


def _type_json(t: TfType) -> Any:
    return json.loads(t.tf_type())


def _type_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _absent(value: Any) -> bool:
    # `value in (None, Unknown)` would compare dicts/lists by ==; identity is what we mean.
    return value is None or value is Unknown


class Number(_TfNumber):
    """tf's Number, reading the decimal text Terraform sends for a number that is not exactly a
    float64 (msgpack carries it as a string: "0.1") as an int or a float, so such a value
    compares equal with what the state holds (0.1) and no plan shows a change that is none."""

    def decode(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for kind in (int, float):  # an integer beyond float64's 53 bits comes as text too
            try:
                return kind(value)
            except ValueError:
                pass
        return value  # not a number: the resource's checks say so


class Object(TfType):
    """An object with a fixed set of typed attributes. Maps to Python `dict`.

    :param attribute_types: attribute name -> type
    :param optional: attributes that may be omitted in configuration (cty's
        optional object attributes); they still appear, as null, on the wire.
    """

    def __init__(self, attribute_types: dict[str, TfType], optional: Iterable[str] = ()):
        self.attribute_types = dict(attribute_types)
        self.optional = sorted(set(optional))
        unknown = set(self.optional) - set(self.attribute_types)
        if unknown:
            raise ValueError(f"optional attributes {sorted(unknown)} are not attributes of the object")

    def _check_keys(self, value: dict) -> None:
        extra = set(value) - set(self.attribute_types)
        if extra:
            raise ValueError(f"unexpected object attributes {sorted(extra)}; expected {sorted(self.attribute_types)}")

    def encode(self, value: Any) -> Any:
        if _absent(value):
            return value
        self._check_keys(value)
        # Terraform expects the whole object: a missing attribute is written as null.
        return {k: t.encode(value.get(k)) for k, t in self.attribute_types.items()}

    def decode(self, value: Any) -> Any:
        if _absent(value):
            return value
        self._check_keys(value)
        return {k: t.decode(value.get(k)) for k, t in self.attribute_types.items()}

    def semantically_equal(self, a_decoded, b_decoded) -> bool:
        if _absent(a_decoded) or _absent(b_decoded):
            return a_decoded is b_decoded
        return all(t.semantically_equal(a_decoded.get(k), b_decoded.get(k)) for k, t in self.attribute_types.items())

    def tf_type(self) -> bytes:
        spec: list[Any] = ["object", {k: _type_json(t) for k, t in self.attribute_types.items()}]
        if self.optional:
            spec.append(self.optional)
        return _type_bytes(spec)


class Tuple(TfType):
    """A fixed-length sequence whose elements each have their own type. Maps to Python `list`."""

    def __init__(self, element_types: list[TfType]):
        self.element_types = list(element_types)

    def _check_len(self, value: Any) -> None:
        if len(value) != len(self.element_types):
            raise ValueError(f"tuple of {len(self.element_types)} elements expected, got {len(value)}")

    def encode(self, value: Any) -> Any:
        if _absent(value):
            return value
        self._check_len(value)
        return [t.encode(v) for t, v in zip(self.element_types, value)]

    def decode(self, value: Any) -> Any:
        if _absent(value):
            return value
        self._check_len(value)
        return [t.decode(v) for t, v in zip(self.element_types, value)]

    def semantically_equal(self, a_decoded, b_decoded) -> bool:
        if _absent(a_decoded) or _absent(b_decoded):
            return a_decoded is b_decoded
        return len(a_decoded) == len(b_decoded) and all(
            t.semantically_equal(a, b) for t, a, b in zip(self.element_types, a_decoded, b_decoded)
        )

    def tf_type(self) -> bytes:
        return _type_bytes(["tuple", [_type_json(t) for t in self.element_types]])


class Nesting(Enum):
    SINGLE = pb.Schema.Object.NestingMode.SINGLE
    LIST = pb.Schema.Object.NestingMode.LIST
    SET = pb.Schema.Object.NestingMode.SET
    MAP = pb.Schema.Object.NestingMode.MAP


class NestedAttribute(Attribute):
    """An attribute whose value is one object (SINGLE) or a list/set/map of objects.

    Behaves like any `tf` attribute (same required/optional/computed/sensitive
    flags); `attributes` describe the object and may themselves be nested.

    Example::

        NestedAttribute("requirements", [
            Attribute("cpu", Number(), optional=True),
            Attribute("arch", String(), optional=True),
        ], Nesting.SINGLE, optional=True)
    """

    def __init__(
        self,
        name: str,
        attributes: list[Attribute],
        nesting: Nesting = Nesting.SINGLE,
        min_items: Optional[int] = None,
        max_items: Optional[int] = None,
        **kwargs: Any,
    ):
        self.attributes = list(attributes)
        self.nesting = nesting
        self.min_items = min_items
        self.max_items = max_items
        super().__init__(name, implied_type(self.attributes, nesting), **kwargs)

    def to_pb(self) -> pb.Schema.Attribute:
        out = super().to_pb()
        # An attribute carries either `type` or `nested_type`, never both.
        out.ClearField("type")
        obj = pb.Schema.Object(attributes=[a.to_pb() for a in self.attributes], nesting=self.nesting.value)
        if self.min_items is not None:
            obj.min_items = self.min_items
        if self.max_items is not None:
            obj.max_items = self.max_items
        out.nested_type.CopyFrom(obj)
        return out


def implied_type(attributes: list[Attribute], nesting: Nesting) -> TfType:
    """The value type Terraform uses for a nested attribute (configschema's ImpliedType).

    Optional markers are dropped: on the wire every attribute is present.
    """
    obj = Object({a.name: a.type for a in attributes})
    return {Nesting.SINGLE: obj, Nesting.LIST: List(obj), Nesting.SET: Set(obj), Nesting.MAP: Map(obj)}[nesting]
