"""HTTP streams: functions that take the `azurefunctions-extensions-http-fastapi` Request.

With that extension the Python worker runs a small ASGI server and the Functions host proxies
each HTTP request to it: the function receives a FastAPI (Starlette) `Request` and returns a
Starlette `Response`, and a `StreamingResponse` reaches the client chunk by chunk. devhost does
the same without the proxy hop: it builds the Request from the aiohttp one and runs the
returned Response as an ASGI app whose `send` writes straight to the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

# The real host (Kestrel) writes the headers it knows in their canonical spelling and the rest
# as given; Starlette hands every name over in lower case.
KNOWN_HEADERS = {
    name.lower(): name
    for name in (
        "Allow", "Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Length",
        "Content-Type", "Date", "ETag", "Expires", "Last-Modified", "Location", "Retry-After",
        "Set-Cookie", "Transfer-Encoding", "Vary", "WWW-Authenticate",
    )
}  # fmt: skip


def build_request(request: web.Request, route_params: Mapping[str, str], body: bytes) -> Any:
    """The Starlette Request the worker would hand the function (route params synced)."""
    from starlette.requests import Request

    peer = request.transport.get_extra_info("peername") if request.transport else None
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?")[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()
        ],
        "server": tuple(sockname[:2]) if sockname else None,
        "client": tuple(peer[:2]) if peer else None,
        "path_params": dict(route_params),
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # nothing more: the body was read whole
        return {"type": "http.disconnect"}

    return Request(scope, receive)


def is_response(result: Any) -> bool:
    """Whether `result` is a Starlette Response (what an HTTP streams function returns)."""
    from starlette.responses import Response

    return isinstance(result, Response)


async def send_response(request: web.Request, response: Any) -> web.StreamResponse:
    """Runs the Starlette Response as an ASGI app, writing each body chunk as it comes."""
    stream = web.StreamResponse()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            stream.set_status(message["status"])
            for raw_name, value in message.get("headers", []):
                name = raw_name.decode("latin-1")
                stream.headers.add(KNOWN_HEADERS.get(name, name), value.decode("latin-1"))
            await stream.prepare(request)
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk:
                await stream.write(chunk)  # a client gone away raises here, ending the stream

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    await response(scope, receive, send)
    await stream.write_eof()
    return stream
