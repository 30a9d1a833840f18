"""The learned prompt-injection detector: logistic regression over features we already compute.

Features of one text (`FeatureSet`):
- the shipped MiniLM sentence embedding (384-d) of the normalised text (`normalise`: look-alikes
  folded, invisible characters out, lower case, no accents). A text longer than WINDOW_WORDS is
  read as overlapping windows (at most MAX_WINDOWS: its beginning and its end) and scores its
  worst window, so one instruction inside a long benign document is not averaged away;
- per window, one indicator per heuristic rule that fired in any view (`rules.RULES`), the
  normalising signals, "hidden by encoding", and the rules' noisy-OR score: the rules are
  features and explanations (`reasons`), no longer the decision alone;
- a few structural traits that read the same in any language: an HTML event handler, a
  script/data URL, a markdown image, shouting;
- hashed word 1-2 grams and character 3-5 grams (NGRAM_BUCKETS): lexical cues shared across
  corpora and across languages the English MiniLM reads poorly.

Two rule floors (`rule_floor`) keep what the rules are sure of, whatever the model says: an
instruction the rules find only once the text is decoded (base64, hex, percent or backslash
escapes, rot13, reversed text, Unicode tag characters, leetspeak), and a strong rule (weight >=
STRONG_RULE, e.g. "ignore all previous instructions", chat-template tokens, our own source
fence) in plain text. Ordinary text does not hide instructions nor use those phrases, the
corpora hold too few such rows for the model to learn them, and a model that reads a window
mostly made of benign document text otherwise scores a single injected sentence down.

The weights are trained offline (`bench/injection_train.py`, fixed seed, corpora from the
package registries) and ship as `injection_model.json` (about 70 KB). The bias is shifted so the
operating point chosen on the training corpora (benign false-positive rate 1%) is at 0.5: the
score is "probability of an attack, calibrated around the default threshold" and
INJECTION_THRESHOLD moves the operating point from there.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from shared.security.normalise import Normalised, normalise
from shared.security.rules import RULES, SIGNAL_WEIGHTS, Hit, find_hits, score

MODEL_FILE = Path(__file__).with_name("injection_model.json")
WINDOW_WORDS = 64  # a few sentences: an injected instruction dominates its window
WINDOW_STRIDE = 48
MAX_WINDOWS = 8  # the first and last four of a long text: bounded cost per screen
_HTML_HANDLER = re.compile(r"<[a-z][^>]{0,200}\bon[a-z]{3,20}\s*=", re.IGNORECASE)
_SCRIPT_URL = re.compile(r"\b(?:javascript|vbscript)\s*:|\bdata:[a-z]+/[a-z+.-]+[;,]", re.I)
_MD_IMAGE = re.compile(r"!\[[^\]]{0,200}\]\(")
_LETTERS = re.compile(r"[^\W\d_]")

STRUCTURAL = ("html event handler", "script or data url", "markdown image", "shouting")
STRONG_RULE = 0.85  # rules this sure decide alone (see rule_floor)
NGRAM_BUCKETS = 2048  # hashed word 1-2 grams and character 3-5 grams of the normalised text
_NGRAM_WORD = re.compile(r"\w+")
RULE_NAMES = tuple(dict.fromkeys(rule.name for rule in RULES))
SIGNALS = tuple(SIGNAL_WEIGHTS)
EMBED_BATCH = 32  # windows per model call (sorted by length: padding costs the same)


def feature_names(embedding_dims: int) -> list[str]:
    """The column names of the feature matrix, in order."""
    return [
        *(f"embedding[{index}]" for index in range(embedding_dims)),
        *(f"rule:{name}" for name in RULE_NAMES),
        *(f"signal:{name}" for name in SIGNALS),
        "hidden",
        "rule score",
        *(f"trait:{name}" for name in STRUCTURAL),
        *(f"ngram[{index}]" for index in range(NGRAM_BUCKETS)),
    ]


def ngram_features(normalised_text: str) -> np.ndarray:
    """Hashed word unigrams/bigrams and character 3-5 grams: log counts, unit length. Lexical
    cues shared across corpora and languages ("anweisungen", "jailbreak", "[dan]")."""
    vector = np.zeros(NGRAM_BUCKETS, dtype=np.float32)
    words = _NGRAM_WORD.findall(normalised_text[:4000])
    grams = words + [f"{a} {b}" for a, b in pairwise(words)]
    padded = f" {' '.join(words)} "
    grams += [padded[i : i + n] for n in (3, 4, 5) for i in range(len(padded) - n + 1)]
    for gram in grams:
        vector[zlib.crc32(gram.encode()) % NGRAM_BUCKETS] += 1.0
    np.log1p(vector, out=vector)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


@dataclass(frozen=True)
class Reading:
    """What the cheap layers found in one text: its views, the rules that fired, their score."""

    normalised: Normalised
    hits: tuple[Hit, ...]
    rule_score: float

    @property
    def reasons(self) -> tuple[str, ...]:
        """Rule and signal reasons, de-duplicated, in order."""
        reasons = [hit.reason for hit in self.hits] + list(self.normalised.signals)
        if any(hit.view != "text" for hit in self.hits):
            reasons.append("instruction hidden by encoding or obfuscation")
        return tuple(dict.fromkeys(reasons))


def read(text: str) -> Reading:
    """Normalise `text` and run the rules over its views."""
    normalised = normalise(text)
    hits = tuple(find_hits(normalised))
    return Reading(normalised, hits, score(hits, normalised.signals))


def windows(text: str) -> list[str]:
    """The text itself, or overlapping windows of WINDOW_WORDS words covering its beginning
    and its end (at most MAX_WINDOWS)."""
    words = text.split()
    if len(words) <= WINDOW_WORDS:
        return [text]
    last = len(words) - WINDOW_WORDS
    starts = [*range(0, last, WINDOW_STRIDE), last]
    if len(starts) > MAX_WINDOWS:
        starts = starts[: MAX_WINDOWS // 2] + starts[-MAX_WINDOWS // 2 :]
    return [" ".join(words[start : start + WINDOW_WORDS]) for start in starts]


def window_readings(text: str, reading: Reading) -> list[tuple[str, Reading]]:
    """(raw window, its reading) for each window of `text`; `reading` is the whole text's."""
    parts = windows(text)
    if len(parts) == 1:
        return [(text, reading)]
    return [(part, read(part)) for part in parts]


def cheap_features(reading: Reading, raw: str) -> np.ndarray:
    """Rule indicators, signals, hidden flag, rule score and structural traits of one text."""
    fired = {hit.rule.name for hit in reading.hits}
    letters = _LETTERS.findall(raw)
    upper = sum(char.isupper() for char in letters)
    traits = (
        bool(_HTML_HANDLER.search(raw)),
        bool(_SCRIPT_URL.search(raw)),
        bool(_MD_IMAGE.search(raw)),
        len(letters) >= 12 and upper / len(letters) > 0.6,
    )
    values = [
        *(name in fired for name in RULE_NAMES),
        *(signal in reading.normalised.signals for signal in SIGNALS),
        any(hit.view != "text" for hit in reading.hits),
        reading.rule_score,
        *traits,
    ]
    cheap = np.asarray(values, dtype=np.float32)
    return np.concatenate([cheap, ngram_features(reading.normalised.text)])


@dataclass(frozen=True)
class FeatureSet:
    """The features of a batch: one row per window, and which text each window belongs to."""

    rows: np.ndarray  # (windows, features)
    owners: np.ndarray  # (windows,) index of the text each row reads
    readings: tuple[Reading, ...]


def featurise(texts: Sequence[str]) -> FeatureSet:
    """Features for `texts`, embedding every window of every text in one model call per batch."""
    from shared.embeddings.local import embed_sorted  # the ONNX session loads on first use

    readings = tuple(read(text) for text in texts)
    pieces: list[str] = []
    owners: list[int] = []
    cheap: list[np.ndarray] = []
    for index, (text, reading) in enumerate(zip(texts, readings, strict=True)):
        for window, window_reading in window_readings(text, reading):
            pieces.append(window_reading.normalised.text)
            owners.append(index)
            cheap.append(cheap_features(window_reading, window))
    embeddings = embed_sorted(pieces, EMBED_BATCH)
    rows = np.hstack([embeddings, np.vstack(cheap)]) if pieces else np.zeros((0, 0), np.float32)
    return FeatureSet(rows, np.asarray(owners, dtype=np.int64), readings)


@dataclass(frozen=True)
class LinearModel:
    """Standardised logistic regression: p = sigmoid(((x - mean) / scale) . weights + bias)."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    meta: dict

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """The decision value of each row."""
        return ((rows - self.mean) / self.scale) @ self.weights + self.bias

    def text_scores(self, features: FeatureSet, count: int) -> np.ndarray:
        """One probability per text: the worst (highest) of its windows."""
        probabilities = sigmoid(self.logits(features.rows)) if len(features.rows) else []
        best = np.zeros(count, dtype=np.float64)
        np.maximum.at(best, features.owners, probabilities)
        return best

    def to_json(self) -> dict:
        """The shipped form: plain lists, rounded (kilobytes, diff-friendly)."""
        return {
            "meta": self.meta,
            "bias": round(float(self.bias), 6),
            "weights": [round(float(value), 6) for value in self.weights],
            "mean": [round(float(value), 6) for value in self.mean],
            "scale": [round(float(value), 6) for value in self.scale],
        }

    @classmethod
    def from_json(cls, data: dict) -> LinearModel:
        """The model from its shipped form; refuses a file made for other features."""
        model = cls(
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            meta=data.get("meta", {}),
        )
        expected = len(feature_names(384))
        if not len(model.weights) == len(model.mean) == len(model.scale) == expected:
            raise ValueError(
                f"the detector expects {expected} features; the file has another count"
            )
        return model


def sigmoid(values: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large magnitudes."""
    return 0.5 * (1.0 + np.tanh(0.5 * values))


_lock = threading.Lock()


@cache
def shipped_model() -> LinearModel:
    """The trained weights shipped beside this module (read once)."""
    with _lock:
        return LinearModel.from_json(json.loads(MODEL_FILE.read_text()))


@dataclass(frozen=True)
class Detection:
    """The learned score of one text and the cheap layers' reading of it."""

    score: float
    reading: Reading


def detect_batch(texts: Sequence[str], model: LinearModel | None = None) -> list[Detection]:
    """Scores for `texts` (blocking CPU work: run it off the event loop)."""
    if not texts:
        return []
    model = model or shipped_model()
    features = featurise(texts)
    scores = model.text_scores(features, len(texts))
    return [
        Detection(round(max(float(value), rule_floor(reading)), 4), reading)
        for value, reading in zip(scores, features.readings, strict=True)
    ]


def rule_floor(reading: Reading) -> float:
    """The rules' score when an instruction was found only after decoding or a strong rule
    fired; else 0 (the model decides)."""
    sure = any(hit.view != "text" or hit.rule.weight >= STRONG_RULE for hit in reading.hits)
    return reading.rule_score if sure else 0.0


@cache
def detector_version() -> str:
    """A short id of the shipped weights: stored verdicts made by other weights are redone."""
    import hashlib

    return "pi-" + hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()[:12]
