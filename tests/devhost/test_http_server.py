"""Tests for devhost.http_server against a small sample v2 app served by aiohttp's test server."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from devhost.config import HostConfig, HostKeys
from devhost.functions import FunctionInfo, load_functions
from devhost.http_server import HostRunner, create_web_app
from devhost.invoker import Invoker

APP_DIR = Path(__file__).parent / "apps" / "http_app"
KEYS = HostKeys(master="master-key", default="default-key", functions={"secure": "secure-key"})
LIMIT = 1024


@pytest.fixture
def functions() -> Iterator[list[FunctionInfo]]:
    """Indexes the sample app, then forgets its `function_app` module for other sample apps."""
    try:
        yield load_functions(APP_DIR)
    finally:
        sys.modules.pop("function_app", None)
        if str(APP_DIR) in sys.path:
            sys.path.remove(str(APP_DIR))


def make_config(route_prefix: str = "api") -> HostConfig:
    return HostConfig(
        app_dir=APP_DIR,
        data_dir=APP_DIR / ".devhost",
        keys=KEYS,
        route_prefix=route_prefix,
        max_request_bytes=LIMIT,
    )


class HostTestServer(TestServer):
    """aiohttp's test server on the host's own runner (its protocol-error answers)."""

    async def _make_runner(self, **kwargs: object) -> BaseRunner:
        return HostRunner(self.app, **kwargs)


async def start(app: web.Application) -> TestClient:
    client = TestClient(HostTestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(functions: list[FunctionInfo]) -> AsyncIterator[TestClient]:
    invoker = Invoker(max_threads=4)
    client = await start(create_web_app(make_config(), functions, invoker, None))
    yield client
    await client.close()
    invoker.close()


async def test_int_constraint_wins_and_passes_route_params(client: TestClient) -> None:
    response = await client.get("/api/items/42?x=1&x=2", headers={"x-sample": "h"})
    assert response.status == 200
    assert await response.json() == {
        "function": "item_by_number",
        "method": "GET",
        "route_params": {"id": "42"},
        "params": {"x": "1,2"},
        "body": "",
        "header": "h",
        "forwarded": "127.0.0.1",
    }


async def test_plain_parameter_takes_non_int_and_async_function(client: TestClient) -> None:
    body = await (await client.get("/API/Items/a%20b")).json()
    assert (body["function"], body["route_params"]) == ("item_by_name", {"id": "a b"})


async def test_optional_parameter_and_body(client: TestClient) -> None:
    absent = await (await client.post("/api/items", data=b"new")).json()
    present = await (await client.post("/api/items/7", data=b"seven")).json()
    assert (absent["function"], absent["route_params"], absent["body"]) == (
        "create_item",
        {},
        "new",
    )
    assert (present["route_params"], present["body"]) == ({"id": "7"}, "seven")


async def test_catch_all_takes_the_rest(client: TestClient) -> None:
    body = await (await client.put("/api/files/a/b%2Fc/d.txt")).json()
    assert (body["function"], body["method"]) == ("files", "PUT")
    assert body["route_params"] == {"rest": "a/b/c/d.txt"}


async def test_wrong_method_is_405_with_allow(client: TestClient) -> None:
    response = await client.patch("/api/items/x")
    assert response.status == 405
    assert response.headers["Allow"] == "DELETE, GET, POST"
    assert response.content_type == "application/problem+json"
    assert (await response.json())["status"] == 405


async def test_unknown_route_is_404_problem(client: TestClient) -> None:
    response = await client.get("/api/nothing/here")
    body = await response.json()
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert set(body) == {"type", "title", "status", "detail"}
    assert (body["status"], body["title"]) == (404, "Not Found")


async def test_routes_need_the_prefix(client: TestClient) -> None:
    assert (await client.get("/hello")).status == 404


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/secure", {}, 401),
        ("/api/secure?code=wrong", {}, 401),
        ("/api/secure?code=default-key", {}, 200),
        ("/api/secure?code=secure-key", {}, 200),
        ("/api/secure", {"x-functions-key": "secure-key"}, 200),
        ("/api/secure", {"x-functions-key": "master-key"}, 200),
        ("/api/admin-only?code=default-key", {}, 401),
        ("/api/admin-only", {"x-functions-key": "master-key"}, 200),
        ("/api/hello", {}, 200),
        ("/admin/host/status", {}, 401),
        ("/admin/host/status?code=default-key", {}, 401),
        ("/admin/host/ping", {}, 200),
    ],
)
async def test_auth_levels(client: TestClient, path: str, headers: dict, status: int) -> None:
    response = await client.get(path, headers=headers)
    assert response.status == status
    if status == 401:
        assert (await response.json())["status"] == 401


async def test_host_status_with_master_key(client: TestClient) -> None:
    response = await client.get("/admin/host/status", headers={"x-functions-key": "master-key"})
    body = await response.json()
    assert body["state"] == "Running"
    assert "version" in body
    assert {"secure", "hello", "boom"} <= set(body["functions"])


async def test_body_over_limit_is_413(client: TestClient) -> None:
    response = await client.post("/api/items", data=b"x" * (LIMIT + 1))
    assert response.status == 413
    assert response.content_type == "application/problem+json"


async def test_chunked_body_over_limit_is_413(client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * (LIMIT // 2)

    response = await client.post("/api/items", data=chunks())
    assert response.status == 413


async def test_body_at_limit_is_accepted(client: TestClient) -> None:
    response = await client.post("/api/items", data=b"z" * LIMIT)
    assert response.status == 200


@pytest.mark.parametrize("path", ["/api/boom", "/api/async-boom"])
async def test_raising_function_is_500_without_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    response = await client.get(path)
    text = await response.text()
    body = await response.json()
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert body["invocationId"]
    assert "secret" not in text and "Traceback" not in text
    assert path.rsplit("/", 1)[1].replace("-", "_") in body["detail"]
    assert "secret internals" in caplog.text
    assert body["invocationId"] in caplog.text


async def test_str_result_is_200_text(client: TestClient) -> None:
    response = await client.get("/api/hello?name=ada")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await response.text() == "hello ada"


async def test_http_response_is_copied(client: TestClient) -> None:
    response = await client.get("/api/custom")
    assert response.status == 201
    assert response.headers["X-Custom"] == "yes"
    assert response.headers["Content-Type"] == "text/json; charset=utf-8"
    assert response.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    assert await response.text() == '{"created": true}'


async def test_unencodable_result_fails_like_the_worker(client: TestClient) -> None:
    response = await client.get("/api/as-dict")
    assert response.status == 500
    assert "dict" in (await response.json())["detail"]


async def test_routes_added_later_take_precedence(functions: list[FunctionInfo]) -> None:
    invoker = Invoker(max_threads=2)
    app = create_web_app(make_config(route_prefix=""), functions, invoker, None)

    async def internal(request: web.Request) -> web.Response:
        return web.Response(text="internal")

    app.router.add_get("/runtime/webhooks/durabletask/instances", internal)
    client = await start(app)
    try:
        assert await (await client.get("/runtime/webhooks/durabletask/instances")).text() == (
            "internal"
        )
        assert await (await client.get("/hello")).text() == "hello world"
    finally:
        await client.close()
        invoker.close()


def test_durable_client_functions_need_a_client_binding(functions: list[FunctionInfo]) -> None:
    with_client = [dataclasses.replace(functions[0], durable_client_arg="client")]
    invoker = Invoker(max_threads=1)
    with pytest.raises(ValueError, match="durable client"):
        create_web_app(make_config(), with_client, invoker, None)
    invoker.close()


# Kestrel's header limits, as the Functions host serves HTTP; every refusal a problem.


async def problem_of(response: object) -> dict[str, object]:
    assert response.content_type == "application/problem+json", await response.text()
    return await response.json()


async def test_an_eleven_and_a_half_kb_token_is_accepted(client: TestClient) -> None:
    token = "t" * 11_776  # a user in many groups
    response = await client.get("/api/items/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200


async def test_one_header_over_32_kb_is_431(client: TestClient) -> None:
    response = await client.get("/api/items/1", headers={"x-big": "v" * 33_000})
    assert response.status == 431
    assert "32768" in (await problem_of(response))["detail"]


async def test_headers_over_32_kb_in_all_are_431(client: TestClient) -> None:
    headers = {f"x-part-{i}": "v" * 4_000 for i in range(9)}  # each fine, 36 KB together
    response = await client.get("/api/items/1", headers=headers)
    assert response.status == 431
    assert (await problem_of(response))["status"] == 431


async def test_more_than_100_headers_is_431(client: TestClient) -> None:
    response = await client.get("/api/items/1", headers={f"x-h-{i}": "v" for i in range(101)})
    assert response.status == 431
    assert "100 headers" in (await problem_of(response))["detail"]


async def test_a_request_line_over_8_kb_is_414(client: TestClient) -> None:
    response = await client.get("/api/items/1?q=" + "a" * 8_300)
    assert response.status == 414
    assert "8192 bytes" in (await problem_of(response))["detail"]


async def test_the_peer_is_appended_to_x_forwarded_for(client: TestClient) -> None:
    body = await (
        await client.get("/api/items/1", headers={"x-forwarded-for": "203.0.113.7"})
    ).json()
    assert body["forwarded"] == "203.0.113.7, 127.0.0.1"  # the last entry: who connected
