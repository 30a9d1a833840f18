"""Benchmarks the local (offline) extraction engine and ingestion pipeline against baselines
measured in the same run.

1. Born-digital PDF (50 pages, generated): pages/s of `LocalEngine.extract` in 20-page ranges
   (as ingestion reads them) vs. plain pdfplumber `page.extract_text()` of the same file.
2. Scanned PDF: seconds per page of `LocalEngine.extract` (the OCR path) vs. raw rapidocr, with
   the engine's own parameters, on the same pages rendered by pypdfium2 at the engine's scale.
3. DOCX (~30 pages, generated): pages/s of `LocalEngine.extract` vs. python-docx paragraph text.
4. Chunking and embedding the 50-page layout: chunks/s and tokens/s of `chunk_layout` and
   `LocalEmbedder.embed`, vs. a plain token-sized text splitter over the same text and the raw
   ONNX batches (input order, no thread hops).
5. End to end: function_app under devhost against the emulators; wall seconds from blob upload to
   `succeeded` for a 10-page PDF, the per-step timings the status reports, then a second upload
   of identical bytes (the no-op path); vs. the same extract + chunk + embed done in-process.
6. Scale: 300- and 1,000-page generated PDFs (`--scale-pages`) through function_app under
   devhost, one after the other: per step wall seconds and pages or chunks per second (the
   status's timings), and the host's resident memory (the devhost process and its children,
   sampled every 0.2 s with psutil from this process): idle before, peak during, and settled
   after each document. Beside them, in this process and the same run: plain pdfplumber
   `extract_text` and our extractor over the document's first SCALE_BASELINE_PAGES pages, and
   raw ONNX Runtime batches, `LocalEmbedder.embed` and the injection screen over a sample of its
   chunks.

7. Both cores: the 300-page PDF extracted in PAGES_PER_BATCH ranges by one process vs. the same
   ranges shared by a pool of two worker processes (PDFium's lock is per process), wall seconds
   and CPU seconds; what a second Functions worker process (FUNCTIONS_WORKER_PROCESS_COUNT=2) or
   an extraction process pool could gain on this machine.

Run: `.venv/bin/python bench/ingest.py [--quick] [--only N]` (sections 5 and 6 start the
emulators when they are not running and stop only what they started). Compare ratios, not
absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this folder is sys.path[0]: swap it for the repository root (see devhost.py).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from shared.documents.chunking import Chunk, ChunkingOptions, chunk_layout  # noqa: E402
from shared.documents.engines.local import LocalEngine  # noqa: E402
from shared.documents.layout import (  # noqa: E402
    ExtractedLayout,
    Layout,
    PageRange,
    SourceDocument,
)
from shared.embeddings.local import LocalEmbedder  # noqa: E402
from tests.fixtures.documents import scanned_pages_pdf  # noqa: E402

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_PAGES = 50
DOCX_PAGES = 30
E2E_PAGES = 10
PAGES_PER_BATCH = 20  # the PAGES_PER_BATCH default: ingestion's extraction ranges
# The app's defaults (CHUNK_MAX_TOKENS 400 capped by the local embedder's 256 input tokens,
# CHUNK_OVERLAP_TOKENS 40), as activities/chunk_document.py derives them.
CHUNKING = ChunkingOptions(max_tokens=min(400, LocalEmbedder.max_input_tokens), overlap_tokens=40)
TABLE_EVERY = 4  # a ruled table on every 4th page
POLL_SECONDS = 0.1
E2E_TIMEOUT_SECONDS = 120.0
TENANT = "contoso"  # one of tests/apphost.py's API keys acts for it
STEPS = ("validate", "extract", "merge", "figures", "chunk", "embed", "index")
SCALE_PAGES = (300, 1000)
SCALE_BASELINE_PAGES = 60  # pdfplumber reads ~5-10 pages/s: a sample, not 1,300 pages
SCALE_EMBED_SAMPLE = 128  # chunks embedded raw / by LocalEmbedder / screened, in this process
RSS_INTERVAL = 0.2
SETTLE_SECONDS = 8.0  # after a document: how long the host may take to give memory back

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """How much to measure: the full run, or `--quick`."""

    rounds: int  # rounds of sections 1, 3 and 4 (ours and baseline interleaved)
    scanned_pages: int
    ocr_rounds: int
    e2e_repeats: int
    embed_every: int  # embed every n-th chunk of section 4 (1: all of them)
    chunk_rounds: int = 5  # chunking the layout takes ~0.1 s: more rounds cost little


FULL = Settings(rounds=3, scanned_pages=5, ocr_rounds=2, e2e_repeats=3, embed_every=1)
QUICK = Settings(rounds=1, scanned_pages=2, ocr_rounds=1, e2e_repeats=1, embed_every=3)


# Measuring -----------------------------------------------------------------------------------


@dataclass
class Timing:
    """The seconds of each round of one measured thing; reports best, median and spread."""

    seconds: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The least disturbed round."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        """The typical round."""
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """median / best - 1: how much the rounds disagree (0 with a single round)."""
        return self.median / self.best - 1


def timed(call: Callable[[], T], timing: Timing) -> T:
    """Runs `call`, appends its wall seconds to `timing` and returns its result."""
    started = time.perf_counter()
    result = call()
    timing.seconds.append(time.perf_counter() - started)
    return result


def interleave(rounds: int, measures: dict[str, Callable[[], Any]]) -> dict[str, Timing]:
    """Runs each measure once per round, alternating the order so drift hits all alike."""
    timings = {name: Timing() for name in measures}
    for round_index in range(rounds):
        names = list(measures) if round_index % 2 == 0 else list(reversed(measures))
        for name in names:
            timed(measures[name], timings[name])
    return timings


def rate_row(label: str, items: float, timing: Timing, unit: str) -> str:
    """One table row: items/s at best and median, and the spread."""
    return (
        f"  {label:<28} {items / timing.best:>9.1f} {items / timing.median:>9.1f}"
        f" {timing.spread:>7.0%}  {unit}"
    )


def rate_header(what: str) -> str:
    """The header of a table of `rate_row`s."""
    return f"  {what:<28} {'best/s':>9} {'median/s':>9} {'spread':>7}"


# Generated documents --------------------------------------------------------------------------

VOCABULARY = (
    "the terminal fleet cargo container vessel harbour quarterly revenue operating margin crane "
    "berth schedule customer contract warehouse inventory safety audit manager report region "
    "forecast capacity throughput delivery route freight carrier tariff budget investment "
    "project upgrade maintenance crew shift supplier agreement compliance review growth demand "
    "season weather delay transit port authority customs clearance document record storage "
    "handling equipment electric diesel emissions target energy cost efficiency performance"
)
WORDS = VOCABULARY.split()
CONNECTIVES = ("and", "while", "because", "although", "so that", "whereas", "after", "before")
TOPICS = (
    "Fleet Overview", "Cargo Volumes", "Safety Record", "Terminal Upgrades", "Customer Contracts",
    "Warehouse Capacity", "Energy and Emissions", "Customs Clearance", "Crew Scheduling",
    "Maintenance Programme", "Freight Tariffs", "Regional Outlook", "Supplier Agreements",
)  # fmt: skip


def prose(rng: random.Random, sentences: int) -> str:
    """A paragraph of plausible report prose (deterministic for a seeded `rng`)."""
    out = []
    for _ in range(sentences):
        first = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11)))
        second = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))
        year = rng.randint(2019, 2025)
        out.append(f"{first.capitalize()} in {year} {rng.choice(CONNECTIVES)} {second}.")
    return " ".join(out)


def table_rows(rng: random.Random, page: int) -> list[list[str]]:
    """A small numeric table: a header row and six body rows."""
    header = ["Region", "Orders", "Revenue", "Change"]
    regions = ("North", "South", "East", "West", "Central", "Coastal")
    body = [
        [
            f"{region} {page}",
            str(rng.randint(40, 900)),
            f"{rng.uniform(1000, 99000):,.2f}",
            f"{rng.uniform(-9, 12):.1f}%",
        ]
        for region in regions
    ]
    return [header, *body]


def heading_of(page: int) -> str:
    """The heading on page `page`."""
    return f"{page}. {TOPICS[(page - 1) % len(TOPICS)]}"


def born_digital_pdf(pages: int, seed: int = 7) -> bytes:
    """An A4 report of exactly `pages` pages: a running header and page number, a heading per
    page, prose paragraphs (10 pt), and a ruled table with a bold header every few pages."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.platypus import (
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    rng = random.Random(seed)
    styles = getSampleStyleSheet()
    body = ParagraphStyle("Body", parent=styles["Normal"], spaceAfter=8)

    def decorate(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 9)
        canvas.drawString(72, A4[1] - 40, "Harbour Logistics - Annual Review")
        canvas.drawCentredString(A4[0] / 2, 30, f"Page {document.page}")
        canvas.restoreState()

    story: list[Any] = []
    for page in range(1, pages + 1):
        if page > 1:
            story.append(PageBreak())
        story.append(Paragraph(heading_of(page), styles["Heading1"]))
        with_table = page % TABLE_EVERY == 0
        for _ in range(3 if with_table else 5):
            story.append(Paragraph(prose(rng, rng.randint(4, 6)), body))
        if with_table:
            table = Table(table_rows(rng, page))
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                    ]
                )
            )
            story += [Spacer(1, 6), table]
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=72, rightMargin=72, topMargin=72, bottomMargin=72
    )
    template.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def long_docx(pages: int, seed: int = 11) -> bytes:
    """A DOCX of `pages` pages (explicit page breaks): a heading and prose on each, and a
    'Table Grid' table with a bold header row every few pages."""
    import docx
    from docx.enum.text import WD_BREAK

    rng = random.Random(seed)
    document = docx.Document()
    for page in range(1, pages + 1):
        document.add_heading(heading_of(page), level=1)
        with_table = page % TABLE_EVERY == 0
        for _ in range(3 if with_table else 5):
            document.add_paragraph(prose(rng, rng.randint(4, 6)))
        if with_table:
            rows = table_rows(rng, page)
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for row_index, row in enumerate(rows):
                for column_index, text in enumerate(row):
                    run = table.cell(row_index, column_index).paragraphs[0].add_run(text)
                    run.bold = row_index == 0
        if page < pages:
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_page_count(content: bytes) -> int:
    """How many pages pdfplumber sees."""
    import pdfplumber

    with pdfplumber.open(io.BytesIO(content)) as document:
        return len(document.pages)


# In-process engine runs ------------------------------------------------------------------------


def extract_ranges(content: bytes, media_type: str, page_count: int) -> Layout:
    """`LocalEngine.extract` over the document in `PAGES_PER_BATCH`-page ranges, merged."""
    engine = LocalEngine()
    source = SourceDocument("bench", media_type, content, page_count)

    async def run() -> Layout:
        layout = Layout()
        for first in range(1, page_count + 1, PAGES_PER_BATCH):
            last = min(first + PAGES_PER_BATCH - 1, page_count)
            extracted: ExtractedLayout = await engine.extract(source, PageRange(first, last))
            layout.extend(extracted.layout)
        return layout

    return asyncio.run(run())


def extract_whole(content: bytes, media_type: str, page_count: int) -> Layout:
    """`LocalEngine.extract` of the whole document (as ingestion reads non-paged formats)."""
    source = SourceDocument("bench", media_type, content, page_count)
    return asyncio.run(LocalEngine().extract(source, None)).layout


def embed(texts: list[str]) -> list[list[float]]:
    """`LocalEmbedder().embed` (the app's embedder, default batch size)."""
    return asyncio.run(LocalEmbedder().embed(texts))


# 1. Born-digital PDF ---------------------------------------------------------------------------


def plumber_text(content: bytes) -> int:
    """Baseline: plain pdfplumber `extract_text()` of every page; returns the characters read."""
    import pdfplumber

    characters = 0
    with pdfplumber.open(io.BytesIO(content)) as document:
        for page in document.pages:
            characters += len(page.extract_text() or "")
            page.close()
    return characters


@contextlib.contextmanager
def counting_page_parses() -> Iterator[list[int]]:
    """Counts pdfplumber page parses (`Page.parse_objects`, the costly part of reading a page):
    one per page read is the minimum; more means a page was parsed again after `close()`."""
    from pdfplumber.page import Page as PlumberPage

    count = [0]
    original = PlumberPage.parse_objects

    def parse_objects(page: PlumberPage) -> Any:
        count[0] += 1
        return original(page)

    PlumberPage.parse_objects = parse_objects  # type: ignore[method-assign]
    try:
        yield count
    finally:
        PlumberPage.parse_objects = original  # type: ignore[method-assign]


def bench_pdf(settings: Settings, content: bytes) -> Layout:
    """Section 1; returns our layout of the document for section 4."""
    layouts: list[Layout] = []
    parses: dict[str, int] = {}

    def counted(name: str, call: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with counting_page_parses() as count:
                call()
            parses[name] = count[0]

        return run

    timings = interleave(
        settings.rounds,
        {
            "baseline": counted("baseline", lambda: plumber_text(content)),
            "ours": counted(
                "ours", lambda: layouts.append(extract_ranges(content, PDF, PDF_PAGES))
            ),
        },
    )
    layout = layouts[-1]
    print(
        f"1. Born-digital PDF: {PDF_PAGES} pages ({len(content) // 1024} KiB), {len(layout.tables)}"
        f" ruled tables, {len(layout.paragraphs)} paragraphs; best/median of {settings.rounds}"
        " round(s)"
    )
    print(rate_header("pages/s"))
    print(rate_row("pdfplumber extract_text", PDF_PAGES, timings["baseline"], "(baseline)"))
    print(
        rate_row(
            f"LocalEngine ({PAGES_PER_BATCH}-page ranges)", PDF_PAGES, timings["ours"], "(ours)"
        )
    )
    base, ours = timings["baseline"].best, timings["ours"].best
    print(
        f"  ratio ours/baseline: {ours / base:.2f}x the time"
        f" ({ours / PDF_PAGES * 1000:.0f} vs {base / PDF_PAGES * 1000:.0f} ms per page)"
    )
    print(
        f"  pdfplumber page parses per page: ours {parses['ours'] / PDF_PAGES:.2f},"
        f" baseline {parses['baseline'] / PDF_PAGES:.2f} (above 1: pages parsed twice)"
    )
    return layout


# 2. Scanned pages (OCR) ----------------------------------------------------------------------


def bench_ocr(settings: Settings) -> None:
    """Section 2."""
    import pypdfium2

    from shared.documents.engines.local import pdf as pdf_engine
    from shared.documents.engines.local.ocr import OCR_PARAMS, read_lines

    count = settings.scanned_pages
    content = scanned_pages_pdf(count)
    rendering = Timing()

    def render() -> list[Any]:
        document = pypdfium2.PdfDocument(content)
        try:
            pages = [document[index] for index in range(count)]
            return [page.render(scale=pdf_engine.OCR_SCALE).to_pil() for page in pages]
        finally:
            document.close()

    images = [image.convert("RGB") for image in timed(render, rendering)]
    from rapidocr import RapidOCR

    raw = RapidOCR(params=OCR_PARAMS)  # its own instance: none of the engine's lock or state
    # One read each outside the timings: the first inference of a session is much slower.
    read_lines(images[0], scale=pdf_engine.OCR_SCALE)
    raw(images[0])
    texts: list[list[str]] = []
    timings = interleave(
        settings.ocr_rounds,
        {
            "baseline": lambda: [raw(image) for image in images],
            "ours": lambda: texts.append(
                [p.text for p in extract_ranges(content, PDF, count).paragraphs]
            ),
        },
    )
    width, height = images[0].size
    print(
        f"2. Scanned PDF: {count} pages, rendered at scale {pdf_engine.OCR_SCALE}"
        f" ({width}x{height} px); best/median of {settings.ocr_rounds} round(s)"
    )
    print(f"  {'s/page':<28} {'best':>9} {'median':>9} {'spread':>7}")
    for label, timing, note in (
        ("rapidocr on rendered images", timings["baseline"], "(baseline)"),
        ("LocalEngine (render + OCR)", timings["ours"], "(ours)"),
    ):
        print(
            f"  {label:<28} {timing.best / count:>9.3f} {timing.median / count:>9.3f}"
            f" {timing.spread:>7.0%}  {note}"
        )
    base, ours = timings["baseline"].best, timings["ours"].best
    print(
        f"  ratio ours/baseline: {ours / base:.2f}x; overhead {(ours - base) / count * 1000:.0f} ms"
        f" per page, of which rendering ~{rendering.best / count * 1000:.0f} ms"
        f" (pypdfium2, timed once); lines read: {sum(len(t) for t in texts[-1:])}"
    )


# 3. DOCX ---------------------------------------------------------------------------------------


def docx_text(content: bytes) -> int:
    """Baseline: python-docx paragraph text of the body; returns the characters read."""
    import docx

    document = docx.Document(io.BytesIO(content))
    return sum(len(paragraph.text) for paragraph in document.paragraphs)


def bench_docx(settings: Settings) -> None:
    """Section 3."""
    content = long_docx(DOCX_PAGES)
    layouts: list[Layout] = []
    timings = interleave(
        settings.rounds,
        {
            "baseline": lambda: docx_text(content),
            "ours": lambda: layouts.append(extract_whole(content, DOCX, DOCX_PAGES)),
        },
    )
    layout = layouts[-1]
    print(
        f"3. DOCX: {len(layout.pages)} pages ({len(content) // 1024} KiB), {len(layout.tables)}"
        f" tables, {len(layout.paragraphs)} paragraphs; best/median of {settings.rounds} round(s)"
    )
    print(rate_header("pages/s"))
    print(rate_row("python-docx paragraph text", DOCX_PAGES, timings["baseline"], "(baseline)"))
    print(rate_row("LocalEngine (whole document)", DOCX_PAGES, timings["ours"], "(ours)"))
    base, ours = timings["baseline"].best, timings["ours"].best
    print(f"  ratio ours/baseline: {ours / base:.2f}x the time")


# 4. Chunking and embedding ---------------------------------------------------------------------


def plain_split(layout: Layout) -> list[str]:
    """Baseline chunker: the page texts joined, cut by the same recursive splitter and token
    budget (no sections, headings, tables or page tracking)."""
    from functools import lru_cache

    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from shared.tokens import count_tokens

    text = "\n\n".join(paragraph.text for paragraph in layout.paragraphs)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNKING.max_tokens,
        chunk_overlap=CHUNKING.overlap_tokens,
        length_function=lru_cache(maxsize=None)(count_tokens),
    )
    return splitter.split_text(text)


def raw_embed(texts: list[str], batch_size: int) -> int:
    """Baseline embedder: the same ONNX batches in input order, no sorting, no thread hops."""
    from shared.embeddings.local import embed_batch

    rows = 0
    for start in range(0, len(texts), batch_size):
        rows += len(embed_batch(texts[start : start + batch_size]))
    return rows


def bench_chunk_embed(settings: Settings, layout: Layout) -> None:
    """Section 4."""
    from shared.embeddings.local import runtime

    runtime()  # load the model outside the timings
    chunk_runs: list[list[Chunk]] = []
    chunking = interleave(
        settings.chunk_rounds,
        {
            "baseline": lambda: plain_split(layout),
            "ours": lambda: chunk_runs.append(chunk_layout(layout, CHUNKING)),
        },
    )
    chunks = chunk_runs[-1]
    embedded = chunks[:: settings.embed_every]
    texts = [chunk.text for chunk in embedded]
    tokens = sum(chunk.token_count for chunk in embedded)
    baseline_chunks = len(plain_split(layout))
    batch_size = LocalEmbedder().batch_size
    embedding = interleave(
        settings.rounds,
        {"baseline": lambda: raw_embed(texts, batch_size), "ours": lambda: embed(texts)},
    )
    kinds = {kind: sum(chunk.kind == kind for chunk in chunks) for kind in ("text", "table")}
    print(
        f"4. Chunking + embedding the {PDF_PAGES}-page layout: {len(chunks)} chunks"
        f" ({kinds['text']} text, {kinds['table']} table), max {CHUNKING.max_tokens}/overlap"
        f" {CHUNKING.overlap_tokens} tokens; {len(embedded)} of them embedded ({tokens} tokens);"
        f" best/median of {settings.chunk_rounds} (chunking), {settings.rounds} (embedding)"
        " round(s)"
    )
    print(rate_header("chunks/s"))
    print(
        rate_row(
            "plain splitter, joined text",
            baseline_chunks,
            chunking["baseline"],
            f"(baseline, {baseline_chunks} chunks)",
        )
    )
    print(rate_row("chunk_layout", len(chunks), chunking["ours"], "(ours)"))
    print(
        rate_row(
            f"raw ONNX batches of {batch_size}", len(texts), embedding["baseline"], "(baseline)"
        )
    )
    print(rate_row("LocalEmbedder.embed", len(texts), embedding["ours"], "(ours)"))
    embed_best = embedding["ours"].best
    print(
        f"  chunk_layout: {chunking['ours'].best * 1000:.0f} ms, "
        f"{chunking['ours'].best / chunking['baseline'].best:.2f}x the plain splitter's time;"
        f" embed: {tokens / embed_best:.0f} tokens/s"
        f" ({tokens / embedding['baseline'].best:.0f} raw),"
        f" {embed_best / embedding['baseline'].best:.2f}x the raw batches' time"
    )


# 5. End to end -----------------------------------------------------------------------------------


@dataclass
class E2ERun:
    """One upload: wall seconds to `succeeded` and the step timings the status reported."""

    wall: float
    timings: dict[str, float]


@contextlib.contextmanager
def emulators() -> Iterator[Any]:
    """The emulators' endpoints; starts them if needed and stops only what this started."""
    from tests.conftest import build_endpoints, load_emulators_cli

    cli = load_emulators_cli()
    configured = cli.configured_emulators(os.environ)
    outcomes = cli.start_all(configured)
    azurite, cosmos = configured
    try:
        yield build_endpoints(*azurite.ports, *cosmos.ports)
    finally:
        cli.stop_started(outcomes)


class App:
    """function_app under devhost in its own containers and database, driven over HTTP."""

    def __init__(self, endpoints: Any, folder: Path) -> None:
        from azure.storage.blob import BlobServiceClient

        from tests.apphost import app_environment, start_app

        self.endpoints = endpoints
        self.name = f"bench-{uuid.uuid4().hex[:12]}"
        environment = app_environment(endpoints, self.name, EXTRACTION_MODE="local")
        started = time.perf_counter()
        self.host = start_app(folder, environment)
        self.start_seconds = time.perf_counter() - started
        self.blobs = BlobServiceClient.from_connection_string(endpoints.azurite_connection_string)

    def status(self, doc_id: str) -> dict[str, Any]:
        """GET /api/documents/{id} (an empty dict while it does not exist)."""
        from tests.apphost import request

        code, _, body = request(self.host, "GET", f"/api/documents/{doc_id}", tenant=TENANT)
        if code == 404:  # not recorded yet
            return {}
        if code != 200:
            raise RuntimeError(f"GET /api/documents/{doc_id} answered {code}: {body}")
        return body

    def ingest(
        self,
        name: str,
        content: bytes,
        since: str = "",
        timeout: float = E2E_TIMEOUT_SECONDS,
    ) -> tuple[E2ERun, dict[str, Any]]:
        """Uploads `content` as blob `name` and polls until the document has succeeded (updated
        after `since`); returns the run and the final status."""
        from shared.documents.names import blob_path
        from shared.documents.records import document_id

        doc_id = document_id(TENANT, self.name, name)
        blob = self.blobs.get_blob_client(self.name, blob_path(TENANT, name))
        started = time.perf_counter()
        blob.upload_blob(content, overwrite=True, metadata={"tenant": TENANT})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(doc_id)
            if status.get("updated", "") > since and status.get("state") == "succeeded":
                return E2ERun(time.perf_counter() - started, status.get("timings", {})), status
            if status.get("state") == "failed":
                raise RuntimeError(f"{name} failed: {status.get('error')}")
            time.sleep(POLL_SECONDS)
        raise TimeoutError(f"{name} not succeeded in {timeout:.0f} s\n{self.host.log_tail()}")

    def close(self) -> None:
        """Stops the host and removes this run's containers and database."""
        from azure.cosmos import CosmosClient

        self.host.stop()
        for container in (self.name, f"{self.name}-work"):
            with contextlib.suppress(Exception):
                self.blobs.delete_container(container)
        with contextlib.suppress(Exception):
            cosmos = CosmosClient(
                self.endpoints.cosmos_endpoint,
                self.endpoints.cosmos_key,
                connection_verify=False,
                enable_endpoint_discovery=False,
            )
            cosmos.delete_database(self.name)


IN_PROCESS_STEPS = ("extract", "chunk", "embed")


def in_process(content: bytes, timings: dict[str, Timing]) -> None:
    """The compute the pipeline does on the 10-page PDF, done in this process (one range,
    chunk, embed); appends each step's seconds, and their sum as "total", to `timings`."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    layout = extract_ranges(content, PDF, E2E_PAGES)
    steps["extract"] = time.perf_counter() - started
    started = time.perf_counter()
    chunks = chunk_layout(layout, CHUNKING)
    steps["chunk"] = time.perf_counter() - started
    started = time.perf_counter()
    embed([chunk.text for chunk in chunks])
    steps["embed"] = time.perf_counter() - started
    for step, seconds in (*steps.items(), ("total", sum(steps.values()))):
        timings.setdefault(step, Timing()).seconds.append(seconds)


def bench_e2e(settings: Settings) -> None:
    """Section 5."""
    import warnings

    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    content = born_digital_pdf(E2E_PAGES, seed=23)
    runs: list[E2ERun] = []
    no_ops: list[E2ERun] = []
    with emulators() as endpoints, tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        app = App(endpoints, Path(folder))
        try:
            # Warm-up, not measured: the same file under another name loads the engines and the
            # embedding model in the host and runs every step once at this document's sizes.
            app.ingest("warm-up.pdf", content)
            for index in range(settings.e2e_repeats):
                name = f"run-{index}.pdf"  # a new document each time: the full pipeline
                run, status = app.ingest(name, content)
                runs.append(run)
                # The same bytes again: a new blob version (ETag), validated then skipped.
                no_op, _ = app.ingest(name, content, since=status["updated"])
                no_ops.append(no_op)
        finally:
            app.close()
    local: dict[str, Timing] = {}
    for _ in range(settings.e2e_repeats):
        in_process(content, local)
    print_e2e(settings, app.start_seconds, runs, no_ops, local)


def print_e2e(
    settings: Settings,
    start: float,
    runs: Sequence[E2ERun],
    no_ops: Sequence[E2ERun],
    local: dict[str, Timing],
) -> None:
    """The end-to-end table: the app's best run beside the same work done in-process."""
    print(
        f"5. End to end: {E2E_PAGES}-page born-digital PDF, blob upload -> status 'succeeded'"
        f" (polled every {POLL_SECONDS * 1000:.0f} ms, blob trigger polls every 0.2 s); best of"
        f" {settings.e2e_repeats}; devhost started in {start:.1f} s, warmed with one upload"
    )
    header = "".join(f" {step:>8}" for step in STEPS)
    print(f"  {'seconds':<12} {'wall':>7} {'spread':>7}{header}")
    best = min(runs, key=lambda run: run.wall)
    walls = Timing([run.wall for run in runs])
    steps = "".join(f" {best.timings.get(step, float('nan')):>8.2f}" for step in STEPS)
    print(f"  {'new document':<12} {best.wall:>7.2f} {walls.spread:>7.0%}{steps}  (ours)")
    no_op = Timing([run.wall for run in no_ops])
    print(
        f"  {'same bytes':<12} {no_op.best:>7.2f} {no_op.spread:>7.0%}"
        "  (ours: validated, then skipped as unchanged)"
    )
    total = local["total"]
    steps = "".join(
        f" {local[step].best:>8.2f}" if step in local else f" {'-':>8}" for step in STEPS
    )
    print(f"  {'in-process':<12} {total.best:>7.2f} {total.spread:>7.0%}{steps}  (baseline)")
    accounted = sum(best.timings.get(step, 0.0) for step in STEPS)
    step_ratios = ", ".join(
        f"{step} {best.timings.get(step, float('nan')) / local[step].best:.2f}x"
        for step in IN_PROCESS_STEPS
    )
    print(
        f"  ratio ours/baseline: wall {best.wall / total.best:.2f}x ({step_ratios});"
        f" the steps sum to {accounted:.2f} s: {best.wall - accounted:.2f} s is upload, trigger,"
        " orchestration start and polling"
    )
    print(
        "  (step timings are the status's `timings`: orchestration clock laps, so each includes"
        " scheduling and the work blobs' reads and writes)"
    )


# 6. Scale: big documents, per step rates and the host's memory --------------------------------


class RssSampler:
    """Samples the resident memory of a process and its children from outside (psutil)."""

    def __init__(self, pid: int) -> None:
        import threading

        import psutil

        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def rss(self) -> int:
        """Bytes resident in the process tree now."""
        import psutil

        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            value = self.rss()
            with self._lock:
                self._peak = max(self._peak, value)

    def reset_peak(self) -> None:
        """Starts a new peak from the current size."""
        with self._lock:
            self._peak = self.rss()

    def peak(self) -> int:
        """The largest size sampled since the last reset."""
        with self._lock:
            return max(self._peak, self.rss())

    def settled(self, seconds: float = SETTLE_SECONDS) -> int:
        """The smallest size seen over `seconds` (memory given back takes a moment)."""
        smallest = self.rss()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(RSS_INTERVAL)
            smallest = min(smallest, self.rss())
        return smallest

    def close(self) -> None:
        """Stops sampling."""
        self._stop.set()
        self._thread.join()


@dataclass
class ScaleRun:
    """One big document through the app."""

    pages: int
    wall: float
    timings: dict[str, float]
    chunks: int
    before: int  # host RSS before the upload (bytes)
    peak: int
    after: int  # settled RSS after it succeeded


@dataclass
class ScaleBaselines:
    """Rates measured in this process on a sample of the big document."""

    plumber_pages_s: float
    ours_pages_s: float
    raw_chunks_s: float
    embedder_chunks_s: float
    screen_chunks_s: float
    sample_chunks: int


def scale_baselines(content: bytes) -> ScaleBaselines:
    """pdfplumber vs our extractor on the first pages; raw ONNX vs LocalEmbedder vs the
    injection screen on a sample of their chunks (one timed round each: minutes matter)."""
    from shared.security.detector import detect_batch

    pages = SCALE_BASELINE_PAGES
    head = Timing()
    timed(lambda: plumber_text_pages(content, pages), head)
    ours = Timing()
    layout = timed(lambda: extract_ranges(content, PDF, pages), ours)
    chunks = chunk_layout(layout, CHUNKING)
    texts = [chunk.text for chunk in chunks][:SCALE_EMBED_SAMPLE]
    batch_size = LocalEmbedder().batch_size
    raw_embed(texts[:batch_size], batch_size)  # warm: the first runs of a session are slower
    embedding = interleave(
        1, {"raw": lambda: raw_embed(texts, batch_size), "ours": lambda: embed(texts)}
    )
    screening = Timing()
    timed(lambda: detect_batch(texts), screening)
    return ScaleBaselines(
        plumber_pages_s=pages / head.best,
        ours_pages_s=pages / ours.best,
        raw_chunks_s=len(texts) / embedding["raw"].best,
        embedder_chunks_s=len(texts) / embedding["ours"].best,
        screen_chunks_s=len(texts) / screening.best,
        sample_chunks=len(texts),
    )


def plumber_text_pages(content: bytes, pages: int) -> int:
    """Baseline: plain pdfplumber `extract_text()` of the first `pages` pages."""
    import pdfplumber

    characters = 0
    with pdfplumber.open(io.BytesIO(content), pages=list(range(1, pages + 1))) as document:
        for page in document.pages:
            characters += len(page.extract_text() or "")
            page.close()
    return characters


def bench_scale(sizes: Sequence[int]) -> None:
    """Section 6: the in-process baselines first, then each document, printed as it finishes
    (a 1,000-page run takes minutes on a shared machine)."""
    import warnings

    import urllib3

    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
    documents = {pages: born_digital_pdf(pages, seed=31) for pages in sizes}
    print_baselines(scale_baselines(documents[max(documents)]), max(documents))
    mb = 1024 * 1024
    with emulators() as endpoints, tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        app = App(endpoints, Path(folder))
        sampler = RssSampler(app.host.process.pid)  # type: ignore[union-attr]
        try:
            started_rss = sampler.rss()
            app.ingest("warm-up.pdf", born_digital_pdf(E2E_PAGES, seed=23))
            idle = sampler.settled()
            print(
                f"  devhost started in {app.start_seconds:.1f} s at {started_rss / mb:.0f} MB;"
                f" idle after a warm-up upload {idle / mb:.0f} MB (RSS of the host process"
                f" tree, psutil, every {RSS_INTERVAL * 1000:.0f} ms)"
            )
            print(scale_header(), flush=True)
            for pages, content in documents.items():
                before = sampler.rss()
                sampler.reset_peak()
                run, status = app.ingest(
                    f"report-{pages}.pdf", content, timeout=max(E2E_TIMEOUT_SECONDS, 8.0 * pages)
                )
                peak = sampler.peak()
                after = sampler.settled()
                chunks = int((status.get("counts") or {}).get("chunks", 0))
                row = ScaleRun(pages, run.wall, run.timings, chunks, before, peak, after)
                print(scale_row(row, idle), flush=True)
        finally:
            sampler.close()
            app.close()
    print(
        "  (step timings are the status's: orchestration clock laps, so they include scheduling"
        " and the work blobs; the embed step embeds and screens each chunk)"
    )


def scale_header() -> str:
    """The header of `scale_row`."""
    steps = "".join(f" {step:>7}" for step in STEPS)
    return (
        f"  {'document':<10} {'wall s':>7}{steps} {'pages/s':>8} {'chunks':>6} {'chunks/s':>8}"
        f" {'RSS before':>10} {'peak':>6} {'peak-idle':>9} {'after':>6} {'after/idle':>10}"
    )


def scale_row(run: ScaleRun, idle: int) -> str:
    """One document's line: step seconds, rates and the host's memory."""
    mb = 1024 * 1024
    steps = "".join(f" {run.timings.get(step, float('nan')):>7.1f}" for step in STEPS)
    extract = run.timings.get("extract") or float("nan")
    embedding = run.timings.get("embed") or float("nan")
    return (
        f"  {f'{run.pages} pages':<10} {run.wall:>7.1f}{steps} {run.pages / extract:>8.1f}"
        f" {run.chunks:>6} {run.chunks / embedding:>8.2f} {run.before / mb:>8.0f}MB"
        f" {run.peak / mb:>4.0f}MB {(run.peak - idle) / mb:>7.0f}MB {run.after / mb:>4.0f}MB"
        f" {run.after / idle - 1:>+10.0%}"
    )


def print_baselines(b: ScaleBaselines, pages: int) -> None:
    """The in-process rates of section 6."""
    print(
        f"6. Scale. In this process, first {SCALE_BASELINE_PAGES} pages of the {pages}-page"
        f" document: pdfplumber extract_text {b.plumber_pages_s:.1f} pages/s (baseline), our"
        f" extractor {b.ours_pages_s:.1f} pages/s ({b.ours_pages_s / b.plumber_pages_s:.1f}x);"
    )
    print(
        f"  {b.sample_chunks} of its chunks: raw ONNX Runtime {b.raw_chunks_s:.2f} chunks/s"
        f" (baseline), LocalEmbedder.embed {b.embedder_chunks_s:.2f} chunks/s"
        f" ({b.embedder_chunks_s / b.raw_chunks_s:.0%} of raw), injection screen"
        f" {b.screen_chunks_s:.2f} chunks/s; embed + screen together"
        f" {1 / (1 / b.embedder_chunks_s + 1 / b.screen_chunks_s):.2f} chunks/s",
        flush=True,
    )


# 7. Both cores: one extracting process vs two -----------------------------------------------


def extract_range_pages(content: bytes, first: int, last: int) -> int:
    """One page range through `LocalEngine.extract` (in a worker process); returns its pages."""
    source = SourceDocument("bench", PDF, content, last)
    extracted = asyncio.run(LocalEngine().extract(source, PageRange(first, last)))
    return len(extracted.layout.pages)


def cpu_seconds() -> float:
    """CPU seconds of this process and its live children (the pool's workers never exit)."""
    import psutil

    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children(recursive=True)])


def bench_processes(pages: int = SCALE_PAGES[0]) -> None:
    """Section 7."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    content = born_digital_pdf(pages, seed=31)
    ranges = [
        (first, min(first + PAGES_PER_BATCH - 1, pages))
        for first in range(1, pages + 1, PAGES_PER_BATCH)
    ]
    context = multiprocessing.get_context("spawn")  # what a fresh worker process looks like
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        list(pool.map(extract_range_pages, [content] * 2, [1, 2], [1, 2]))  # warm both

        def two() -> int:
            firsts, lasts = zip(*ranges, strict=True)
            return sum(pool.map(extract_range_pages, [content] * len(ranges), firsts, lasts))

        def one() -> int:
            return sum(extract_range_pages(content, first, last) for first, last in ranges)

        cpu: dict[str, float] = {}

        def with_cpu(name: str, call: Callable[[], int]) -> Callable[[], int]:
            def run() -> int:
                before = cpu_seconds()
                result = call()
                spent = cpu_seconds() - before
                cpu[name] = min(cpu.get(name, spent), spent)
                return result

            return run

        timings = interleave(2, {"one": with_cpu("one", one), "two": with_cpu("two", two)})
    print(
        f"7. Both cores: the {pages}-page PDF in {len(ranges)} ranges of {PAGES_PER_BATCH} pages;"
        f" best of 2 rounds; load average {_load()}"
    )
    print(rate_header("pages/s"))
    print(rate_row("one process", pages, timings["one"], f"(baseline, CPU {cpu['one']:.1f} s)"))
    print(
        rate_row("two worker processes", pages, timings["two"], f"(ours, CPU {cpu['two']:.1f} s)")
    )
    print(f"  speed-up: {timings['one'].best / timings['two'].best:.2f}x")


# Entry point ---------------------------------------------------------------------------------


def _load() -> str:
    """The 1-minute load average against the core count: is someone else using the machine?"""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmarks and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, pages and uploads")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        choices=range(1, 8),
        metavar="N",
        help="run only section N (repeatable); 5 and 6 need the emulators",
    )
    parser.add_argument(
        "--scale-pages",
        type=int,
        nargs="+",
        default=list(SCALE_PAGES),
        metavar="PAGES",
        help="document sizes of section 6 (default: 300 1000)",
    )
    arguments = parser.parse_args(argv)
    sections = set(arguments.only or range(1, 8))
    settings = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    print(
        f"ingest bench ({'quick' if arguments.quick else 'full'}), Python {sys.version.split()[0]}"
    )
    print(f"load average before: {_load()}")
    # Warm-up: imports and pdfplumber/pdfium first-use costs, outside every timing.
    warm_up = born_digital_pdf(2, seed=1)
    extract_ranges(warm_up, PDF, 2)
    content = born_digital_pdf(PDF_PAGES)
    if pdf_page_count(content) != PDF_PAGES:
        raise RuntimeError(f"the generated PDF has {pdf_page_count(content)} pages")
    layout: Layout | None = None
    for section in sorted(sections):
        print()
        if section == 1:
            layout = bench_pdf(settings, content)
        elif section == 2:
            bench_ocr(settings)
        elif section == 3:
            bench_docx(settings)
        elif section == 4:
            bench_chunk_embed(settings, layout or extract_ranges(content, PDF, PDF_PAGES))
        elif section == 5:
            bench_e2e(settings)
        elif section == 6:
            bench_scale(arguments.scale_pages)
        else:
            bench_processes()
    print(f"(total {time.perf_counter() - started:.1f} s; load average after: {_load()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
