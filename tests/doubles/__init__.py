"""Local HTTP doubles of cloud services that have no emulator, driven by the real SDKs.

Each double is an aiohttp server on a free loopback port that speaks the service's REST
protocol (see /work/shared/notes/azure-contracts.md), records every request, and can be
scripted to fail. Start one with `async with SomeDouble() as double:` and point the SDK at
`double.endpoint` with `AzureKeyCredential(double.key)`: azure-core sends key headers over plain
HTTP, while bearer tokens would need HTTPS.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

KEY_HEADER = "Ocp-Apim-Subscription-Key"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    """One request the double received."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedFailure:
    """An error answer the double gives on `route` for the next `times` requests."""

    route: str
    status: int
    code: str
    message: str
    times: int = 1
    retry_after: float | None = None
    innererror: dict[str, str] | None = None


class HttpDouble(ABC):
    """The shared machinery: server lifecycle, request log, key check and scripted failures."""

    def __init__(self, *, key: str = "test-key") -> None:
        self.key = key
        self.requests: list[RecordedRequest] = []
        self.failures: list[ScriptedFailure] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def endpoint(self) -> str:
        """The base URL to give the SDK client."""
        if self._port is None:
            raise RuntimeError("the double is not started")
        return f"http://127.0.0.1:{self._port}"

    @abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The service's routes; each carries a name (used for scripting and the log)."""

    async def start(self) -> None:
        """Binds a free loopback port and serves."""
        app = web.Application(middlewares=[self._middleware], client_max_size=600 * 1024 * 1024)
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stops serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def fail(
        self,
        route: str,
        status: int,
        code: str,
        message: str,
        *,
        times: int = 1,
        retry_after: float | None = None,
        innererror: dict[str, str] | None = None,
    ) -> None:
        """Answers the next `times` requests on `route` with this error."""
        self.failures.append(
            ScriptedFailure(route, status, code, message, times, retry_after, innererror)
        )

    def throttle(self, route: str, *, times: int, retry_after: float | None = 0.1) -> None:
        """Answers the next `times` requests on `route` with 429 and Retry-After."""
        message = "Rate limit is exceeded. Try again later."
        self.fail(route, 429, "429", message, times=times, retry_after=retry_after)

    def seen(self, route: str) -> list[RecordedRequest]:
        """The requests received on `route`, oldest first."""
        return [request for request in self.requests if request.route == route]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name or "unknown"
        self.requests.append(
            RecordedRequest(
                route=route,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        if request.headers.get(KEY_HEADER) != self.key and "Authorization" not in request.headers:
            return error_response(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint.",
            )
        failure = self._take_failure(route)
        if failure is not None:
            return error_response(
                failure.status,
                failure.code,
                failure.message,
                retry_after=failure.retry_after,
                innererror=failure.innererror,
            )
        return await handler(request)

    def _take_failure(self, route: str) -> ScriptedFailure | None:
        for failure in self.failures:
            if failure.route == route and failure.times > 0:
                failure.times -= 1
                return failure
        return None


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    innererror: dict[str, str] | None = None,
) -> web.Response:
    """The Azure AI services error body: `{"error": {"code", "message", "innererror"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if innererror:
        error["innererror"] = innererror
    headers = {"Retry-After": format_seconds(retry_after)} if retry_after is not None else {}
    return web.Response(
        status=status,
        body=json.dumps({"error": error}),
        content_type="application/json",
        headers=headers,
    )


def format_seconds(seconds: float) -> str:
    """Retry-After as the services send it: whole seconds, or a fraction for fast tests."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
