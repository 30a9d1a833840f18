"""Repeated bad credentials from one address, end to end: 401s up to the allowance, then 429
with Retry-After for every credentialed request from it (the right key too), audited."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from azure.cosmos import CosmosClient

from devhost.testing import HostProcess
from tests.apphost import app_environment, request, start_app
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators
ALLOWANCE = 5


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[tuple[HostProcess, str]]:
    name = f"t-thr-{uuid.uuid4().hex[:12]}"
    environment = app_environment(emulators, name, AUTH_FAILURES_PER_MINUTE=str(ALLOWANCE))
    host = start_app(tmp_path_factory.mktemp("throttle"), environment)
    try:
        yield host, name
    finally:
        host.stop()


def audit_actions(emulators: EmulatorEndpoints, database: str, action: str) -> list[dict]:
    cosmos = CosmosClient(
        emulators.cosmos_endpoint, emulators.cosmos_key, connection_verify=False,
        enable_endpoint_discovery=False,
    )  # fmt: skip
    container = cosmos.get_database_client(database).get_container_client("audit")
    query = "SELECT * FROM c WHERE c.action = @a"
    return list(
        container.query_items(
            query, parameters=[{"name": "@a", "value": action}],
            enable_cross_partition_query=True,
        )
    )  # fmt: skip


def test_fifty_wrong_keys_are_throttled_then_the_address_waits(
    app: tuple[HostProcess, str], emulators: EmulatorEndpoints
) -> None:
    host, database = app
    answers = [
        request(host, "GET", "/api/documents", tenant=None,
                headers={"Authorization": f"Bearer wrong-key-{attempt}"})
        for attempt in range(50)
    ]  # fmt: skip
    codes = [status for status, _, _ in answers]
    assert codes == [401] * ALLOWANCE + [429] * (50 - ALLOWANCE), codes
    _, headers, problem = answers[ALLOWANCE]
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 429 and problem["code"] == "credentials_throttled"
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 60 // ALLOWANCE
    # While blocked, the right key is refused too: a 429 tells nothing about a guess. A forged
    # X-Forwarded-For does not make another address (the last entry is the peer's).
    assert request(host, "GET", "/api/documents")[0] == 429
    spoofed = {"Authorization": "Bearer wrong-again", "X-Forwarded-For": "198.51.100.1"}
    assert request(host, "GET", "/api/documents", headers=spoofed, tenant=None)[0] == 429
    # Every failure counted is audited, and the block once; blocked requests write nothing.
    assert len(audit_actions(emulators, database, "auth_failure")) == ALLOWANCE + 1
    throttled = audit_actions(emulators, database, "auth_throttled")
    assert len(throttled) == 1 and "127.0.0.1" in throttled[0]["reason"]
    # Without credentials there is nothing to guess: still 401.
    assert request(host, "GET", "/api/documents", tenant=None)[0] == 401
    time.sleep(retry_after + 0.5)
    assert request(host, "GET", "/api/documents")[0] == 200
