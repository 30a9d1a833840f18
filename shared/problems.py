"""The one table from failures to HTTP answers: status, problem type and the extra members.

Domain modules raise their own exceptions and never choose a status; this table does, for
every route (docgate's JSON API and the OpenAI-compatible one, which renders the same problem
in OpenAI's error shape). To answer a new failure, add its exception here. An exception the
table does not know is a bug: the edge answers 500 with the trace id only.
"""

from __future__ import annotations

import http
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.errors import (
    CallerError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from shared.llm.types import LlmError
from shared.provisioning import ProvisioningError
from shared.resilience.ratelimit import (
    RateLimiterUnavailable,
    RateLimitExceeded,
    RateLimitRefused,
    TooLargeForRateLimits,
)
from shared.resilience.retry import parse_retry_after
from shared.retrieval.filters import InvalidFilter
from shared.routing.cost import Refusal
from shared.routing.regions import AllRegionsDown, DeadlineExceeded
from shared.secrets import SecretUnavailable
from shared.security.auth import IdentityProviderUnavailable, Unauthenticated
from shared.security.injection import PromptInjectionBlocked
from shared.security.rbac import PermissionDenied
from shared.security.throttle import CredentialsThrottled
from shared.storage.cosmos import ContainerMissing

PROBLEM_TYPE_PREFIX = "urn:docgate:problem:"


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: what the caller is told, and the headers that go with it."""

    status: int
    detail: str
    type: str = "about:blank"
    title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        """The title: the given one, else the status's reason phrase."""
        return self.title or http.HTTPStatus(self.status).phrase


class ProblemError(Exception):
    """A problem stated by the edge itself (not a domain failure): status, detail, headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or http.HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra


@dataclass(frozen=True)
class Kind:
    """How one exception type is answered: status and type, plus headers and extra members."""

    status: int | Callable[[Any], int]
    code: str | None = None  # the problem type's name (and the `code` member when set)
    headers: Callable[[Any], dict[str, str]] = lambda error: {}
    extra: Callable[[Any], dict[str, Any]] = lambda error: {}
    detail: Callable[[Any], str] = str
    applies: Callable[[Any], bool] = lambda error: True  # narrows the entry within its type


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


# A dependency that cannot serve (Cosmos, Blob Storage: unreachable, throttling after the SDK's
# own retries, failing) makes the request a 503 with Retry-After on every route, whatever the
# route: not the caller's mistake, and not docgate's bug. The wait is the dependency's own
# Retry-After when it sent one, else OUTAGE_RETRY_AFTER_SECONDS.
OUTAGE_RETRY_AFTER_SECONDS = 5
MAX_OUTAGE_RETRY_AFTER_SECONDS = 60
OUTAGE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _is_outage(error: HttpResponseError) -> bool:
    return error.status_code in OUTAGE_STATUSES


def _outage_headers(error: BaseException) -> dict[str, str]:
    response = getattr(error, "response", None)
    asked = parse_retry_after(response.headers) if response is not None else None
    seconds = OUTAGE_RETRY_AFTER_SECONDS if asked is None else asked
    return _retry_after(min(seconds, MAX_OUTAGE_RETRY_AFTER_SECONDS))


def _outage(detail: Callable[[Any], str]) -> Kind:
    return Kind(503, "dependency_unavailable", headers=_outage_headers, detail=detail)


_UNREACHABLE = "a service docgate depends on is unavailable; retry later"


REFUSAL_STATUS = {  # cost router and budget refusals, by their stable code
    "tier_unknown": 400,
    "tier_override_forbidden": 403,
    "max_cost_exceeded": 400,
    "budget_exceeded": 403,
}


def _refusal_headers(refusal: Refusal) -> dict[str, str]:
    retry_after = refusal.extra.get("retry_after_seconds")
    return {"Retry-After": str(max(1, int(retry_after)))} if retry_after else {}


# Most specific first: the first entry the exception is an instance of answers it.
TABLE: tuple[tuple[type[BaseException], Kind], ...] = (
    (Unauthenticated, Kind(401, headers=lambda e: {"WWW-Authenticate": e.challenge})),
    (IdentityProviderUnavailable, Kind(503)),
    (PermissionDenied, Kind(403)),
    (CredentialsThrottled, Kind(429, "credentials_throttled", headers=lambda e: e.headers)),
    (PromptInjectionBlocked, Kind(400, "prompt_injection", extra=lambda e: {"reasons": e.reasons})),
    (
        InvalidFilter,
        Kind(400, detail=lambda e: f"filters: {e}", extra=lambda e: {"param": "filters"}),
    ),
    (RateLimitExceeded, Kind(429, "rate_limited", headers=lambda e: e.headers)),
    (TooLargeForRateLimits, Kind(413, headers=lambda e: e.headers)),
    (RateLimiterUnavailable, Kind(503, headers=lambda e: e.headers)),
    (RateLimitRefused, Kind(429, headers=lambda e: e.headers)),
    (
        Refusal,
        Kind(
            lambda e: REFUSAL_STATUS.get(e.code, 403),
            headers=_refusal_headers,
            extra=lambda e: {"code": e.code, **e.extra},
            detail=lambda e: e.reason,
        ),
    ),
    (
        AllRegionsDown,
        Kind(
            503,
            "all_regions_down",
            headers=lambda e: _retry_after(e.retry_after_seconds),
            extra=lambda e: {"regions": e.states},
            detail=lambda e: (
                "no model region can serve now; retry after "
                f"{max(1, math.ceil(e.retry_after_seconds))} s"
            ),
        ),
    ),
    (
        DeadlineExceeded,
        Kind(
            504,
            "deadline_exceeded",
            detail=lambda e: "the request's deadline ran out before a model region answered",
        ),
    ),
    # Only a non-retryable (client) error reaches the edge: the router fails over the rest.
    (
        LlmError,
        Kind(
            502,
            "model_error",
            detail=lambda e: f"the model refused the request (status {e.status})",
        ),
    ),
    (SecretUnavailable, Kind(503, detail=lambda e: "a secret docgate needs cannot be read now")),
    (ContainerMissing, _outage(lambda e: f"docgate's Cosmos container {e.container!r} is missing")),
    (ProvisioningError, _outage(lambda e: "docgate's storage cannot be reached to start")),
    (ServiceRequestError, _outage(lambda e: _UNREACHABLE)),
    (ServiceResponseError, _outage(lambda e: _UNREACHABLE)),
    (HttpResponseError, replace(_outage(lambda e: _UNREACHABLE), applies=_is_outage)),
    (UnsupportedMediaType, Kind(415)),
    (PayloadTooLarge, Kind(413)),
    (NotFound, Kind(404)),
    (Conflict, Kind(409)),
    (InvalidRequest, Kind(400)),
    (CallerError, Kind(400)),
)


def kind_of(error: BaseException) -> Kind | None:
    """The table's entry for `error`, or None when it is not a known failure."""
    for exception_type, kind in TABLE:
        if isinstance(error, exception_type) and kind.applies(error):
            return kind
    return None


def problem_for(error: BaseException) -> Problem | None:
    """The problem `error` answers with; None for an unexpected error (a 500)."""
    if isinstance(error, ProblemError):
        return Problem(
            error.status, error.detail, "about:blank", error.title, error.headers, error.extra
        )
    kind = kind_of(error)
    if kind is None:
        return None
    status = kind.status(error) if callable(kind.status) else kind.status
    extra = {**getattr(error, "extra", {}), **kind.extra(error)}
    if kind.code is not None:
        extra.setdefault("code", kind.code)
    code = extra.get("code")
    problem_type = f"{PROBLEM_TYPE_PREFIX}{code}" if isinstance(code, str) else "about:blank"
    return Problem(status, kind.detail(error), problem_type, None, kind.headers(error), extra)


def status_of(error: BaseException) -> int:
    """The HTTP status `error` answers with (500 when the table does not know it)."""
    problem = problem_for(error)
    return 500 if problem is None else problem.status
