"""What a cached answer looks like in Cosmos, and how a ChatResult goes in and comes out.

Container `semantic_cache`, partition key `/partition` (shared.cache.keys.cache_partition), one
item per cached question, id = the exact-match hash of the normalised question:

    {id, partition, tenant, question, embedding[384], answer{...}, document_ids[],
     created, expires_at, hits, last_hit, ttl}

`answer` is the ChatResult without its per-request fields (trace id, timings, cost, usage,
region, cached): a replay costs no tokens and carries the trace id of the request it answers.
`ttl` lets Cosmos delete the item on Azure; `expires_at` is checked by our code on every read,
because the emulator never expires anything and because a hit-counter patch is a write that
restarts Cosmos's TTL clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.chat.service import ChatResult, Citation
from shared.llm.types import Usage
from shared.storage.cosmos import ContainerSpec

CONTAINER = "semantic_cache"
CACHE_REGION = "cache"
Path = Literal["exact", "semantic"]


def container_spec(ttl_seconds: int) -> ContainerSpec:
    """The container: partitioned by cache partition, items expiring after `ttl_seconds`."""
    return ContainerSpec(name=CONTAINER, partition_key_path="/partition", default_ttl=ttl_seconds)


def answer_payload(result: ChatResult) -> dict[str, Any]:
    """The part of a ChatResult worth replaying: no trace id, timings, cost or usage."""
    return {
        "answer": result.answer,
        "citations": [citation.as_json() for citation in result.citations],
        "model": result.model,
        "tier": result.tier,
        "warnings": list(result.warnings),
        "finish_reason": result.finish_reason,
    }


def result_from_payload(payload: Mapping[str, Any], trace_id: str = "") -> ChatResult:
    """A ChatResult replayed from the cache: marked cached, zero usage and cost."""
    return ChatResult(
        answer=payload["answer"],
        citations=[Citation(**citation) for citation in payload.get("citations", [])],
        model=payload["model"],
        tier=payload["tier"],
        region=CACHE_REGION,
        usage=Usage(),
        trace_id=trace_id,
        cached=True,
        warnings=list(payload.get("warnings", [])),
        finish_reason=payload.get("finish_reason", "stop"),
    )


def cited_documents(result: ChatResult) -> list[str]:
    """The distinct document ids the answer cites, sorted."""
    return sorted({citation.document_id for citation in result.citations})


def build_entry(
    entry_id: str,
    partition: str,
    tenant: str,
    question: str,
    vector: Sequence[float],
    result: ChatResult,
    now: float,
    ttl_seconds: int,
) -> dict[str, Any]:
    """The Cosmos item for one cached answer."""
    return {
        "id": entry_id,
        "partition": partition,
        "tenant": tenant,
        "question": question,
        "embedding": [float(value) for value in vector],
        "answer": answer_payload(result),
        "document_ids": cited_documents(result),
        "created": now,
        "expires_at": now + ttl_seconds,
        "hits": 0,
        "last_hit": now,
        "ttl": ttl_seconds,
    }


def is_fresh(item: Mapping[str, Any], now: float) -> bool:
    """False once the entry's own expires_at has passed (whatever Cosmos did)."""
    expires_at = item.get("expires_at")
    return isinstance(expires_at, int | float) and now < expires_at


@dataclass(frozen=True)
class CacheHit:
    """A cached answer, how it was found and how close the cached question was."""

    result: ChatResult
    path: Path
    similarity: float  # cosine similarity in [0, 1]; 1.0 for the exact path
    cached_question: str
    entry_id: str
    partition: str


__all__ = [
    "CACHE_REGION",
    "CONTAINER",
    "CacheHit",
    "Path",
    "answer_payload",
    "build_entry",
    "cited_documents",
    "container_spec",
    "is_fresh",
    "result_from_payload",
]
