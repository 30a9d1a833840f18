"""HTTP streams: functions taking the FastAPI Request get it, and stream their responses."""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.functions import AppIndexError, FunctionInfo, check_http_streams
from devhost.testing import HostProcess

APP_DIR = Path(__file__).parent / "apps" / "streams_app"
MODULE = "streams_sample_app"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    data = tmp_path_factory.mktemp("streams-host")
    environment = {"PYTHON_ENABLE_INIT_INDEXING": "1"}
    with HostProcess(APP_DIR, data, MODULE, env=environment) as running:
        yield running


def test_the_first_event_arrives_before_the_function_produced_the_rest(host: HostProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    connection.request("GET", "/api/stream")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    # Buffered, this read would wait for an event the function only sends after the release.
    first = b"data: first\n\n"
    assert response.read(len(first)) == first
    release = urllib.request.Request(f"{host.base_url}/api/release", data=b"", method="POST")
    with urllib.request.urlopen(release, timeout=30) as released:
        assert json.load(released) == {"released": True}
    assert response.read() == b"data: second\n\ndata: [DONE]\n\n"
    connection.close()


def test_the_request_carries_route_query_headers_and_body(host: HostProcess) -> None:
    sent = urllib.request.Request(
        f"{host.base_url}/api/echo/alice?q=42", data=b"hello", method="POST",
        headers={"x-probe": "yes"},
    )  # fmt: skip
    with urllib.request.urlopen(sent, timeout=30) as response:
        assert response.status == 201
        assert response.headers["Retry-After"] == "7"  # known headers keep their spelling
        assert json.load(response) == {
            "name": "alice", "query": "42", "header": "yes", "body": "hello",
        }  # fmt: skip


def test_streams_need_init_indexing(tmp_path: Path) -> None:
    environment = {"PYTHON_ENABLE_INIT_INDEXING": "0"}
    process = HostProcess(APP_DIR, tmp_path, MODULE, env=environment).start(wait=False)
    assert process.process is not None
    assert process.process.wait(60) != 0
    assert "PYTHON_ENABLE_INIT_INDEXING=1" in process.log_text()


def test_an_app_cannot_mix_classic_and_streams_http_functions() -> None:
    def info(name: str, streams: bool) -> FunctionInfo:
        return FunctionInfo(name, "httpTrigger", "req", {}, lambda req: None, False,
                            http_streams=streams)  # fmt: skip

    with pytest.raises(AppIndexError, match=r"func\.HttpRequest"):
        check_http_streams(
            [info("a", True), info("b", False)], {"PYTHON_ENABLE_INIT_INDEXING": "1"}
        )
    check_http_streams([info("a", True)], {"PYTHON_ENABLE_INIT_INDEXING": "1"})
    check_http_streams([info("b", False)], {})  # classic apps need nothing
