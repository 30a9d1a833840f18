"""Text embeddings: one protocol, a local ONNX model and Azure OpenAI behind it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class EmbeddingRequestError(Exception):
    """The embedding service refused the request (400 and other 4xx): retrying will not help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of a fixed dimension, in input order."""

    model: str
    dimensions: int

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in the order given."""
        ...


__all__ = ["Embedder", "EmbeddingRequestError"]
