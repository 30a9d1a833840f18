"""Document records: one Cosmos item per document, the status `GET /api/documents/{id}` shows."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.storage.cosmos import ContainerSpec, CosmosStore

DOCUMENTS_CONTAINER = ContainerSpec("documents", "/tenant")
DOCUMENTS = DOCUMENTS_CONTAINER.name
DEFAULT_TENANT = "default"
STATES = ("queued", "running", "succeeded", "failed", "deleted")


def utc_now() -> str:
    """Now, as the ISO text stored in records."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def document_id(tenant: str, container: str, name: str) -> str:
    """A document's id: stable per tenant and name, so a re-upload updates the same document
    and the same name in two tenants is two documents. (`\x1f` cannot occur in either.)"""
    return hashlib.sha256(f"{tenant}\x1f{container}/{name}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Acl:
    """Who may read a document: named users and groups; both empty means tenant-wide."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Acl:
        """Reads blob metadata `acl`: `user:alice,group:finance` (empty: tenant-wide)."""
        users: list[str] = []
        groups: list[str] = []
        for entry in (text or "").split(","):
            kind, _, value = entry.strip().partition(":")
            if not value:
                continue
            if kind.strip().lower() == "user":
                users.append(value.strip())
            elif kind.strip().lower() == "group":
                groups.append(value.strip())
            else:
                raise ValueError(f"acl entry {entry.strip()!r} must be user:<id> or group:<id>")
        return cls(tuple(sorted(set(users))), tuple(sorted(set(groups))))

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Acl:
        """The inverse of `as_item`."""
        return cls(tuple(sorted(item.get("users") or ())), tuple(sorted(item.get("groups") or ())))

    def as_metadata(self) -> str:
        """The inverse of `parse`."""
        return ",".join([*(f"user:{u}" for u in self.users), *(f"group:{g}" for g in self.groups)])

    def as_item(self) -> dict[str, Any]:
        """What chunks and records store."""
        return {"users": list(self.users), "groups": list(self.groups), "tenant_wide": self.open}

    @property
    def open(self) -> bool:
        """Readable by everyone in the tenant."""
        return not self.users and not self.groups


@dataclass
class DocumentRecord:
    """A document's state, progress, counts, timings and (on failure) its reason."""

    id: str
    tenant: str
    name: str  # the name the tenant gave it (what citations show)
    container: str
    blob: str = ""  # its path in `container`: `{tenant}/{name}` ("" before tenant folders)
    state: str = "queued"
    etag: str | None = None
    sha256: str | None = None
    size: int | None = None
    media_type: str | None = None
    page_count: int | None = None
    step: str | None = None
    percent: int = 0
    instance_id: str | None = None
    acl: dict[str, Any] = field(default_factory=lambda: Acl().as_item())
    counts: dict[str, int] = field(default_factory=dict)
    engines: dict[str, list[int]] = field(default_factory=dict)
    cost_usd: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    error: dict[str, str] | None = None
    indexed: dict[str, Any] | None = None  # the version currently searchable
    created: str = field(default_factory=utc_now)
    updated: str = field(default_factory=utc_now)

    def to_item(self) -> dict[str, Any]:
        """The Cosmos item."""
        return asdict(self)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> DocumentRecord:
        """Reads a Cosmos item, ignoring Cosmos's system fields."""
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in item.items() if key in known})

    @property
    def blob_name(self) -> str:
        """The blob's path in its container (records made before tenant folders: the name)."""
        return self.blob or self.name

    def public(self) -> dict[str, Any]:
        """What the documents API returns."""
        data = self.to_item()
        data.pop("container")
        data.pop("blob")
        return data


async def read_record(store: CosmosStore, tenant: str, doc_id: str) -> DocumentRecord | None:
    """The record, or None."""
    item = await store.read(DOCUMENTS, doc_id, tenant)
    return DocumentRecord.from_item(item) if item else None


async def save_record(store: CosmosStore, record: DocumentRecord) -> None:
    """Writes the record (last writer wins: each step owns the fields it sets)."""
    record.updated = utc_now()
    await store.upsert(DOCUMENTS, record.to_item())


async def update_record(
    store: CosmosStore, tenant: str, doc_id: str, **changes: Any
) -> DocumentRecord | None:
    """Reads, changes and writes a record; None when it does not exist."""
    record = await read_record(store, tenant, doc_id)
    if record is None:
        return None
    for key, value in changes.items():
        setattr(record, key, value)
    await save_record(store, record)
    return record


async def list_records(store: CosmosStore, tenant: str) -> list[DocumentRecord]:
    """A tenant's documents, newest first."""
    items = await store.query_partition(DOCUMENTS, tenant, order_by="c.updated DESC")
    return [DocumentRecord.from_item(item) for item in items]


async def all_live_records(store: CosmosStore) -> list[DocumentRecord]:
    """Every document not deleted, across tenants (the reconciliation timer's scan)."""
    items = await store.query(
        DOCUMENTS, "SELECT * FROM c WHERE c.state != @deleted", {"@deleted": "deleted"}
    )
    return [DocumentRecord.from_item(item) for item in items]
