"""The security audit log: append-only records in the Cosmos container `audit` (`/tenant`).

Records are only ever created: `AuditLog` writes with `create()` and a fresh (or caller-given,
idempotent) id, so a second write of the same id fails instead of overwriting, and it has no
update, upsert or delete path at all. `record()` never raises into the request path: a failed
write is logged and counted (`failures`, metric `docgate.audit.write_failures`).

What goes in: ids, names and short reasons. Never a credential, token, secret or document text:
`actor` for a failed authentication is "anonymous" or a client id, not what was presented.

Times are UTC ISO-8601 with microseconds and a fixed width ("2025-01-31T09:30:00.000000Z"), so
string order is time order and `since`/`until`/ORDER BY work on the stored text. Auth failures
before a tenant is known go to the `UNKNOWN_TENANT` partition.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from shared import telemetry
from shared.inputs import QUERY
from shared.storage.cosmos import AlreadyExists, ContainerSpec, CosmosStore
from shared.telemetry import meter

log = logging.getLogger(__name__)

AUDIT_CONTAINER = ContainerSpec("audit", "/tenant")  # no TTL: retention is a policy decision
ACTIONS = frozenset(
    {
        "auth_failure",
        "auth_throttled",  # a client address blocked after too many bad credentials
        "permission_denied",
        "upload",
        "delete",
        "acl_change",  # a document's ACL set through PUT /api/documents/{id}/acl
        "admin_action",
        "budget_override",
        "injection_blocked",
        "injection_flagged",  # a question answered under the flag policy
        "document_flagged",  # chunks of an ingested document the screen flagged
        "answer_neutralised",  # exfiltration constructs removed from an answer
    }
)
OUTCOMES = frozenset({"success", "failure", "denied", "blocked"})
UNKNOWN_TENANT = "-"
MAX_FIELD_CHARS = 256
MAX_REASON_CHARS = 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.UTC)


def format_time(moment: dt.datetime) -> str:
    """Fixed-width UTC text whose string order is time order; naive times are refused."""
    if moment.tzinfo is None:
        raise ValueError("audit times must carry a time zone")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span, or None outside a recorded trace."""
    return telemetry.current_trace_id() or None


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` cut to `limit` characters: callers may pass attacker-chosen strings."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def valid_id(record_id: str) -> str:
    """`record_id` if Cosmos accepts it as an item id (cutting it would merge distinct ids)."""
    if len(record_id) > 255 or any(char in record_id for char in "/\\?#"):
        raise ValueError("an audit record id is at most 255 characters, without / \\ ? #")
    return record_id


@dataclass(frozen=True)
class AuditRecord:
    """One audited event."""

    actor: str
    tenant: str
    action: str
    target: str
    outcome: str
    reason: str
    trace_id: str | None
    time: str
    id: str
    score: float | None = None  # the injection detector's score, for screening events

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item."""
        return asdict(self)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AuditRecord:
        """The record of a stored item (Cosmos system fields dropped)."""
        return cls(**{name: item.get(name) for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        """The API shape of GET /api/audit."""
        return asdict(self)


@dataclass(frozen=True)
class AuditFilter:
    """What GET /api/audit may filter on; `sql()` turns it into a parameterised query."""

    tenant: str | None = None
    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = DEFAULT_LIMIT
    min_score: float | None = None

    def __post_init__(self) -> None:
        """Refuse values no record can match, so typos fail loudly."""
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"unknown audit action {self.action!r}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {self.outcome!r}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError("min_score must be between 0 and 1")

    def sql(self) -> tuple[str, dict[str, Any]]:
        """SELECT TOP @limit ... ORDER BY c.time DESC, with every value a parameter."""
        conditions: list[str] = []
        parameters: dict[str, Any] = {"@limit": self.limit}
        for field in ("tenant", "action", "actor", "outcome"):
            value = getattr(self, field)
            if value is not None:
                conditions.append(f"c.{field} = @{field}")
                parameters[f"@{field}"] = value
        if self.since is not None:
            conditions.append("c.time >= @since")
            parameters["@since"] = format_time(self.since)
        if self.until is not None:
            conditions.append("c.time < @until")
            parameters["@until"] = format_time(self.until)
        if self.min_score is not None:
            conditions.append("c.score >= @min_score")
            parameters["@min_score"] = self.min_score
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT TOP @limit * FROM c{where} ORDER BY c.time DESC", parameters


class AuditQuery(BaseModel):
    """`GET /api/audit`'s query string; the tenant is never in it (always the caller's own)."""

    model_config = QUERY
    action: str | None = None
    actor: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    min_score: float | None = Field(default=None, ge=0, le=1)

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str | None) -> str | None:
        if value is not None and value not in ACTIONS:
            raise ValueError(f"unknown audit action; one of {', '.join(sorted(ACTIONS))}")
        return value

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, value: str | None) -> str | None:
        if value is not None and value not in OUTCOMES:
            raise ValueError(f"unknown audit outcome; one of {', '.join(sorted(OUTCOMES))}")
        return value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _utc_time(cls, value: Any) -> dt.datetime | None:
        """An ISO-8601 time (one without a zone is UTC) that exists in UTC: 0001-01-01 at
        +01:00 is the year 0 in UTC, which no datetime can hold."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValueError("an ISO-8601 time, such as 2025-03-01T12:00:00Z")
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("an ISO-8601 time, such as 2025-03-01T12:00:00Z") from None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=dt.UTC)
        try:
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("the time is outside the years 1 to 9999 in UTC") from None

    @model_validator(mode="after")
    def _ordered(self) -> AuditQuery:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self

    def to_filter(self, tenant: str) -> AuditFilter:
        """The filter over `tenant`'s records."""
        return AuditFilter(tenant=tenant, **self.model_dump())


class _Instruments:
    """The audit log's counters."""

    def __init__(self) -> None:
        """Create them on docgate's meter."""
        audit_meter = meter()
        self.records = audit_meter.create_counter("docgate.audit.records")
        self.failures = audit_meter.create_counter("docgate.audit.write_failures")


class AuditLog:
    """Appends audit records and queries them; there is deliberately no way to change one."""

    def __init__(
        self, store: CosmosStore, *, container: str = AUDIT_CONTAINER.name, clock: Clock = utc_now
    ) -> None:
        """Write to `container` of `store` (registered with AUDIT_CONTAINER's partition key)."""
        self._store = store
        self._container = container
        self._clock = clock
        self._instruments = _Instruments()
        self.failures = 0

    async def record(
        self,
        action: str,
        *,
        actor: str,
        tenant: str | None,
        outcome: str,
        target: str = "",
        reason: str = "",
        record_id: str | None = None,
        score: float | None = None,
    ) -> AuditRecord | None:
        """Append one record; returns it, or None when the write failed (logged and counted).

        record_id makes a retried write idempotent: the same id is written at most once.
        """
        try:
            entry = self._build(action, actor, tenant, outcome, target, reason, record_id)
            if score is not None:
                entry = replace(entry, score=round(float(score), 4))
            await self._store.create(self._container, entry.to_item())
        except AlreadyExists:
            self._count_failure(action, "conflict", record_id)
            return None
        except Exception:  # auditing must never fail the request it audits
            self._count_failure(action, "error", record_id, exc_info=True)
            return None
        self._instruments.records.add(1, {"action": action, "outcome": outcome})
        return entry

    async def query(
        self,
        tenant: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        outcome: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditRecord]:
        """Records matching every given filter, newest first (`since` inclusive, `until` not)."""
        return await self.search(AuditFilter(tenant, action, actor, outcome, since, until, limit))

    async def search(self, audit_filter: AuditFilter) -> list[AuditRecord]:
        """`query()` with a prepared filter (as `parse_filter` builds from a request)."""
        sql, parameters = audit_filter.sql()
        # With a tenant the query stays in one partition; without, it fans out (admins only).
        items = await self._store.query(self._container, sql, parameters, audit_filter.tenant)
        return [AuditRecord.from_item(item) for item in items]

    def _build(
        self,
        action: str,
        actor: str,
        tenant: str | None,
        outcome: str,
        target: str,
        reason: str,
        record_id: str | None,
    ) -> AuditRecord:
        """A validated record stamped with the time and the current trace id."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown audit outcome {outcome!r}")
        return AuditRecord(
            actor=clip(actor),
            tenant=clip(tenant or UNKNOWN_TENANT),
            action=action,
            target=clip(target),
            outcome=outcome,
            reason=clip(reason, MAX_REASON_CHARS),
            trace_id=current_trace_id(),
            time=format_time(self._clock()),
            id=valid_id(record_id) if record_id else uuid.uuid4().hex,
        )

    def _count_failure(
        self, action: str, kind: str, record_id: str | None, *, exc_info: bool = False
    ) -> None:
        """Log and count a record that was not written."""
        self.failures += 1
        self._instruments.failures.add(1, {"action": action, "kind": kind})
        log.error(
            "audit record %r (%r) not written: %s",  # %r: both may be caller-chosen text
            record_id or "-",
            action,
            "its id already exists" if kind == "conflict" else "write failed",
            exc_info=exc_info,
            extra={"audit_action": action, "audit_failure": kind},
        )
