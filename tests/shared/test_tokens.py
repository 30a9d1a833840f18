"""Token counting with MiniLM's WordPiece tokenizer, loaded from the installed package."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shared import tokens

PROSE = (
    "The committee reviewed the quarterly results and agreed that revenue grew in every region. "
    "Costs rose more slowly than expected, so the margin improved for the third year running."
)


def test_counts_wordpieces_without_special_tokens() -> None:
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("Hello, world!") == 4  # punctuation is its own token
    assert tokens.count_tokens("HELLO WORLD") == tokens.count_tokens("hello world")  # lower-cased


def test_long_text_is_not_truncated() -> None:
    # The shipped tokenizer.json truncates at 128; counting must see everything.
    text = " ".join(["word"] * 1000)
    assert tokens.count_tokens(text) == 1000


def test_batch_matches_single_counts() -> None:
    texts = [PROSE, "", "table | row | 12.5", "naïve café"]
    assert tokens.count_tokens_batch(texts) == [tokens.count_tokens(text) for text in texts]
    assert tokens.count_tokens_batch([]) == []


def test_counts_add_up_over_whitespace_joins() -> None:
    # The chunker sizes chunks from per-piece counts; that relies on this.
    pieces = PROSE.split(". ")
    assert tokens.count_tokens("\n\n".join(pieces)) == sum(tokens.count_tokens_batch(pieces))


def test_prose_ratio_is_about_one_token_per_five_characters() -> None:
    ratio = tokens.count_tokens(PROSE) / len(PROSE)
    assert 0.15 < ratio < 0.25


def test_truncates_at_a_token_boundary() -> None:
    assert tokens.truncate_to_tokens("one two three four", 2) == "one two"
    assert tokens.truncate_to_tokens("one two", 5) == "one two"
    assert tokens.truncate_to_tokens("one two", 0) == ""
    assert tokens.count_tokens(tokens.truncate_to_tokens(PROSE, 10)) == 10


def test_tokenizer_comes_from_the_installed_package() -> None:
    path = tokens.tokenizer_file()
    assert path.name == "tokenizer.json"
    assert "site-packages" in Path(path).parts


def test_tokenizer_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_tokenizer", None)
    loads = []
    real_load = tokens.load_tokenizer

    def counting_load():
        loads.append(1)
        time.sleep(0.05)  # widen the race window
        return real_load()

    monkeypatch.setattr(tokens, "load_tokenizer", counting_load)
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(tokens.counting_tokenizer())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len({id(tokenizer) for tokenizer in seen}) == 1


def test_batches_are_fast() -> None:
    texts = [f"{PROSE} {index}" for index in range(5000)]
    started = time.perf_counter()
    counts = tokens.count_tokens_batch(texts)
    assert len(counts) == 5000
    assert time.perf_counter() - started < 5  # about 0.2 s measured on 2 busy cores
