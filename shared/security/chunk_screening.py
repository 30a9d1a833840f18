"""Screening verdicts on chunks: made at ingestion, applied at chat time, audited once.

Ingestion (`embed_chunks`) screens every chunk with the same detector as questions (and Prompt
Shields when configured) and stores the verdict on the chunk (`injection`: score, reasons,
detector version, Shields state). Chat reads it with the chunk and applies the documents policy
(fence or drop) without screening sources per request.

Chunks with no verdict - indexed before screening existed - or with a verdict of other weights
are screened once, on first retrieval, before they reach a prompt, and the verdict is written
back to the chunk (a patch), so an older index converges without re-ingestion and no chunk is
ever used unscreened. A failed write-back only means the next request screens it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.documents.index import CHUNKS
from shared.security.injection import DocumentScreening, InjectionScreen, StoredVerdict

log = logging.getLogger(__name__)
MAX_AUDIT_REASONS = 6


async def screen_retrieved(
    screen: InjectionScreen, store: Any, tenant: str, chunks: Sequence[Any]
) -> tuple[DocumentScreening[Any], dict[str, StoredVerdict]]:
    """The documents policy over retrieved chunks, and the verdict used for each chunk id."""
    verdicts: dict[str, StoredVerdict] = {}
    for chunk in chunks:
        stored = StoredVerdict.from_item(getattr(chunk, "injection", None))
        if stored is not None:
            verdicts[chunk.id] = stored
    missing = [chunk for chunk in chunks if chunk.id not in verdicts]
    if missing and screen.policy.documents != "allow":
        fresh = await screen.screen_texts([chunk.text for chunk in missing])
        for chunk, verdict in zip(missing, fresh, strict=True):
            verdicts[chunk.id] = verdict
            await _write_back(store, tenant, chunk.id, verdict)
    screening = await screen.screen_documents(chunks, stored=lambda chunk: verdicts.get(chunk.id))
    return screening, verdicts


async def _write_back(store: Any, tenant: str, chunk_id: str, verdict: StoredVerdict) -> None:
    """Stores a lazily made verdict on its chunk (best effort)."""
    if store is None:
        return
    try:
        operations = [{"op": "set", "path": "/injection", "value": verdict.to_item()}]
        await store.patch(CHUNKS, chunk_id, tenant, operations)
    except Exception:  # the chunk may be gone (re-ingested); the verdict was still applied
        log.warning("could not store the injection verdict of chunk %s", chunk_id, exc_info=True)


def flagged_chunks(
    verdicts: Sequence[dict[str, Any] | None], threshold: float
) -> list[tuple[int, dict[str, Any]]]:
    """(position, stored verdict) of the chunks whose stored score reaches `threshold`."""
    return [
        (index, verdict)
        for index, verdict in enumerate(verdicts)
        if verdict is not None and float(verdict.get("score", 0.0)) >= threshold
    ]


def flagged_reason(flagged: Sequence[tuple[int, dict[str, Any]]], total: int) -> str:
    """A short audit reason: how many chunks, and the commonest reasons."""
    reasons: dict[str, int] = {}
    for _, verdict in flagged:
        for reason in verdict.get("reasons", []):
            reasons[reason] = reasons.get(reason, 0) + 1
    common = sorted(reasons, key=lambda reason: -reasons[reason])[:MAX_AUDIT_REASONS]
    positions = ", ".join(str(index + 1) for index, _ in flagged[:20])
    return f"{len(flagged)} of {total} chunks flagged (chunks {positions}): " + "; ".join(common)


async def audit_flagged_document(
    audit_log: Any,
    screen: InjectionScreen,
    job: Any,
    verdicts: Sequence[dict[str, Any] | None],
) -> int:
    """One audit record per ingested version with flagged chunks; returns how many.

    `job` is the ingestion contract's Job (tenant, document_id, sha256)."""
    flagged = flagged_chunks(verdicts, screen.policy.threshold)
    if not flagged:
        return 0
    blocked = screen.policy.documents == "block"
    await audit_log.record(
        "document_flagged",
        actor="ingestion",
        tenant=job.tenant,
        outcome="blocked" if blocked else "success",
        target=job.document_id,
        reason=flagged_reason(flagged, len(verdicts)),
        record_id=f"document_flagged-{job.document_id}-{job.sha256[:16]}",
        score=max(float(verdict["score"]) for _, verdict in flagged),
    )
    return len(flagged)
