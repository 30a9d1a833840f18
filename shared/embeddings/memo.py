"""Question embeddings remembered for a while: the cache and retrieval embed the same question."""

from __future__ import annotations

from collections import OrderedDict

from shared.embeddings import Embedder


class MemoEmbedder:
    """An Embedder that remembers single-text embeddings (most recent `size`).

    On a cache miss the chat path embeds the question for the cache lookup and again for
    retrieval; the second call is served from here. Batches (ingestion) pass straight through.
    """

    def __init__(self, embedder: Embedder, size: int = 1024) -> None:
        self._embedder = embedder
        self._size = size
        self._memo: OrderedDict[str, list[float]] = OrderedDict()
        self.model = embedder.model
        self.dimensions = embedder.dimensions

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """The texts' vectors; a single text is looked up first."""
        if len(texts) != 1:
            return await self._embedder.embed(texts)
        text = texts[0]
        if text in self._memo:
            self._memo.move_to_end(text)
            return [self._memo[text]]
        [vector] = await self._embedder.embed(texts)
        self._memo[text] = vector
        if len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return [vector]
