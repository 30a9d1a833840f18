"""Request and response models of the chat endpoints (pydantic at the boundary)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InvalidRequest, UnsupportedMediaType

MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 32_000
Role = Literal["system", "user", "assistant"]
Tier = Literal["economy", "standard", "premium"]


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="ignore")
    role: Role
    content: str = Field(max_length=MAX_MESSAGE_CHARS)

    @field_validator("content", mode="before")
    @classmethod
    def _flatten_parts(cls, value: Any) -> Any:
        """OpenAI clients may send content as a list of text parts."""
        if isinstance(value, list):
            return "".join(part.get("text", "") for part in value if isinstance(part, dict))
        return value


class ChatRequest(BaseModel):
    """`POST /api/chat`."""

    model_config = ConfigDict(extra="forbid")
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    filters: dict[str, Any] | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    tier: Tier | None = None
    max_cost_usd: float | None = Field(default=None, ge=0)
    cache: Literal["no-cache", "no-store"] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    stream: bool = False  # server-sent events: `delta` pieces, then `done` (the JSON answer)


class StreamOptions(BaseModel):
    """OpenAI's `stream_options`."""

    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """`POST /api/v1/chat/completions`: OpenAI's schema; unknown fields are ignored as OpenAI-
    compatible servers do, docgate's own extras travel in `docgate`."""

    model_config = ConfigDict(extra="ignore")
    model: str = "docgate"
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=16_384)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=16_384)
    user: str | None = None
    tools: list[Any] | None = None
    docgate: dict[str, Any] | None = None  # {filters, top_k, max_cost_usd, cache}


def parse_model(model: type[BaseModel], body: bytes, content_type: str | None = None) -> Any:
    """Parses a JSON body into `model`, or raises InvalidRequest/UnsupportedMediaType."""
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media_type}")
    if not body:
        raise InvalidRequest("the request body is empty: send a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}", param=where) from error


def last_user_message(messages: list[Message]) -> str:
    """The question: the last user turn."""
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    raise InvalidRequest("messages must contain a non-empty user message", param="messages")
