"""Azure OpenAI embeddings through the `openai` SDK's `AsyncAzureOpenAI` client.

Inputs go in batches (16 per request by default, well under the service's 2,048 inputs and
300,000 tokens per request, and small enough that one throttled request costs little to redo);
vectors come back in input order whatever order the service lists them in.

Retries: the SDK keeps retrying on its own, capped at one retry (`max_retries=1`) with a
30-second request timeout. Embedding requests are idempotent, so a single in-process retry
absorbs a momentary 429 or 5xx without failing the whole activity; more would hold a Functions
worker asleep (the SDK honours Retry-After up to two minutes) while the ingestion orchestrator
can wait on a durable timer for free. What is left after that retry surfaces as
`TransientEngineError` with the service's Retry-After, capped at five minutes because values
near a day have been seen.

Errors: 408/409/429, 5xx, timeouts and connection failures raise `TransientEngineError`; 400 and
the other 4xx (bad input, wrong key or deployment) raise `EmbeddingRequestError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import openai
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import get_bearer_token_provider

from shared.documents.engines.base import TransientEngineError
from shared.embeddings import EmbeddingRequestError
from shared.resilience.retry import cap, parse_retry_after
from shared.telemetry.genai import model_call
from shared.telemetry.names import AZURE_OPENAI

if TYPE_CHECKING:
    pass

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
MAX_RETRY_AFTER_SECONDS = 300.0
TRANSIENT_STATUSES = frozenset({408, 409, 429})
# Native sizes; text-embedding-3 models can also return fewer dimensions on request.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_INPUT_TOKENS = 8191


class AzureOpenAIEmbedder:
    """The `Embedder` for Azure OpenAI embedding deployments."""

    max_input_tokens = MAX_INPUT_TOKENS

    def __init__(
        self,
        *,
        endpoint: str,
        deployment: str,
        api_version: str,
        model: str,
        dimensions: int | None = None,
        credential: AsyncTokenCredential | None = None,
        api_key: str | None = None,
        batch_size: int = 16,
        concurrency: int = 2,
        max_retries: int = 1,
        timeout_seconds: float = 30.0,
    ) -> None:
        if (credential is None) == (api_key is None):
            raise ValueError("give exactly one of credential and api_key")
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.model = model
        self.deployment = deployment
        self._endpoint = endpoint
        self.dimensions, self._requested_dimensions = _dimensions(model, dimensions)
        self.batch_size = batch_size
        self._gate = asyncio.Semaphore(concurrency)
        self._client = openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=api_version,
            api_key=api_key,
            azure_ad_token_provider=(
                get_bearer_token_provider(credential, COGNITIVE_SERVICES_SCOPE)
                if credential is not None
                else None
            ),
            max_retries=max_retries,
            timeout=timeout_seconds,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in input order; batches run a few at a time."""
        batches = [
            texts[start : start + self.batch_size]
            for start in range(0, len(texts), self.batch_size)
        ]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._embed_batch(batch)) for batch in batches]
        except ExceptionGroup as failures:
            # The group cancels the other batches; the caller wants the first real error.
            raise failures.exceptions[0] from None
        return [vector for task in tasks for vector in task.result()]

    async def close(self) -> None:
        """Closes the HTTP client (the credential belongs to the caller)."""
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        """One request; the vectors sorted back into the batch's order."""
        options: dict[str, Any] = {}
        if self._requested_dimensions is not None:
            options["dimensions"] = self._requested_dimensions
        async with self._gate:
            with model_call("embeddings", AZURE_OPENAI, self.model, self._endpoint) as call:
                try:
                    response = await self._client.embeddings.create(
                        model=self.deployment, input=batch, **options
                    )
                except openai.APIError as error:
                    raise _translate(error) from error
                usage = getattr(response, "usage", None)
                call.responded(
                    response_model=getattr(response, "model", None),
                    input_tokens=usage.prompt_tokens if usage else None,
                )
        return self._vectors(response, len(batch))

    def _vectors(self, response: Any, expected: int) -> list[list[float]]:
        """The response's vectors by index, checked for count and size."""
        items = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(expected)):
            raise EmbeddingRequestError(
                f"{self.deployment} returned {len(items)} embeddings for {expected} inputs"
            )
        vectors = [list(item.embedding) for item in items]
        sizes = {len(vector) for vector in vectors}
        if sizes != {self.dimensions}:
            raise EmbeddingRequestError(
                f"{self.deployment} returned {sorted(sizes)} dimensions, expected "
                f"{self.dimensions}: is the deployment the model configured ({self.model})?"
            )
        return vectors


def _dimensions(model: str, requested: int | None) -> tuple[int, int | None]:
    """The vector size, and the `dimensions` to send (only text-embedding-3 takes one)."""
    native = NATIVE_DIMENSIONS.get(model)
    if requested is None:
        if native is None:
            raise ValueError(f"unknown embedding model {model!r}: give its dimensions")
        return native, None
    if requested < 1:
        raise ValueError("dimensions must be at least 1")
    if model.startswith("text-embedding-3"):
        return requested, requested
    if native is not None and requested != native:
        raise ValueError(f"{model} always returns {native} dimensions")
    return requested, None


def _translate(error: openai.APIError) -> Exception:
    """The SDK's error as our transient or permanent error."""
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return TransientEngineError(f"Azure OpenAI embeddings unreachable: {error}")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        message = f"Azure OpenAI embeddings answered {status}: {error.message}"
        if status in TRANSIENT_STATUSES or status >= 500:
            return TransientEngineError(message, retry_after_seconds(error.response.headers))
        return EmbeddingRequestError(message, status)
    return EmbeddingRequestError(f"Azure OpenAI embeddings failed: {error}")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait the service asks for (retry-after-ms, then Retry-After), capped; None if absent."""
    seconds = parse_retry_after(headers)
    return None if seconds is None else cap(seconds, MAX_RETRY_AFTER_SECONDS)
