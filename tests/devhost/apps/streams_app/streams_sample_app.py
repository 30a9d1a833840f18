"""A sample app using HTTP streams (azurefunctions-extensions-http-fastapi)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, StreamingResponse

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
released = asyncio.Event()


async def events() -> AsyncIterator[str]:
    yield "data: first\n\n"
    await released.wait()  # the rest only once the client has seen the first event
    yield "data: second\n\n"
    yield "data: [DONE]\n\n"


@app.route(route="stream", methods=["GET"])
async def stream(req: Request) -> StreamingResponse:
    """Server-sent events, the second one held back until /api/release is called."""
    released.clear()
    return StreamingResponse(events(), media_type="text/event-stream")


@app.route(route="release", methods=["POST"])
async def release(req: Request) -> JSONResponse:
    """Lets the stream go on."""
    released.set()
    return JSONResponse({"released": True})


@app.route(route="echo/{name}", methods=["POST"])
async def echo(req: Request) -> JSONResponse:
    """The request as the function saw it: route parameter, query, header and body."""
    body = await req.body()
    return JSONResponse(
        {
            "name": req.path_params["name"],
            "query": req.query_params.get("q"),
            "header": req.headers.get("x-probe"),
            "body": body.decode(),
        },
        status_code=201,
        headers={"Retry-After": "7"},
    )
