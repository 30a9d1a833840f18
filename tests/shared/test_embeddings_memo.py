"""The question-embedding memo: one model call per question, batches untouched."""

from __future__ import annotations

from shared.embeddings.memo import MemoEmbedder


class CountingEmbedder:
    model = "fake"
    dimensions = 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(len(text)), 1.0] for text in texts]


async def test_a_repeated_question_is_embedded_once() -> None:
    inner = CountingEmbedder()
    memo = MemoEmbedder(inner, size=2)
    assert await memo.embed(["what?"]) == await memo.embed(["what?"])
    assert inner.calls == [["what?"]]
    assert (memo.model, memo.dimensions) == ("fake", 2)


async def test_batches_pass_through_and_old_questions_are_forgotten() -> None:
    inner = CountingEmbedder()
    memo = MemoEmbedder(inner, size=2)
    await memo.embed(["a", "b"])
    await memo.embed(["a", "b"])
    assert inner.calls == [["a", "b"], ["a", "b"]]
    for text in ("q1", "q2", "q3", "q1"):
        await memo.embed([text])
    assert inner.calls[2:] == [["q1"], ["q2"], ["q3"], ["q1"]]  # q1 was evicted by q3
