"""HTTP plumbing for the app's routes: JSON and problem+json responses, and one wrapper that
gives every endpoint a span and turns errors into RFC 9457 problem bodies."""

from __future__ import annotations

import functools
import http
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from opentelemetry import trace

from shared.telemetry import current_trace_id, tracer

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[func.HttpResponse]]
PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """A request the caller must fix (4xx), or a dependency outage (503), with a clear detail."""

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


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON response."""
    return func.HttpResponse(
        json.dumps(payload, default=str),
        status_code=status,
        headers=headers,
        mimetype="application/json",
    )


def problem_response(problem: ProblemError, instance: str | None = None) -> func.HttpResponse:
    """An `application/problem+json` response for a ProblemError."""
    body = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **({"instance": instance} if instance else {}),
        **problem.extra,
    }
    return func.HttpResponse(
        json.dumps(body), status_code=problem.status, headers=problem.headers, mimetype=PROBLEM_JSON
    )


def endpoint(
    route: str,
    authenticator: Callable[[func.HttpRequest], Any] | None = None,
    render: Callable[[ProblemError, str], func.HttpResponse] | None = None,
) -> Callable[[Handler], Handler]:
    """Wraps a route handler: a span per request, ProblemError -> 4xx/5xx problem body,
    anything unexpected -> a 500 problem body with only the trace id (details go to the log).

    With an `authenticator`, the caller is authenticated first and the handler receives the
    principal as its second argument. `render` turns problems into responses (default: RFC 9457
    problem+json; the OpenAI-compatible routes use OpenAI's error shape).
    """
    render_problem = render or problem_response

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def serve(req: func.HttpRequest, **bindings: Any) -> func.HttpResponse:
            with tracer().start_as_current_span(
                f"HTTP {req.method} {route}",
                kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": req.method, "http.route": route},
            ) as current:
                try:
                    if authenticator is not None:
                        principal = authenticator(req)
                        if inspect.isawaitable(principal):
                            principal = await principal
                        current.set_attribute("enduser.id", principal.user_id)
                        response = await handler(req, principal, **bindings)
                    else:
                        response = await handler(req, **bindings)
                except ProblemError as problem:
                    response = render_problem(problem, route)
                except Exception:
                    log.exception("Unhandled error in %s %s", req.method, route)
                    response = render_problem(
                        ProblemError(
                            500,
                            "docgate failed to serve this request; it has been logged.",
                            traceId=current_trace_id(),
                        ),
                        route,
                    )
                current.set_attribute("http.response.status_code", response.status_code)
                return response

        if authenticator is not None:
            # The Functions SDK binds parameters by name: hide `principal`, which is ours.
            signature = inspect.signature(handler)
            kept = [p for i, p in enumerate(signature.parameters.values()) if i != 1]
            serve.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
        return serve

    return decorate
