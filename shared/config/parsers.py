"""Parsers of setting values: text in, a typed value out, ValueError with a short reason."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

_CONTAINER_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def text(value: str) -> str:
    """The value as it is."""
    return value


def url(value: str) -> str:
    """An http(s) URL with a host."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("must be an http(s) URL")
    return value


def boolean(value: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case)."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def positive_number(value: str) -> float:
    """A finite number greater than zero."""
    number = float(value)
    if not 0 < number < math.inf:  # also rejects nan and inf, which float() accepts
        raise ValueError("must be a finite number greater than zero")
    return number


def non_negative_number(value: str) -> float:
    """A finite number, zero or more."""
    number = float(value)
    if not 0 <= number < math.inf:
        raise ValueError("must be a finite number, zero or more")
    return number


def positive_integer(value: str) -> int:
    """A whole number greater than zero."""
    number = int(value)
    if number <= 0:
        raise ValueError("must be a whole number greater than zero")
    return number


def non_negative_integer(value: str) -> int:
    """A whole number, zero or more."""
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number, zero or more")
    return number


def fraction(value: str) -> float:
    """A number in (0, 1]."""
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError("must be a number in (0, 1]")
    return number


def choice(*allowed: str) -> Callable[[str], str]:
    """One of `allowed`, exactly."""

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def log_level(value: str) -> str:
    """A logging level name, any case."""
    return choice("DEBUG", "INFO", "WARNING", "ERROR")(value.upper())


def container_name(value: str) -> str:
    """A valid blob container name."""
    if not _CONTAINER_NAME.match(value):
        raise ValueError("must be a valid blob container name (3-63 of a-z, 0-9 and -)")
    return value


def csv(value: str) -> tuple[str, ...]:
    """Comma-separated items, blanks dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def api_keys(value: str) -> tuple[Mapping[str, Any], ...]:
    """A JSON list of {key, user, tenant, groups, roles}."""
    entries = json.loads(value or "[]")
    if not isinstance(entries, list) or not all(
        isinstance(item, dict) and item.get("key") and item.get("tenant") for item in entries
    ):
        raise ValueError("must be a JSON list of {key, user, tenant, groups, roles}")
    return tuple(entries)
