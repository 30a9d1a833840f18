"""OpenAI chat-completions parameters: each one is honoured or refused by name, never ignored.

Honoured: `messages` (roles system, developer = system, user, assistant), `model`, `stream`,
`stream_options.include_usage`, `temperature`, `max_tokens` / `max_completion_tokens` (the
answer is cut there with `finish_reason: "length"`, the offline answerer included), `user`,
`seed` (the offline answerer is deterministic; a region's model receives the grounded prompt
at the request's temperature), `n: 1`, `response_format: {"type": "text"}`, `logprobs: false`,
`tool_choice: "none"`.

Refused with OpenAI's 400 shape naming the parameter (`{"error": {"param": ...}}`), because
the grounded path cannot honour them yet: `n` above 1, `response_format` json_object or
json_schema (structured output), `tools` / `tool_choice` / `functions` / `function_call`
(tool calls), `logprobs: true` / `top_logprobs`, `stop`. A refused request costs nothing: it
is checked before retrieval, the budget and any model call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import InvalidRequest

if TYPE_CHECKING:
    from shared.chat.models import CompletionRequest

PLAIN_TEXT = "text"


def refuse_unsupported(request: CompletionRequest) -> None:
    """Raises InvalidRequest naming the first parameter docgate cannot honour."""
    for param, problem in _problems(request):
        if problem:
            raise InvalidRequest(f"{param}: {problem}", param=param)


def _problems(request: CompletionRequest) -> list[tuple[str, str | None]]:
    """(parameter, why it is refused or None) in the order OpenAI documents them."""
    kind = (request.response_format or {}).get("type", PLAIN_TEXT)
    wants_tools = bool(request.tools) and request.tool_choice != "none"
    return [
        ("n", "only one choice is generated per request (n=1)" if (request.n or 1) > 1 else None),
        (
            "response_format",
            None
            if kind == PLAIN_TEXT
            else f"{kind} (structured output) is not supported: answers are cited text",
        ),
        (
            "tools",
            "tool calls are not supported by the grounded chat path" if wants_tools else None,
        ),
        (
            "tool_choice",
            "tool calls are not supported"
            if request.tool_choice not in (None, "none") and not request.tools
            else None,
        ),
        ("functions", "function calls are not supported" if request.functions else None),
        (
            "function_call",
            "function calls are not supported"
            if request.function_call not in (None, "none")
            else None,
        ),
        ("logprobs", "log probabilities are not available" if request.logprobs else None),
        ("top_logprobs", "log probabilities are not available" if request.top_logprobs else None),
        ("stop", "stop sequences are not supported" if request.stop else None),
    ]


__all__ = ["refuse_unsupported"]
