"""The search layer without Cosmos: the in-memory tenant index, the Cosmos query it would send
and the retriever's input checks."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace
from typing import Any

import pytest

from shared.retrieval.filters import MATCH_ALL, InvalidFilter, parse_filter
from shared.retrieval.search import (
    CosmosVectorIndex,
    InMemoryIndex,
    Retriever,
    SearchRequest,
    TenantIndex,
    build_retriever,
    rank_candidates,
    vector_query,
)
from shared.security.principal import Principal
from shared.storage.cosmos import AZURE, EMULATOR

ALICE = Principal(user_id="alice", tenant="acme", groups=("sales",))


def chunk(chunk_id: str, text: str, vector: list[float], **extra: Any) -> dict[str, Any]:
    """A live, tenant-wide chunk item of tenant acme."""
    return {
        "id": chunk_id,
        "tenant": "acme",
        "document_id": f"doc-{chunk_id}",
        "document_name": f"{chunk_id}.pdf",
        "media_type": "application/pdf",
        "acl": {"users": [], "groups": [], "tenant_wide": True},
        "kind": "text",
        "text": text,
        "pages": [1],
        "headings": [],
        "embedding": vector,
        "status": "live",
        **extra,
    }


def request(text: str, vector: list[float], **overrides: Any) -> SearchRequest:
    """A hybrid request by Alice for the top 5."""
    values: dict[str, Any] = {
        "text": text,
        "vector": vector,
        "principal": ALICE,
        "filters": MATCH_ALL,
        "top_k": 5,
    }
    return SearchRequest(**{**values, **overrides})


@pytest.fixture
def index() -> TenantIndex:
    """Four chunks: two near the question vector, one exact-term match, one closed to Alice."""
    index = TenantIndex()
    index.upsert(chunk("near", "fleet overview vessels", [1.0, 0.0, 0.0]))
    index.upsert(chunk("close", "cargo volumes", [0.9, 0.1, 0.0]))
    index.upsert(chunk("term", "error code E-47 scanner", [0.0, 1.0, 0.0]))
    secret = {"users": [], "groups": ["finance"], "tenant_wide": False}
    index.upsert(chunk("secret", "E-47 vessels merger", [1.0, 0.0, 0.0], acl=secret))
    return index


def test_vector_mode_ranks_by_cosine(index: TenantIndex) -> None:
    results = index.search(request("x", [2.0, 0.0, 0.0], mode="vector"))
    assert [r.id for r in results] == ["near", "close", "term"]
    assert results[0].score == pytest.approx(1.0)


def test_keyword_mode_finds_the_exact_term(index: TenantIndex) -> None:
    results = index.search(request("E-47", [1.0, 0.0, 0.0], mode="keyword"))
    assert [r.id for r in results] == ["term"]
    assert results[0].keyword_rank == 1 and results[0].vector_rank == 3


def test_hybrid_fuses_both_rankings(index: TenantIndex) -> None:
    results = index.search(request("E-47 vessels", [1.0, 0.0, 0.0]))
    assert {r.id for r in results[:2]} == {"near", "term"}
    assert all(r.score > 0 for r in results)


def test_a_closed_chunk_never_appears_even_last(index: TenantIndex) -> None:
    results = index.search(request("E-47 vessels merger", [1.0, 0.0, 0.0], top_k=50))
    assert "secret" not in {r.id for r in results}
    finance = Principal(user_id="bob", tenant="acme", groups=("finance",))
    results = index.search(request("merger", [1.0, 0.0, 0.0], principal=finance))
    assert results[0].id == "secret"


def test_filters_apply_before_ranking(index: TenantIndex) -> None:
    only = parse_filter({"document_id": {"$in": ["doc-term", "doc-close"]}})
    results = index.search(request("vessels", [1.0, 0.0, 0.0], filters=only))
    assert [r.id for r in results] == ["close", "term"]


def test_upsert_replaces_and_remove_drops(index: TenantIndex) -> None:
    index.upsert(chunk("near", "replaced text", [0.0, 0.0, 1.0]))
    assert len(index) == 4
    assert index.search(request("x", [0.0, 0.0, 1.0], mode="vector"))[0].id == "near"
    assert index.remove("near") and not index.remove("near")
    assert "near" not in index.ids


def test_vectors_of_another_dimension_are_skipped(index: TenantIndex) -> None:
    index.upsert(chunk("odd", "odd", [1.0, 0.0]))
    assert "odd" not in index.ids


def test_the_cosmos_query_is_parameterised_and_acl_trimmed() -> None:
    hostile = Principal(user_id="x' OR 1=1 --", tenant="acme", groups=("g';",))
    filters = parse_filter({"media_type": "application/pdf'; --"})
    sql, parameters = vector_query(request("q", [0.5, 0.5], principal=hostile, filters=filters))
    assert sql.startswith("SELECT TOP @top c.id, c.tenant, c.document_id")
    assert "VectorDistance(c.embedding, @vector) AS similarity" in sql
    assert sql.endswith("ORDER BY VectorDistance(c.embedding, @vector)")
    assert "c.tenant = @pk AND (c.tenant = @acl_tenant AND c.status = @acl_live" in sql
    assert "EXISTS(SELECT VALUE g FROM g IN c.acl.groups" in sql
    assert "AND c.media_type = @f0 ORDER BY" in sql
    assert "'" not in sql and "--" not in sql and ";" not in sql
    assert set(re.findall(r"@\w+", sql)) == set(parameters)
    assert parameters["@vector"] == [0.5, 0.5] and parameters["@top"] == 50
    assert parameters["@pk"] == "acme" and parameters["@acl_user"] == "x' OR 1=1 --"


def test_cosmos_candidates_are_fused_with_bm25() -> None:
    rows = [
        {**chunk("a", "fleet vessels", []), "similarity": 0.9},
        {**chunk("b", "cargo", []), "similarity": 0.8},
        {**chunk("c", "error E-47", []), "similarity": 0.1},
    ]
    results = rank_candidates(request("E-47", [1.0]), rows)
    assert results[0].id == "a" or results[0].id == "c"
    assert {r.id: (r.vector_rank, r.keyword_rank) for r in results}["c"] == (3, 1)
    vector_only = rank_candidates(request("E-47", [1.0], mode="vector", top_k=2), rows)
    assert [(r.id, r.score) for r in vector_only] == [("a", 0.9), ("b", 0.8)]


def test_cosmos_mode_refuses_an_endpoint_without_vector_search() -> None:
    with pytest.raises(ValueError, match="RETRIEVAL_MODE=memory"):
        CosmosVectorIndex(SimpleNamespace(capabilities=EMULATOR))  # type: ignore[arg-type]


class FakeEmbedder:
    """Counts calls; every text embeds to the same vector."""

    model, dimensions = "fake", 3

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [[1.0, 0.0, 0.0] for _ in texts]


class FixedIndex:
    """A VectorSearch that records the request."""

    def __init__(self) -> None:
        self.requests: list[SearchRequest] = []

    async def search(self, request: SearchRequest) -> list[Any]:
        self.requests.append(request)
        return []


async def test_the_retriever_checks_input_before_embedding() -> None:
    embedder, index = FakeEmbedder(), FixedIndex()
    retriever = Retriever(index, embedder, default_top_k=7)
    with pytest.raises(InvalidFilter):
        await retriever.retrieve("q", ALICE, {"owner": "me"})
    with pytest.raises(ValueError, match="top_k"):
        await retriever.retrieve("q", ALICE, None, top_k=0)
    with pytest.raises(ValueError, match="mode"):
        await retriever.retrieve("q", ALICE, None, mode="fuzzy")  # type: ignore[arg-type]
    assert embedder.calls == 0
    await retriever.retrieve("q", ALICE, {"kind": "table"})
    assert index.requests[0].top_k == 7 and index.requests[0].vector == [1.0, 0.0, 0.0]


def test_build_retriever_picks_the_mode() -> None:
    def built(mode: str, capabilities: Any) -> Any:
        store: Any = SimpleNamespace(capabilities=capabilities)
        return build_retriever(mode, store, FakeEmbedder(), 4)

    assert isinstance(built("memory", EMULATOR).index, InMemoryIndex)
    assert isinstance(built("cosmos", AZURE).index, CosmosVectorIndex)


@pytest.mark.skipif(
    not os.environ.get("DOCGATE_AZURE_COSMOS_ENDPOINT"),
    reason="needs a real Azure Cosmos DB account with a vector index (VectorDistance); the "
    "emulator has none. Set DOCGATE_AZURE_COSMOS_ENDPOINT to run.",
)
async def test_vector_distance_on_real_azure() -> None:
    from azure.identity.aio import DefaultAzureCredential

    from shared.services import CONTAINERS
    from shared.storage.cosmos import CosmosStore, create_cosmos_client

    endpoint = os.environ["DOCGATE_AZURE_COSMOS_ENDPOINT"]
    database = os.environ.get("DOCGATE_AZURE_COSMOS_DATABASE", "docgate")
    async with (
        DefaultAzureCredential() as credential,
        create_cosmos_client(endpoint, None, credential) as client,
    ):
        store = CosmosStore(client, database, CONTAINERS, AZURE)
        index = CosmosVectorIndex(store)
        results = await index.search(request("anything", [0.0] * 383 + [1.0]))
        assert all(r.document_id for r in results)
