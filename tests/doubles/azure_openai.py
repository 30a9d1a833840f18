"""A local Azure OpenAI double: the embeddings data-plane POST, for the real `openai` SDK.

`POST /openai/deployments/{deployment}/embeddings?api-version=...` with the `api-key` header (or
any bearer token) answers `{"object": "list", "data": [{"object", "index", "embedding"}], "model",
"usage"}`. It checks what the service checks: a known deployment, an api-version, 1-2,048
non-empty inputs, and `dimensions` only for text-embedding-3 models. Vectors are unit vectors
derived from each text's hash (the same text always gets the same vector), returned as floats or,
as the SDK asks by default, base64 float32. Scripted failures go through `fail`/`throttle` on the
route "embeddings"; throttling sends both Retry-After and retry-after-ms, like the service.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
from aiohttp import web

from tests.doubles import Handler, HttpDouble, RecordedRequest, error_response, format_seconds

API_KEY_HEADER = "api-key"
MAX_INPUTS = 2048
ROUTE = "embeddings"
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def vector_for(text: str, dimensions: int) -> list[float]:
    """The double's embedding of `text`: a unit vector seeded by the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return (vector / np.linalg.norm(vector)).tolist()


class AzureOpenAIDouble(HttpDouble):
    """Azure OpenAI embeddings on a loopback port; `deployments` maps deployment -> model."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        deployments: dict[str, str] | None = None,
    ) -> None:
        super().__init__(key=key)
        self.deployments = {
            "text-embedding-3-small": "text-embedding-3-small",
            **(deployments or {}),
        }

    def routes(self) -> list[web.RouteDef]:
        """The embeddings route."""
        return [web.post("/openai/deployments/{deployment}/embeddings", self._embed, name=ROUTE)]

    def inputs(self) -> list[list[str]]:
        """The inputs of each embeddings request received, oldest first."""
        return [_inputs(json.loads(request.body)) for request in self.seen(ROUTE)]

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
        if failure is None:
            return await handler(request)
        response = error_response(
            failure.status, failure.code, failure.message, retry_after=failure.retry_after
        )
        if failure.retry_after is not None:
            response.headers["retry-after-ms"] = format_seconds(failure.retry_after * 1000)
        return response

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
