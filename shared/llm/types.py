"""What every language-model client takes and returns, and how failures are classified.

Failures are classified by status code only, never by message text: the router decides on
`LlmError.kind`, and a reworded error message cannot change a routing decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

ErrorKind = Literal["throttled", "server", "timeout", "connection", "client"]
# Kinds another region may fix; "client" (4xx other than 408/429) would fail everywhere.
RETRYABLE_KINDS = frozenset({"throttled", "server", "timeout", "connection"})


@dataclass(frozen=True)
class Usage:
    """Tokens one call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class LlmRequest:
    """A chat completion request, independent of any provider."""

    messages: list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": ...}]
    max_tokens: int = 512
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LlmResponse:
    """A finished completion."""

    content: str
    model: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(frozen=True)
class LlmChunk:
    """One streamed piece: text, and on the last chunk the usage and finish reason."""

    delta: str
    usage: Usage | None = None
    finish_reason: str | None = None


class LlmError(Exception):
    """A failed call, classified for routing: by status code, never by message."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_seconds = retry_after_seconds

    @property
    def retryable(self) -> bool:
        """Whether another region (or a later attempt) may succeed."""
        return self.kind in RETRYABLE_KINDS


def kind_of_status(status: int) -> ErrorKind:
    """The error kind an HTTP status means."""
    if status == 429:
        return "throttled"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server"
    return "client"


class LlmClient(Protocol):
    """One deployment of a chat model (an Azure OpenAI region, or the local answerer)."""

    name: str
    model: str

    async def complete(self, request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        """One completion; raises LlmError."""
        ...

    def stream(self, request: LlmRequest, timeout_seconds: float) -> AsyncIterator[LlmChunk]:
        """The completion as it is generated; raises LlmError (before or during the stream)."""
        ...
