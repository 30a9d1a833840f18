"""Serves the app's HTTP triggers and the host's admin endpoints over aiohttp."""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

from devhost import http_streams
from devhost.config import HostConfig
from devhost.functions import HTTP_TRIGGER, FunctionInfo
from devhost.invoker import InvocationFailed, Invoker
from devhost.routing import RouteTable, RouteTemplateError

log = logging.getLogger("devhost")

HOST_VERSION = "4.0.0-devhost"  # mimics the Functions runtime major version the app targets
CHUNK_BYTES = 64 * 1024
PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
    413: "https://tools.ietf.org/html/rfc9110#section-15.5.14",
    414: "https://tools.ietf.org/html/rfc9110#section-15.5.15",
    431: "https://www.rfc-editor.org/rfc/rfc6585#section-5",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
}
# The Functions host serves HTTP through Kestrel with its default limits (KestrelServerLimits):
# request line 8 KB (else 414), all request headers 32 KB and at most 100 of them (else 431).
# aiohttp's own defaults (8,190 bytes per header line) would refuse a token Azure accepts.
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_REQUEST_HEADERS_BYTES = 32 * 1024
MAX_REQUEST_HEADER_COUNT = 100
PARSER_LIMITS = {
    "max_line_size": MAX_REQUEST_LINE_BYTES,  # the request line
    "max_field_size": MAX_REQUEST_HEADERS_BYTES,  # one header (the total is checked below)
    "max_headers": MAX_REQUEST_HEADER_COUNT,
}


class BodyTooLargeError(Exception):
    """The request body exceeds the host's limit."""


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """A host-generated error as an RFC 9457 `application/problem+json` response."""
    body = {
        "type": PROBLEM_TYPES.get(status, "about:blank"),
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return web.json_response(body, status=status, content_type="application/problem+json")


def protocol_problem(exc: BaseException | None, status: int) -> tuple[int, str]:
    """The status and detail of a request refused before it reached a route (malformed, over a
    limit) or of a failure no handler answered."""
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE_BYTES:
            return 414, f"The request line is longer than {MAX_REQUEST_LINE_BYTES} bytes."
        return 431, f"The request headers are larger than {MAX_REQUEST_HEADERS_BYTES} bytes."
    if isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc):
        return 431, f"The request has more than {MAX_REQUEST_HEADER_COUNT} headers."
    if status >= 500:
        return 500, "The host failed to serve the request; see the host log."
    return status, "The request is not valid HTTP."


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering protocol errors as problem+json (aiohttp's
    own error page is text/plain)."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Logs like aiohttp, then answers with a problem."""
        super().handle_error(request, status, exc, message)
        response = problem(*protocol_problem(exc, status))
        response.force_close()
        return response


class ProblemServer(web.Server):
    """A low-level server whose connections are `ProblemRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class HostRunner(web.AppRunner):
    """AppRunner serving through `ProblemServer` (aiohttp's Server has no handler-class hook)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )


def headers_size(request: web.Request) -> int:
    """The request headers' size on the wire (`name: value` and CRLF per header)."""
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers)


@web.middleware
async def problems_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error the host itself answers is problem+json: the 32 KB header total, and any
    aiohttp error or unexpected failure of a host route. (Errors shaped by a protocol, like the
    Durable HTTP API's JSON, pass through.)"""
    if headers_size(request) > MAX_REQUEST_HEADERS_BYTES:
        return problem(431, protocol_problem(LineTooLong(b"", MAX_REQUEST_HEADERS_BYTES), 431)[1])
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or "json" in (error.content_type or ""):
            raise
        answer = problem(error.status, error.reason)
        if "Allow" in error.headers:
            answer.headers["Allow"] = error.headers["Allow"]
        return answer
    except Exception:
        log.exception("Host error serving %s %s", request.method, request.rel_url.path)
        return problem(*protocol_problem(None, 500))


def with_forwarded_for(request: web.Request) -> web.Request:
    """The request with its peer appended to `X-Forwarded-For`, as the platform's front end
    does in Azure: the last entry is the address the host saw, whatever the client wrote."""
    if not request.remote:
        return request
    headers = CIMultiDict(request.headers)
    prior = headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {request.remote}" if prior else request.remote
    return request.clone(headers=headers)


def presented_key(request: web.Request) -> str | None:
    """The key a caller presented, header first then `?code=`, like the real host."""
    return request.headers.get("x-functions-key") or request.query.get("code")


def function_template(config: HostConfig, function: FunctionInfo) -> str:
    """The full route template of an HTTP function, route prefix included."""
    route = (function.trigger.get("route") or function.name).strip("/")
    return "/".join(part for part in (config.route_prefix.strip("/"), route) if part)


def allowed_methods(function: FunctionInfo) -> frozenset[str] | None:
    """The upper-case methods a function accepts; None means every method."""
    methods = function.trigger.get("methods")
    return frozenset(method.upper() for method in methods) if methods else None


def build_route_table(config: HostConfig, functions: list[FunctionInfo]) -> RouteTable:
    """Compiles every HTTP function's route; a bad template fails here, at index time."""
    table: RouteTable[FunctionInfo] = RouteTable()
    for function in functions:
        if function.trigger_type == HTTP_TRIGGER:
            try:
                table.add(function_template(config, function), function)
            except RouteTemplateError as error:
                raise RouteTemplateError(f"function {function.name}: {error}") from error
    return table


async def read_body(request: web.Request, limit: int) -> bytes:
    """Reads the whole body, refusing it as soon as it grows past `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    # Chunked bodies carry no Content-Length, so the limit is also enforced while reading.
    while chunk := await request.content.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def joined(pairs: Any) -> dict[str, str]:
    """Folds repeated keys into one comma-joined value, as the host does for the worker."""
    folded: dict[str, str] = {}
    for key, value in pairs.items():
        folded[key] = f"{folded[key]},{value}" if key in folded else value
    return folded


def build_http_request(request: web.Request, params: dict[str, str], body: bytes) -> Any:
    """The SDK `HttpRequest` the worker would hand the function."""
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=joined(request.headers),
        params=joined(request.query),
        route_params=params,
        body=body,
    )


def convert_http_response(result: func.HttpResponse) -> web.Response:
    """Copies status, headers, content type and body, as the SDK's HTTP output converter does."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in result.headers.items():
        # The worker sends a name -> value map: only Set-Cookie survives repeated.
        if name.lower() == "set-cookie":
            headers.add(name, value)
        else:
            headers[name] = value
    if "content-type" not in headers:
        mimetype = result.mimetype
        text = mimetype.startswith("text/")
        headers["Content-Type"] = f"{mimetype}; charset={result.charset}" if text else mimetype
    # The SDK's HttpResponse body is produced at once, so it is written at once; streamed
    # bodies come from HTTP streams functions (devhost/http_streams.py).
    return web.Response(status=result.status_code, headers=headers, body=result.get_body())


def convert_result(function: FunctionInfo, result: Any) -> web.Response:
    """Maps a `$return` value like the real worker: HttpResponse or str; anything else fails."""
    if isinstance(result, func.HttpResponse):
        return convert_http_response(result)
    if isinstance(result, str):
        return web.Response(status=200, text=result, content_type="text/plain", charset="utf-8")
    # The worker's HttpResponseConverter rejects other types, so the invocation fails with 500.
    log.error(
        "Function %s returned %s; an HTTP function must return func.HttpResponse or str",
        function.name,
        type(result).__name__,
    )
    return problem(
        500,
        f"Function '{function.name}' returned {type(result).__name__}, "
        "which the HTTP output binding cannot encode (return func.HttpResponse or str).",
    )


def pick_function(
    request: web.Request, table: RouteTable[FunctionInfo]
) -> tuple[FunctionInfo, dict[str, str]] | web.Response:
    """The most specific function whose route and method match, or a 404/405 problem."""
    matches = table.match(request.rel_url.raw_path)
    if not matches:
        return problem(404, f"No function matches {request.method} {request.rel_url.path}.")
    allowed: set[str] = set()
    for found in matches:
        methods = allowed_methods(found.target)
        if methods is None or request.method.upper() in methods:
            return found.target, found.params
        allowed |= methods
    response = problem(405, f"{request.method} is not allowed on {request.rel_url.path}.")
    response.headers["Allow"] = ", ".join(sorted(allowed))
    return response


def make_dispatcher(
    config: HostConfig,
    table: RouteTable[FunctionInfo],
    invoker: Invoker,
    client_binding: Callable[[FunctionInfo], str] | None,
) -> Callable[[web.Request], Any]:
    """The one catch-all handler that routes requests to HTTP-triggered functions."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        try:
            return await serve(request)
        except Exception:
            log.exception("Host error serving %s %s", request.method, request.rel_url.path)
            return problem(500, "The host failed to serve the request; see the host log.")

    async def serve(request: web.Request) -> web.StreamResponse:
        picked = pick_function(request, table)
        if isinstance(picked, web.Response):
            return picked
        function, params = picked
        request = with_forwarded_for(request)
        level = function.trigger.get("authLevel", "function")
        if not config.keys.accepts(level, function.name, presented_key(request)):
            return problem(401, f"Function '{function.name}' needs a valid {level} key.")
        try:
            body = await read_body(request, config.max_request_bytes)
        except BodyTooLargeError:
            limit = config.max_request_bytes
            return problem(413, f"The request body exceeds the host's limit of {limit} bytes.")
        built = (
            http_streams.build_request(request, params, body)
            if function.http_streams
            else build_http_request(request, params, body)
        )
        arguments: dict[str, Any] = {function.trigger_arg: built}
        if function.durable_client_arg and client_binding is not None:
            arguments[function.durable_client_arg] = client_binding(function)
        try:
            result = await invoker.invoke(function, "http", arguments)
        except InvocationFailed as error:
            log.error(
                "Function %s failed (Id=%s)",
                function.name,
                error.invocation_id,
                exc_info=error.cause,
            )
            return problem(
                500,
                f"Function '{function.name}' failed; see the host log for details.",
                invocationId=error.invocation_id,
            )
        if function.http_streams:
            if http_streams.is_response(result):
                return await http_streams.send_response(request, result)
            log.error("Function %s returned %s, not a Response", function.name, type(result))
            return problem(500, f"Function '{function.name}' did not return a Response.")
        return convert_result(function, result)

    return dispatch


def add_function_routes(app: web.Application, dispatch: Callable[[web.Request], Any]) -> None:
    """Adds the catch-all dispatcher; call it after every other route so those win."""
    app.router.add_route("*", "/{tail:.*}", dispatch)


def add_admin_routes(
    app: web.Application, config: HostConfig, functions: list[FunctionInfo]
) -> None:
    """`/admin/host/ping` (anonymous) and `/admin/host/status` (master key)."""

    async def ping(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def status(request: web.Request) -> web.Response:
        if not config.keys.accepts("admin", "", presented_key(request)):
            return problem(401, "The host status needs the master key.")
        names = [function.name for function in functions]
        routes = [
            {
                "name": function.name,
                "route": function_template(config, function),
                "methods": sorted(allowed_methods(function) or []),
                "authLevel": function.trigger.get("authLevel", "function"),
            }
            for function in functions
            if function.trigger_type == HTTP_TRIGGER
        ]
        return web.json_response(
            {"state": "Running", "version": HOST_VERSION, "functions": names, "http": routes}
        )

    app.router.add_route("*", "/admin/host/ping", ping)
    app.router.add_get("/admin/host/status", status)


def create_web_app(
    config: HostConfig,
    functions: list[FunctionInfo],
    invoker: Invoker,
    client_binding: Callable[[FunctionInfo], str] | None = None,
) -> web.Application:
    """Builds the host's aiohttp app; function routes are added at startup, after all others."""
    needs_client = [f.name for f in functions if f.durable_client_arg and client_binding is None]
    if needs_client:
        raise ValueError(f"functions {needs_client} take a durable client but none was given")
    table = build_route_table(config, functions)
    dispatch = make_dispatcher(config, table, invoker, client_binding)
    # aiohttp's own 1 MiB default would refuse big bodies before our limit could answer them.
    app = web.Application(
        client_max_size=config.max_request_bytes,
        handler_args=PARSER_LIMITS,
        middlewares=[problems_only],
    )
    add_admin_routes(app, config, functions)

    async def add_last(app: web.Application) -> None:
        # Routes others add after create_web_app returns (durable webhooks, ...) match first.
        add_function_routes(app, dispatch)

    app.on_startup.append(add_last)
    return app
