"""Failures every part of docgate may report to a caller, whatever the transport.

Domain modules raise these (or their own exceptions, defined beside the code that raises them);
the HTTP edge (`shared.problems`) is the one place that decides which status each one gets.
`extra` carries machine-readable members of the answer (`param`, `code`, ...).
"""

from __future__ import annotations

from typing import Any


class CallerError(Exception):
    """Something the caller must fix; `detail` says what, in a sentence safe to show."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRequest(CallerError):
    """The request is malformed or names something invalid."""


class UnsupportedMediaType(CallerError):
    """The request body is not in a media type the operation reads."""


class PayloadTooLarge(CallerError):
    """The request (or what it asks for) is larger than allowed."""


class NotFound(CallerError):
    """What the request names does not exist (or the caller may not know that it does)."""


class Conflict(CallerError):
    """The request conflicts with the current state of what it names (retry, or do it another
    way: `detail` says which)."""
