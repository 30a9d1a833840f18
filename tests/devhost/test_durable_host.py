"""Durable Functions through a real devhost process and the SDK's own client."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.testing import HostProcess

APP_DIR = Path(__file__).parent / "apps" / "durable_app"
MODULE = "durable_sample_app"


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def start(host: HostProcess, name: str, payload: Any = None, instance_id: str = "") -> str:
    query = f"?instance_id={instance_id}" if instance_id else ""
    status, body = call(f"{host.base_url}/api/orchestrators/{name}{query}", "POST", payload)
    assert status == 202, body
    return body["id"]


def wait_for(host: HostProcess, instance_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = call(f"{host.base_url}/api/instances/{instance_id}")
        if status == 200 and body["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} did not finish: {body}\n{host.log_tail()}")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    with HostProcess(APP_DIR, tmp_path_factory.mktemp("durable-host"), MODULE) as running:
        yield running


def test_start_to_complete_through_the_sdk_client(host: HostProcess) -> None:
    instance_id = start(host, "sequence", "ada")
    result = wait_for(host, instance_id)
    assert result["runtimeStatus"] == "Completed"
    assert result["output"] == ["Hello ada!", "Bonjour ada!", "Hola ada!"]
    # OrchestratorStarted, ExecutionStarted, TaskScheduled ... ExecutionCompleted
    assert result["history"][:3] == [12, 0, 4] and result["history"][-1] == 1


def test_fan_out_of_twenty_activities(host: HostProcess) -> None:
    result = wait_for(host, start(host, "fan_out", 20))
    assert result["output"] == sum(2 * i for i in range(20))
    assert result["customStatus"] == {"scheduled": 20}
    assert result["history"].count(4) == 20 and result["history"].count(5) == 20


def test_retry_succeeds_after_failures(host: HostProcess, tmp_path: Path) -> None:
    result = wait_for(host, start(host, "retry_flaky", str(tmp_path)))
    assert result["output"] == ["ok after 3", 42]
    assert (tmp_path / "flaky-attempts").read_text() == "3"
    assert result["history"].count(6) == 2  # two TaskFailed before success


def test_retry_exhaustion_surfaces_the_last_error(host: HostProcess) -> None:
    result = wait_for(host, start(host, "retry_exhausted"))
    assert result["output"] == "gave up: ValueError: always fails on x"
    assert result["history"].count(6) == 3


def test_unhandled_activity_failure_fails_the_orchestration(host: HostProcess) -> None:
    result = wait_for(host, start(host, "failing"))
    assert result["runtimeStatus"] == "Failed"
    assert "always fails on y" in result["output"]


def test_durable_timer_fires(host: HostProcess) -> None:
    began = time.monotonic()
    result = wait_for(host, start(host, "timer"))
    assert result["output"] == "fired"
    assert time.monotonic() - began >= 1.0
    assert 10 in result["history"] and 11 in result["history"]


def test_external_event_wins_over_timeout_and_cancels_the_timer(host: HostProcess) -> None:
    instance_id = start(host, "approval")
    time.sleep(0.5)
    status, _ = call(
        f"{host.base_url}/api/instances/{instance_id}/events/approve", "POST", {"by": "bob"}
    )
    assert status == 202
    result = wait_for(host, instance_id)
    assert result["output"] == {"approved": {"by": "bob"}}
    assert 11 not in result["history"]  # the cancelled deadline never fired


def test_sub_orchestration_and_continue_as_new(host: HostProcess) -> None:
    parent = wait_for(host, start(host, "parent"))
    assert parent["output"] == {"child": ["Hello child!", "Bonjour child!", "Hola child!"]}
    assert 7 in parent["history"] and 8 in parent["history"]
    counter = wait_for(host, start(host, "counter", 0))
    assert counter["output"] == 3
    assert counter["history"] == [12, 0, 1]  # only the last execution's history remains


def test_duplicate_instance_id_is_refused_while_running(host: HostProcess) -> None:
    instance_id = start(host, "approval", instance_id="only-once")
    status, body = call(f"{host.base_url}/api/orchestrators/approval?instance_id=only-once", "POST")
    assert status == 500 and body["invocationId"]
    assert "with the ID 'only-once' is already" in host.log_text()
    call(f"{host.base_url}/api/instances/{instance_id}/terminate", "POST")
    assert wait_for(host, instance_id)["runtimeStatus"] == "Terminated"


def test_purge_removes_a_finished_instance(host: HostProcess) -> None:
    instance_id = start(host, "sequence")
    wait_for(host, instance_id)
    status, body = call(f"{host.base_url}/api/instances/{instance_id}", "DELETE")
    assert (status, body) == (200, {"deleted": 1})
    assert call(f"{host.base_url}/api/instances/{instance_id}")[0] == 404


def test_webhooks_need_the_system_key(host: HostProcess) -> None:
    status, links = call(f"{host.base_url}/api/orchestrators/sequence", "POST", "web")
    assert status == 202
    wait_for(host, links["id"])
    ok, payload = call(links["statusQueryGetUri"].replace("localhost", "127.0.0.1"))
    assert ok == 200 and payload["output"] == ["Hello web!", "Bonjour web!", "Hola web!"]
    bare = links["statusQueryGetUri"].split("?")[0].replace("localhost", "127.0.0.1")
    assert call(bare)[0] == 401
    listed = call(f"{host.base_url}/runtime/webhooks/durabletask/instances?code=wrong")
    assert listed[0] == 401


def test_a_non_ascii_key_is_a_401_not_a_500(host: HostProcess) -> None:
    """Any text may be presented as a key: `?code=ключ` or raw UTF-8 header bytes."""
    path = "/runtime/webhooks/durabletask/instances"
    status, body = call(f"{host.base_url}{path}?code=%D0%BA%D0%BB%D1%8E%D1%87")
    assert status == 401 and "key is required" in body["Message"]
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    try:
        connection.putrequest("GET", path)
        connection.putheader("x-functions-key", "ключ-é".encode())
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 401, response.read()
        assert json.loads(response.read())["Message"]
    finally:
        connection.close()


def test_kill_nine_mid_orchestration_then_resume(tmp_path: Path) -> None:
    """The host dies without warning during an activity; a new host finishes the work."""
    work = tmp_path / "work"
    work.mkdir()
    data = tmp_path / "data"
    first = HostProcess(APP_DIR, data, MODULE).start()
    try:
        instance_id = start(first, "slow_steps", str(work))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            starts = (
                (work / "starts.log").read_text().splitlines()
                if (work / "starts.log").exists()
                else []
            )
            if len(starts) >= 2:
                break
            time.sleep(0.05)
        first.kill()
    finally:
        first.stop()
    with HostProcess(APP_DIR, data, MODULE, port=first.port) as second:
        result = wait_for(second, instance_id)
    assert result["runtimeStatus"] == "Completed"
    assert result["output"] == [0, 1, 2, 3]
    steps = [line.split()[0] for line in (work / "starts.log").read_text().splitlines()]
    # Every step ran; the one interrupted by the kill ran again (at-least-once).
    assert sorted(set(steps)) == ["0", "1", "2", "3"]
    pids = {line.split()[1] for line in (work / "starts.log").read_text().splitlines()}
    assert len(pids) == 2
