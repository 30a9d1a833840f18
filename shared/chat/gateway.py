"""From an HTTP chat request to a ChatResult: the query, the deadline, and failures as problems."""

from __future__ import annotations

import math
from typing import Any

import azure.functions as func

from shared.chat.governance import Controls, Governed
from shared.chat.models import ChatRequest, CompletionRequest, last_user_message
from shared.chat.service import ChatQuery
from shared.config import Settings
from shared.http import ProblemError
from shared.llm.types import LlmError
from shared.resilience.retry import Deadline
from shared.retrieval.filters import InvalidFilter
from shared.routing.regions import AllRegionsDown, DeadlineExceeded
from shared.security.principal import Principal

DEFAULT_TIER = "standard"
DEADLINE_HEADER = "x-docgate-deadline-ms"


def deadline_for(req: func.HttpRequest, settings: Settings) -> Deadline:
    """The request's deadline: the server's budget, lowered by the client's header if smaller."""
    raw = req.headers.get(DEADLINE_HEADER)
    client_seconds = None
    if raw:
        try:
            client_seconds = float(raw) / 1000
        except ValueError as error:
            raise ProblemError(400, f"{DEADLINE_HEADER} must be milliseconds") from error
    return Deadline.from_budget(settings.chat.deadline_seconds, client_seconds)


def _messages(items: list[Any]) -> list[dict[str, str]]:
    return [{"role": item.role, "content": item.content} for item in items]


def chat_query(request: ChatRequest, settings: Settings) -> ChatQuery:
    """`POST /api/chat` as a query."""
    last_user_message(request.messages)
    return ChatQuery(
        messages=_messages(request.messages),
        filters=request.filters,
        top_k=request.top_k or settings.chat.retrieval_top_k,
        tier=DEFAULT_TIER,
        temperature=request.temperature or 0.0,
    )


def completion_query(request: CompletionRequest, tier: str | None, settings: Settings) -> ChatQuery:
    """`POST /api/v1/chat/completions` as a query (docgate's extras in `docgate`)."""
    last_user_message(request.messages)
    extras = request.docgate or {}
    top_k = extras.get("top_k") or settings.chat.retrieval_top_k
    if not isinstance(top_k, int) or not 1 <= top_k <= 50:
        raise ProblemError(400, "docgate.top_k must be an integer from 1 to 50", param="docgate")
    return ChatQuery(
        messages=_messages(request.messages),
        filters=extras.get("filters"),
        top_k=top_k,
        tier=tier or DEFAULT_TIER,
        max_tokens=request.max_completion_tokens or request.max_tokens or 512,
        temperature=request.temperature or 0.0,
    )


def cache_control(req: func.HttpRequest, requested: str | None) -> str | None:
    """`no-cache` / `no-store` from the body, else from the Cache-Control request header."""
    if requested:
        return requested
    header = req.headers.get("cache-control", "").lower()
    for directive in ("no-store", "no-cache"):
        if directive in header:
            return directive
    return None


def chat_controls(req: func.HttpRequest, request: ChatRequest) -> Controls:
    """Governance controls of `POST /api/chat`."""
    return Controls(
        cache_control=cache_control(req, request.cache),
        temperature=request.temperature or 0.0,
        tier_override=request.tier,
        max_cost_usd=request.max_cost_usd,
    )


def completion_controls(
    req: func.HttpRequest, request: CompletionRequest, tier: str | None
) -> Controls:
    """Governance controls of `POST /api/v1/chat/completions`."""
    extras = request.docgate or {}
    max_cost = extras.get("max_cost_usd")
    if max_cost is not None and (not isinstance(max_cost, int | float) or max_cost < 0):
        raise ProblemError(400, "docgate.max_cost_usd must be a number >= 0", param="docgate")
    return Controls(
        cache_control=cache_control(req, extras.get("cache")),
        temperature=request.temperature or 0.0,
        tools=bool(request.tools),
        tier_override=tier,
        max_cost_usd=max_cost,
    )


async def run_chat(
    services: Any, principal: Principal, query: ChatQuery, controls: Controls, deadline: Deadline
) -> Governed:
    """Answers through every control, turning routing and validation failures into problems."""
    try:
        return await services.governed_chat.run(principal, query, controls, deadline)
    except InvalidFilter as error:
        raise ProblemError(400, f"filters: {error}", param="filters") from error
    except AllRegionsDown as down:
        retry_after = max(1, math.ceil(down.retry_after_seconds))
        raise ProblemError(
            503,
            f"no model region can serve now; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            regions=down.states,
            code="all_regions_down",
        ) from down
    except DeadlineExceeded as late:
        raise ProblemError(
            504, "the request's deadline ran out before a model region answered",
            code="deadline_exceeded",
        ) from late  # fmt: skip
    except LlmError as error:
        # Only a non-retryable (client) error reaches here: the router fails over the rest.
        raise ProblemError(
            502, f"the model refused the request (status {error.status})", code="model_error"
        ) from error
