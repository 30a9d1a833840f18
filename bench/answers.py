"""Answers on real documents nobody here wrote: ingestion, retrieval, the offline answerer, pages.

```
.venv/bin/python bench/answers.py                   # both halves, reported apart
.venv/bin/python bench/answers.py --half tune       # the half to tune on (never held-out)
.venv/bin/python bench/answers.py --json out.json   # also write every question's outcome
```

Documents (`bench/labelled/documents.json`): six real public documents from Debian packages
(a software manual PDF, a specification PDF, a beamer slide deck PDF, two HTML manuals, and two
pages of a third manual rasterised into a grey two-frame TIFF that goes through OCR). They are
fetched with `apt-get download <package>=<version>` on first use, unpacked with `dpkg-deb -x`,
checked against their pinned sha256 and cached under `.data/bench/answers/`.

Questions (`bench/labelled/questions.json`): 65, written from the documents before any
tuning, with the expected value and the page(s) it is printed on; eight ask what the corpus
does not say. Each question's half is fixed by its id's hash: `tune` is what changes may be
measured on, `held-out` is reported apart and is not to be looked at while tuning.

The pipeline is docgate's own, in process, with the offline defaults of
`local.settings.sample.json`: the local extraction engine (pdfplumber/pypdfium2, RapidOCR, the
HTML reader), `chunk_layout` with the chunk size the services compute, all-MiniLM-L6-v2, the
in-memory index (`TenantIndex`, RETRIEVAL_MODE=memory) and, for retrieval only, the Cosmos
mode's ranking (`rank_candidates` over the vector query's candidates), then `ChatService` with
the extractive answerer and its citations. What it skips: blobs, Cosmos, the Durable
orchestration and HTTP (tested elsewhere) and figure descriptions (no question is about a
figure).

Scores, per half:
- answer accuracy: an expected value is in the answer (case-insensitive), and it is not the
  not-found sentence;
- exact-page accuracy: the answer is right and the citation quoting the value (else the first
  citation) names the expected document and one of the expected pages;
- not-found: how many unanswerable questions got "not found" (the rest are invented answers),
  and the precision of "not found" (refusals that were right / all refusals);
- retrieval hit@1, hit@5 and MRR@10 per mode: the first chunk of the expected document whose
  pages include an expected page.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.chat.service import ChatQuery, ChatService  # noqa: E402
from shared.config import load_settings  # noqa: E402
from shared.documents.chunking import (  # noqa: E402
    Chunk,
    ChunkingOptions,
    chunk_layout,
    merge_continued_tables,
)
from shared.documents.detect import PPTX  # noqa: E402
from shared.documents.engines.local import LocalEngine  # noqa: E402
from shared.documents.index import LIVE, ChunkDraft, chunk_item  # noqa: E402
from shared.documents.layout import SourceDocument  # noqa: E402
from shared.embeddings.local import LocalEmbedder  # noqa: E402
from shared.llm.extractive import ExtractiveAnswerer  # noqa: E402
from shared.llm.prompts import NOT_FOUND_ANSWER  # noqa: E402
from shared.resilience.retry import Deadline  # noqa: E402
from shared.retrieval.filters import MATCH_ALL  # noqa: E402
from shared.retrieval.search import (  # noqa: E402
    CANDIDATES,
    RetrievedChunk,
    Retriever,
    SearchRequest,
    TenantIndex,
    rank_candidates,
)
from shared.security.principal import Principal  # noqa: E402

DATA = HERE / "labelled"
CACHE = ROOT / ".data" / "bench" / "answers"
TENANT = "bench"
PRINCIPAL = Principal(user_id="bench", tenant=TENANT)
HALVES = ("tune", "held-out")
MODES = ("vector", "keyword", "hybrid", "cosmos-hybrid")
MRR_DEPTH = 10


# The corpus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One real document: where it comes from and how to check it."""

    name: str
    package: str
    version: str
    member: str
    sha256: str
    media_type: str
    scan: dict[str, Any] | None = None


@dataclass(frozen=True)
class Question:
    """A labelled question; `document` None and `expect` empty: the corpus does not answer it."""

    id: str
    document: str | None
    question: str
    expect: tuple[str, ...]
    pages: tuple[int, ...]

    @property
    def half(self) -> str:
        """tune or held-out, fixed by the id's hash."""
        return HALVES[hashlib.sha256(self.id.encode()).digest()[0] % 2]


def load_documents() -> list[Document]:
    """The manifest's documents."""
    manifest = json.loads((DATA / "documents.json").read_text())
    fields = Document.__dataclass_fields__
    return [Document(**{k: v for k, v in d.items() if k in fields}) for d in manifest["documents"]]


def load_questions() -> list[Question]:
    """The labelled questions."""
    items = json.loads((DATA / "questions.json").read_text())["questions"]
    return [
        Question(q["id"], q["document"], q["question"], tuple(q["expect"]), tuple(q["pages"]))
        for q in items
    ]


def fetch(document: Document) -> bytes:
    """The document's bytes: from the cache, else from its Debian package (sha256-checked)."""
    cached = CACHE / f"{document.package}_{document.version}" / document.member
    if not cached.exists():
        _download(document, cached)
    content = cached.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != document.sha256:
        raise SystemExit(f"{document.name}: sha256 {digest} is not the pinned {document.sha256}")
    return scan(content, **document.scan) if document.scan else content


def _download(document: Document, target: Path) -> None:
    """`apt-get download` the pinned package version and unpack its member to `target`."""
    with tempfile.TemporaryDirectory() as work:
        spec = f"{document.package}={document.version}"
        subprocess.run(["apt-get", "download", spec], cwd=work, check=True, capture_output=True)
        [deb] = Path(work).glob("*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{work}/x"], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(work) / "x" / document.member, target)


def scan(pdf: bytes, pages: Sequence[int], dpi: int) -> bytes:
    """Pages of a PDF as a grey multi-frame TIFF without a text layer (what a scanner makes)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        frames = [
            document[number - 1].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            for number in pages
        ]
    finally:
        document.close()
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    return buffer.getvalue()


# Ingestion -------------------------------------------------------------------------------------


@dataclass
class Ingested:
    """What ingestion made of one document."""

    name: str
    pages: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None


def chunking_options() -> tuple[ChunkingOptions, int]:
    """The chunk sizes and top_k the services use with the sample (offline) settings."""
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    settings = load_settings(values)
    max_tokens = min(settings.ingestion.chunk_max_tokens, LocalEmbedder.max_input_tokens)
    overlap = min(settings.ingestion.chunk_overlap_tokens, max_tokens // 4)
    return ChunkingOptions(
        max_tokens=max_tokens, overlap_tokens=overlap
    ), settings.chat.retrieval_top_k


async def ingest(document: Document, content: bytes, options: ChunkingOptions) -> Ingested:
    """Extract (whole document), merge continued tables, chunk: what the activities do."""
    result = Ingested(document.name)
    try:
        source = SourceDocument(document.name, document.media_type, content, page_count=0)
        layout = (await LocalEngine().extract(source, None)).layout
        layout.tables = merge_continued_tables(layout.tables, layout.paragraphs)
        slides = replace(options, pages_are_slides=document.media_type == PPTX)
        result.pages = len(layout.pages)
        result.chunks = chunk_layout(layout, slides)
    except Exception as error:  # a failed document is reported, the others still run
        result.error = f"{type(error).__name__}: {error}"
    return result


async def build_index(ingested: list[Ingested], embedder: LocalEmbedder) -> TenantIndex:
    """Every chunk embedded and indexed live, tenant-wide, as `index_document` writes them."""
    index = TenantIndex()
    for number, document in enumerate(ingested):
        texts = [chunk.text for chunk in document.chunks]
        vectors = await embedder.embed(texts) if texts else []
        record = {
            "id": f"doc{number}",
            "tenant": TENANT,
            "name": document.name,
            "media_type": "",
            "acl": {"tenant_wide": True, "users": [], "groups": []},
            "sha256": "bench",
        }
        for ordinal, (chunk, vector) in enumerate(zip(document.chunks, vectors, strict=True)):
            draft = ChunkDraft(
                chunk.kind, chunk.text, chunk.pages, chunk.headings, vector,
                page_spans=chunk.page_spans,
            )  # fmt: skip
            item = chunk_item(f"doc{number}-{ordinal}", draft, record, embedder.model)
            index.upsert({**item, "status": LIVE})
    return index


class _MemoryIndex:
    """The `VectorSearch` protocol over one TenantIndex."""

    def __init__(self, index: TenantIndex) -> None:
        self.index = index

    async def search(self, request: SearchRequest) -> list[RetrievedChunk]:
        return self.index.search(request)


# Scoring ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One question's result."""

    id: str
    half: str
    question: str
    answerable: bool
    answer: str
    answer_ok: bool
    page_ok: bool
    cited: list[dict[str, Any]]
    ranks: dict[str, int | None]


def relevant_rank(results: list[RetrievedChunk], question: Question) -> int | None:
    """1-based rank of the first chunk of the expected document on an expected page."""
    for rank, chunk in enumerate(results, start=1):
        if chunk.document_name == question.document and set(question.pages) & set(chunk.pages):
            return rank
    return None


def _contains(text: str, values: Sequence[str]) -> str | None:
    """The first expected value found in `text` (case-insensitive), or None."""
    folded = text.casefold()
    return next((value for value in values if value.casefold() in folded), None)


async def cosmos_ranking(index: TenantIndex, request: SearchRequest) -> list[RetrievedChunk]:
    """RETRIEVAL_MODE=cosmos's ranking: BM25 and RRF over the vector query's candidates."""
    vector = replace(request, mode="vector", top_k=CANDIDATES)
    rows = [
        {**asdict(chunk), "similarity": chunk.score} for chunk in index.search(vector)
    ]  # fmt: skip
    return rank_candidates(replace(request, mode="hybrid"), rows)


async def evaluate(
    questions: list[Question], index: TenantIndex, embedder: LocalEmbedder, top_k: int
) -> list[Outcome]:
    """Every question through retrieval (each mode) and the chat path (hybrid, offline)."""
    retriever = Retriever(_MemoryIndex(index), embedder, top_k)
    answerer = ExtractiveAnswerer()
    chat = ChatService(retriever, answerer.serve, answerer.serve_stream)
    vectors = await embedder.embed([question.question for question in questions])
    outcomes = []
    for question, vector in zip(questions, vectors, strict=True):
        ranks: dict[str, int | None] = {}
        for mode in MODES:
            request = SearchRequest(
                question.question, vector, PRINCIPAL, MATCH_ALL, MRR_DEPTH,
                "hybrid" if mode == "cosmos-hybrid" else mode,  # type: ignore[arg-type]
            )  # fmt: skip
            results = (
                await cosmos_ranking(index, request)
                if mode == "cosmos-hybrid"
                else index.search(request)
            )
            ranks[mode] = relevant_rank(results, question)
        outcomes.append(await _answer(chat, question, top_k, ranks))
    return outcomes


async def _answer(
    chat: ChatService, question: Question, top_k: int, ranks: dict[str, int | None]
) -> Outcome:
    """The chat path's answer and its scores."""
    query = ChatQuery([{"role": "user", "content": question.question}], None, top_k, "standard")
    chunks = await chat.retrieve(PRINCIPAL, question.question, query)
    result = await chat.complete(
        query, question.question, chunks, "standard", Deadline(30), time.perf_counter()
    )
    refused = result.answer.strip() == NOT_FOUND_ANSWER
    answerable = bool(question.expect)
    value = None if refused else _contains(result.answer, question.expect)
    answer_ok = value is not None if answerable else refused
    page_ok = False
    if answerable and value is not None and result.citations:
        quoting = [c for c in result.citations if value.casefold() in c.quote.casefold()]
        citation = (quoting or result.citations)[0]
        page_ok = citation.document_name == question.document and citation.page in question.pages
    cited = [
        {"document": c.document_name, "page": c.page, "pages": c.pages, "quote": c.quote}
        for c in result.citations
    ]
    return Outcome(
        question.id, question.half, question.question, answerable, result.answer, answer_ok,
        page_ok, cited, ranks,
    )  # fmt: skip


# Report ----------------------------------------------------------------------------------------


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """The figures of one half."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    refusals = [o for o in outcomes if o.answer.strip() == NOT_FOUND_ANSWER]
    retrieval = {}
    for mode in MODES:
        ranks = [o.ranks[mode] for o in answerable]
        retrieval[mode] = {
            "hit@1": _rate(sum(1 for r in ranks if r == 1), len(ranks)),
            "hit@5": _rate(sum(1 for r in ranks if r and r <= 5), len(ranks)),
            "mrr@10": round(sum(1 / r for r in ranks if r) / max(len(ranks), 1), 3),
        }
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "answer_accuracy": _rate(sum(o.answer_ok for o in answerable), len(answerable)),
        "page_accuracy": _rate(sum(o.page_ok for o in answerable), len(answerable)),
        "unanswerable": len(unanswerable),
        "not_found_on_unanswerable": _rate(
            sum(o.answer_ok for o in unanswerable), len(unanswerable)
        ),
        "invented_answers": sum(not o.answer_ok for o in unanswerable),
        "not_found_precision": _rate(sum(not o.answerable for o in refusals), len(refusals)),
        "retrieval": retrieval,
    }


def _rate(count: int, total: int) -> float:
    """count / total, rounded (0 when there is nothing to count)."""
    return round(count / total, 3) if total else 0.0


def print_report(ingested: list[Ingested], halves: dict[str, dict[str, Any]]) -> None:
    """The ingestion table, then each half's figures side by side."""
    print("ingestion (offline defaults):")
    for document in ingested:
        state = f"failed: {document.error}" if document.error else "succeeded"
        counts = f"pages {document.pages:>3}  chunks {len(document.chunks):>4}"
        print(f"  {document.name:<28} {state:<10} {counts}")
    names = list(halves)
    print(f"\n{'':<32}" + "".join(f"{name:>12}" for name in names))
    rows = [
        ("questions (answerable)", lambda h: f"{h['questions']} ({h['answerable']})"),
        ("answer accuracy", lambda h: f"{h['answer_accuracy']:.2f}"),
        ("exact-page accuracy", lambda h: f"{h['page_accuracy']:.2f}"),
        ("not found on unanswerable", lambda h: f"{h['not_found_on_unanswerable']:.2f}"),
        ("invented answers", lambda h: str(h["invented_answers"])),
        ("not-found precision", lambda h: f"{h['not_found_precision']:.2f}"),
    ]
    for mode in MODES:
        for metric in ("hit@1", "hit@5", "mrr@10"):
            rows.append(
                (f"{mode} {metric}", lambda h, m=mode, k=metric: f"{h['retrieval'][m][k]:.2f}")
            )
    for label, cell in rows:
        print(f"{label:<32}" + "".join(f"{cell(halves[name]):>12}" for name in names))


async def main() -> None:
    """Fetch, ingest, index, ask; print the report (both halves unless told)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half", choices=(*HALVES, "both"), default="both")
    parser.add_argument("--json", type=Path, help="write every question's outcome here")
    arguments = parser.parse_args()
    started = time.perf_counter()
    options, top_k = chunking_options()
    documents = load_documents()
    ingested = [await ingest(document, fetch(document), options) for document in documents]
    embedder = LocalEmbedder()
    index = await build_index(ingested, embedder)
    wanted = HALVES if arguments.half == "both" else (arguments.half,)
    questions = [q for q in load_questions() if q.half in wanted]
    outcomes = await evaluate(questions, index, embedder, top_k)
    halves = {half: summary([o for o in outcomes if o.half == half]) for half in wanted}
    print_report(ingested, halves)
    if arguments.json:
        report = {"halves": halves, "outcomes": [asdict(outcome) for outcome in outcomes]}
        arguments.json.write_text(json.dumps(report, indent=1))
    load = f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    print(f"\nchunk max {options.max_tokens} tokens, top_k {top_k}; "
          f"took {time.perf_counter() - started:.1f} s; load average {load}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
