"""The HTTP edge: every route's span, authentication, and failures as problem+json.

Routes are declared once through `Api.route` (the path, methods, the permission and the error
shape), which registers the function with the Functions app and wraps it in `endpoint`. The
app serves HTTP through the Functions HTTP streams support (`azurefunctions-extensions-http-
fastapi`): handlers take a Starlette/FastAPI `Request` and return a Starlette `Response`, so a
`StreamingResponse` goes out chunk by chunk, in Azure and under devhost alike.

Which status and problem type a failure gets is decided in one place, `shared.problems`.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import azurefunctions.extensions.http.fastapi  # noqa: F401  (turns on HTTP streams)
from opentelemetry import trace
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from shared.inputs import parse_model, parse_query
from shared.problems import Problem, ProblemError, problem_for
from shared.security.principal import Principal
from shared.telemetry import current_trace_id, names, tracer
from shared.telemetry.instruments import record

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Response]]
Render = Callable[[Problem, str], Response]
Authorize = Callable[[Request], Awaitable[Principal]]
PROBLEM_JSON = "application/problem+json"
ROUTE_PREFIX = "/api"  # host.json extensions.http.routePrefix


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response."""
    body = json.dumps(payload, default=str)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def problem_body(problem: Problem, instance: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem details object."""
    return {
        "type": problem.type,
        "title": problem.heading,
        "status": problem.status,
        "detail": problem.detail,
        **({"instance": instance} if instance else {}),
        **problem.extra,
    }


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    """An RFC 9457 `application/problem+json` response."""
    return Response(
        json.dumps(problem_body(problem, instance)),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def unexpected_problem() -> Problem:
    """The 500 problem of an unexpected failure: only the trace id (details go to the log)."""
    return Problem(
        500,
        "docgate failed to serve this request; it has been logged.",
        extra={"traceId": current_trace_id()},
    )


@dataclass(frozen=True)
class Inputs:
    """The typed inputs a route reads: its JSON body model and its query-string model."""

    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None

    async def read(self, req: Request) -> None:
        """Validates the request's inputs into `req.state.body` / `req.state.query` (400 when
        a value does not fit its model)."""
        if self.query is not None:
            req.state.query = parse_query(self.query, req.query_params.multi_items())
        if self.body is not None:
            content_type = req.headers.get("content-type")
            req.state.body = parse_model(self.body, await req.body(), content_type)


@dataclass(frozen=True)
class RouteSpec:
    """One declared route: what the exhaustive input tests and the docs enumerate."""

    path: str
    methods: tuple[str, ...]
    permission: str | None
    inputs: Inputs
    render: Render | None = None  # None: problem+json


def endpoint(
    route: str,
    authorize: Authorize | None = None,
    render: Render | None = None,
    inputs: Inputs | None = None,
) -> Callable[[Handler], Handler]:
    """Wraps a route handler: a SERVER span per request, known failures -> their problem (see
    shared.problems), anything unexpected -> a 500 problem with only the trace id (the details
    go to the log).

    With `authorize`, the caller is authenticated first and the handler receives the principal
    as its second argument. `inputs` are validated next (see `Inputs.read`). `render` shapes
    problems (default RFC 9457 problem+json; the OpenAI-compatible routes use OpenAI's error
    shape).
    """
    declared = inputs or Inputs()
    render_problem = render or problem_response

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def serve(req: Request, **bindings: Any) -> Response:
            started = time.perf_counter()
            with tracer().start_as_current_span(
                f"HTTP {req.method} {route}",
                kind=trace.SpanKind.SERVER,
                attributes={names.HTTP_METHOD: req.method, names.HTTP_ROUTE: route},
            ) as current:
                try:
                    if authorize is not None:
                        principal = await authorize(req)
                        current.set_attribute("enduser.id", principal.user_id)
                        await declared.read(req)
                        response = await handler(req, principal, **bindings)
                    else:
                        await declared.read(req)
                        response = await handler(req, **bindings)
                except Exception as error:
                    problem = problem_for(error)
                    if problem is None:
                        log.exception("Unhandled error in %s %s", req.method, route)
                        problem = unexpected_problem()
                    response = render_problem(problem, route)
                current.set_attribute(names.HTTP_STATUS, response.status_code)
            # A stream's duration ends at its headers; its tokens are on the gen_ai spans.
            record(
                names.REQUEST_DURATION,
                time.perf_counter() - started,
                {
                    names.HTTP_METHOD: req.method,
                    names.HTTP_ROUTE: route,
                    names.HTTP_STATUS: response.status_code,
                },
            )
            return response

        _declare_signature(serve, handler, hide_principal=authorize is not None)
        return serve

    return decorate


def _declare_signature(serve: Handler, handler: Handler, hide_principal: bool) -> None:
    """The Functions worker binds parameters by name and checks their types: show it the
    handler's parameters with resolved annotations, without `principal` (which is ours)."""
    hints = typing.get_type_hints(handler)
    signature = inspect.signature(handler)
    kept = [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for index, parameter in enumerate(signature.parameters.values())
        if not (hide_principal and index == 1)
    ]
    resolved = signature.replace(parameters=kept, return_annotation=hints.get("return", Response))
    serve.__signature__ = resolved  # type: ignore[attr-defined]
    serve.__annotations__ = {
        **{parameter.name: parameter.annotation for parameter in kept},
        "return": resolved.return_annotation,
    }


class Api:
    """Declares the app's HTTP routes: each path written once, with its permission."""

    def __init__(
        self,
        app: Any,
        authorize: Callable[[str], Authorize],
        ready: Callable[[], Awaitable[Any]],
    ) -> None:
        """`authorize(permission)` checks a caller; `ready()` runs before the first span (the
        app's start-up: telemetry must be in place before a request's span starts)."""
        self._app = app
        self._authorize = authorize
        self._ready = ready
        self.routes: list[RouteSpec] = []

    def route(
        self,
        path: str,
        methods: list[str],
        permission: str | None,
        *,
        durable_client: bool = False,
        render: Render | None = None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
    ) -> Callable[[Handler], Any]:
        """Registers a handler for `path` (below /api). permission None: anonymous. `body` and
        `query` are the models its inputs must fit; the handler reads them validated from
        `req.state.body` and `req.state.query`."""
        authorize = None if permission is None else self._authorize(permission)
        inputs = Inputs(body, query)
        self.routes.append(RouteSpec(path, tuple(methods), permission, inputs, render))

        def decorate(handler: Handler) -> Any:
            wrapped = endpoint(f"{ROUTE_PREFIX}/{path}", authorize, render, inputs)(handler)
            ready = self._ready

            @functools.wraps(wrapped)
            async def started(req: Request, **bindings: Any) -> Response:
                await ready()
                return await wrapped(req, **bindings)

            function: Any = started
            if durable_client:
                function = self._app.durable_client_input(client_name="client")(function)
            return self._app.route(
                route=path, methods=methods, auth_level=func.AuthLevel.ANONYMOUS
            )(function)

        return decorate


__all__ = [
    "PROBLEM_JSON",
    "Api",
    "Inputs",
    "ProblemError",
    "RouteSpec",
    "endpoint",
    "json_response",
    "problem_body",
    "problem_response",
    "unexpected_problem",
]
