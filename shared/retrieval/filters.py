"""Metadata filters: Mongo-like JSON, validated, compiled to parameterised Cosmos SQL.

A filter is a JSON object. Each key is an allowed field or `$and`/`$or`; several keys are
ANDed. A field takes a bare value (equality) or an object of operators, also ANDed:

    {"media_type": "application/pdf",
     "$or": [{"document_id": {"$in": ["a", "b"]}}, {"pages": {"$gte": 3, "$lte": 5}}]}

Operators: `$eq $ne $in $gt $gte $lt $lte`. On an array field (pages, headings) a condition
holds when ANY element satisfies it (Mongo's rule), except `$ne`: no element equals the value.
A field missing from an item, or a comparison between different types, never matches
(Cosmos gives `undefined` there, which filters the item out; `matches` does the same).

Values are never written into the SQL text: each becomes a generated parameter (`@f0`, `@f1`,
...), and field names come from the allow-list below, so no input can change the query.
String order is by code point (Cosmos and Python agree on the Basic Multilingual Plane).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 4  # nested $and/$or levels
MAX_CONDITIONS = 32  # field conditions in one filter
MAX_IN_VALUES = 100  # values in one $in list
MAX_STRING = 512  # characters in one string value

COMPARISONS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = frozenset({*COMPARISONS, "$in"})
LOGICAL = frozenset({"$and", "$or"})


@dataclass(frozen=True)
class Field:
    """A filterable chunk property: its value type and whether it holds an array of them."""

    name: str
    value_type: type
    array: bool = False


FIELDS: dict[str, Field] = {
    field.name: field
    for field in (
        Field("document_id", str),
        Field("document_name", str),
        Field("media_type", str),
        Field("kind", str),
        Field("pages", int, array=True),
        Field("headings", str, array=True),
    )
}


class InvalidFilter(ValueError):
    """The filter is malformed or outside the limits; the message says where and why."""


@dataclass(frozen=True)
class Condition:
    """One field compared with one value (or a list of values for $in)."""

    field: Field
    operator: str
    value: Any


@dataclass(frozen=True)
class Group:
    """Conditions joined by AND (`all_of`) or OR."""

    all_of: bool
    parts: tuple[Node, ...]


Node = Condition | Group
MATCH_ALL = Group(all_of=True, parts=())


def parse_filter(filters: Mapping[str, Any] | None) -> Node:
    """Validates a filter into a tree; raises InvalidFilter naming the offending path."""
    if filters is None:
        return MATCH_ALL
    counter = [0]
    return _parse_object(filters, "filters", 1, counter)


def _parse_object(value: Any, path: str, depth: int, counter: list[int]) -> Node:
    """An object of fields and $and/$or keys, ANDed."""
    if not isinstance(value, Mapping):
        raise InvalidFilter(f"{path}: must be an object")
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{path}: nested deeper than {MAX_DEPTH} levels")
    parts: list[Node] = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"{path}: keys must be strings")
        if key in LOGICAL:
            parts.append(_parse_logical(key, item, f"{path}.{key}", depth, counter))
        elif key.startswith("$"):
            raise InvalidFilter(f"{path}.{key}: unknown operator here; use $and or $or")
        else:
            parts.extend(_parse_field(key, item, f"{path}.{key}", counter))
    return parts[0] if len(parts) == 1 else Group(all_of=True, parts=tuple(parts))


def _parse_logical(key: str, value: Any, path: str, depth: int, counter: list[int]) -> Group:
    """$and / $or: a non-empty list of filter objects."""
    if not isinstance(value, list) or not value:
        raise InvalidFilter(f"{path}: must be a non-empty list of filter objects")
    parts = tuple(
        _parse_object(item, f"{path}[{index}]", depth + 1, counter)
        for index, item in enumerate(value)
    )
    return Group(all_of=key == "$and", parts=parts)


def _parse_field(name: str, value: Any, path: str, counter: list[int]) -> list[Condition]:
    """A field's bare value ($eq) or its operator object."""
    field = FIELDS.get(name)
    if field is None:
        allowed = ", ".join(sorted(FIELDS))
        raise InvalidFilter(f"{path}: unknown field {name!r}; filterable fields: {allowed}")
    operators = value if isinstance(value, Mapping) else {"$eq": value}
    if not operators:
        raise InvalidFilter(f"{path}: needs at least one operator")
    conditions = []
    for operator, operand in operators.items():
        if operator not in OPERATORS:
            allowed = " ".join(sorted(OPERATORS))
            raise InvalidFilter(f"{path}: unknown operator {operator!r}; allowed: {allowed}")
        conditions.append(_condition(field, operator, operand, f"{path}.{operator}"))
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            raise InvalidFilter(f"{path}: more than {MAX_CONDITIONS} conditions in one filter")
    return conditions


def _condition(field: Field, operator: str, operand: Any, path: str) -> Condition:
    """A checked condition: $in takes a list, everything else one value of the field's type."""
    if operator != "$in":
        return Condition(field, operator, _checked_value(field, operand, path))
    if not isinstance(operand, list):
        raise InvalidFilter(f"{path}: must be a list")
    if len(operand) > MAX_IN_VALUES:
        raise InvalidFilter(f"{path}: more than {MAX_IN_VALUES} values")
    values = [_checked_value(field, item, f"{path}[{i}]") for i, item in enumerate(operand)]
    return Condition(field, operator, values)


def _checked_value(field: Field, value: Any, path: str) -> Any:
    """The value, if it has the field's type (bools are not numbers here) and fits the limits."""
    if field.value_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidFilter(f"{path}: {field.name} values must be whole numbers")
        if abs(value) > 2**53:  # beyond this JSON numbers lose precision in Cosmos
            raise InvalidFilter(f"{path}: number out of range")
        return value
    if not isinstance(value, str):
        raise InvalidFilter(f"{path}: {field.name} values must be strings")
    if len(value) > MAX_STRING:
        raise InvalidFilter(f"{path}: strings are limited to {MAX_STRING} characters")
    return value


# SQL -------------------------------------------------------------------------------------------


def compile_filter(
    filters: Mapping[str, Any] | Node | None, prefix: str = "f", alias: str = "c"
) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment and its parameters ("true" when there is nothing to filter)."""
    node = filters if isinstance(filters, Condition | Group) else parse_filter(filters)
    parameters: dict[str, Any] = {}
    return _sql(node, alias, prefix, parameters), parameters


def _sql(node: Node, alias: str, prefix: str, parameters: dict[str, Any]) -> str:
    """The SQL of one node, adding its values to `parameters`."""
    if isinstance(node, Group):
        if not node.parts:
            return "true" if node.all_of else "false"
        joiner = " AND " if node.all_of else " OR "
        return "(" + joiner.join(_sql(part, alias, prefix, parameters) for part in node.parts) + ")"
    name = f"@{prefix}{len(parameters)}"
    parameters[name] = node.value
    ref = f"{alias}.{node.field.name}"  # an allow-listed identifier, never user text
    if not node.field.array:
        if node.operator == "$in":
            return f"ARRAY_CONTAINS({name}, {ref})"
        return f"{ref} {COMPARISONS[node.operator]} {name}"
    return _array_sql(ref, node.operator, name)


def _array_sql(ref: str, operator: str, name: str) -> str:
    """Any-element semantics for array fields; IS_ARRAY keeps a missing field from matching."""
    if operator == "$eq":
        return f"ARRAY_CONTAINS({ref}, {name})"
    if operator == "$ne":
        return f"(IS_ARRAY({ref}) AND NOT ARRAY_CONTAINS({ref}, {name}))"
    if operator == "$in":
        return f"EXISTS(SELECT VALUE v FROM v IN {ref} WHERE ARRAY_CONTAINS({name}, v))"
    return f"EXISTS(SELECT VALUE v FROM v IN {ref} WHERE v {COMPARISONS[operator]} {name})"


# Python ----------------------------------------------------------------------------------------


def matches(filters: Mapping[str, Any] | Node | None, item: Mapping[str, Any]) -> bool:
    """Whether `item` passes the filter, with the same semantics as the compiled SQL."""
    node = filters if isinstance(filters, Condition | Group) else parse_filter(filters)
    return _evaluate(node, item)


def _evaluate(node: Node, item: Mapping[str, Any]) -> bool:
    """One node against one item."""
    if isinstance(node, Group):
        results = (_evaluate(part, item) for part in node.parts)
        return all(results) if node.all_of else any(results)
    if node.field.name not in item:
        return False
    value = item[node.field.name]
    if not node.field.array:
        return _holds(value, node.operator, node.value)
    if not isinstance(value, list):
        return False
    if node.operator == "$ne":
        return not any(_same(element, node.value) for element in value)
    return any(_holds(element, node.operator, node.value) for element in value)


def _holds(value: Any, operator: str, operand: Any) -> bool:
    """A scalar comparison; different types never compare (Cosmos: undefined)."""
    if operator == "$in":
        return any(_same(value, candidate) for candidate in operand)
    if not _comparable(value, operand):
        return False
    if operator == "$eq":
        return value == operand
    if operator == "$ne":
        return value != operand
    if operator == "$gt":
        return value > operand
    if operator == "$gte":
        return value >= operand
    if operator == "$lt":
        return value < operand
    return value <= operand


def _same(value: Any, operand: Any) -> bool:
    """Equality as ARRAY_CONTAINS sees it: same JSON type and value."""
    return _comparable(value, operand) and value == operand


def _comparable(first: Any, second: Any) -> bool:
    """Both strings, or both (non-bool, finite) numbers."""
    if isinstance(first, str) and isinstance(second, str):
        return True
    return _is_number(first) and _is_number(second)


def _is_number(value: Any) -> bool:
    """A JSON number (Python bools are ints but JSON booleans, not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


__all__ = [
    "FIELDS",
    "MATCH_ALL",
    "Condition",
    "Group",
    "InvalidFilter",
    "Node",
    "compile_filter",
    "matches",
    "parse_filter",
]
