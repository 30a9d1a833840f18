"""Sample v2 app for the devhost HTTP tests: routes, methods, auth levels and return types."""

import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def describe(req: func.HttpRequest, name: str) -> func.HttpResponse:
    """Echoes what the function saw, so tests can check routing and request building."""
    payload = {
        "function": name,
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "body": req.get_body().decode(),
        "header": req.headers.get("x-sample"),
        "forwarded": req.headers.get("x-forwarded-for"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@app.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item_by_number(req: func.HttpRequest) -> func.HttpResponse:
    return describe(req, "item_by_number")


@app.route(route="items/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
async def item_by_name(req: func.HttpRequest) -> func.HttpResponse:
    return describe(req, "item_by_name")


@app.route(route="items/{id?}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def create_item(req: func.HttpRequest) -> func.HttpResponse:
    return describe(req, "create_item")


@app.route(route="files/{*rest}", auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> func.HttpResponse:
    return describe(req, "files")


@app.route(route="secure", methods=["GET"])
def secure(req: func.HttpRequest) -> str:
    return "function key accepted"


@app.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "master key accepted"


@app.route(route="hello", auth_level=func.AuthLevel.ANONYMOUS)
async def hello(req: func.HttpRequest) -> str:
    return f"hello {req.params.get('name', 'world')}"


@app.route(route="custom", auth_level=func.AuthLevel.ANONYMOUS)
def custom(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(
        '{"created": true}', status_code=201, headers={"X-Custom": "yes"}, mimetype="text/json"
    )
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route(route="as-dict", auth_level=func.AuthLevel.ANONYMOUS)
def as_dict(req: func.HttpRequest):
    return {"not": "encodable"}


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret internals")


@app.route(route="async-boom", auth_level=func.AuthLevel.ANONYMOUS)
async def async_boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("async secret internals")
