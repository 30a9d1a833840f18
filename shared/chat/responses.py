"""Chat answers as HTTP responses: docgate's JSON, OpenAI's JSON and SSE, and the headers.

Streamed answers are OpenAI's server-sent events, sent as the model generates them: the text
deltas as they come, then the sources block, the chunk with the finish reason and the `docgate`
extra (citations), the usage chunk when asked, and `data: [DONE]`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response

from shared.chat.governance import GovernedStream
from shared.chat.service import ChatResult
from shared.errors import NotFound
from shared.http import json_response, problem_body, unexpected_problem
from shared.problems import Problem, problem_for
from shared.security.exfiltration import count_neutralised, neutralise
from shared.telemetry import current_trace_id

log = logging.getLogger(__name__)
MODEL_PREFIX = "docgate"
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout",
}


class UnknownModel(NotFound):
    """The OpenAI `model` names no docgate tier."""


def docgate_headers(result: ChatResult, governance: dict[str, str] | None = None) -> dict[str, str]:
    """The headers every chat response carries (rate limits, cache, budget warnings included)."""
    return {
        "x-docgate-cache": "hit" if result.cached else "miss",
        **(governance or {}),
        "x-docgate-model": result.model,
        "x-docgate-region": result.region,
        "x-docgate-tier": result.tier,
        "x-docgate-overhead-ms": f"{result.overhead_ms:.1f}",
        "x-docgate-trace-id": result.trace_id,
    }


def chat_json(result: ChatResult) -> dict[str, Any]:
    """`POST /api/chat`'s answer."""
    body: dict[str, Any] = {
        "answer": result.answer,
        "citations": [citation.as_json() for citation in result.citations],
        "model": result.model,
        "tier": result.tier,
        "region": result.region,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
        },
        "cost_usd": result.cost_usd,
        "cached": result.cached,
        "trace_id": result.trace_id,
    }
    if result.warnings:
        body["warnings"] = result.warnings
    return body


def chat_response(result: ChatResult, governance: dict[str, str] | None = None) -> Response:
    """`POST /api/chat` as an HTTP response."""
    return json_response(chat_json(result), headers=docgate_headers(result, governance))


def _event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


async def chat_events(stream: GovernedStream, route: str) -> AsyncIterator[str]:
    """`POST /api/chat` with `stream: true` as server-sent events: a `delta` event per piece of
    text as the model generates it, then one `done` event holding the answer exactly as the
    JSON response has it (citations, model, tier, region, cost, cache). A failure after the
    first byte cannot change the status any more: it ends the stream with an `error` event
    carrying the problem details."""
    pieces = stream.pieces
    try:
        async for piece in pieces:
            if isinstance(piece, ChatResult):
                yield _event("done", chat_json(piece))
            else:
                yield _event("delta", {"text": piece})
    except Exception as error:
        problem = problem_for(error)
        if problem is None:
            log.exception("The chat stream failed")
            problem = unexpected_problem()
        yield _event("error", problem_body(problem, route))
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]  # an async generator


def content_with_sources(result: ChatResult) -> str:
    """The answer followed by a sources block: citations travel in the content too."""
    if not result.citations:
        return result.answer
    lines = [f"[{c.number}] {c.document_name}, page {c.page}" for c in result.citations]
    # Document names are uploaders' text: neutralised like the answer before they are shown.
    block, findings = neutralise("\n".join(lines))
    count_neutralised(findings)
    return f"{result.answer}\n\nSources:\n{block}"


def model_name(tier: str | None) -> str:
    """The OpenAI `model` id of a tier ("docgate" lets docgate choose)."""
    return f"{MODEL_PREFIX}-{tier}" if tier else MODEL_PREFIX


def tier_of_model(model: str) -> str | None:
    """The tier an OpenAI `model` id asks for; None lets docgate choose."""
    if model in (MODEL_PREFIX, ""):
        return None
    prefix = f"{MODEL_PREFIX}-"
    tier = model[len(prefix) :] if model.startswith(prefix) else None
    if tier not in ("economy", "standard", "premium"):
        raise UnknownModel(
            f"The model '{model}' does not exist; see GET /api/v1/models", param="model",
            code="model_not_found",
        )  # fmt: skip
    return tier


def _usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
    }


def _extra(result: ChatResult) -> dict[str, Any]:
    return {
        "citations": [citation.as_json() for citation in result.citations],
        "model": result.model,
        "region": result.region,
        "tier": result.tier,
        "cached": result.cached,
        "cost_usd": result.cost_usd,
        "trace_id": result.trace_id,
    }


def completion_json(result: ChatResult, requested_model: str) -> dict[str, Any]:
    """OpenAI's `chat.completion` object, with citations in the `docgate` extra field."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": requested_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content_with_sources(result)},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(result),
        "docgate": _extra(result),
    }


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"


def _chunk_identity(requested_model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": requested_model,
    }


def stream_headers(stream: GovernedStream) -> dict[str, str]:
    """The headers of a streamed answer: known before its first piece (no usage yet)."""
    return {
        **stream.headers,
        "x-docgate-model": stream.model,
        "x-docgate-region": stream.region,
        "x-docgate-tier": stream.tier,
        "x-docgate-trace-id": current_trace_id(),
        "Cache-Control": "no-cache",
    }


async def completion_events(
    stream: GovernedStream, requested_model: str, include_usage: bool
) -> AsyncIterator[str]:
    """The completion as OpenAI's server-sent events, each sent as soon as it exists."""
    identity = _chunk_identity(requested_model)
    yield _sse({**identity, "choices": [_delta({"role": "assistant", "content": ""})]})
    result: ChatResult | None = None
    pieces = stream.pieces
    try:
        async for piece in pieces:
            if isinstance(piece, ChatResult):
                result = piece
            else:
                yield _sse({**identity, "choices": [_delta({"content": piece})]})
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]  # an async generator
    if result is None:
        return
    sources = content_with_sources(result)[len(result.answer) :]
    if sources:
        yield _sse({**identity, "choices": [_delta({"content": sources})]})
    final = {**identity, "choices": [_delta({}, result.finish_reason)], "docgate": _extra(result)}
    yield _sse(final)
    if include_usage:
        yield _sse({**identity, "choices": [], "usage": _usage(result)})
    yield _sse("[DONE]")


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


def openai_error(problem: Problem, route: str) -> Response:
    """A problem in OpenAI's error shape: `{"error": {message, type, param, code}}`."""
    body = {
        "error": {
            "message": problem.detail,
            "type": OPENAI_ERROR_TYPES.get(problem.status, "server_error"),
            "param": problem.extra.get("param"),
            "code": problem.extra.get("code"),
        }
    }
    return Response(
        json.dumps(body),
        status_code=problem.status,
        headers=problem.headers,
        media_type="application/json",
    )


def models_json() -> dict[str, Any]:
    """`GET /api/v1/models`: one model id per tier, and `docgate` (docgate chooses)."""
    created = 1_767_225_600  # 2026-01-01: ids are stable, so is their creation time
    return {
        "object": "list",
        "data": [
            {"id": model_name(tier), "object": "model", "created": created, "owned_by": "docgate"}
            for tier in (None, "economy", "standard", "premium")
        ],
    }
