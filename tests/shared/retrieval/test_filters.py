"""Metadata filters: validation, parameterised SQL, Python semantics, and both agreeing."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from azure.cosmos import CosmosClient, PartitionKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.retrieval.filters import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    InvalidFilter,
    compile_filter,
    matches,
)

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

ITEM = {
    "id": "c1",
    "document_id": "doc-1",
    "document_name": "Annual Report.pdf",
    "media_type": "application/pdf",
    "kind": "text",
    "pages": [2, 3],
    "headings": ["Report", "Revenue"],
}
HOSTILE = ("'", '"', "--", ";", " OR 1=1", "') OR ('1'='1", "/*", "*/", "\\", "DROP c")
# Only identifiers, parameter names, operators and brackets: never a literal of any kind.
SQL_ALPHABET = re.compile(r"[A-Za-z0-9_@.()\s<>=!,]*")


# Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"owner": "x"}, "filters.owner: unknown field 'owner'"),
        ({"media_type": {"$regex": "x"}}, "unknown operator '$regex'"),
        ({"$not": {}}, "filters.$not: unknown operator here"),
        ({"pages": {"$gt": "2"}}, "filters.pages.$gt: pages values must be whole numbers"),
        ({"pages": True}, "whole numbers"),
        ({"kind": 3}, "filters.kind.$eq: kind values must be strings"),
        ({"kind": None}, "must be strings"),
        ({"kind": ["text"]}, "must be strings"),
        ({"kind": {"$in": "text"}}, "filters.kind.$in: must be a list"),
        ({"kind": {"$in": ["a"] * (MAX_IN_VALUES + 1)}}, "more than 100 values"),
        ({"kind": {}}, "needs at least one operator"),
        ({"$or": []}, "filters.$or: must be a non-empty list"),
        ({"$or": ["text"]}, "filters.$or[0]: must be an object"),
        ({"$and": [{"pages": {"$gte": 1.5}}]}, "filters.$and[0].pages.$gte"),
        ({"kind": "x" * 600}, "limited to 512 characters"),
        ({"pages": 2**60}, "out of range"),
    ],
)
def test_invalid_filters_name_the_path_and_the_reason(filters: Any, message: str) -> None:
    with pytest.raises(InvalidFilter, match=re.escape(message)):
        compile_filter(filters)


def test_a_filter_must_be_an_object() -> None:
    with pytest.raises(InvalidFilter, match="filters: must be an object"):
        compile_filter(["kind"])  # type: ignore[arg-type]


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    filters: dict[str, Any] = {"kind": "text"}
    for _ in range(MAX_DEPTH):
        filters = {"$or": [filters]}
    with pytest.raises(InvalidFilter, match="nested deeper than 4"):
        compile_filter(filters)


def test_more_conditions_than_the_limit_are_refused() -> None:
    filters = {"$and": [{"pages": index} for index in range(MAX_CONDITIONS + 1)]}
    with pytest.raises(InvalidFilter, match="more than 32 conditions"):
        compile_filter(filters)


# SQL ----------------------------------------------------------------------------------------


def test_no_filter_compiles_to_true() -> None:
    assert compile_filter(None) == ("true", {})
    assert compile_filter({}) == ("true", {})


def test_fields_and_operators_compile_to_parameters() -> None:
    sql, parameters = compile_filter(
        {
            "media_type": "application/pdf",
            "$or": [{"document_id": {"$in": ["a", "b"]}}, {"pages": {"$gte": 3, "$lte": 5}}],
        }
    )
    assert sql == (
        "(c.media_type = @f0 AND (ARRAY_CONTAINS(@f1, c.document_id) OR "
        "(EXISTS(SELECT VALUE v FROM v IN c.pages WHERE v >= @f2) AND "
        "EXISTS(SELECT VALUE v FROM v IN c.pages WHERE v <= @f3))))"
    )
    assert parameters == {"@f0": "application/pdf", "@f1": ["a", "b"], "@f2": 3, "@f3": 5}


def test_array_fields_use_containment_and_prefix_keeps_names_apart() -> None:
    sql, parameters = compile_filter(
        {"headings": "Revenue", "pages": {"$ne": 4, "$in": [1, 2]}}, prefix="q", alias="d"
    )
    assert sql == (
        "(ARRAY_CONTAINS(d.headings, @q0) AND (IS_ARRAY(d.pages) AND NOT "
        "ARRAY_CONTAINS(d.pages, @q1)) AND EXISTS(SELECT VALUE v FROM v IN d.pages "
        "WHERE ARRAY_CONTAINS(@q2, v)))"
    )
    assert parameters == {"@q0": "Revenue", "@q1": 4, "@q2": [1, 2]}


def test_a_value_that_looks_like_a_parameter_stays_a_value() -> None:
    assert compile_filter({"kind": "@f1"}) == ("c.kind = @f0", {"@f0": "@f1"})


# Python semantics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"kind": "text"}, True),
        ({"kind": {"$ne": "text"}}, False),
        ({"document_name": {"$gt": "Annual"}}, True),
        ({"document_name": {"$lt": "Annual"}}, False),
        ({"pages": 3}, True),
        ({"pages": {"$gt": 3}}, False),
        ({"pages": {"$ne": 5}}, True),
        ({"pages": {"$ne": 2}}, False),
        ({"pages": {"$in": [9, 2]}}, True),
        ({"headings": {"$in": ["Costs"]}}, False),
        ({"$or": [{"kind": "table"}, {"pages": 2}]}, True),
        ({"$and": [{"kind": "text"}, {"pages": 9}]}, False),
        ({"media_type": {"$in": []}}, False),
    ],
)
def test_matches(filters: dict[str, Any], expected: bool) -> None:
    assert matches(filters, ITEM) is expected


def test_a_missing_field_never_matches_not_even_ne() -> None:
    item = {key: value for key, value in ITEM.items() if key not in ("kind", "pages")}
    assert not matches({"kind": {"$ne": "table"}}, item)
    assert not matches({"pages": {"$ne": 9}}, item)


def test_values_of_another_type_never_compare() -> None:
    assert not matches({"pages": {"$gt": 1}}, {**ITEM, "pages": ["3"]})
    assert not matches({"kind": {"$ne": "x"}}, {**ITEM, "kind": 7})


# Properties ---------------------------------------------------------------------------------

hostile_text = st.builds(
    lambda parts, tail: "".join(parts) + tail,
    st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3),
    st.text(min_size=0, max_size=8),
)
small_ints = st.integers(min_value=-3, max_value=12)
string_fields = st.sampled_from(["document_id", "document_name", "media_type", "kind", "headings"])


def leaves(strings: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One field condition with a random operator."""
    operators = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"])
    string_leaf = st.builds(
        lambda name, op, value: {name: {op: value}}, string_fields, operators, strings
    )
    string_in = st.builds(
        lambda name, values: {name: {"$in": values}}, string_fields, st.lists(strings, max_size=3)
    )
    page_leaf = st.builds(lambda op, value: {"pages": {op: value}}, operators, small_ints)
    page_in = st.builds(lambda values: {"pages": {"$in": values}}, st.lists(small_ints, max_size=3))
    return st.one_of(string_leaf, string_in, page_leaf, page_in)


def filters_of(strings: st.SearchStrategy[str], levels: int = 3) -> st.SearchStrategy[Any]:
    """Random filters: a condition, or $and/$or of up to three smaller filters, `levels` deep."""
    if levels == 0:
        return leaves(strings)
    inner = filters_of(strings, levels - 1)
    group = st.builds(
        lambda key, parts: {key: parts},
        st.sampled_from(["$and", "$or"]),
        st.lists(inner, min_size=1, max_size=3),
    )
    return st.one_of(leaves(strings), group)


def parameter_strings(parameters: dict[str, Any]) -> list[str]:
    """Every string value among the parameters, $in lists flattened."""
    flat: list[Any] = []
    for value in parameters.values():
        flat.extend(value if isinstance(value, list) else [value])
    return [value for value in flat if isinstance(value, str)]


def strings_in(filters: Any) -> list[str]:
    """Every string value in a filter object."""
    if isinstance(filters, dict):
        return [s for value in filters.values() for s in strings_in(value)]
    if isinstance(filters, list):
        return [s for value in filters for s in strings_in(value)]
    return [filters] if isinstance(filters, str) else []


@settings(max_examples=300, deadline=None)
@given(filters_of(hostile_text))
def test_hostile_values_only_ever_travel_as_parameters(filters: dict[str, Any]) -> None:
    sql, parameters = compile_filter(filters)
    assert SQL_ALPHABET.fullmatch(sql), sql
    values = strings_in(filters)
    assert sorted(parameter_strings(parameters)) == sorted(values)
    for value in values:
        assert value not in sql
    assert set(re.findall(r"@\w+", sql)) == set(parameters)


# compile_filter and matches agree, checked on the Cosmos emulator ---------------------------

# Letters the JS emulator and Python order alike (no surrogates, which UTF-16 sorts apart).
VALUE_TEXT = st.sampled_from(["a", "b", "B", "doc-1", "doc-2", "it's", "x OR 1=1", "é", ""])


@pytest.fixture(scope="module")
def emulator_items(emulators: EmulatorEndpoints) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """A container on the emulator holding 25 random items (fixed seed), and those items."""
    items = [
        {**item, "id": f"i{index}", "tenant": "t"} for index, item in enumerate(_seeded_items())
    ]
    client = CosmosClient(
        emulators.cosmos_endpoint,
        emulators.cosmos_key,
        connection_verify=False,
        enable_endpoint_discovery=False,
    )
    name = f"t-filters-{uuid.uuid4().hex[:12]}"
    database = client.create_database(name)
    try:
        container = database.create_container("chunks", PartitionKey("/tenant"))
        for item in items:
            container.upsert_item(item)
        yield container, items
    finally:
        client.delete_database(name)


def _seeded_items() -> list[dict[str, Any]]:
    """25 varied items drawn with a fixed seed, so failures reproduce."""
    rng = random.Random(20240611)
    texts = ["a", "b", "B", "doc-1", "doc-2", "it's", "x OR 1=1", "é", ""]
    return [
        {
            "document_id": rng.choice(texts),
            "document_name": rng.choice(texts),
            "media_type": rng.choice(texts),
            "kind": rng.choice(texts),
            "pages": [rng.randint(-3, 12) for _ in range(rng.randint(0, 3))],
            "headings": [rng.choice(texts) for _ in range(rng.randint(0, 3))],
        }
        for _ in range(25)
    ]


@pytest.mark.emulators
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=filters_of(VALUE_TEXT))
def test_sql_and_python_select_the_same_items(
    emulator_items: tuple[Any, list[dict[str, Any]]], filters: dict[str, Any]
) -> None:
    container, items = emulator_items
    where, parameters = compile_filter(filters)
    sql = f"SELECT c.id FROM c WHERE c.tenant = @pk AND {where}"
    query = [{"name": name, "value": value} for name, value in {**parameters, "@pk": "t"}.items()]
    selected = {
        row["id"] for row in container.query_items(sql, parameters=query, partition_key="t")
    }
    expected = {item["id"] for item in items if matches(filters, item)}
    assert selected == expected, (sql, parameters)
