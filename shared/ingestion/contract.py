"""The ingest contract: what the orchestration and its activities hand each other.

Every payload is a frozen dataclass here, sent through the Durable history as plain JSON
(`as_json`, which leaves out optional fields that are unset) and read back with `parse`
(validated by pydantic). Plain JSON rather than the SDK's class envelope
(`{"__class__", "__module__", "__data__"}`): the history of an in-flight orchestration must
stay readable when a module is renamed or moved, and the envelope names the module.

Activities pass blob names, not payloads, for anything large (layouts, chunks, vectors): the
work-area names below are the only ones the steps share.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cache
from typing import Any, Literal, Self

import azure.functions as func
from pydantic import TypeAdapter


class Contract:
    """A payload of the ingest contract: plain JSON out, validated dataclass in."""

    def as_json(self) -> dict[str, Any]:
        """The JSON object sent through the Durable history (unset optional fields left out)."""
        return _encode(self)

    @classmethod
    def parse(cls, data: Any) -> Self:
        """The payload `as_json` produced (raises pydantic's ValidationError otherwise)."""
        return _adapter(cls).validate_python(data)


@cache
def _adapter(cls: type) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        encoded = {}
        for item in fields(value):
            member = getattr(value, item.name)
            if member is not None or item.default is not None:  # a required field may be null
                encoded[item.name] = _encode(member)
        return encoded
    if isinstance(value, list | tuple):
        return [_encode(member) for member in value]
    if isinstance(value, dict):
        return {key: _encode(member) for key, member in value.items()}
    return value


# The upload and the job ------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload(Contract):
    """A blob version to ingest: where it is and which content version (ETag) it was."""

    container: str
    name: str
    etag: str
    size: int | None
    metadata: dict[str, str]
    instance_id: str | None = None  # the orchestration ingesting it, once started
    traceparent: str | None = None  # the trace this ingestion continues (shared.telemetry.context)

    @classmethod
    def from_blob(cls, blob: func.InputStream) -> Upload:
        """Reads the trigger's blob path, properties and metadata."""
        container, _, name = (blob.name or "").partition("/")
        properties: dict[str, Any] = blob.blob_properties or {}
        return cls(
            container=container,
            name=name,
            etag=str(properties.get("ETag") or properties.get("Etag") or "").strip('"'),
            size=blob.length,
            metadata={str(k): str(v) for k, v in (blob.metadata or {}).items()},
        )

    def as_input(self) -> dict[str, Any]:
        """The orchestration input (plain JSON)."""
        return self.as_json()

    def started_as(self, instance_id: str, traceparent: str | None = None) -> Upload:
        """This upload as the input of orchestration `instance_id`, in trace `traceparent`."""
        return replace(self, instance_id=instance_id, traceparent=traceparent)

    @property
    def instance(self) -> str:
        """The orchestration id for this blob version: duplicates of an event map to it. The
        path holds the tenant folder, so two tenants' documents of one name never share it."""
        digest = hashlib.sha256(f"{self.container}/{self.name}\n{self.etag}".encode()).hexdigest()
        return f"ingest-{digest[:40]}"


@dataclass(frozen=True)
class Job(Contract):
    """An accepted document version: what every later step works on."""

    document_id: str
    tenant: str
    container: str
    name: str  # the blob's path in `container` (`{tenant}/{name}`)
    etag: str
    sha256: str
    media_type: str
    page_count: int
    pages_per_batch: int
    acl: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = None  # copied from the Upload: every activity joins its trace


@dataclass(frozen=True)
class Failure(Contract):
    """A permanent failure an activity reports (returned, not raised: retrying cannot help)."""

    code: str
    reason: str


# Step inputs and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checked(Contract):
    """validate_upload: accepted (with the job), rejected (with the failure), or skipped."""

    outcome: Literal["accepted", "rejected", "unchanged", "superseded", "missing"]
    document_id: str | None = None
    failed: Failure | None = None
    job: Job | None = None


@dataclass(frozen=True)
class PageSpan(Contract):
    """Pages first..last (1-based, inclusive)."""

    first: int
    last: int


@dataclass(frozen=True)
class ExtractRequest(Contract):
    """extract_layout: one page range of the job's document."""

    job: Job
    pages: PageSpan


@dataclass(frozen=True)
class ExtractedPart(Contract):
    """A page range's layout blob, the engine of each page and what it cost."""

    layout: str | None = None  # every field but `failed` is set on success
    first: int | None = None
    engines: dict[str, list[int]] | None = None
    cost_usd: float | None = None
    failed: Failure | None = None


@dataclass(frozen=True)
class MergeRequest(Contract):
    """merge_layout: every extracted part of the job."""

    job: Job
    parts: list[ExtractedPart]


@dataclass(frozen=True)
class FigureRef(Contract):
    """A figure to describe: its image hash and where its crop is in the work area."""

    sha256: str
    blob: str


@dataclass(frozen=True)
class Merged(Contract):
    """The merged layout's counts, its figures to describe, engines and cost."""

    tables: int
    figures: list[FigureRef]
    figures_total: int
    engines: dict[str, list[int]]
    cost_usd: float


@dataclass(frozen=True)
class DescribeRequest(Contract):
    """describe_figures: a group of figures of the job."""

    job: Job
    figures: list[FigureRef]


@dataclass(frozen=True)
class Described(Contract):
    """How many figures have a description, and how many came from the cache."""

    described: int
    cache_hits: int


@dataclass(frozen=True)
class Chunked(Contract):
    """chunk_document: how many chunks, and the [start, end) batches to embed."""

    chunks: int | None = None  # set on success, with batches
    batches: list[tuple[int, int]] | None = None
    failed: Failure | None = None


@dataclass(frozen=True)
class EmbedRequest(Contract):
    """embed_chunks: chunks [start, end) of the job."""

    job: Job
    batch: tuple[int, int]


@dataclass(frozen=True)
class Embedded(Contract):
    """How many chunks were embedded."""

    embedded: int


@dataclass(frozen=True)
class Summary(Contract):
    """What the document version is made of, as the record shows it."""

    counts: dict[str, int]
    engines: dict[str, list[int]]
    cost_usd: float
    figure_hashes: list[str]
    timings: dict[str, float]


@dataclass(frozen=True)
class IndexRequest(Contract):
    """index_document: make the job's version the searchable one, streaming the chunk batches
    (as `Chunked.batches`) in order."""

    job: Job
    summary: Summary
    batches: list[tuple[int, int]]


@dataclass(frozen=True)
class Indexed(Contract):
    """What changed in the index (or why nothing did)."""

    outcome: Literal["indexed", "superseded"] | None = None
    document_id: str | None = None
    chunks_added: int | None = None
    chunks_unchanged: int | None = None
    chunks_removed: int | None = None
    failed: Failure | None = None


@dataclass(frozen=True)
class FailureReport(Contract):
    """fail_document: the job, the step it failed in and why."""

    job: Job
    step: str | None
    code: str
    reason: str


@dataclass(frozen=True)
class FailureRecorded(Contract):
    """Staged chunks discarded, and whether the record was marked failed."""

    discarded: int
    recorded: bool


# The work area: intermediate blobs, by name ----------------------------------------------------

MERGED_LAYOUT = "layout.json"


def layout_leaf(pages: PageSpan) -> str:
    """Where one page range's layout is stored."""
    return f"layout-{pages.first:05d}-{pages.last:05d}.json"


def figure_leaf(sha256: str) -> str:
    """Where a figure's PNG crop is stored."""
    return f"figures/{sha256}.png"


def chunks_leaf(start: int) -> str:
    """Where the chunks of the embedding batch starting at `start` are stored (with their ids):
    each embedding activity reads only its own batch, and indexing streams them in order."""
    return f"chunks-{start:06d}.json"


def embeddings_leaf(start: int) -> str:
    """Where the vectors of the batch starting at `start` are stored."""
    return f"embeddings-{start:06d}.json"
