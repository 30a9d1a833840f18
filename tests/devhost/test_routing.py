"""Table-driven tests for devhost.routing: parsing, constraints, matching and precedence."""

from __future__ import annotations

import pytest

from devhost.routing import (
    RouteTable,
    RouteTemplateError,
    match_template,
    parse_template,
    split_path,
)

MATCHES = [
    ("items", "items", {}),
    ("items", "ITEMS", {}),
    ("items", "items/", {}),
    ("items/{id}", "items/abc", {"id": "abc"}),
    ("items/{id}", "items/a%20b", {"id": "a b"}),
    ("items/{id}", "items/a%2Fb", {"id": "a/b"}),
    ("items/{id?}", "items", {}),
    ("items/{id?}", "items/7", {"id": "7"}),
    ("items/{id=5}", "items", {"id": "5"}),
    ("items/{id=5}", "items/9", {"id": "9"}),
    ("a/{x?}/{y?}", "a/1", {"x": "1"}),
    ("files/{*rest}", "files/a/b/c.txt", {"rest": "a/b/c.txt"}),
    ("files/{*rest}", "files", {}),
    ("files/{*rest}", "files/a%20b/c", {"rest": "a b/c"}),
    ("files/{**rest}", "files/x", {"rest": "x"}),
    ("{*all}", "", {}),
    ("n/{id:int}", "n/-42", {"id": "-42"}),
    ("n/{id:long}", "n/9223372036854775807", {"id": "9223372036854775807"}),
    ("n/{v:float}", "n/1.5e3", {"v": "1.5e3"}),
    ("n/{v:double}", "n/.5", {"v": ".5"}),
    ("n/{v:decimal}", "n/10.25", {"v": "10.25"}),
    ("n/{v:bool}", "n/TRUE", {"v": "TRUE"}),
    (
        "n/{v:guid}",
        "n/6F9619FF-8B86-D011-B42D-00C04FC964FF",
        {"v": "6F9619FF-8B86-D011-B42D-00C04FC964FF"},
    ),
    ("n/{v:guid}", "n/6f9619ff8b86d011b42d00c04fc964ff", {"v": "6f9619ff8b86d011b42d00c04fc964ff"}),
    ("n/{v:alpha}", "n/abcXYZ", {"v": "abcXYZ"}),
    ("n/{v:datetime}", "n/2024-05-01", {"v": "2024-05-01"}),
    ("n/{v:minlength(2)}", "n/ab", {"v": "ab"}),
    ("n/{v:maxlength(2)}", "n/ab", {"v": "ab"}),
    ("n/{v:length(2)}", "n/ab", {"v": "ab"}),
    ("n/{v:length(1,3)}", "n/abc", {"v": "abc"}),
    ("n/{v:min(1)}", "n/1", {"v": "1"}),
    ("n/{v:max(10)}", "n/10", {"v": "10"}),
    ("n/{v:range(1,10)}", "n/5", {"v": "5"}),
    ("n/{id:int:min(1)}", "n/3", {"id": "3"}),
]

MISSES = [
    ("items", "things"),
    ("items", "items/1"),
    ("items/{id}", "items"),
    ("items/{id}", "items/1/2"),
    ("items/{id}", "items//x"),
    ("n/{id:int}", "n/2147483648"),
    ("n/{id:int}", "n/1.0"),
    ("n/{id:long}", "n/9223372036854775808"),
    ("n/{v:float}", "n/abc"),
    ("n/{v:decimal}", "n/1e5"),
    ("n/{v:bool}", "n/yes"),
    ("n/{v:guid}", "n/not-a-guid"),
    ("n/{v:alpha}", "n/ab1"),
    ("n/{v:datetime}", "n/tomorrow"),
    ("n/{v:minlength(3)}", "n/ab"),
    ("n/{v:maxlength(1)}", "n/ab"),
    ("n/{v:length(3)}", "n/ab"),
    ("n/{v:length(3,4)}", "n/ab"),
    ("n/{v:min(5)}", "n/4"),
    ("n/{v:max(5)}", "n/6"),
    ("n/{v:range(1,3)}", "n/4"),
    ("n/{v:min(1)}", "n/x"),
    ("n/{id:int:min(1)}", "n/0"),
]

INVALID = [
    ("n/{v:regex(a)}", "unknown route constraint"),
    ("n/{v:nope}", "unknown route constraint"),
    ("n/{v:int(3)}", "takes no arguments"),
    ("n/{v:min}", "integer argument"),
    ("n/{v:range(1)}", "integer argument"),
    ("n/{v:length(a)}", "integer argument"),
    ("{a?}/b", "must trail"),
    ("{*rest}/b", "must be the last"),
    ("{a}/{A}", "repeats"),
    ("{a=1?}", "optional and have a default"),
    ("{*a?}", "cannot be marked optional"),
    ("{a}.{b}", "not supported"),
    ("a//b", "empty segment"),
    ("{1a}", "invalid parameter name"),
]


@pytest.mark.parametrize(("template", "path", "expected"), MATCHES)
def test_template_matches(template: str, path: str, expected: dict[str, str]) -> None:
    assert match_template(parse_template(template), split_path(path)) == expected


@pytest.mark.parametrize(("template", "path"), MISSES)
def test_template_does_not_match(template: str, path: str) -> None:
    assert match_template(parse_template(template), split_path(path)) is None


@pytest.mark.parametrize(("template", "message"), INVALID)
def test_invalid_template_is_rejected(template: str, message: str) -> None:
    with pytest.raises(RouteTemplateError, match=message):
        parse_template(template)


PRECEDENCE = [
    ("items/new", ["items/new", "items/{id}", "items/{id?}", "items/{*rest}"]),
    ("items/5", ["items/{id:int}", "items/{id}", "items/{id?}", "items/{*rest}"]),
    ("items/x", ["items/{id}", "items/{id?}", "items/{*rest}"]),
    ("items", ["items/{id?}", "items/{*rest}"]),
    ("items/a/b", ["items/{*rest}"]),
    ("other", []),
]


@pytest.mark.parametrize(("path", "expected"), PRECEDENCE)
def test_table_orders_matches_by_precedence(path: str, expected: list[str]) -> None:
    table: RouteTable[str] = RouteTable()
    # Registered least specific first, so the order must come from precedence.
    for template in ["items/{*rest}", "items/{id?}", "items/{id}", "items/{id:int}", "items/new"]:
        table.add(template, template)
    assert [found.target for found in table.match(path)] == expected


def test_literal_in_later_segment_breaks_tie() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("{a}/{b}", "params")
    table.add("{a}/fixed", "literal")
    assert [found.target for found in table.match("x/fixed")] == ["literal", "params"]


def test_table_returns_params_with_match() -> None:
    table: RouteTable[str] = RouteTable()
    table.add("api/orders/{id:guid}", "order")
    guid = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    (found,) = table.match(f"/API/Orders/{guid}")
    assert (found.target, found.params) == ("order", {"id": guid})
