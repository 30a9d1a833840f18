"""Request and response models of the chat endpoints (pydantic at the boundary).

Strict where the OpenAI API is strict: a JSON string is not a number, `1` is not `true`, a
content part's `text` is a string. Parsing lives in `shared.inputs` (the edge calls it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from shared.errors import InvalidRequest
from shared.inputs import STRICT_BODY

MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 32_000
MAX_PARTS = 64
Role = Literal["system", "developer", "user", "assistant"]  # developer: o1-era name of system
Tier = Literal["economy", "standard", "premium"]
CacheDirective = Literal["no-cache", "no-store"]
TopK = Field(default=None, ge=1, le=50)
Temperature = Field(default=None, ge=0, le=2)
MaxCost = Field(default=None, ge=0)


class TextPart(BaseModel):
    """One content part: docgate answers from text only (OpenAI's `{"type": "text"}`)."""

    model_config = {**STRICT_BODY, "extra": "ignore"}
    type: Literal["text"]
    text: str = Field(max_length=MAX_MESSAGE_CHARS)


class Message(BaseModel):
    """One chat turn; OpenAI clients may send its content as a list of text parts."""

    model_config = {**STRICT_BODY, "extra": "ignore"}  # name, tool_call_id, ... are OpenAI's
    role: Role
    content: str | Annotated[list[TextPart], Field(max_length=MAX_PARTS)]

    @model_validator(mode="after")
    def _bounded(self) -> Message:
        if len(self.text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"a message's content is at most {MAX_MESSAGE_CHARS:,} characters")
        return self

    @property
    def text(self) -> str:
        """The turn's text, parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


EXAMPLE_MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "What is our refund policy?"}]}
]


class ChatRequest(BaseModel):
    """`POST /api/chat`."""

    model_config = {
        **STRICT_BODY,
        "json_schema_extra": {"examples": [{"messages": EXAMPLE_MESSAGES}]},
    }
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    filters: dict[str, Any] | None = None
    top_k: int | None = TopK
    tier: Tier | None = None
    max_cost_usd: float | None = MaxCost
    cache: CacheDirective | None = None
    temperature: float | None = Temperature
    stream: bool = False  # server-sent events: `delta` pieces, then `done` (the JSON answer)


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`."""

    model_config = {**STRICT_BODY, "extra": "ignore"}
    include_usage: bool = False


class DocgateOptions(BaseModel):
    """docgate's extras on the OpenAI-compatible endpoint (the `docgate` member)."""

    model_config = STRICT_BODY
    filters: dict[str, Any] | None = None
    top_k: int | None = TopK
    max_cost_usd: float | None = MaxCost
    cache: CacheDirective | None = None


class CompletionRequest(BaseModel):
    """`POST /api/v1/chat/completions`: OpenAI's schema; unknown fields are ignored as OpenAI-
    compatible servers do, docgate's own extras travel in `docgate`."""

    model_config = {
        **STRICT_BODY,
        "extra": "ignore",
        "json_schema_extra": {"examples": [{"model": "docgate", "messages": EXAMPLE_MESSAGES}]},
    }
    model: str = Field(default="docgate", max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Temperature
    max_tokens: int | None = Field(default=None, ge=1, le=16_384)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=16_384)
    user: str | None = Field(default=None, max_length=256)
    tools: list[dict[str, Any]] | None = None
    # Declared so they are honoured or refused by name, never dropped (shared/chat/compat.py).
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stop: str | list[str] | None = None
    seed: int | None = None
    docgate: DocgateOptions = DocgateOptions()


def last_user_message(messages: list[Message]) -> str:
    """The question: the last user turn."""
    for message in reversed(messages):
        if message.role == "user" and message.text.strip():
            return message.text.strip()
    raise InvalidRequest("messages must contain a non-empty user message", param="messages")
