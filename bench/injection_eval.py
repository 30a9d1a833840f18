"""Measures prompt-injection screening both ways: attacks caught and ordinary questions passed.

1. Detection on the external labelled corpus `bastioncorpus` (PyPI, MIT; 181 rows: malicious
   payloads and benign false-positive traps, user input / tool output / memory, en de fr es it):
   precision, recall and false-positive rate overall, per language and per channel. Rows are
   split into two halves by a hash of their id; the rules were tuned looking at misses of the
   "dev" half only, so the "holdout" half shows how the rules generalise.
2. Pass rate on `BENIGN_QUESTIONS`: ordinary business questions full of "select", "drop",
   "ignore", "system", ";" and "--".
3. The same figures for a naive SQL-keyword regex, the usual first proposal, in the same run.

Run: `.venv/bin/python bench/injection_eval.py [--misses]` (heuristics only: no network).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.security.benign_questions import BENIGN_QUESTIONS
from shared.security.injection import detect

NAIVE_SQL = re.compile(r"\b(select|drop|delete|update|insert|union)\b|;|--", re.IGNORECASE)
Detector = Callable[[str], bool]


@dataclass(frozen=True)
class Sample:
    """One labelled text with the attributes the table slices by."""

    text: str
    malicious: bool
    lang: str
    channel: str
    category: str
    split: str
    id: str


@dataclass(frozen=True)
class Counts:
    """Confusion counts of one detector on one slice."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

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


def heuristics(text: str) -> bool:
    """docgate's screen (heuristics only, default threshold)."""
    return detect(text).flagged


def naive_sql(text: str) -> bool:
    """The naive SQL-keyword baseline."""
    return NAIVE_SQL.search(text) is not None


DETECTORS: dict[str, Detector] = {"heuristics": heuristics, "naive SQL regex": naive_sql}


def load_samples() -> list[Sample]:
    """The bastioncorpus rows (canary slot stripped), with a stable dev/holdout split."""
    from bastioncorpus import load_corpus  # dev dependency: imported only when measuring

    return [
        Sample(
            text=row.stripped(),
            malicious=row.is_malicious,
            lang=row.lang,
            channel=row.channel,
            category=row.category,
            split=split_of(row.id),
            id=row.id,
        )
        for row in load_corpus()
    ]


def split_of(row_id: str) -> str:
    """'dev' or 'holdout', by a hash of the row id (stable across corpus versions)."""
    return "dev" if hashlib.sha256(row_id.encode()).digest()[0] % 2 == 0 else "holdout"


def count(samples: Iterable[Sample], detector: Detector) -> Counts:
    """Confusion counts of `detector` over `samples`."""
    tp = fp = tn = fn = 0
    for sample in samples:
        flagged = detector(sample.text)
        tp += sample.malicious and flagged
        fn += sample.malicious and not flagged
        fp += not sample.malicious and flagged
        tn += not sample.malicious and not flagged
    return Counts(tp, fp, tn, fn)


def slices(samples: list[Sample]) -> list[tuple[str, list[Sample]]]:
    """Overall, per split, per language and per channel."""
    result = [("corpus: all", samples)]
    for attribute in ("split", "lang", "channel"):
        for value in sorted({getattr(s, attribute) for s in samples}):
            chosen = [s for s in samples if getattr(s, attribute) == value]
            result.append((f"{attribute}: {value}", chosen))
    return result


def benign_pass_rate(detector: Detector, questions: Iterable[str] = BENIGN_QUESTIONS) -> float:
    """Share of ordinary questions that `detector` lets through."""
    questions = list(questions)
    return sum(not detector(q) for q in questions) / len(questions)


def evaluate() -> dict[str, dict[str, Counts | float]]:
    """{detector: {slice name: Counts, "benign questions": pass rate}} for both detectors."""
    samples = load_samples()
    report: dict[str, dict[str, Counts | float]] = {}
    for name, detector in DETECTORS.items():
        row: dict[str, Counts | float] = {
            label: count(chosen, detector) for label, chosen in slices(samples)
        }
        row["benign questions"] = benign_pass_rate(detector)
        report[name] = row
    return report


def misses(detector: Detector = heuristics, split: str | None = None) -> list[tuple[str, Sample]]:
    """('missed' | 'false positive', sample) for the errors of `detector`, optionally one split."""
    errors = []
    for sample in load_samples():
        if split is not None and sample.split != split:
            continue
        flagged = detector(sample.text)
        if flagged != sample.malicious:
            errors.append(("missed" if sample.malicious else "false positive", sample))
    return errors


def _percent(value: float | None) -> str:
    """A ratio as a percentage, or a dash when undefined."""
    return "-" if value is None else f"{100 * value:5.1f}%"


def format_table(report: dict[str, dict[str, Counts | float]]) -> str:
    """One table: a row per slice, precision / recall / FPR for each detector."""
    names = list(report)
    header = f"{'slice':<22}{'mal/ben':>9}" + "".join(
        f" | {name[:18]:>18} P      R    FPR" for name in names
    )
    lines = [header, "-" * len(header)]
    first = report[names[0]]
    for label, value in first.items():
        if isinstance(value, Counts):
            sizes = f"{value.tp + value.fn}/{value.fp + value.tn}"
            cells = "".join(_cells(report[name][label]) for name in names)
            lines.append(f"{label:<22}{sizes:>9}{cells}")
    benign = f"0/{len(BENIGN_QUESTIONS)}"
    cells = "".join(
        f" | {'pass rate ' + _percent(report[name]['benign questions']):>37}" for name in names
    )
    lines.append(f"{'benign questions':<22}{benign:>9}{cells}")
    return "\n".join(lines)


def _cells(counts: Counts | float) -> str:
    """Precision, recall and FPR cells of one detector on one slice."""
    assert isinstance(counts, Counts)
    return (
        f" | {'':>12}{_percent(counts.precision)} {_percent(counts.recall)} {_percent(counts.fpr)}"
    )


def main() -> None:
    """Prints the table; with --misses, the heuristics' errors on the dev half too."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", choices=["dev", "holdout", "all"], help="list errors")
    args = parser.parse_args()
    print(format_table(evaluate()))
    if args.misses:
        split = None if args.misses == "all" else args.misses
        for kind, sample in misses(split=split):
            print(f"{kind:>14} {sample.id:<10} {sample.lang} {sample.channel:<11} {sample.text!r}")


if __name__ == "__main__":
    main()
