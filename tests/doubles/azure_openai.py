"""A local Azure OpenAI double: the embeddings and chat data-plane POSTs, for the real `openai` SDK.

One double is one region. Auth is the `api-key` header or any bearer token.

Embeddings: `POST /openai/deployments/{deployment}/embeddings?api-version=...` answers
`{"object": "list", "data": [{"object", "index", "embedding"}], "model", "usage"}`. It checks what
the service checks: a known deployment, an api-version, 1-2,048 non-empty inputs, and `dimensions`
only for text-embedding-3 models. Vectors are unit vectors derived from each text's hash (the same
text always gets the same vector), returned as floats or, as the SDK asks by default, base64
float32.

Chat: `POST /openai/deployments/{deployment}/chat/completions?api-version=...` answers a
`chat.completion` with `usage`, or with `"stream": true` SSE `data: {chunk}` lines: Azure's
choice-less prompt-filter chunk, the role, one chunk per word, the finish reason, a choice-less
usage chunk when `stream_options.include_usage`, then `data: [DONE]`. The reply is `reply`: fixed
text, a function of the request body, or by default one sentence quoting the first source of a
grounded prompt with its marker. `max_tokens` cuts the reply (finish reason "length"); tokens are
counted as words. Every response carries `x-ratelimit-remaining-requests/-tokens`, which each
chat answer spends.

Scripting, per double (per region), consumed in the order scripted:
- `fail`/`throttle(route, ...)` (from HttpDouble): an error; throttling sends both Retry-After and
  retry-after-ms, like the service;
- `script_throttle(times=, retry_after=, retry_after_ms=)`: 429 with exactly the headers given
  (Retry-After may be seconds or an HTTP date);
- `script_error(status, times=, headers=)`: 500, 503, 400, ...;
- `script_delay(seconds, times=)`: a slow but normal answer;
- `script_hang(times=, mid_stream=)`: no answer at all (or, for a stream, the first word and then
  silence) until the double stops, for client timeouts;
- `refuse_connections()` / `resume()`: stop listening (connection refused) and listen again on
  the same port.
Chat faults default to the "chat" route; pass `route=ROUTE` to script embeddings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from shared.llm.prompts import NOT_FOUND_ANSWER, parse_sources
from tests.doubles import Handler, HttpDouble, RecordedRequest, error_response, format_seconds

API_KEY_HEADER = "api-key"
MAX_INPUTS = 2048
MAX_BODY_BYTES = 600 * 1024 * 1024
ROUTE = "embeddings"
CHAT_ROUTE = "chat"
CHAT_MODEL = "gpt-4o-mini"
QUOTE_WORDS = 20
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
ERRORS = {
    400: ("BadRequest", "The request is invalid."),
    429: ("429", "Requests have exceeded the call rate limit of your current pricing tier."),
    500: ("InternalServerError", "The server had an error while processing your request."),
    503: ("ServiceUnavailable", "The service is temporarily unable to process your request."),
}

Reply = str | Callable[[dict[str, Any]], str]
_WORD_PIECE = re.compile(r"\S+\s*")


@dataclass
class Fault:
    """A misbehaviour for the next `times` requests on `route`: an error, a delay or a hang."""

    route: str = CHAT_ROUTE
    times: int = 1
    status: int | None = None  # answer this error status (with the service's error body)
    headers: dict[str, str] = field(default_factory=dict)  # extra headers on that error
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # never answer, until the double stops
    mid_stream: bool = False  # with hang: a stream sends its first word, then goes silent


FAULT = web.RequestKey("fault", Fault)  # hands the fault to the stream writer


def vector_for(text: str, dimensions: int) -> list[float]:
    """The double's embedding of `text`: a unit vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


def echo_first_source(body: dict[str, Any]) -> str:
    """The default reply: one sentence quoting the prompt's first source, with its marker."""
    try:
        _, sources = parse_sources(body.get("messages", []))
    except ValueError:
        return NOT_FOUND_ANSWER
    if not sources:
        return NOT_FOUND_ANSWER
    first = sources[0]
    quote = " ".join(first.text.split()[:QUOTE_WORDS])
    return f'{first.document_name} says: "{quote}" [{first.number}].'


class AzureOpenAIDouble(HttpDouble):
    """Azure OpenAI embeddings and chat on a loopback port; `deployments`: deployment -> model."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        deployments: dict[str, str] | None = None,
        reply: Reply | None = None,
        remaining_requests: int = 1000,
        remaining_tokens: int = 100_000,
    ) -> None:
        super().__init__(key=key)
        self.deployments = {
            "text-embedding-3-small": "text-embedding-3-small",
            CHAT_MODEL: CHAT_MODEL,
            **(deployments or {}),
        }
        self.reply: Reply = reply if reply is not None else echo_first_source
        self.remaining_requests = remaining_requests
        self.remaining_tokens = remaining_tokens
        self.faults: list[Fault] = []
        self._released = asyncio.Event()

    def routes(self) -> list[web.RouteDef]:
        """The embeddings and chat completions routes."""
        return [
            web.post("/openai/deployments/{deployment}/embeddings", self._embed, name=ROUTE),
            web.post(
                "/openai/deployments/{deployment}/chat/completions", self._chat, name=CHAT_ROUTE
            ),
        ]

    async def start(self) -> None:
        """Serves on a free loopback port, or on the same port again after `refuse_connections`."""
        self._released = asyncio.Event()
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        app.add_routes(self.routes())
        app.on_response_prepare.append(self._add_rate_limit_headers)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port or 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Releases hung requests, then stops serving; `endpoint` keeps the port."""
        self._released.set()  # a hung handler would otherwise hold shutdown for a minute
        await super().stop()

    async def refuse_connections(self) -> None:
        """Stops listening: clients get "connection refused" on `endpoint` until `resume`."""
        await self.stop()

    async def resume(self) -> None:
        """Listens again on the same port."""
        await self.start()

    def script(self, fault: Fault) -> None:
        """Adds a fault; faults for a route apply in the order scripted."""
        self.faults.append(fault)

    def script_error(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        route: str = CHAT_ROUTE,
    ) -> None:
        """Answers the next `times` requests with `status` and the service's error body."""
        self.script(Fault(route, times, status=status, headers=dict(headers or {})))

    def script_throttle(
        self,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        route: str = CHAT_ROUTE,
    ) -> None:
        """429 with exactly the retry headers given; a str Retry-After is sent as is (a date)."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = (
                retry_after if isinstance(retry_after, str) else format_seconds(retry_after)
            )
        if retry_after_ms is not None:
            headers["retry-after-ms"] = format_seconds(retry_after_ms)
        self.script_error(429, times=times, headers=headers, route=route)

    def script_delay(self, seconds: float, *, times: int = 1, route: str = CHAT_ROUTE) -> None:
        """Answers the next `times` requests normally, after `seconds`."""
        self.script(Fault(route, times, delay=seconds))

    def script_hang(
        self, *, times: int = 1, mid_stream: bool = False, route: str = CHAT_ROUTE
    ) -> None:
        """Never answers the next `times` requests (a stream: after its first word, if asked)."""
        self.script(Fault(route, times, hang=True, mid_stream=mid_stream))

    def inputs(self) -> list[list[str]]:
        """The inputs of each embeddings request received, oldest first."""
        return [_inputs(json.loads(request.body)) for request in self.seen(ROUTE)]

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat requests received, oldest first."""
        return [json.loads(request.body) for request in self.seen(CHAT_ROUTE)]

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Azure OpenAI takes its key in `api-key`, not the AI services' Ocp-Apim header.
        route = request.match_info.route.name or "unknown"
        self.requests.append(
            RecordedRequest(
                route=route,
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        if request.headers.get(API_KEY_HEADER) != self.key and not bearer:
            return error_response(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint.",
            )
        failure = self._take_failure(route)
        if failure is not None:
            response = error_response(
                failure.status, failure.code, failure.message, retry_after=failure.retry_after
            )
            if failure.retry_after is not None:
                response.headers["retry-after-ms"] = format_seconds(failure.retry_after * 1000)
            return response
        return await self._misbehave(request, handler, self._take_fault(route))

    async def _misbehave(
        self, request: web.Request, handler: Handler, fault: Fault | None
    ) -> web.StreamResponse:
        """Applies a scripted fault (if any) around the normal handler."""
        if fault is None:
            return await handler(request)
        request[FAULT] = fault
        await self._pause(fault.delay)
        if fault.hang and not (fault.mid_stream and await _wants_stream(request)):
            await self._released.wait()
        if self._released.is_set():
            return web.Response(status=503)  # the double stopped: nobody is listening any more
        if fault.status is not None:
            code, message = ERRORS.get(fault.status, (str(fault.status), "Scripted error."))
            response = error_response(fault.status, code, message)
            response.headers.update(fault.headers)
            return response
        return await handler(request)

    async def _pause(self, seconds: float) -> None:
        """Waits `seconds`, or less if the double stops (so stopping never waits on a delay)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    def _take_fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    async def _add_rate_limit_headers(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        response.headers["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
        response.headers["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)

    async def _embed(self, request: web.Request) -> web.Response:
        if not request.query.get("api-version"):
            return error_response(404, "404", "Resource not found")
        model = self.deployments.get(request.match_info["deployment"])
        if model is None:
            message = "The API deployment for this resource does not exist."
            return error_response(404, "DeploymentNotFound", message)
        try:
            body = json.loads(await request.read())
        except json.JSONDecodeError:
            return _invalid("The request body is not valid JSON.")
        texts = _inputs(body)
        problem = _check(texts, body, model)
        if problem is not None:
            return problem
        dimensions = body.get("dimensions") or MODEL_DIMENSIONS.get(model, 1536)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encode(text, dimensions, as_base64),
            }
            for index, text in enumerate(texts)
        ]
        tokens = sum(len(text.split()) for text in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        checked = await _checked_chat(request, self.deployments)
        if isinstance(checked, web.Response):
            return checked
        body, model = checked
        text, finish_reason = _limited(self._reply_text(body), _max_tokens(body))
        usage = _usage(body, text)
        self._spend(usage["total_tokens"])
        completion = Completion(f"chatcmpl-{len(self.requests)}", model, int(time.time()))
        if body.get("stream"):
            return await self._stream(request, body, completion, text, finish_reason, usage)
        return web.json_response(completion.whole(text, finish_reason, usage))

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        completion: Completion,
        text: str,
        finish_reason: str,
        usage: dict[str, int],
    ) -> web.StreamResponse:
        """The SSE answer; a mid-stream hang goes silent after the first word."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        fault = request.get(FAULT)
        events = completion.chunks(text, finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(completion.usage_chunk(usage))
        for index, event in enumerate(events):
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            if fault is not None and fault.hang and index == 2:  # filter, role, first word
                await self._released.wait()
                return response
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply if isinstance(self.reply, str) else self.reply(body)

    def _spend(self, tokens: int) -> None:
        self.remaining_requests = max(0, self.remaining_requests - 1)
        self.remaining_tokens = max(0, self.remaining_tokens - tokens)


@dataclass(frozen=True)
class Completion:
    """One answer's identity, and the JSON shapes the service sends for it."""

    id: str
    model: str
    created: int

    def whole(self, text: str, finish_reason: str, usage: dict[str, int]) -> dict[str, Any]:
        """The non-streamed `chat.completion`."""
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        return {**self._head("chat.completion"), "choices": [choice], "usage": usage}

    def chunks(self, text: str, finish_reason: str) -> list[dict[str, Any]]:
        """Azure's prompt-filter chunk, the role, one chunk per word, then the finish reason."""
        prompt_filter = {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        }
        deltas = [{"role": "assistant", "content": ""}]
        deltas += [{"content": piece} for piece in _WORD_PIECE.findall(text)]
        pieces = [self._chunk(delta, None) for delta in deltas]
        return [prompt_filter, *pieces, self._chunk({}, finish_reason)]

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        """The choice-less last chunk `stream_options.include_usage` asks for."""
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": usage}

    def _chunk(self, delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def _head(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_double",
        }


async def _checked_chat(
    request: web.Request, deployments: dict[str, str]
) -> web.Response | tuple[dict[str, Any], str]:
    """The request body and model, or the service's 4xx for what it rejects."""
    if not request.query.get("api-version"):
        return error_response(404, "404", "Resource not found")
    model = deployments.get(request.match_info["deployment"])
    if model is None:
        message = "The API deployment for this resource does not exist."
        return error_response(404, "DeploymentNotFound", message)
    if model.startswith("text-embedding"):
        message = f"The chatCompletion operation does not work with the specified model, {model}."
        return error_response(400, "OperationNotSupported", message)
    try:
        body = json.loads(await request.read())
    except json.JSONDecodeError:
        return _invalid("The request body is not valid JSON.")
    problem = _check_chat(body)
    return problem if problem is not None else (body, model)


def _check_chat(body: Any) -> web.Response | None:
    """The service's 400 for a malformed chat body, else None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return _invalid("'messages' must be a non-empty array.")
    if not all(isinstance(m, dict) and m.get("role") in MESSAGE_ROLES for m in messages):
        return _invalid("Each message needs a valid 'role'.")
    if body.get("stream_options") is not None and not body.get("stream"):
        return _invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    return None


async def _wants_stream(request: web.Request) -> bool:
    """Whether the body (read once, then cached by aiohttp) asks for a stream."""
    try:
        body = json.loads(await request.read())
    except json.JSONDecodeError:
        return False
    return isinstance(body, dict) and bool(body.get("stream"))


def _max_tokens(body: dict[str, Any]) -> int | None:
    return body.get("max_completion_tokens") or body.get("max_tokens")


def _limited(text: str, max_tokens: int | None) -> tuple[str, str]:
    """The reply cut to `max_tokens` words, and its finish reason."""
    pieces = _WORD_PIECE.findall(text)
    if max_tokens is None or len(pieces) <= max_tokens:
        return text, "stop"
    return "".join(pieces[:max_tokens]).rstrip(), "length"


def _usage(body: dict[str, Any], text: str) -> dict[str, int]:
    """Usage with tokens counted as words."""
    prompt = sum(len(str(message.get("content") or "").split()) for message in body["messages"])
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _inputs(body: dict[str, Any]) -> list[str]:
    """The request's input as a list (a single string is one input)."""
    value = body.get("input")
    return [value] if isinstance(value, str) else list(value or [])


def _check(texts: list[str], body: dict[str, Any], model: str) -> web.Response | None:
    """The service's 400 for inputs or options it rejects, else None."""
    if not texts or len(texts) > MAX_INPUTS:
        return _invalid(f"'input' must have between 1 and {MAX_INPUTS} items.")
    if not all(isinstance(text, str) and text for text in texts):
        return _invalid("'$.input' is invalid: inputs must be non-empty strings.")
    if "dimensions" in body and not model.startswith("text-embedding-3"):
        return _invalid("This model does not support specifying dimensions.")
    return None


def _encode(text: str, dimensions: int, as_base64: bool) -> list[float] | str:
    """The vector as floats, or base64 little-endian float32 as the service sends it."""
    vector = vector_for(text, dimensions)
    if not as_base64:
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _invalid(message: str) -> web.Response:
    return error_response(400, "invalid_request_error", message)
