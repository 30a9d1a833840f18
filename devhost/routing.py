"""Compiles Functions (ASP.NET-style) route templates and matches request paths against them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")
Check = Callable[[str], bool]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_ALPHA = re.compile(r"[A-Za-z]*")
_HEX = "[0-9A-Fa-f]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_GUID = re.compile(rf"{_HEX}{{32}}|{_GUID_D}|\{{{_GUID_D}\}}|\({_GUID_D}\)")
_CONSTRAINT = re.compile(r"(?P<name>[A-Za-z]+)(?:\((?P<args>[^()]*)\))?")
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Precedence ranks, lowest wins, compared segment by segment as ASP.NET routing does.
RANK_LITERAL, RANK_CONSTRAINED, RANK_PARAMETER, RANK_OPTIONAL, RANK_CATCH_ALL = range(5)


class RouteTemplateError(ValueError):
    """A route template is malformed or uses a constraint the host does not know."""


def _parse_integer(value: str, bounds: tuple[int, int]) -> int | None:
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if bounds[0] <= number <= bounds[1] else None


def _is_datetime(value: str) -> bool:
    # ASP.NET uses DateTime.TryParse (invariant culture); ISO 8601 covers what URLs carry.
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _int_args(name: str, args: list[str], count: int) -> list[int]:
    if len(args) != count or not all(_INTEGER.fullmatch(arg.strip()) for arg in args):
        raise RouteTemplateError(f"constraint {name!r} takes {count} integer argument(s)")
    return [int(arg) for arg in args]


def _length_check(name: str, args: list[str]) -> Check:
    if name == "length" and len(args) == 2:
        low, high = _int_args(name, args, 2)
        return lambda value: low <= len(value) <= high
    (limit,) = _int_args(name, args, 1)
    if name == "minlength":
        return lambda value: len(value) >= limit
    if name == "maxlength":
        return lambda value: len(value) <= limit
    return lambda value: len(value) == limit


def _range_check(name: str, args: list[str]) -> Check:
    # Like ASP.NET's min/max/range constraints, the value itself must parse as an Int64.
    if name == "range":
        low, high = _int_args(name, args, 2)
    else:
        (bound,) = _int_args(name, args, 1)
        low, high = (bound, INT64[1]) if name == "min" else (INT64[0], bound)

    def check(value: str) -> bool:
        number = _parse_integer(value, INT64)
        return number is not None and low <= number <= high

    return check


_SIMPLE_CHECKS: dict[str, Check] = {
    "int": lambda value: _parse_integer(value, INT32) is not None,
    "long": lambda value: _parse_integer(value, INT64) is not None,
    "float": lambda value: bool(_FLOAT.fullmatch(value)),
    "double": lambda value: bool(_FLOAT.fullmatch(value)),
    "decimal": lambda value: bool(_DECIMAL.fullmatch(value)),
    "bool": lambda value: value.lower() in ("true", "false"),
    "guid": lambda value: bool(_GUID.fullmatch(value)),
    "alpha": lambda value: bool(_ALPHA.fullmatch(value)),
    "datetime": _is_datetime,
}
_ARGUMENT_CHECKS: dict[str, Callable[[str, list[str]], Check]] = {
    "minlength": _length_check,
    "maxlength": _length_check,
    "length": _length_check,
    "min": _range_check,
    "max": _range_check,
    "range": _range_check,
}
KNOWN_CONSTRAINTS = frozenset(_SIMPLE_CHECKS) | frozenset(_ARGUMENT_CHECKS)


def compile_constraint(text: str) -> Check:
    """Turns one constraint such as `int` or `range(1,10)` into a predicate on the value."""
    found = _CONSTRAINT.fullmatch(text.strip())
    if not found:
        raise RouteTemplateError(f"malformed route constraint {text!r}")
    name, raw_args = found["name"].lower(), found["args"]
    if name in _SIMPLE_CHECKS:
        if raw_args is not None:
            raise RouteTemplateError(f"constraint {name!r} takes no arguments")
        return _SIMPLE_CHECKS[name]
    if name in _ARGUMENT_CHECKS:
        return _ARGUMENT_CHECKS[name](name, [] if raw_args is None else raw_args.split(","))
    known = ", ".join(sorted(KNOWN_CONSTRAINTS))
    raise RouteTemplateError(f"unknown route constraint {name!r} (known: {known})")


@dataclass(frozen=True)
class Segment:
    """One `/`-separated part of a template: a literal or a `{parameter}`."""

    literal: str | None = None
    name: str = ""
    constraints: tuple[Check, ...] = field(default=(), compare=False)
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    @property
    def may_be_absent(self) -> bool:
        """Whether the path may end before this segment."""
        return self.optional or self.default is not None or self.catch_all

    @property
    def rank(self) -> int:
        """This segment's precedence rank (lower wins)."""
        if self.literal is not None:
            return RANK_LITERAL
        if self.catch_all:
            return RANK_CATCH_ALL
        if self.may_be_absent:
            return RANK_OPTIONAL
        return RANK_CONSTRAINED if self.constraints else RANK_PARAMETER

    def accepts(self, value: str) -> bool:
        """Whether a present value satisfies every constraint."""
        return all(check(value) for check in self.constraints)


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled template: its text, segments and precedence key."""

    text: str
    segments: tuple[Segment, ...]

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: segment ranks in order, so more specific templates sort first."""
        return tuple(segment.rank for segment in self.segments)


def _parse_parameter(body: str, template: str) -> Segment:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.removesuffix("?")
    body, has_default, default = body.partition("=")
    name, *constraint_texts = body.split(":")
    if not _PARAMETER_NAME.fullmatch(name):
        raise RouteTemplateError(f"invalid parameter name {name!r} in route {template!r}")
    if optional and has_default:
        raise RouteTemplateError(f"parameter {name!r} cannot be optional and have a default")
    if optional and catch_all:
        raise RouteTemplateError(f"catch-all parameter {name!r} cannot be marked optional")
    return Segment(
        name=name,
        constraints=tuple(compile_constraint(text) for text in constraint_texts),
        optional=optional,
        default=default if has_default else None,
        catch_all=catch_all,
    )


def _parse_segment(text: str, template: str) -> Segment:
    if text.startswith("{") and text.endswith("}") and text.count("{") == 1:
        return _parse_parameter(text[1:-1], template)
    if "{" in text or "}" in text:
        # Complex segments such as `{name}.{ext}` are valid ASP.NET but unused by Functions apps.
        raise RouteTemplateError(f"segment {text!r} in route {template!r} is not supported")
    if not text:
        raise RouteTemplateError(f"route {template!r} has an empty segment")
    return Segment(literal=text)


def _check_layout(segments: list[Segment], template: str) -> None:
    names = [segment.name.lower() for segment in segments if segment.literal is None]
    if len(names) != len(set(names)):
        raise RouteTemplateError(f"route {template!r} repeats a parameter name")
    for index, segment in enumerate(segments):
        later = segments[index + 1 :]
        if segment.catch_all and later:
            raise RouteTemplateError(f"catch-all in route {template!r} must be the last segment")
        if segment.optional and not all(other.may_be_absent for other in later):
            raise RouteTemplateError(f"optional parameters in route {template!r} must trail")


def parse_template(template: str) -> RouteTemplate:
    """Compiles `template` (e.g. `items/{id:int}`); raises RouteTemplateError when invalid."""
    text = template.strip("/")
    segments = [_parse_segment(part, template) for part in text.split("/")] if text else []
    _check_layout(segments, template)
    return RouteTemplate(text=text, segments=tuple(segments))


def split_path(raw_path: str) -> list[str]:
    """Splits a still percent-encoded path into raw segments, ignoring outer slashes."""
    text = raw_path.strip("/")
    return text.split("/") if text else []


def _match_absent(segment: Segment, values: dict[str, str]) -> bool:
    if not segment.may_be_absent:
        return False
    if segment.default is not None:
        values[segment.name] = segment.default
    return True


def match_template(route: RouteTemplate, raw_parts: list[str]) -> dict[str, str] | None:
    """Matches raw path segments; returns the URL-decoded parameter values or None."""
    values: dict[str, str] = {}
    for index, segment in enumerate(route.segments):
        if segment.catch_all:
            rest = unquote("/".join(raw_parts[index:]))
            if not rest:
                return values if _match_absent(segment, values) else None
            if not segment.accepts(rest):
                return None
            values[segment.name] = rest
            return values
        if index >= len(raw_parts):
            if not _match_absent(segment, values):
                return None
            continue
        value = unquote(raw_parts[index])
        if segment.literal is not None:
            if value.casefold() != segment.literal.casefold():
                return None
        elif not value or not segment.accepts(value):
            return None
        else:
            values[segment.name] = value
    return values if len(raw_parts) <= len(route.segments) else None


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """One template that matched a path, with its target and parameter values."""

    template: RouteTemplate
    target: T
    params: dict[str, str]


class RouteTable(Generic[T]):
    """Templates with their targets; lookups return every match, most specific first."""

    def __init__(self) -> None:
        self._routes: list[tuple[RouteTemplate, T]] = []

    def add(self, template: str, target: T) -> RouteTemplate:
        """Compiles and registers `template` for `target` (errors surface here, at index time)."""
        route = parse_template(template)
        self._routes.append((route, target))
        # Stable sort: equal precedence keeps the registration order.
        self._routes.sort(key=lambda entry: entry[0].precedence)
        return route

    def match(self, raw_path: str) -> list[RouteMatch[T]]:
        """All routes matching the percent-encoded `raw_path`, in precedence order."""
        parts = split_path(raw_path)
        matches = []
        for route, target in self._routes:
            params = match_template(route, parts)
            if params is not None:
                matches.append(RouteMatch(route, target, params))
        return matches
