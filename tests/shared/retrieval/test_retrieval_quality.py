"""Retrieval end to end on the Cosmos emulator: quality, ACL, filters, follow-ups, freshness.

Chunks come from the real pipeline: the generated test documents go through LocalEngine, the
chunker and the local MiniLM embedder, and are written to a database of their own with
`index.chunk_item`. A few chunks are written directly where the test needs exact content
(revenue by year, a group-only chunk, another tenant).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from shared.documents.chunking import ChunkingOptions, chunk_layout
from shared.documents.engines.local import LocalEngine
from shared.documents.index import CHUNKS, LIVE, STAGED, ChunkDraft, chunk_ids, chunk_item
from shared.documents.layout import SourceDocument
from shared.embeddings.local import LocalEmbedder
from shared.retrieval.condense import standalone_question
from shared.retrieval.search import InMemoryIndex, Retriever
from shared.security.principal import Principal
from shared.services import CONTAINERS
from shared.storage.cosmos import EMULATOR, CosmosStore, create_cosmos_client
from tests.fixtures import documents as fixtures

if TYPE_CHECKING:
    from tests.conftest import EmulatorEndpoints

pytestmark = [pytest.mark.emulators, pytest.mark.asyncio(loop_scope="module")]

TENANT, OTHER = "acme", "globex"
OPEN = {"users": [], "groups": [], "tenant_wide": True}
FINANCE_ONLY = {"users": [], "groups": ["finance"], "tenant_wide": False}
ALICE = Principal(user_id="alice", tenant=TENANT, groups=("sales",))
BOB = Principal(user_id="bob", tenant=TENANT, groups=("finance",))
GLOBEX = Principal(user_id="gina", tenant=OTHER, groups=("finance",))
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
SOURCES = (
    ("report.pdf", PDF, fixtures.report_pdf),
    ("orders.pdf", PDF, fixtures.ruled_table_pdf),
    ("stock.pdf", PDF, fixtures.long_table_pdf),
    ("handbook.docx", DOCX, fixtures.docx_document),
    ("review.pptx", PPTX, fixtures.pptx_deck),
    ("install.md", "text/markdown", fixtures.markdown_text),
    ("travel.html", "text/html", fixtures.html_text),
    ("visitors.txt", "text/plain", fixtures.plain_text),
)
# (question, document, page that answers it)
QUESTIONS = (
    ("How many ships does the fleet have?", "report.pdf", 1),
    ("Were there any serious accidents at the terminals?", "report.pdf", 3),
    ("What happened to the cranes at the northern terminal?", "report.pdf", 2),
    ("How did container volumes develop?", "report.pdf", 2),
    ("How much revenue did the East region make?", "orders.pdf", 1),
    ("Which warehouse stores Item 042?", "stock.pdf", 1),
    ("Who has to approve every order?", "handbook.docx", 1),
    ("How long do we have to send goods back?", "handbook.docx", 2),
    ("What share of units were widgets?", "review.pptx", 2),
    ("How much memory does the agent need?", "install.md", 1),
    ("What is the hotel allowance in London?", "travel.html", 1),
    ("Where can visitors park their cars?", "visitors.txt", 1),
)
REVENUE = {
    2022: "Group revenue in 2022 was 378 million dollars.",
    2023: "Group revenue in 2023 was 412 million dollars.",
}
MERGER = "The merger with Globex closes in March; the price is confidential."


@dataclass
class Setup:
    """The store, a retriever over it and the embedder."""

    store: CosmosStore
    retriever: Retriever
    embedder: LocalEmbedder


async def pipeline_items(embedder: LocalEmbedder) -> list[dict[str, Any]]:
    """The generated documents extracted, chunked, embedded and made live chunk items."""
    engine, options = LocalEngine(), ChunkingOptions(max_tokens=256, overlap_tokens=40)
    items = []
    for name, media_type, build in SOURCES:
        extracted = await engine.extract(SourceDocument(name, media_type, build(), 0), None)
        chunks = chunk_layout(extracted.layout, options)
        vectors = await embedder.embed([chunk.text for chunk in chunks])
        drafts = [
            ChunkDraft(c.kind, c.text, c.pages, c.headings, v)
            for c, v in zip(chunks, vectors, strict=True)
        ]
        items += await items_of(embedder, drafts, name, media_type, OPEN, TENANT)
    return items


async def items_of(
    embedder: LocalEmbedder,
    drafts: list[ChunkDraft],
    name: str,
    media_type: str,
    acl: dict[str, Any],
    tenant: str,
    status: str = LIVE,
) -> list[dict[str, Any]]:
    """Chunk items of one document."""
    document = {
        "tenant": tenant,
        "id": f"id-{name}",
        "name": name,
        "media_type": media_type,
        "acl": acl,
        "sha256": "v1",
    }
    ids = chunk_ids(document["id"], drafts, embedder.model)
    return [
        {**chunk_item(chunk_id, draft, document, embedder.model), "status": status}
        for chunk_id, draft in zip(ids, drafts, strict=True)
    ]


async def text_items(
    embedder: LocalEmbedder,
    name: str,
    texts: list[str],
    acl: dict[str, Any],
    tenant: str = TENANT,
    status: str = LIVE,
) -> list[dict[str, Any]]:
    """One chunk per text, page n for the n-th text."""
    vectors = await embedder.embed(texts)
    drafts = [
        ChunkDraft("text", text, [page], [name], vector)
        for page, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1)
    ]
    return await items_of(embedder, drafts, name, "text/plain", acl, tenant, status)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(emulators: EmulatorEndpoints) -> AsyncIterator[Setup]:
    """A database holding the pipeline's chunks plus the hand-written ones."""
    name = f"t-retrieval-{uuid.uuid4().hex[:12]}"
    embedder = LocalEmbedder()
    async with create_cosmos_client(emulators.cosmos_endpoint, emulators.cosmos_key, None) as c:
        store = CosmosStore(c, name, capabilities=EMULATOR)
        await store.ensure_containers(CONTAINERS)
        items = await pipeline_items(embedder)
        items += await text_items(embedder, "results.txt", [REVENUE[2022], REVENUE[2023]], OPEN)
        items += await text_items(embedder, "board.txt", [MERGER], FINANCE_ONLY)
        items += await text_items(embedder, "globex.txt", [MERGER, REVENUE[2023]], OPEN, OTHER)
        for item in items:
            await store.upsert(CHUNKS, item)
        retriever = Retriever(InMemoryIndex(store, refresh_seconds=0), embedder)
        yield Setup(store, retriever, embedder)
        await c.delete_database(name)


async def test_quality_hit_at_5_and_citation_pages(setup: Setup) -> None:
    hits = pages = 0
    for question, document, page in QUESTIONS:
        results = await setup.retriever.retrieve(question, ALICE, None, 5)
        from_document = [r for r in results if r.document_name == document]
        hits += bool(from_document)
        pages += bool(from_document) and page in from_document[0].pages
    hit_rate, page_accuracy = hits / len(QUESTIONS), pages / len(QUESTIONS)
    print(
        f"\nretrieval quality: hit@5={hit_rate:.2f} citation-page={page_accuracy:.2f} "
        f"over {len(QUESTIONS)} questions"
    )
    assert hit_rate >= 0.8
    assert page_accuracy >= 0.75


async def test_a_group_only_chunk_is_invisible_to_non_members(setup: Setup) -> None:
    question = "When does the merger with Globex close?"
    for_alice = await setup.retriever.retrieve(question, ALICE, None, 50)
    assert "board.txt" not in {r.document_name for r in for_alice}
    for_bob = await setup.retriever.retrieve(question, BOB, None, 5)
    assert for_bob[0].document_name == "board.txt"


async def test_another_tenants_chunks_are_invisible(setup: Setup) -> None:
    for_alice = await setup.retriever.retrieve("merger revenue", ALICE, None, 50)
    assert "globex.txt" not in {r.document_name for r in for_alice}
    for_gina = await setup.retriever.retrieve("merger revenue", GLOBEX, None, 50)
    assert {r.document_name for r in for_gina} == {"globex.txt"}


async def test_filters_restrict_the_results(setup: Setup) -> None:
    question = "revenue"
    pdf_only = await setup.retriever.retrieve(question, ALICE, {"media_type": PDF}, 10)
    assert pdf_only and {r.document_name for r in pdf_only} <= {
        "report.pdf",
        "orders.pdf",
        "stock.pdf",
    }
    page_two = await setup.retriever.retrieve(
        "fleet", ALICE, {"document_id": "id-report.pdf", "pages": {"$gte": 2}}, 10
    )
    assert page_two and all(r.document_name == "report.pdf" for r in page_two)
    assert all(max(r.pages) >= 2 for r in page_two)


async def test_a_follow_up_retrieves_the_later_year(setup: Setup) -> None:
    messages = [
        {"role": "user", "content": "What was revenue in 2022?"},
        {"role": "assistant", "content": "378 million dollars."},
        {"role": "user", "content": "and in 2023?"},
    ]
    question = standalone_question(messages)
    assert question == "What was revenue in 2023?"
    results = await setup.retriever.retrieve(question, ALICE, None, 5)
    assert results[0].text == REVENUE[2023]


async def test_writes_and_deletes_show_after_a_refresh(setup: Setup) -> None:
    tenant = f"fresh-{uuid.uuid4().hex[:8]}"  # a tenant of its own: other tests are unaffected
    reader = Principal(user_id="r", tenant=tenant)
    index = InMemoryIndex(setup.store, refresh_seconds=3600)
    retriever = Retriever(index, setup.embedder)
    [first] = await text_items(
        setup.embedder, "a.txt", ["Forklift licences renew yearly."], OPEN, tenant
    )
    await setup.store.upsert(CHUNKS, first)
    assert [r.id for r in await retriever.retrieve("forklift", reader)] == [first["id"]]

    [staged] = await text_items(
        setup.embedder, "b.txt", ["Crane inspections are monthly."], OPEN, tenant, STAGED
    )
    await setup.store.upsert(CHUNKS, staged)
    await index.refresh(tenant)
    assert staged["id"] not in {r.id for r in await retriever.retrieve("crane", reader)}

    await setup.store.patch(
        CHUNKS, staged["id"], tenant, [{"op": "set", "path": "/status", "value": LIVE}]
    )
    await setup.store.delete(CHUNKS, first["id"], tenant)
    assert first["id"] in {r.id for r in await retriever.retrieve("forklift", reader)}  # cached
    await index.refresh(tenant)
    ids = {r.id for r in await retriever.retrieve("crane forklift", reader)}
    assert ids == {staged["id"]}
