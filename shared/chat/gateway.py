"""From a chat request to the governed path's inputs: the query, its controls, its deadline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.chat.compat import refuse_unsupported
from shared.chat.governance import Controls
from shared.chat.models import ChatRequest, CompletionRequest, last_user_message
from shared.chat.service import ChatQuery
from shared.errors import InvalidRequest
from shared.resilience.retry import Deadline

DEFAULT_TIER = "standard"
DEADLINE_HEADER = "x-docgate-deadline-ms"


def deadline_for(headers: Mapping[str, str], budget_seconds: float) -> Deadline:
    """The request's deadline: the server's budget, lowered by the client's header if smaller."""
    raw = headers.get(DEADLINE_HEADER)
    client_seconds = None
    if raw:
        try:
            client_seconds = float(raw) / 1000
        except ValueError as error:
            raise InvalidRequest(f"{DEADLINE_HEADER} must be milliseconds") from error
    return Deadline.from_budget(budget_seconds, client_seconds)


def _messages(items: list[Any]) -> list[dict[str, str]]:
    """Turns as the chat path reads them; a `developer` turn is OpenAI's newer `system`."""
    return [
        {"role": "system" if item.role == "developer" else item.role, "content": item.text}
        for item in items
    ]


def chat_query(request: ChatRequest, default_top_k: int) -> ChatQuery:
    """`POST /api/chat` as a query."""
    last_user_message(request.messages)
    return ChatQuery(
        messages=_messages(request.messages),
        filters=request.filters,
        top_k=request.top_k or default_top_k,
        tier=DEFAULT_TIER,
        temperature=request.temperature or 0.0,
    )


def completion_query(request: CompletionRequest, tier: str | None, default_top_k: int) -> ChatQuery:
    """`POST /api/v1/chat/completions` as a query (docgate's extras in `docgate`)."""
    refuse_unsupported(request)
    last_user_message(request.messages)
    extras = request.docgate
    return ChatQuery(
        messages=_messages(request.messages),
        filters=extras.filters,
        top_k=extras.top_k or default_top_k,
        tier=tier or DEFAULT_TIER,
        max_tokens=request.max_completion_tokens or request.max_tokens or 512,
        temperature=request.temperature or 0.0,
    )


def cache_control(headers: Mapping[str, str], requested: str | None) -> str | None:
    """`no-cache` / `no-store` from the body, else from the Cache-Control request header."""
    if requested:
        return requested
    header = headers.get("cache-control", "").lower()
    for directive in ("no-store", "no-cache"):
        if directive in header:
            return directive
    return None


def chat_controls(headers: Mapping[str, str], request: ChatRequest) -> Controls:
    """Governance controls of `POST /api/chat`."""
    return Controls(
        cache_control=cache_control(headers, request.cache),
        temperature=request.temperature or 0.0,
        tier_override=request.tier,
        max_cost_usd=request.max_cost_usd,
    )


def completion_controls(
    headers: Mapping[str, str], request: CompletionRequest, tier: str | None
) -> Controls:
    """Governance controls of `POST /api/v1/chat/completions`."""
    extras = request.docgate
    return Controls(
        cache_control=cache_control(headers, extras.cache),
        temperature=request.temperature or 0.0,
        tools=bool(request.tools),
        tier_override=tier,
        max_cost_usd=extras.max_cost_usd,
    )
