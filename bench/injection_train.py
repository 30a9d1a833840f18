"""Trains the learned prompt-injection detector and writes `shared/security/injection_model.json`.

Reproducible: the corpora are pinned package versions checked by SHA-256
(`bench/injection_corpora.py`), sampling is by hashes of the rows, and the fit is full-batch
Adam on an L2-regularised logistic loss from zero weights: no random state is involved (SEED is
recorded in the model for the record). MiniLM vectors are cached in `bench/data/cache/`.

Training recipe (the same in every leave-one-corpus-out fold of `bench/injection_eval.py`):
1. near-duplicates of the held-out corpus are removed from training (`deduplicate`);
2. each corpus carries the same total weight per class, so the biggest corpus does not set the
   decision and attack-only corpora still count;
3. the threshold is chosen on out-of-fold scores of the training corpora only (an inner
   leave-one-corpus-out): the score at which their benign false-positive rate is TARGET_FPR;
4. the bias is shifted so that threshold sits at 0.5.

Run: `.venv/bin/python bench/injection_train.py --write` to replace the shipped weights (minutes
the first time, mostly MiniLM; less once the cache is warm); without `--write` it only compares
a fresh fit with the shipped file (a reproducibility check, as `make bench` runs it).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.injection_corpora import (
    BACKGROUND,
    DATA,
    Sample,
    background_split,
    load,
)
from shared.security.detector import (
    MODEL_FILE,
    FeatureSet,
    LinearModel,
    cheap_features,
    feature_names,
    read,
    rule_floor,
    sigmoid,
    window_readings,
)

SEED = 14
L2 = 1e-3  # on standardised features, loss averaged over the (weighted) rows
ITERATIONS = 300
LEARNING_RATE = 0.02
TARGET_FPR = 0.01  # chosen on training corpora only; the goal on held-out data is 0.02
SHINGLE_WORDS = 8
DUPLICATE_OVERLAP = 0.5
CACHE = DATA / "cache" / "minilm-windows.pkl"


# Features with a cache of MiniLM vectors -------------------------------------------------------


@dataclass
class Featurised:
    """Samples with their features (window rows) ready to slice by sample."""

    samples: list[Sample]
    features: FeatureSet

    def subset(self, chosen: Sequence[int]) -> Featurised:
        """The featurised samples at indexes `chosen`."""
        chosen = list(chosen)
        position = {old: new for new, old in enumerate(chosen)}
        mask = np.isin(self.features.owners, chosen)
        owners = np.asarray([position[old] for old in self.features.owners[mask]], dtype=np.int64)
        readings = tuple(self.features.readings[index] for index in chosen)
        return Featurised(
            [self.samples[index] for index in chosen],
            FeatureSet(self.features.rows[mask], owners, readings),
        )

    @property
    def labels(self) -> np.ndarray:
        """1 for attacks, 0 for benign, per sample."""
        return np.asarray([sample.malicious for sample in self.samples], dtype=np.float64)


def featurise_cached(samples: Sequence[Sample]) -> Featurised:
    """`detector.featurise` for samples, reusing cached MiniLM vectors of identical windows."""
    from shared.embeddings.local import embed_batch

    cache: dict[str, np.ndarray] = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    readings = [read(sample.text) for sample in samples]
    parts = [
        window_readings(sample.text, reading)
        for sample, reading in zip(samples, readings, strict=True)
    ]
    pieces = [r.normalised.text for windows_of in parts for _, r in windows_of]
    missing = sorted({piece for piece in pieces if _key(piece) not in cache}, key=len)
    for start in range(0, len(missing), 32):
        batch = missing[start : start + 32]
        for piece, vector in zip(batch, embed_batch(batch), strict=True):
            cache[_key(piece)] = vector
        if start % 640 == 0:
            print(f"  embedded {start + len(batch)}/{len(missing)} windows", file=sys.stderr)
    if missing:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(pickle.dumps(cache))
    rows, owners = [], []
    for index, windows_of in enumerate(parts):
        for window, window_reading in windows_of:
            extra = cheap_features(window_reading, window)
            rows.append(np.concatenate([cache[_key(window_reading.normalised.text)], extra]))
            owners.append(index)
    features = FeatureSet(np.vstack(rows), np.asarray(owners, dtype=np.int64), tuple(readings))
    return Featurised(list(samples), features)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Near-duplicates across corpora ----------------------------------------------------------------


def shingles(text: str) -> set[int]:
    """Hashes of the text's SHINGLE_WORDS-word shingles (the whole text when shorter)."""
    words = read_words(text)
    if len(words) < SHINGLE_WORDS:
        return {hash(" ".join(words))}
    return {
        hash(" ".join(words[index : index + SHINGLE_WORDS]))
        for index in range(len(words) - SHINGLE_WORDS + 1)
    }


def read_words(text: str) -> list[str]:
    """Lower-cased words (punctuation dropped): what near-duplicates share."""
    return "".join(char.lower() if char.isalnum() else " " for char in text).split()


def deduplicate(train: list[Sample], held_out: list[Sample]) -> tuple[list[Sample], int]:
    """`train` without samples sharing DUPLICATE_OVERLAP of their shingles with `held_out`."""
    pool: set[int] = set()
    for sample in held_out:
        pool |= shingles(sample.text)
    kept = []
    for sample in train:
        own = shingles(sample.text)
        if len(own & pool) < DUPLICATE_OVERLAP * len(own):
            kept.append(sample)
    return kept, len(train) - len(kept)


# Fitting ---------------------------------------------------------------------------------------


def sample_weights(samples: Sequence[Sample]) -> np.ndarray:
    """Equal total weight per (corpus, class); both classes equal overall; mean 1."""
    groups: dict[tuple[str, bool], int] = {}
    for sample in samples:
        groups[(sample.corpus, sample.malicious)] = (
            groups.get((sample.corpus, sample.malicious), 0) + 1
        )
    per_class = {
        label: sum(1 for corpus, flag in groups if flag == label) for label in (True, False)
    }
    weights = np.asarray(
        [1.0 / (groups[(s.corpus, s.malicious)] * max(per_class[s.malicious], 1)) for s in samples]
    )
    return weights * len(weights) / weights.sum()


def fit(
    data: Featurised,
    l2: float | None = None,
    columns: np.ndarray | None = None,
    iterations: int | None = None,
) -> LinearModel:
    """L2-regularised logistic regression on window rows, full-batch Adam from zero (no random
    start: the same data gives the same weights). `columns` masks feature groups out."""
    l2 = L2 if l2 is None else l2
    iterations = ITERATIONS if iterations is None else iterations
    rows, owners = data.features.rows.astype(np.float32), data.features.owners
    per_sample = sample_weights(data.samples)
    windows_per_sample = np.bincount(owners, minlength=len(data.samples))
    weight = per_sample[owners] / windows_per_sample[owners]
    weight = (weight / weight.sum()).astype(np.float32)
    target = data.labels[owners].astype(np.float32)
    mean = np.average(rows, axis=0, weights=weight).astype(np.float32)
    scale = np.sqrt(np.average((rows - mean) ** 2, axis=0, weights=weight)).astype(np.float32)
    scale[scale < 1e-6] = 1.0
    design = (rows - mean) / scale
    mask = np.ones(rows.shape[1], np.float32) if columns is None else columns.astype(np.float32)
    weights = np.zeros(rows.shape[1], np.float32)
    bias = 0.0
    moment = np.zeros(rows.shape[1] + 1, np.float32)
    second = np.zeros(rows.shape[1] + 1, np.float32)
    for step in range(1, iterations + 1):
        error = weight * (sigmoid(design @ weights + bias).astype(np.float32) - target)
        gradient = np.append(design.T @ error * mask + l2 * weights * mask, error.sum())
        moment = 0.9 * moment + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient**2
        update = (
            LEARNING_RATE
            * (moment / (1 - 0.9**step))
            / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
        )
        weights -= update[:-1] * mask
        bias -= float(update[-1])
    mean, scale = mean * mask, np.where(mask > 0, scale, 1.0)
    return LinearModel(weights.astype(np.float64), bias, mean, scale, {})


def scores(model: LinearModel, data: Featurised) -> np.ndarray:
    """One probability per sample (its worst window)."""
    return model.text_scores(data.features, len(data.samples))


def decided(model: LinearModel, data: Featurised) -> np.ndarray:
    """What the screen decides with a calibrated model (flagged at 0.5): the model's score or
    the rule floor (`detector.rule_floor`), whichever is higher, per sample."""
    floors = np.asarray([rule_floor(reading) for reading in data.features.readings])
    return np.maximum(scores(model, data), floors)


def by_corpus(data: Featurised) -> dict[str, list[int]]:
    """Sample indexes per corpus."""
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(data.samples):
        groups.setdefault(sample.corpus, []).append(index)
    return groups


@dataclass
class Pool:
    """Everything featurised once: the labelled corpora and the background halves."""

    data: Featurised
    corpora: list[str]  # names of the labelled corpora (the leave-one-out units)
    background: list[int]  # trained half of the background benign sets: always in training
    reported: dict[str, list[int]]  # held-back half of each background set: evaluation only

    def indexes(self, corpora: Sequence[str]) -> list[int]:
        """Sample indexes of the named corpora."""
        groups = by_corpus(self.data)
        return [index for name in corpora for index in groups.get(name, [])]


def build_pool() -> Pool:
    """Loads and featurises every corpus and background set."""
    corpora = load()
    samples = [sample for rows in corpora.values() for sample in rows]
    trained: list[Sample] = []
    reported: dict[str, list[Sample]] = {}
    for name, loader in BACKGROUND.items():
        kept, held = background_split(loader())
        trained += kept
        reported[name] = held
    everything = samples + trained + [s for rows in reported.values() for s in rows]
    data = featurise_cached(everything)
    start = len(samples)
    background = list(range(start, start + len(trained)))
    offset = start + len(trained)
    held_indexes: dict[str, list[int]] = {}
    for name, rows in reported.items():
        held_indexes[name] = list(range(offset, offset + len(rows)))
        offset += len(rows)
    return Pool(data, list(corpora), background, held_indexes)


def train_fold(pool: Pool, train_corpora: Sequence[str], held_out: Sequence[int]) -> LinearModel:
    """A model on `train_corpora` plus the background, without near-duplicates of `held_out`."""
    candidates = pool.indexes(train_corpora) + pool.background
    samples = pool.data.samples
    if held_out:
        kept, _ = deduplicate([samples[i] for i in candidates], [samples[i] for i in held_out])
        kept_ids = {id(sample) for sample in kept}
        candidates = [i for i in candidates if id(samples[i]) in kept_ids]
    return fit(pool.data.subset(candidates))


def out_of_fold(pool: Pool, corpora: Sequence[str]) -> np.ndarray:
    """Scores of the samples of `corpora`, each from a model trained on the others (and the
    background), in the order of `pool.indexes(corpora)`."""
    result = []
    for corpus in corpora:
        held = pool.indexes([corpus])
        model = train_fold(pool, [name for name in corpora if name != corpus], held)
        result.append(scores(model, pool.data.subset(held)))
    return np.concatenate(result) if result else np.zeros(0)


def threshold_for(pool: Pool, corpora: Sequence[str]) -> float:
    """The threshold at TARGET_FPR on `corpora`'s own out-of-fold benign scores."""
    oof = out_of_fold(pool, corpora)
    labels = pool.data.labels[pool.indexes(corpora)]
    return threshold_at(oof[labels == 0])


def threshold_at(benign_scores: np.ndarray, fpr: float = TARGET_FPR) -> float:
    """The smallest score that flags at most `fpr` of `benign_scores`."""
    if len(benign_scores) == 0:
        return 0.5
    ordered = np.sort(benign_scores)
    allowed = int(np.floor(fpr * len(ordered)))
    return float(np.nextafter(ordered[len(ordered) - 1 - allowed], 1.0))


def calibrated(model: LinearModel, threshold: float, meta: dict) -> LinearModel:
    """`model` with its bias shifted so that `threshold` maps to 0.5."""
    shift = float(np.log(threshold / (1 - threshold)))
    return LinearModel(model.weights, model.bias - shift, model.mean, model.scale, meta)


def main() -> None:
    """Fit on every corpus and the background, and write the shipped weights."""
    pool = build_pool()
    threshold = threshold_for(pool, pool.corpora)
    model = train_fold(pool, pool.corpora, [])
    meta = {
        "trained_on": {name: len(rows) for name, rows in by_corpus(pool.data).items()},
        "threshold_before_shift": round(threshold, 6),
        "target_benign_fpr": TARGET_FPR,
        "l2": L2,
        "seed": SEED,
        "features": len(feature_names(384)),
        "script": "bench/injection_train.py",
    }
    shipped = calibrated(model, threshold, meta)
    if "--write" in sys.argv[1:]:
        MODEL_FILE.write_text(_dump(shipped.to_json()))
        size = MODEL_FILE.stat().st_size // 1024
        print(f"wrote {MODEL_FILE} ({size} KiB), threshold {threshold:.4f}")
        return
    # Without --write (as `make bench` runs it): a reproducibility check against the shipped file.
    current = LinearModel.from_json(json.loads(MODEL_FILE.read_text()))
    drift = float(np.max(np.abs(current.weights - shipped.weights)))
    print(f"threshold {threshold:.4f}; largest weight difference from the shipped file {drift:.2e}")


def _dump(data: dict) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    main()
