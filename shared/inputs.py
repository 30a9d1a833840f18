"""A request's inputs as typed models: its JSON body and its query string, refused as a 400.

Each route declares the models it reads (`shared.http.Api.route(body=..., query=...)`); the
edge validates them before the handler runs, so a wrong type in any field is the caller's
mistake (400, naming the field in `param`), never a 500 deep inside the handler. Body models
are strict like the OpenAI API (`temperature: true` and `stream: "yes"` are refused); query
models read strings (`?limit=5`) but refuse unknown, repeated, non-finite or out-of-range
values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import InvalidRequest, UnsupportedMediaType

Model = TypeVar("Model", bound=BaseModel)

# Bodies: no coercion (a string is not a number, 1 is not true), no NaN or infinity.
STRICT_BODY = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
# Query strings are text: numbers are parsed from it, but nothing unknown or non-finite passes.
QUERY = ConfigDict(allow_inf_nan=False, extra="forbid", str_max_length=512)


# A union's branches appear in an error's location as type names: not part of the field path.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _field_path(location: tuple[int | str, ...]) -> str:
    """`messages.0.content.0.text` from pydantic's location (union branch tags dropped)."""
    parts = (str(part) for part in location)
    return ".".join(p for p in parts if p not in _UNION_TAGS and "[" not in p)


def _refusal(error: ValidationError, where: str) -> InvalidRequest:
    """A 400 naming the field: of a union's errors, the deepest one (the branch that got
    furthest is the one the caller meant: a list of parts whose `text` is a number)."""
    deepest = max(error.errors(include_url=False), key=lambda item: len(item["loc"]))
    path = _field_path(deepest["loc"]) or where
    message = str(deepest["msg"]).removeprefix("Value error, ")
    return InvalidRequest(f"{path}: {message}", param=path)


def parse_model(model: type[Model], body: bytes, content_type: str | None = None) -> Model:
    """Parses a JSON body into `model`, or raises InvalidRequest/UnsupportedMediaType."""
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media_type}")
    if not body:
        raise InvalidRequest("the request body is empty: send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise _refusal(error, "body") from None


def parse_query(model: type[Model], pairs: Iterable[tuple[str, str]]) -> Model:
    """Parses query-string `pairs` into `model`; a parameter given twice is refused (which one
    would win differs between proxies, so neither does)."""
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name in values:
            raise InvalidRequest(f"{name}: give this parameter once", param=name)
        values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise _refusal(error, "query") from None
