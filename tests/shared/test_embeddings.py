"""Embedders: MiniLM int8 on ONNX Runtime, and Azure OpenAI through the real SDK and a double."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from azure.core.credentials import AccessToken

from shared.documents.engines.base import TransientEngineError
from shared.embeddings import Embedder, EmbeddingRequestError
from shared.embeddings.azure_openai import (
    COGNITIVE_SERVICES_SCOPE,
    MAX_RETRY_AFTER_SECONDS,
    AzureOpenAIEmbedder,
    retry_after_seconds,
)
from shared.embeddings.local import LocalEmbedder, runtime
from tests.doubles.azure_openai import ROUTE, AzureOpenAIDouble, vector_for

API_VERSION = "2024-10-21"
SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue rose by twelve percent.",
    "Sales grew strongly in the last quarter.",
    "How do I reset my password?",
]


# Local (all-MiniLM-L6-v2 int8)


async def test_local_vectors_are_384_d_unit_vectors() -> None:
    embedder = LocalEmbedder()
    assert isinstance(embedder, Embedder)
    assert embedder.dimensions == 384 and embedder.model == "all-MiniLM-L6-v2-int8"
    vectors = np.array(await embedder.embed(SENTENCES))
    assert vectors.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_local_similar_sentences_are_closer_than_unrelated_ones() -> None:
    cat, kitten, revenue, sales, password = np.array(await LocalEmbedder().embed(SENTENCES))
    assert cat @ kitten > cat @ revenue + 0.3
    assert revenue @ sales > revenue @ password + 0.3
    assert cat @ kitten > kitten @ password


async def test_local_batches_match_single_texts_and_keep_order() -> None:
    texts = [*SENTENCES, "short", " ".join(["long text"] * 100)]
    batched = np.array(await LocalEmbedder(batch_size=3).embed(texts))
    single = np.array([(await LocalEmbedder(batch_size=1).embed([text]))[0] for text in texts])
    assert np.allclose(batched, single, atol=1e-4)
    reversed_vectors = np.array(await LocalEmbedder(batch_size=3).embed(texts[::-1]))
    assert np.allclose(reversed_vectors[::-1], batched, atol=1e-4)


async def test_local_handles_empty_input_and_long_text() -> None:
    embedder = LocalEmbedder()
    assert await embedder.embed([]) == []
    # Beyond the 256-token cap the text is truncated, not rejected.
    [vector] = await embedder.embed([" ".join(["word"] * 2000)])
    assert len(vector) == 384


async def test_local_session_is_created_once() -> None:
    assert runtime() is runtime()
    assert runtime().session is runtime().session


async def test_local_work_runs_off_the_event_loop() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    runtime()  # loading is not what is measured
    ticker = asyncio.create_task(tick())
    await LocalEmbedder(batch_size=8).embed(
        [f"{sentence} {i}" for i, sentence in enumerate(SENTENCES * 12)]
    )
    ticker.cancel()
    assert ticks > 5  # the loop kept running while the model worked


# Azure OpenAI through the real SDK


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
    async with AzureOpenAIDouble(
        deployments={"emb": "text-embedding-3-small", "ada": "text-embedding-ada-002"}
    ) as running:
        yield running


def azure_embedder(double: AzureOpenAIDouble, **overrides: object) -> AzureOpenAIEmbedder:
    options: dict[str, object] = {
        "endpoint": double.endpoint,
        "deployment": "emb",
        "api_version": API_VERSION,
        "model": "text-embedding-3-small",
        "api_key": double.key,
        "max_retries": 0,
    }
    options.update(overrides)
    return AzureOpenAIEmbedder(**options)  # type: ignore[arg-type]


async def test_azure_batches_requests_and_keeps_order(double: AzureOpenAIDouble) -> None:
    texts = [f"chunk number {index}" for index in range(40)]
    async with azure_embedder(double, batch_size=16) as embedder:
        assert isinstance(embedder, Embedder)
        assert (embedder.model, embedder.dimensions) == ("text-embedding-3-small", 1536)
        vectors = await embedder.embed(texts)
    # batches run two at a time, so they may arrive in any order
    assert sorted(len(batch) for batch in double.inputs()) == [8, 16, 16]
    assert sorted(text for batch in double.inputs() for text in batch) == sorted(texts)
    assert np.allclose(vectors, [vector_for(text, 1536) for text in texts], atol=1e-6)
    request = double.seen(ROUTE)[0]
    assert request.path == "/openai/deployments/emb/embeddings"
    assert request.query["api-version"] == API_VERSION
    assert request.headers["api-key"] == double.key


async def test_azure_asks_for_fewer_dimensions_on_text_embedding_3(
    double: AzureOpenAIDouble,
) -> None:
    async with azure_embedder(double, dimensions=256) as embedder:
        [vector] = await embedder.embed(["hello"])
    assert embedder.dimensions == 256 and len(vector) == 256
    assert np.allclose(vector, vector_for("hello", 256), atol=1e-6)


async def test_azure_older_models_get_no_dimensions_parameter(double: AzureOpenAIDouble) -> None:
    async with azure_embedder(double, deployment="ada", model="text-embedding-ada-002") as embedder:
        [vector] = await embedder.embed(["hello"])
    assert len(vector) == 1536 == embedder.dimensions
    with pytest.raises(ValueError):
        azure_embedder(double, model="text-embedding-ada-002", dimensions=256)
    with pytest.raises(ValueError):
        azure_embedder(double, model="my-custom-deployment")


async def test_azure_uses_an_entra_token_for_cognitive_services(
    double: AzureOpenAIDouble,
) -> None:
    credential = FakeCredential()
    async with azure_embedder(double, api_key=None, credential=credential) as embedder:
        await embedder.embed(["hello"])
    assert credential.scopes == [(COGNITIVE_SERVICES_SCOPE,)]
    headers = double.seen(ROUTE)[0].headers
    assert headers["Authorization"] == "Bearer fake-token" and "api-key" not in headers


async def test_azure_needs_exactly_one_way_to_authenticate(double: AzureOpenAIDouble) -> None:
    with pytest.raises(ValueError):
        azure_embedder(double, api_key=None)
    with pytest.raises(ValueError):
        azure_embedder(double, credential=FakeCredential())


async def test_azure_throttling_is_transient_with_retry_after(double: AzureOpenAIDouble) -> None:
    double.throttle(ROUTE, times=10, retry_after=7)
    async with azure_embedder(double) as embedder:
        with pytest.raises(TransientEngineError) as raised:
            await embedder.embed(["hello"])
    assert raised.value.retry_after_seconds == 7
    assert len(double.seen(ROUTE)) == 1  # max_retries=0: no SDK retry


async def test_azure_sdk_retry_absorbs_one_short_throttle(double: AzureOpenAIDouble) -> None:
    double.throttle(ROUTE, times=1, retry_after=0.05)
    async with azure_embedder(double, max_retries=1) as embedder:
        [vector] = await embedder.embed(["hello"])
    assert len(vector) == 1536
    assert len(double.seen(ROUTE)) == 2


async def test_azure_server_errors_are_transient(double: AzureOpenAIDouble) -> None:
    double.fail(ROUTE, 503, "ServiceUnavailable", "The service is busy.", times=5)
    async with azure_embedder(double) as embedder:
        with pytest.raises(TransientEngineError) as raised:
            await embedder.embed(["hello"])
    assert raised.value.retry_after_seconds is None


async def test_azure_bad_request_is_permanent(double: AzureOpenAIDouble) -> None:
    async with azure_embedder(double) as embedder:
        with pytest.raises(EmbeddingRequestError) as raised:
            await embedder.embed(["fine", ""])  # the service rejects empty inputs
    assert raised.value.status_code == 400


async def test_azure_wrong_key_is_permanent(double: AzureOpenAIDouble) -> None:
    async with azure_embedder(double, api_key="wrong") as embedder:
        with pytest.raises(EmbeddingRequestError) as raised:
            await embedder.embed(["hello"])
    assert raised.value.status_code == 401


async def test_azure_unreachable_endpoint_is_transient() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = AzureOpenAIEmbedder(
        endpoint=f"http://127.0.0.1:{port}",
        deployment="emb",
        api_version=API_VERSION,
        model="text-embedding-3-small",
        api_key="key",
        max_retries=0,
        timeout_seconds=2,
    )
    async with embedder:
        with pytest.raises(TransientEngineError):
            await embedder.embed(["hello"])


async def test_azure_one_failed_batch_fails_the_call(double: AzureOpenAIDouble) -> None:
    double.fail(ROUTE, 500, "InternalServerError", "boom", times=1)
    async with azure_embedder(double, batch_size=2, concurrency=1) as embedder:
        with pytest.raises(TransientEngineError):
            await embedder.embed(["a", "b", "c", "d"])


async def test_azure_empty_input_sends_nothing(double: AzureOpenAIDouble) -> None:
    async with azure_embedder(double) as embedder:
        assert await embedder.embed([]) == []
    assert double.seen(ROUTE) == []


def test_retry_after_is_read_and_capped() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "9"}) == 9
    assert retry_after_seconds({"retry-after": "86400"}) == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds({"retry-after": "inf"}) == MAX_RETRY_AFTER_SECONDS
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_azure_from_settings_prefers_the_key_then_the_credential(
    double: AzureOpenAIDouble,
) -> None:
    from shared.services import embedder_for

    settings: Any = SimpleNamespace(
        endpoint=double.endpoint,
        deployment="text-embedding-3-small",
        model="text-embedding-3-small",
        dimensions=None,
        api_version=API_VERSION,
        key=double.key,
    )
    credential = FakeCredential()
    async with embedder_for(settings, credential) as embedder:  # type: ignore[attr-defined]
        await embedder.embed(["hello"])
    settings.key = None
    async with embedder_for(settings, credential) as embedder:  # type: ignore[attr-defined]
        await embedder.embed(["hello"])
    first, second = double.seen(ROUTE)
    assert first.path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert first.headers["api-key"] == double.key
    assert second.headers["Authorization"] == "Bearer fake-token"
