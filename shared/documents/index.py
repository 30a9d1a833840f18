"""The chunk index in Cosmos: deterministic chunk ids, manifests, stage-then-commit writes.

A document version is indexed in two moves so a failed re-ingestion never leaves a half index:
new chunks are written `staged` (invisible to retrieval, which reads only `live` ones), then
committed: flipped to `live`, the chunks the new version no longer has are deleted, and the
manifest is replaced. Chunks whose content did not change keep their id and are not touched.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.documents.figures import FigureCache
from shared.storage.cosmos import ContainerSpec, CosmosStore, PreconditionFailed

# Partitioned by tenant: every query of retrieval and of the documents API is scoped to one
# tenant. (One logical partition holds at most 20 GB; a tenant beyond that needs a
# hierarchical key.)
CHUNKS_CONTAINER = ContainerSpec("chunks", "/tenant")
MANIFESTS_CONTAINER = ContainerSpec("manifests", "/tenant")
CHUNKS = CHUNKS_CONTAINER.name
MANIFESTS = MANIFESTS_CONTAINER.name
STAGED = "staged"
LIVE = "live"
INDEX_META_ID = "index-meta"
INDEX_META_TENANT = "_index"


class EmbeddingMismatch(Exception):
    """The index holds vectors of another model or dimension: mixing them is refused."""


class VersionConflict(Exception):
    """Another version of the document committed concurrently (retrying re-reads it)."""


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk ready to index: text, citation data and its embedding."""

    kind: str
    text: str
    pages: list[int]
    headings: list[str]
    embedding: list[float]
    injection: dict[str, Any] | None = None  # the injection screen's stored verdict
    page_spans: list[dict[str, int]] = field(default_factory=list)  # see pagespans.py


class ChunkContent(Protocol):
    """What a chunk's id is made of (a ChunkDraft, or the chunker's Chunk)."""

    kind: str
    text: str
    pages: list[int]


def chunk_ids(doc_id: str, drafts: Sequence[ChunkContent], embedding_model: str) -> list[str]:
    """Ids from document id + content hash + ordinal among identical contents.

    The ordinal counts repeats of the same content, not the position, so inserting a paragraph
    near the top does not renumber every chunk after it. The model is hashed in: re-embedding
    with another model is a new set of chunks.
    """
    seen: Counter[str] = Counter()
    ids = []
    for draft in drafts:
        material = "\x1f".join(
            [embedding_model, draft.kind, ",".join(map(str, draft.pages)), draft.text]
        )
        digest = hashlib.sha256(material.encode()).hexdigest()[:24]
        ids.append(f"{doc_id}-{digest}-{seen[digest]}")
        seen[digest] += 1
    return ids


async def check_embedding_space(store: CosmosStore, model: str, dimensions: int) -> None:
    """Records the index's embedding model on first use; refuses another one afterwards."""
    meta = await store.read(MANIFESTS, INDEX_META_ID, INDEX_META_TENANT)
    if meta is None:
        await store.upsert(
            MANIFESTS,
            {"id": INDEX_META_ID, "tenant": INDEX_META_TENANT, "model": model, "dim": dimensions},
        )
        return
    if (meta["model"], meta["dim"]) != (model, dimensions):
        raise EmbeddingMismatch(
            f"the index holds {meta['dim']}-d vectors of {meta['model']}; this ingestion made "
            f"{dimensions}-d vectors of {model}. Mixing them would break search: re-index every "
            "document with one model, or use a separate COSMOS_DATABASE."
        )


def chunk_item(
    chunk_id: str, draft: ChunkDraft, document: dict[str, Any], model: str
) -> dict[str, Any]:
    """The Cosmos item of one chunk (with the injection verdict made at ingestion)."""
    item = {
        "id": chunk_id,
        "tenant": document["tenant"],
        "document_id": document["id"],
        "document_name": document["name"],
        "media_type": document["media_type"],
        "acl": document["acl"],
        "kind": draft.kind,
        "text": draft.text,
        "pages": draft.pages,
        "page_spans": draft.page_spans,
        "headings": draft.headings,
        "embedding": draft.embedding,
        "embedding_model": model,
        "embedding_dim": len(draft.embedding),
        "version": document["sha256"],
        "status": STAGED,
    }
    if draft.injection is not None:
        item["injection"] = draft.injection
    return item


async def read_manifest(store: CosmosStore, tenant: str, doc_id: str) -> dict[str, Any] | None:
    """The manifest of the version currently searchable."""
    return await store.read(MANIFESTS, doc_id, tenant)


async def stage_chunks(
    store: CosmosStore, items: list[dict[str, Any]], live_ids: set[str]
) -> list[str]:
    """Writes the chunks the searchable version lacks as `staged`; returns their ids."""
    staged = []
    for item in items:
        if item["id"] in live_ids:
            continue  # same content, same id: leave it untouched
        await store.upsert(CHUNKS, item)
        staged.append(item["id"])
    return staged


async def commit_chunks(
    store: CosmosStore,
    tenant: str,
    doc_id: str,
    manifest: dict[str, Any],
    previous: dict[str, Any] | None,
) -> int:
    """Makes this version's staged chunks live and deletes live chunks it no longer has.

    The manifest is claimed first, conditionally on the one read before staging, so two
    versions committing at once cannot both win. The rest is derived from the chunks actually
    stored, so a commit interrupted half-way converges when it runs again.
    """
    item = {"id": doc_id, "tenant": tenant, **manifest}
    if previous is None:
        await store.create(MANIFESTS, item)
    elif (
        previous.get("version") != manifest["version"]
        or previous["chunk_ids"] != manifest["chunk_ids"]
    ):
        await store.replace(MANIFESTS, item, previous["_etag"])
    kept = set(manifest["chunk_ids"])
    stored = await store.query_partition(
        CHUNKS, tenant, "c.document_id = @doc", {"@doc": doc_id}, select="c.id, c.status"
    )
    removed = 0
    for chunk in stored:
        if chunk["id"] in kept and chunk["status"] == STAGED:
            operations = [{"op": "set", "path": "/status", "value": LIVE}]
            await store.patch(CHUNKS, chunk["id"], tenant, operations)
        elif chunk["id"] not in kept and chunk["status"] == LIVE:
            removed += await store.delete(CHUNKS, chunk["id"], tenant)
    return removed


async def discard_staged(store: CosmosStore, tenant: str, doc_id: str) -> int:
    """Deletes a failed version's staged chunks; live ones stay searchable."""
    items = await store.query_partition(
        CHUNKS,
        tenant,
        "c.document_id = @doc AND c.status = @staged",
        {"@doc": doc_id, "@staged": STAGED},
        select="c.id",
    )
    for item in items:
        await store.delete(CHUNKS, item["id"], tenant)
    return len(items)


async def remove_document_index(
    store: CosmosStore, figures: FigureCache, tenant: str, doc_id: str
) -> dict[str, int]:
    """Deletes every chunk, the manifest and the figure descriptions of a document."""
    manifest = await read_manifest(store, tenant, doc_id)
    chunks = await store.query_partition(
        CHUNKS, tenant, "c.document_id = @doc", {"@doc": doc_id}, select="c.id"
    )
    for item in chunks:
        await store.delete(CHUNKS, item["id"], tenant)
    described = await figures.forget((manifest or {}).get("figure_hashes", []))
    if manifest is not None:
        await store.delete(MANIFESTS, doc_id, tenant)
    return {"chunks": len(chunks), "figures": described}


async def set_chunk_acl(store: CosmosStore, tenant: str, doc_id: str, acl: dict[str, Any]) -> int:
    """Gives every chunk of the document (live and staged) `acl`; returns how many changed.

    Unchanged chunks keep their id across versions and are never rewritten by a commit, so an
    ACL change must reach them here."""
    chunks = await store.query_partition(
        CHUNKS, tenant, "c.document_id = @doc", {"@doc": doc_id}, select="c.id, c.acl"
    )
    changed = [chunk["id"] for chunk in chunks if chunk.get("acl") != acl]
    for chunk_id in changed:
        await store.patch(CHUNKS, chunk_id, tenant, [{"op": "set", "path": "/acl", "value": acl}])
    return len(changed)


@dataclass(frozen=True)
class Version:
    """A document version to make searchable: its record and what its chunks are made of."""

    document: dict[str, Any]  # the record's item, with this version's media_type and sha256
    etag: str
    figure_hashes: list[str]


@dataclass(frozen=True)
class Committed:
    """What committing a version changed."""

    chunk_ids: list[str]
    added: int
    removed: int
    embedding_model: str
    embedding_dim: int

    @property
    def unchanged(self) -> int:
        """Chunks the previous version had already (same content, same id)."""
        return len(self.chunk_ids) - self.added


async def is_live(store: CosmosStore, tenant: str, chunk_ids: Iterable[str]) -> bool:
    """Whether every one of these chunks is still live (none deleted or re-staged)."""
    for chunk_id in chunk_ids:
        chunk = await store.read(CHUNKS, chunk_id, tenant)
        if chunk is None or chunk.get("status") != LIVE:
            return False
    return True


async def commit_version(
    store: CosmosStore,
    version: Version,
    batches: AsyncIterable[Sequence[tuple[str, ChunkDraft]]],
    model: str,
) -> Committed:
    """Stages the version's chunks batch by batch, then commits them: this version becomes the
    searchable one. `batches` yields (chunk id, draft) pairs in document order (ids from
    `chunk_ids` over the whole document); only one batch is held at a time, so memory does not
    grow with the document.

    EmbeddingMismatch when the index holds vectors of another model; VersionConflict when
    another version committed meanwhile (a retry re-reads it and converges).
    """
    document = version.document
    tenant, doc_id = document["tenant"], document["id"]
    previous = await read_manifest(store, tenant, doc_id)
    live = set((previous or {}).get("chunk_ids", []))
    ids: list[str] = []
    dimensions = 0
    staged = 0
    async for batch in batches:
        if not batch:
            continue
        if not dimensions:
            dimensions = len(batch[0][1].embedding)
            await check_embedding_space(store, model, dimensions)
        items = [chunk_item(cid, draft, document, model) for cid, draft in batch]
        staged += len(await stage_chunks(store, items, live))
        ids += [cid for cid, _ in batch]
    manifest = {
        "version": document["sha256"],
        "etag": version.etag,
        "chunk_ids": ids,
        "figure_hashes": version.figure_hashes,
        "embedding_model": model,
        "embedding_dim": dimensions,
    }
    try:
        removed = await commit_chunks(store, tenant, doc_id, manifest, previous)
    except PreconditionFailed as conflict:
        raise VersionConflict(
            "another version of this document committed concurrently"
        ) from conflict
    return Committed(ids, staged, removed, model, dimensions)


__all__ = [
    "CHUNKS",
    "CHUNKS_CONTAINER",
    "LIVE",
    "MANIFESTS",
    "MANIFESTS_CONTAINER",
    "STAGED",
    "ChunkContent",
    "ChunkDraft",
    "Committed",
    "EmbeddingMismatch",
    "Version",
    "VersionConflict",
    "check_embedding_space",
    "chunk_ids",
    "chunk_item",
    "commit_chunks",
    "commit_version",
    "discard_staged",
    "is_live",
    "read_manifest",
    "remove_document_index",
    "set_chunk_acl",
    "stage_chunks",
]
