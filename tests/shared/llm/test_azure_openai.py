"""AzureOpenAIChat: the real openai SDK against the local Azure OpenAI double."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from azure.core.credentials import AccessToken

from shared.llm.azure_openai import AzureOpenAIChat
from shared.llm.prompts import NOT_FOUND_ANSWER, Source, build_messages
from shared.llm.types import LlmChunk, LlmError, LlmRequest, Usage
from shared.routing.config import RegionConfig
from tests.doubles.azure_openai import CHAT_ROUTE, AzureOpenAIDouble

API_VERSION = "2024-10-21"
SCOPE = "https://cognitiveservices.azure.com/.default"
SOURCES = [
    Source(1, "Handbook.pdf", [3], "New employees receive 25 days of paid vacation per year."),
    Source(2, "Report.pdf", [9], "Revenue in 2023 was $4.2 million."),
]
REQUEST = LlmRequest(messages=build_messages("How many vacation days?", [], SOURCES))
ECHO = 'Handbook.pdf says: "New employees receive 25 days of paid vacation per year." [1].'


class FakeCredential:
    """An async token credential that records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None


@pytest.fixture
async def double() -> AsyncIterator[AzureOpenAIDouble]:
    async with AzureOpenAIDouble(deployments={"chat-eu": "gpt-4o-mini"}) as running:
        yield running


def region(double: AzureOpenAIDouble) -> RegionConfig:
    return RegionConfig(
        name="westeurope", endpoint=double.endpoint, deployment="chat-eu", model="gpt-4o-mini"
    )


@pytest.fixture
async def chat(double: AzureOpenAIDouble) -> AsyncIterator[AzureOpenAIChat]:
    async with AzureOpenAIChat(
        region(double), api_version=API_VERSION, api_key=double.key
    ) as client:
        yield client


async def failure(chat: AzureOpenAIChat, *, seconds: float = 5, stream: bool = False) -> LlmError:
    """The LlmError a call raises."""
    with pytest.raises(LlmError) as raised:
        if stream:
            async for _ in chat.stream(REQUEST, seconds):
                pass
        else:
            await chat.complete(REQUEST, seconds)
    return raised.value


# Answers


async def test_complete_maps_content_model_usage_and_finish_reason(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    assert (chat.name, chat.model) == ("westeurope", "gpt-4o-mini")
    response = await chat.complete(REQUEST, 5)
    assert response.content == ECHO
    assert response.model == "gpt-4o-mini" and response.finish_reason == "stop"
    prompt_words = sum(len(m["content"].split()) for m in REQUEST.messages)
    assert response.usage == Usage(prompt_words, len(ECHO.split()))
    [request] = double.seen(CHAT_ROUTE)
    assert request.path == "/openai/deployments/chat-eu/chat/completions"
    assert request.query["api-version"] == API_VERSION
    assert request.headers["api-key"] == double.key
    [body] = double.chat_bodies()
    assert body["messages"] == REQUEST.messages
    assert (body["max_tokens"], body["temperature"]) == (512, 0.0)
    assert "stop" not in body and "stream" not in body


async def test_complete_sends_stop_and_reports_a_length_cut(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    request = LlmRequest(messages=REQUEST.messages, max_tokens=3, stop=["\n\n"])
    response = await chat.complete(request, 5)
    assert response.content == 'Handbook.pdf says: "New'
    assert response.finish_reason == "length" and response.usage.completion_tokens == 3
    assert double.chat_bodies()[0]["stop"] == ["\n\n"]


async def test_stream_yields_deltas_then_usage_and_finish_reason(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    chunks = [chunk async for chunk in chat.stream(REQUEST, 5)]
    assert "".join(chunk.delta for chunk in chunks) == ECHO
    assert len(chunks) == len(ECHO.split()) + 1  # word deltas plus the closing chunk
    assert all(chunk.usage is None for chunk in chunks[:-1])
    complete = await chat.complete(REQUEST, 5)
    assert chunks[-1] == LlmChunk(delta="", usage=complete.usage, finish_reason="stop")
    body = double.chat_bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_scripted_replies(double: AzureOpenAIDouble, chat: AzureOpenAIChat) -> None:
    double.reply = "Fixed reply [2]."
    assert (await chat.complete(REQUEST, 5)).content == "Fixed reply [2]."
    double.reply = lambda body: f"{len(body['messages'])} messages"
    assert (await chat.complete(REQUEST, 5)).content == "2 messages"
    double.reply = AzureOpenAIDouble().reply  # the default echo
    no_sources = LlmRequest(messages=build_messages("Anything?", [], []))
    assert (await chat.complete(no_sources, 5)).content == NOT_FOUND_ANSWER


# Auth


async def test_bearer_token_from_the_credential(double: AzureOpenAIDouble) -> None:
    credential = FakeCredential()
    # Both given: managed identity (the credential) wins over the key.
    client = AzureOpenAIChat(
        region(double), api_version=API_VERSION, credential=credential, api_key="unused"
    )
    async with client:
        assert (await client.complete(REQUEST, 5)).content == ECHO
    assert credential.scopes == [(SCOPE,)]
    headers = double.seen(CHAT_ROUTE)[0].headers
    assert headers["Authorization"] == "Bearer fake-token" and "api-key" not in headers


async def test_needs_a_credential_or_a_key(double: AzureOpenAIDouble) -> None:
    with pytest.raises(ValueError):
        AzureOpenAIChat(region(double), api_version=API_VERSION)


async def test_wrong_key_is_a_client_error(double: AzureOpenAIDouble) -> None:
    async with AzureOpenAIChat(region(double), api_version=API_VERSION, api_key="no") as client:
        error = await failure(client)
    assert (error.kind, error.status, error.retryable) == ("client", 401, False)


# Failures: classified by status, never retried by the SDK


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry_after_ms": 1500}, 1.5),
        ({"retry_after": 7}, 7.0),
        ({"retry_after": 7, "retry_after_ms": 250}, 0.25),  # the precise header wins
        ({}, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_throttling_carries_retry_after(
    double: AzureOpenAIDouble,
    chat: AzureOpenAIChat,
    headers: dict[str, float],
    seconds: float | None,
    stream: bool,
) -> None:
    double.script_throttle(times=5, **headers)
    error = await failure(chat, stream=stream)
    assert (error.kind, error.status, error.retry_after_seconds) == ("throttled", 429, seconds)
    assert error.retryable
    assert len(double.seen(CHAT_ROUTE)) == 1  # max_retries=0


async def test_retry_after_as_an_http_date(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    double.script_throttle(retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    error = await failure(chat)
    assert error.kind == "throttled" and 25 <= (error.retry_after_seconds or 0) <= 31


@pytest.mark.parametrize(("status", "kind"), [(500, "server"), (503, "server"), (400, "client")])
async def test_status_codes_are_classified(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat, status: int, kind: str
) -> None:
    double.script_error(status, times=5)
    error = await failure(chat)
    assert (error.kind, error.status) == (kind, status)
    assert error.retryable == (kind == "server")
    assert len(double.seen(CHAT_ROUTE)) == 1


async def test_a_hang_is_a_timeout(double: AzureOpenAIDouble, chat: AzureOpenAIChat) -> None:
    double.script_hang()
    started = time.monotonic()
    error = await failure(chat, seconds=0.3)
    assert error.kind == "timeout" and error.retryable
    assert time.monotonic() - started < 2
    assert len(double.seen(CHAT_ROUTE)) == 1


async def test_a_stream_that_goes_silent_is_a_timeout(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    double.script_hang(mid_stream=True)
    received: list[str] = []
    with pytest.raises(LlmError) as raised:
        async for chunk in chat.stream(REQUEST, 0.3):
            received.append(chunk.delta)
    assert raised.value.kind == "timeout"
    assert received == ["Handbook.pdf "]  # the first word came, then silence


async def test_slow_answers_within_the_timeout_succeed(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    double.script_delay(0.2)
    assert (await chat.complete(REQUEST, 5)).content == ECHO
    double.script_delay(2)
    assert (await failure(chat, seconds=0.3)).kind == "timeout"


async def test_connection_refused_then_back(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    await double.refuse_connections()
    error = await failure(chat)
    assert error.kind == "connection" and error.status is None and error.retryable
    assert (await failure(chat, stream=True)).kind == "connection"
    await double.resume()
    assert (await chat.complete(REQUEST, 5)).content == ECHO


async def test_faults_apply_in_the_order_scripted(
    double: AzureOpenAIDouble, chat: AzureOpenAIChat
) -> None:
    double.script_throttle(times=2, retry_after=1)
    double.script_error(503)
    kinds = [(await failure(chat)).kind for _ in range(3)]
    assert kinds == ["throttled", "throttled", "server"]
    assert (await chat.complete(REQUEST, 5)).content == ECHO


# The double's wire protocol, seen without the SDK


async def post_chat(double: AzureOpenAIDouble, body: dict) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{double.endpoint}/openai/deployments/chat-eu/chat/completions",
            params={"api-version": API_VERSION},
            headers={"api-key": double.key},
            json=body,
        )
        await response.read()
        return response


async def test_double_streams_sse_with_usage_only_when_asked(double: AzureOpenAIDouble) -> None:
    body = {"messages": REQUEST.messages, "stream": True}
    plain = await post_chat(double, body)
    with_usage = await post_chat(double, {**body, "stream_options": {"include_usage": True}})
    for response, usage_chunks in ((plain, 0), (with_usage, 1)):
        assert response.content_type == "text/event-stream"
        events = (await response.text()).strip().split("\n\n")
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
        assert sum(1 for chunk in chunks if chunk.get("usage")) == usage_chunks
        assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]


async def test_double_reports_and_spends_rate_limits(double: AzureOpenAIDouble) -> None:
    double.remaining_tokens = 500
    first = await post_chat(double, {"messages": REQUEST.messages})
    usage = (await first.json())["usage"]
    assert first.headers["x-ratelimit-remaining-requests"] == "999"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(500 - usage["total_tokens"])
    double.script_throttle(retry_after=3)
    throttled = await post_chat(double, {"messages": REQUEST.messages})
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "3"
    assert "retry-after-ms" not in throttled.headers
    assert throttled.headers["x-ratelimit-remaining-requests"] == "999"


async def test_double_rejects_what_the_service_rejects(double: AzureOpenAIDouble) -> None:
    assert (await post_chat(double, {"messages": []})).status == 400
    stray_options = {"messages": REQUEST.messages, "stream_options": {"include_usage": True}}
    assert (await post_chat(double, stray_options)).status == 400
    async with aiohttp.ClientSession() as session:
        base = f"{double.endpoint}/openai/deployments"
        unknown = await session.post(
            f"{base}/nope/chat/completions",
            params={"api-version": API_VERSION},
            headers={"api-key": double.key},
            json={"messages": REQUEST.messages},
        )
        embedding_model = await session.post(
            f"{base}/text-embedding-3-small/chat/completions",
            params={"api-version": API_VERSION},
            headers={"Authorization": "Bearer any"},
            json={"messages": REQUEST.messages},
        )
    assert (unknown.status, embedding_model.status) == (404, 400)
