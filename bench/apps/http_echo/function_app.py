"""Bench app: one trivial anonymous sync HTTP function, to measure the host's per-request cost."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# bench/devhost.py's bare aiohttp baseline answers with exactly this body and content type.
BODY = "ok"


@app.route(route="echo", methods=["GET"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(BODY, mimetype="text/plain")


@app.route(route="echo-async", methods=["GET"])
async def echo_async(req: func.HttpRequest) -> func.HttpResponse:
    """The same on the event loop: the difference to `echo` is devhost's thread-pool hop."""
    return func.HttpResponse(BODY, mimetype="text/plain")
