"""One Azure OpenAI chat deployment (one region) through the `openai` SDK's `AsyncAzureOpenAI`.

The SDK never retries (`max_retries=0`): the router owns retries and failover, and an SDK that
slept on a region's Retry-After would hold the request while another region could answer.

Errors become `LlmError`, classified by status code only (`kind_of_status`); timeouts and
connection failures (also in the middle of a stream) get their own kinds, and the service's
`retry-after-ms` / `Retry-After` (capped at five minutes) travels with the error.

Timeouts: `complete` is bounded as a whole by `timeout_seconds`. A stream is bounded per read:
the first token, and every gap between tokens, must come within `timeout_seconds`, while the
whole answer may take longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, aclosing
from typing import Any, Self

import openai
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import get_bearer_token_provider

from shared.embeddings.azure_openai import COGNITIVE_SERVICES_SCOPE, retry_after_seconds
from shared.llm.types import LlmChunk, LlmError, LlmRequest, LlmResponse, Usage, kind_of_status
from shared.routing.config import RegionConfig
from shared.telemetry.genai import ModelCall, model_call
from shared.telemetry.names import AZURE_OPENAI
from shared.tokens import count_tokens


class AzureOpenAIChat:
    """The `LlmClient` for one region's chat deployment."""

    def __init__(
        self,
        region: RegionConfig,
        *,
        api_version: str,
        credential: AsyncTokenCredential | None = None,
        api_key: str | None = None,
    ) -> None:
        if credential is None and not api_key:
            raise ValueError(f"region {region.name}: give a credential or an api_key")
        self.region = region
        self.name = region.name
        self.model = region.model
        # Managed identity first: a key is only used when no credential is given (test doubles).
        token_provider = (
            get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE) if credential else None
        )
        self._client = openai.AsyncAzureOpenAI(
            azure_endpoint=region.endpoint,
            api_version=api_version,
            api_key=None if token_provider else api_key,
            azure_ad_token_provider=token_provider,
            max_retries=0,
        )

    async def complete(self, request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        """One completion (a GenAI `chat` span); raises LlmError."""
        with self._call(request) as call:
            try:
                async with asyncio.timeout(timeout_seconds):
                    raw = await self._client.chat.completions.create(
                        **self._options(request), timeout=timeout_seconds
                    )
            except TimeoutError as error:  # the whole-call deadline, beyond the SDK's per-read
                message = f"{self.name}: no answer in {timeout_seconds}s"
                raise LlmError("timeout", message) from error
            except openai.APIError as error:
                raise self._error(error) from error
            response = self._response(raw)
            call.responded(
                response_model=response.model,
                input_tokens=response.usage.prompt_tokens,
                output_tokens=response.usage.completion_tokens,
                finish_reason=response.finish_reason,
            )
            return response

    async def stream(self, request: LlmRequest, timeout_seconds: float) -> AsyncIterator[LlmChunk]:
        """The completion as it is generated; the last chunk carries usage and finish reason.
        One GenAI `chat` span covers the call until the stream ends or is closed."""
        call = ModelCall(
            "chat",
            AZURE_OPENAI,
            self.model,
            self.region.endpoint,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        try:
            with call.activate():
                chunks = await self._client.chat.completions.create(
                    **self._options(request),
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=timeout_seconds,
                )
        except openai.APIError as error:
            failure = self._error(error)
            call.end(failure)
            raise failure from error
        except BaseException as error:
            call.end(error)
            raise
        # aclosing: when this generator is closed (or collected), the HTTP response closes too.
        async with aclosing(self._chunks(chunks, request, call)) as pieces:
            async for chunk in pieces:
                yield chunk

    async def close(self) -> None:
        """Closes the HTTP client (the credential belongs to the caller)."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _chunks(
        self, chunks: Any, request: LlmRequest, call: ModelCall
    ) -> AsyncIterator[LlmChunk]:
        """Text deltas as they come, then one closing chunk with usage and finish reason; the
        call's span ends with the stream (failed if it broke off or was abandoned)."""
        text, usage, finish_reason, model = [], None, None, None
        failure: BaseException | None = None
        try:
            async for chunk in chunks:
                usage = _usage(chunk.usage) if chunk.usage else usage
                model = getattr(chunk, "model", None) or model
                for choice in chunk.choices[:1]:  # Azure's first chunk has no choices
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        text.append(choice.delta.content)
                        yield LlmChunk(delta=choice.delta.content)
        except openai.APIError as error:
            failure = self._error(error)
            raise failure from error
        except BaseException as error:
            failure = error
            raise
        finally:
            await chunks.close()
            if failure is not None:
                call.end(failure)
        final = usage or _estimated_usage(request, "".join(text))
        call.responded(
            response_model=model,
            input_tokens=final.prompt_tokens,
            output_tokens=final.completion_tokens,
            finish_reason=finish_reason or "stop",
        )
        call.end()
        yield LlmChunk(delta="", usage=final, finish_reason=finish_reason or "stop")

    def _call(self, request: LlmRequest) -> AbstractContextManager[ModelCall]:
        """The GenAI span of one completion to this region."""
        return model_call(
            "chat",
            AZURE_OPENAI,
            self.model,
            self.region.endpoint,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        )

    def _options(self, request: LlmRequest) -> dict[str, Any]:
        """The SDK arguments for a request; on Azure, `model` names the deployment."""
        options: dict[str, Any] = {
            "model": self.region.deployment,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            options["stop"] = request.stop
        return options

    def _response(self, response: Any) -> LlmResponse:
        """Our response from the SDK's ChatCompletion."""
        if not response.choices:
            raise LlmError("server", f"{self.name}: the completion has no choices")
        choice = response.choices[0]
        return LlmResponse(
            content=choice.message.content or "",  # None when the content filter withheld it
            model=response.model or self.model,
            usage=_usage(response.usage) if response.usage else Usage(),
            finish_reason=choice.finish_reason or "stop",
        )

    def _error(self, error: openai.APIError) -> LlmError:
        """The SDK's error, classified by status code (or as a timeout or connection failure)."""
        if isinstance(error, openai.APITimeoutError):  # before its parent, APIConnectionError
            return LlmError("timeout", f"{self.name}: request timed out")
        if isinstance(error, openai.APIConnectionError):
            return LlmError("connection", f"{self.name}: cannot reach the endpoint ({error})")
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            return LlmError(
                kind_of_status(status),
                f"{self.name}: Azure OpenAI answered {status}: {error.message}",
                status=status,
                retry_after_seconds=retry_after_seconds(error.response.headers),
            )
        # No status: an error event inside a stream, or a malformed body; the service failed.
        return LlmError("server", f"{self.name}: {error.message}")


def _usage(usage: Any) -> Usage:
    """Our Usage from the SDK's CompletionUsage."""
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _estimated_usage(request: LlmRequest, answer: str) -> Usage:
    """Usage counted locally, for a stream whose service sent none (budgets still need one)."""
    prompt = sum(count_tokens(str(message.get("content", ""))) for message in request.messages)
    return Usage(prompt_tokens=prompt, completion_tokens=count_tokens(answer))
