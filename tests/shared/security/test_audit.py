"""The append-only audit log against the Cosmos emulator, through the real azure-cosmos SDK."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from azure.cosmos.aio import CosmosClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared.errors import InvalidRequest
from shared.inputs import parse_query
from shared.security.audit import (
    AUDIT_CONTAINER,
    UNKNOWN_TENANT,
    AuditFilter,
    AuditLog,
    AuditQuery,
)
from shared.storage.cosmos import EMULATOR, CosmosStore

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.emulators

START = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class SteppingClock:
    """Each reading is one minute after the previous one, from START."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


@pytest.fixture
async def store(cosmos_client: CosmosClient, unique_name: str) -> AsyncIterator[CosmosStore]:
    """A store on a database of its own with the audit container, dropped afterwards."""
    store = CosmosStore(cosmos_client, unique_name, capabilities=EMULATOR)
    await store.ensure_containers([AUDIT_CONTAINER])
    yield store
    await cosmos_client.delete_database(unique_name)


@pytest.fixture
def audit(store: CosmosStore) -> AuditLog:
    """The audit log, on a clock that ticks a minute per record."""
    return AuditLog(store, clock=SteppingClock())


def sdk_tracer() -> trace.Tracer:
    """A tracer that records (real trace ids): the global SDK provider, installed if absent."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another non-SDK provider is installed"
    return provider.get_tracer("audit-test")


async def seed(audit: AuditLog) -> None:
    """Six records over two tenants, one minute apart."""
    await audit.record("upload", actor="alice", tenant="t1", outcome="success", target="doc-1")
    await audit.record("permission_denied", actor="bob", tenant="t1", outcome="denied")
    await audit.record("upload", actor="carol", tenant="t2", outcome="success", target="doc-2")
    await audit.record("auth_failure", actor="anonymous", tenant=None, outcome="failure")
    await audit.record("delete", actor="alice", tenant="t1", outcome="success", target="doc-1")
    await audit.record("injection_blocked", actor="bob", tenant="t2", outcome="blocked")


async def test_record_is_stored_with_every_field(audit: AuditLog, store: CosmosStore) -> None:
    written = await audit.record(
        "budget_override",
        actor="admin-1",
        tenant="t1",
        outcome="success",
        target="budget:t1",
        reason="quarter-end run",
    )
    assert written is not None
    stored = await store.read("audit", written.id, "t1")
    assert stored is not None
    assert {k: stored[k] for k in written.to_item()} == written.to_item()
    assert stored["time"] == "2025-03-01T12:01:00.000000Z"


async def test_same_id_twice_fails_and_is_counted_never_overwritten(
    audit: AuditLog, store: CosmosStore, caplog: pytest.LogCaptureFixture
) -> None:
    first = await audit.record(
        "delete", actor="alice", tenant="t1", outcome="success", record_id="req-42-delete"
    )
    with caplog.at_level(logging.ERROR, logger="shared.security.audit"):
        second = await audit.record(
            "delete", actor="mallory", tenant="t1", outcome="failure", record_id="req-42-delete"
        )
    assert first is not None and second is None
    assert audit.failures == 1
    assert "req-42-delete" in caplog.text and "already exists" in caplog.text
    stored = await store.read("audit", "req-42-delete", "t1")
    assert stored is not None and stored["actor"] == "alice"


def test_there_is_no_update_path() -> None:
    writers = ("update", "upsert", "replace", "patch", "delete", "remove", "write_batch")
    assert not [name for name in writers if hasattr(AuditLog, name)]


async def test_record_never_raises_into_the_request_path(store: CosmosStore) -> None:
    broken = AuditLog(store, container="not-registered")
    assert await broken.record("upload", actor="a", tenant="t1", outcome="success") is None
    audit = AuditLog(store)
    assert await audit.record("made_up", actor="a", tenant="t1", outcome="success") is None
    assert await audit.record("upload", actor="a", tenant="t1", outcome="maybe") is None
    bad_id = await audit.record(
        "upload", actor="a", tenant="t1", outcome="success", record_id="a/b"
    )
    assert bad_id is None
    assert broken.failures == 1 and audit.failures == 3


async def test_unknown_tenant_and_long_values_are_contained(audit: AuditLog) -> None:
    written = await audit.record("auth_failure", actor="x" * 5000, tenant=None, outcome="failure")
    assert written is not None
    assert written.tenant == UNKNOWN_TENANT
    assert len(written.actor) == 256
    [found] = await audit.query(tenant=UNKNOWN_TENANT)
    assert found == written


async def test_trace_id_is_taken_from_the_current_span(audit: AuditLog) -> None:
    with sdk_tracer().start_as_current_span("request") as span:
        written = await audit.record("upload", actor="alice", tenant="t1", outcome="success")
    expected = trace.format_trace_id(span.get_span_context().trace_id)
    assert written is not None and written.trace_id == expected
    [found] = await audit.query(tenant="t1")
    assert found.trace_id == expected
    outside = await audit.record("upload", actor="alice", tenant="t1", outcome="success")
    assert outside is not None and outside.trace_id is None


async def test_query_is_newest_first_across_tenants(audit: AuditLog) -> None:
    await seed(audit)
    records = await audit.query()
    assert [r.time for r in records] == sorted((r.time for r in records), reverse=True)
    assert [r.action for r in records] == [
        "injection_blocked",
        "delete",
        "auth_failure",
        "upload",
        "permission_denied",
        "upload",
    ]


async def test_query_filters(audit: AuditLog) -> None:
    await seed(audit)
    t1 = await audit.query(tenant="t1")
    assert [r.actor for r in t1] == ["alice", "bob", "alice"]
    assert {r.tenant for r in await audit.query(action="upload")} == {"t1", "t2"}
    assert [r.action for r in await audit.query(actor="bob")] == [
        "injection_blocked",
        "permission_denied",
    ]
    assert [r.actor for r in await audit.query(outcome="denied")] == ["bob"]
    both = await audit.query(tenant="t1", actor="alice", action="delete")
    assert [r.target for r in both] == ["doc-1"]


async def test_query_time_window_and_limit(audit: AuditLog) -> None:
    await seed(audit)  # at 12:01 ... 12:06
    since, until = START + dt.timedelta(minutes=2), START + dt.timedelta(minutes=5)
    window = await audit.query(since=since, until=until)
    assert [r.time[11:16] for r in window] == ["12:04", "12:03", "12:02"]
    assert [r.time[11:16] for r in await audit.query(limit=2)] == ["12:06", "12:05"]


async def test_filter_values_are_parameters_not_sql(audit: AuditLog) -> None:
    await seed(audit)
    assert await audit.query(actor="x' OR 1=1 OR c.actor = 'y") == []
    sql, parameters = AuditFilter(tenant="t1' --", actor="a").sql()
    assert "t1" not in sql and parameters["@tenant"] == "t1' --"


def test_the_audit_query_reads_the_query_string() -> None:
    pairs = {"action": "upload", "since": "2025-03-01T12:00:00Z", "limit": "5"}
    parsed = parse_query(AuditQuery, pairs.items()).to_filter("t1")
    assert parsed == AuditFilter(tenant="t1", action="upload", since=START, limit=5)
    no_zone = parse_query(AuditQuery, [("until", "2025-03-01T12:00:00")])
    assert no_zone.to_filter("t1").until == START  # no zone: UTC
    bad = [
        {"action": "drop_table"},
        {"outcome": "meh"},
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"since": "yesterday"},
        {"since": "1700000000"},  # a number is not an ISO-8601 time
        {"since": "2025-03-02T00:00:00Z", "until": "2025-03-01T00:00:00Z"},
        {"since": "0001-01-01T00:00:00+01:00"},  # before the year 1 in UTC
        {"until": "9999-12-31T23:59:59-01:00"},  # after the year 9999 in UTC
        {"min_score": "nan"},
        {"tenantt": "t1"},
        {"tenant": "t1"},  # the tenant is always the caller's own
    ]
    for params in bad:
        with pytest.raises(InvalidRequest):
            parse_query(AuditQuery, params.items())
