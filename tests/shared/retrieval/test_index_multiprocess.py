"""Another instance's ingestion reaches this instance's memory index, incrementally.

Each OS process is a Function instance with its own Cosmos client and in-process index. This
process loads a tenant; a child process re-ingests one document through the real commit path
(stage, commit, delete what the new version dropped) and deletes another; a third process adds
a document. This process's index must converge to exactly the live chunks in Cosmos, having
read from Cosmos only the changed chunks (never the tenant again), and answer like an index
loaded from scratch.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from shared.documents.figures import FIGURES_CONTAINER, FigureCache
from shared.documents.index import (
    CHUNKS,
    CHUNKS_CONTAINER,
    LIVE,
    MANIFESTS_CONTAINER,
    ChunkDraft,
    Version,
    chunk_ids,
    commit_version,
    remove_document_index,
)
from shared.retrieval.filters import MATCH_ALL
from shared.retrieval.search import MODES, InMemoryIndex, SearchRequest, TenantIndex
from shared.security.principal import Principal
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.shared.retrieval import synthetic

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

TENANT = "acme"
MODEL = "synthetic-32"
DIMENSIONS = 32
REFRESH_SECONDS = 0.5
CONVERGE_SECONDS = 60.0  # generous: the machine may be loaded; the usual is ~1 s
READER = Principal(user_id="alice", tenant=TENANT, groups=("sales", "finance"))
OPEN = {"users": [], "groups": [], "tenant_wide": True}


def drafts(seed: int, count: int) -> list[ChunkDraft]:
    """The first `count` of a seed's 100 generated chunk drafts (same seed, same prefix)."""
    return [
        ChunkDraft(item["kind"], item["text"], item["pages"], item["headings"], item["embedding"])
        for item in synthetic.chunks(100, TENANT, DIMENSIONS, seed)[:count]
    ]


async def ingest(store: CosmosStore, doc_id: str, sha: str, parts: list[ChunkDraft]) -> None:
    """Commits a document version as the ingestion activity does."""
    document = {
        "id": doc_id,
        "tenant": TENANT,
        "name": f"{doc_id}.pdf",
        "media_type": synthetic.PDF,
        "acl": OPEN,
        "sha256": sha,
    }
    ids = chunk_ids(doc_id, parts, MODEL)

    async def one_batch() -> AsyncIterator[list[tuple[str, ChunkDraft]]]:
        yield list(zip(ids, parts, strict=True))

    await commit_version(store, Version(document, f"etag-{sha}", []), one_batch(), MODEL)


async def _on_store(endpoint: str, key: str, database: str, act: Callable[..., Any]) -> None:
    """Run `act(store)` on a store of this process, on its own Cosmos client."""
    async with create_cosmos_client(endpoint, key, None) as client:
        await act(CosmosStore(client, database, CONTAINERS, EMULATOR))


def reingest_and_delete(endpoint: str, key: str, database: str) -> None:
    """Child: doc-a v2 keeps 45 of its 60 chunks and adds 20; doc-b is deleted."""

    async def act(store: CosmosStore) -> None:
        await ingest(store, "doc-a", "v2", drafts(1, 45) + drafts(3, 20))
        await remove_document_index(store, FigureCache(store), TENANT, "doc-b")

    asyncio.run(_on_store(endpoint, key, database, act))


def add_document(endpoint: str, key: str, database: str) -> None:
    """Child: a new document doc-c of 30 chunks."""
    asyncio.run(
        _on_store(endpoint, key, database, lambda s: ingest(s, "doc-c", "v1", drafts(4, 30)))
    )


def run_in_child(target: Callable[..., None], *args: str) -> int:
    """Run `target` in a freshly spawned interpreter; return its exit code."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    process.join(300)
    if process.is_alive():
        process.kill()
        pytest.fail(f"{target.__name__} did not finish")
    assert process.exitcode is not None
    return process.exitcode


CONTAINERS = [CHUNKS_CONTAINER, MANIFESTS_CONTAINER, FIGURES_CONTAINER]


class CountingStore(CosmosStore):
    """A store that counts the chunk rows with an embedding it returned (what a load costs)."""

    vectors_read = 0

    async def query(self, *args: Any, **kwargs: Any) -> list[Any]:
        rows = await super().query(*args, **kwargs)
        self.vectors_read += sum(isinstance(r, dict) and "embedding" in r for r in rows)
        return rows


@pytest.fixture
async def store(emulators: EmulatorEndpoints, unique_name: str) -> AsyncIterator[CountingStore]:
    """A counting store over a fresh database; deleted after."""
    async with create_cosmos_client(emulators.cosmos_endpoint, emulators.cosmos_key, None) as c:
        store = CountingStore(c, unique_name, capabilities=EMULATOR)
        await store.ensure_containers(CONTAINERS)
        yield store
        await c.delete_database(unique_name)


async def live_ids(store: CosmosStore) -> set[str]:
    """The ids of the tenant's live chunks in Cosmos."""
    rows = await store.query_partition(
        CHUNKS, TENANT, "c.status = @live", {"@live": LIVE}, select="c.id"
    )
    return {row["id"] for row in rows}


async def converge(index: InMemoryIndex, expected: set[str]) -> TenantIndex:
    """Asks questions (as traffic would) until the index holds exactly `expected`."""
    deadline = time.monotonic() + CONVERGE_SECONDS
    request = SearchRequest("anything", np.ones(DIMENSIONS), READER, MATCH_ALL, 5)
    while True:
        await index.search(request)
        tenant = await index.tenant_index(TENANT)
        if tenant.ids == expected:
            return tenant
        assert time.monotonic() < deadline, f"{len(tenant.ids ^ expected)} chunks still differ"
        await asyncio.sleep(0.1)


async def test_other_instances_ingestions_and_deletions_arrive_incrementally(
    emulators: EmulatorEndpoints, store: CountingStore, unique_name: str
) -> None:
    await ingest(store, "doc-a", "v1", drafts(1, 60))
    await ingest(store, "doc-b", "v1", drafts(2, 40))
    index = InMemoryIndex(store, REFRESH_SECONDS, wait_seconds=0.05)
    tenant = await converge(index, await live_ids(store))
    assert len(tenant) == 100
    loaded = store.vectors_read
    assert loaded >= 100

    args = (emulators.cosmos_endpoint, emulators.cosmos_key, unique_name)
    assert await asyncio.to_thread(run_in_child, reingest_and_delete, *args) == 0
    assert await asyncio.to_thread(run_in_child, add_document, *args) == 0
    expected = await live_ids(store)
    assert len(expected) == 45 + 20 + 30
    tenant = await converge(index, expected)
    await index.settle()

    # Only the changed chunks travelled: 20 new in doc-a and 30 in doc-c, plus at most the
    # rows the `_ts >= last` delta re-reads from the last second it had seen.
    changed = 20 + 30
    assert changed <= store.vectors_read - loaded < changed + 100
    assert tenant.dead_rows == 40 + 15  # doc-b and doc-a's dropped chunks: tombstones

    fresh = await InMemoryIndex(store, REFRESH_SECONDS).tenant_index(TENANT)
    for question in synthetic.questions(12, [], seed=9, dimensions=DIMENSIONS):
        for mode in MODES:
            request = SearchRequest(question.text, question.vector, READER, MATCH_ALL, 10, mode)
            assert [(r.id, r.score) for r in tenant.search(request)] == [
                (r.id, r.score) for r in fresh.search(request)
            ]
