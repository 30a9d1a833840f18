"""The Azure engines through the real SDKs, against local Document Intelligence and Image
Analysis doubles."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import AsyncIterator

import pytest
from azure.ai.documentintelligence.aio import DocumentIntelligenceClient
from azure.ai.vision.imageanalysis.aio import ImageAnalysisClient
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from PIL import Image

from shared.documents.engines.azure_layout import DocumentIntelligenceEngine, sendable_document
from shared.documents.engines.azure_vision import (
    ImageAnalysisDescriber,
    fit_for_analysis,
    forget_caption_refusals,
    is_caption_unsupported,
)
from shared.documents.engines.base import ExtractionError, TransientEngineError
from shared.documents.layout import (
    COLUMN_HEADER,
    ROW_HEADER,
    ExtractedLayout,
    Layout,
    PageRange,
    SourceDocument,
)
from tests.doubles.document_intelligence import (
    DocumentIntelligenceDouble,
    figure_png,
    sample_analyze_result,
)
from tests.doubles.image_analysis import CAPTION_UNSUPPORTED, ImageAnalysisDouble

PRICE = 0.01
PDF = SourceDocument("report.pdf", "application/pdf", b"%PDF-1.7\n% a scripted report\n", 3)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_bytes(width: int, height: int, fmt: str = "PNG", colour: str = "navy") -> bytes:
    """A solid image of the given size and format."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def make_engine(
    double: DocumentIntelligenceDouble, **options: object
) -> DocumentIntelligenceEngine:
    """An engine on the double with fast polls and backoff (the double sends Retry-After: 0)."""
    settings: dict[str, object] = {
        "price_per_page_usd": PRICE,
        "retry_backoff_seconds": 0.01,
        "polling_interval": 0.01,
        **options,
    }
    return DocumentIntelligenceEngine(double.endpoint, AzureKeyCredential(double.key), **settings)


def make_describer(double: ImageAnalysisDouble, **options: object) -> ImageAnalysisDescriber:
    """A describer on the double with fast backoff."""
    settings: dict[str, object] = {"retry_backoff_seconds": 0.01, **options}
    return ImageAnalysisDescriber(double.endpoint, AzureKeyCredential(double.key), **settings)


@pytest.fixture
async def di() -> AsyncIterator[DocumentIntelligenceDouble]:
    async with DocumentIntelligenceDouble(retry_after=0) as double:
        yield double


@pytest.fixture
async def engine(di: DocumentIntelligenceDouble) -> AsyncIterator[DocumentIntelligenceEngine]:
    async with make_engine(di) as engine:
        yield engine


@pytest.fixture
async def whole(engine: DocumentIntelligenceEngine) -> ExtractedLayout:
    return await engine.extract(PDF, None)


@pytest.fixture
async def vision() -> AsyncIterator[ImageAnalysisDouble]:
    forget_caption_refusals()
    async with ImageAnalysisDouble() as double:
        yield double
    forget_caption_refusals()


# --- Document Intelligence: analysis and conversion -------------------------------------


async def test_page_range_returns_only_those_pages(
    di: DocumentIntelligenceDouble, engine: DocumentIntelligenceEngine
) -> None:
    extracted = await engine.extract(PDF, PageRange(2, 3))

    (request,) = di.seen("analyze")
    assert request.query["pages"] == "2-3"
    assert request.query["output"] == "figures"
    assert request.path == "/documentintelligence/documentModels/prebuilt-layout:analyze"
    assert [page.number for page in extracted.layout.pages] == [2, 3]
    assert {paragraph.page for paragraph in extracted.layout.paragraphs} == {2, 3}
    assert "Contoso Annual Report 2024" not in [p.text for p in extracted.layout.paragraphs]
    assert [figure.id for figure in extracted.layout.figures] == ["3.1"]
    assert [table.page for table in extracted.layout.tables] == [2]


async def test_pages_carry_engine_unit_size_words_and_cost(whole: ExtractedLayout) -> None:
    expected = sample_analyze_result([1, 2, 3])["pages"]
    pages = whole.layout.pages
    assert [page.number for page in pages] == [1, 2, 3]
    for page, source in zip(pages, expected, strict=True):
        assert page.engine == "document-intelligence"
        assert (page.unit, page.width, page.height) == ("inch", 8.5, 11.0)
        assert page.word_count == len(source["words"]) > 0
        assert page.cost_usd == PRICE
    assert sum(page.cost_usd for page in pages) == pytest.approx(3 * PRICE)


async def test_paragraph_roles_and_heading_levels(whole: ExtractedLayout) -> None:
    by_text = {paragraph.text: paragraph for paragraph in whole.layout.paragraphs}
    assert (
        by_text["Contoso Annual Report 2024"].role,
        by_text["Contoso Annual Report 2024"].heading_level,
    ) == ("title", 1)
    assert by_text["2. Chapter 2"].role == "sectionHeading"
    assert by_text["2. Chapter 2"].heading_level == 2
    assert by_text["2.1 Details"].heading_level == 3  # nested section
    assert by_text["* Unaudited figures."].role == "footnote"
    assert (
        by_text[
            "Chapter 2 opens with an overview of the results for this part of the year."
        ].heading_level
        is None
    )
    roles = {paragraph.role for paragraph in whole.layout.paragraphs if paragraph.page == 3}
    assert {"pageHeader", "pageNumber", "pageFooter"} <= roles


async def test_headings_fall_back_without_sections(di: DocumentIntelligenceDouble) -> None:
    def without_sections(pages: list[int]) -> dict:
        return {**sample_analyze_result(pages), "sections": []}

    di.default.build = without_sections
    async with make_engine(di) as engine:
        extracted = await engine.extract(PDF, None)

    levels = {p.text: p.heading_level for p in extracted.layout.paragraphs if p.role}
    assert levels["Contoso Annual Report 2024"] == 1
    assert levels["2. Chapter 2"] == levels["2.1 Details"] == 2


async def test_reading_order_interleaves_paragraphs_tables_and_figures(
    whole: ExtractedLayout,
) -> None:
    layout = whole.layout
    for page in (1, 2, 3):
        elements = [
            *(p for p in layout.paragraphs if p.page == page),
            *(t for t in layout.tables if t.page == page),
            *(f for f in layout.figures if f.page == page),
        ]
        assert sorted(element.order for element in elements) == list(range(len(elements)))
    on_two = {p.text: p.order for p in layout.paragraphs if p.page == 2}
    (table,) = layout.tables
    assert on_two["2.1 Details"] < table.order < on_two["* Unaudited figures."]
    assert on_two["Contoso Ltd. Annual Report"] == 0
    # The logo on page 1 has no text at all: it goes after the paragraph printed above it.
    logo = next(figure for figure in layout.figures if figure.id == "1.1")
    on_one = {p.text: p.order for p in layout.paragraphs if p.page == 1}
    details = "The details of chapter 1 follow the overview and cite the evidence below."
    assert logo.order == on_one[details] + 1


async def test_table_cells_spans_and_header_kinds(whole: ExtractedLayout) -> None:
    (table,) = whole.layout.tables
    assert (table.id, table.page, table.pages) == ("table-2.1", 2, [2])
    assert (table.row_count, table.column_count) == (5, 3)
    assert table.caption == "Table 2: Revenue by region"
    assert table.header_rows() == 1
    assert table.grid() == [
        ["Region", "Quarter", "Revenue"],
        ["North", "Q1", "12"],
        ["North", "Q2", "14"],
        ["South", "Q1", "7"],
        ["Total", "Total", "33"],
    ]
    cells = {(cell.row, cell.column): cell for cell in table.cells}
    assert all(cells[(0, column)].kind == COLUMN_HEADER for column in range(3))
    assert (cells[(1, 0)].row_span, cells[(1, 0)].kind) == (2, ROW_HEADER)
    assert cells[(4, 0)].column_span == 2
    assert cells[(2, 2)].kind == "content"
    assert table.region is not None and table.region.page == 2


async def test_table_text_and_captions_are_not_duplicated_in_paragraphs(
    whole: ExtractedLayout,
) -> None:
    (table,) = whole.layout.tables
    cell_texts = {cell.content for cell in table.cells}
    on_two = [p.text for p in whole.layout.paragraphs if p.page == 2]
    assert not cell_texts & set(on_two)
    texts = {p.text for p in whole.layout.paragraphs}
    assert "Table 2: Revenue by region" not in texts
    assert "Figure 3: Revenue by quarter" not in texts
    assert "Revenue 2024" in texts  # text printed inside a chart is still text


async def test_figures_have_regions_captions_and_fetched_pngs(
    di: DocumentIntelligenceDouble, whole: ExtractedLayout
) -> None:
    figures = {figure.id: figure for figure in whole.layout.figures}
    assert set(figures) == {"1.1", "3.1"}
    assert figures["1.1"].caption is None
    assert figures["3.1"].caption == "Figure 3: Revenue by quarter"
    region = figures["3.1"].region
    assert region is not None and region.page == 3
    assert region.left == 1.5 and region.right == 5.5
    assert region.bottom - region.top == pytest.approx(2.5)

    result = sample_analyze_result([1, 2, 3])
    for source in result["figures"]:
        assert whole.figure_images[source["id"]] == figure_png(source)
        assert whole.figure_images[source["id"]].startswith(PNG_MAGIC)
    assert (figures["3.1"].width_px, figures["3.1"].height_px) == (288, 180)
    (operation_id,) = di.operations
    assert sorted(request.path.rsplit("/", 1)[1] for request in di.seen("figure")) == ["1.1", "3.1"]
    assert all(f"/analyzeResults/{operation_id}/" in r.path for r in di.seen("figure"))


def test_layout_survives_json(whole: ExtractedLayout) -> None:
    data = json.loads(json.dumps(whole.layout.to_json()))
    assert Layout.from_json(data) == whole.layout
    assert data["pages"][0]["unit"] == "inch"
    assert data["tables"][0]["cells"][0]["kind"] == "columnHeader"


async def test_polls_until_succeeded(
    di: DocumentIntelligenceDouble, whole: ExtractedLayout
) -> None:
    (operation,) = di.operations.values()
    assert operation.polls == di.polls_until_done + 1  # notStarted, running, succeeded


# --- Document Intelligence: errors --------------------------------------------------------


async def test_throttled_submit_is_retried_after_retry_after(
    di: DocumentIntelligenceDouble, engine: DocumentIntelligenceEngine
) -> None:
    di.throttle("analyze", times=2, retry_after=0.2)
    started = time.monotonic()

    extracted = await engine.extract(PDF, PageRange(1, 1))

    assert [page.number for page in extracted.layout.pages] == [1]
    assert len(di.seen("analyze")) == 3
    assert time.monotonic() - started >= 0.4  # both Retry-After waits were honoured


async def test_persistent_throttling_is_transient_with_retry_after(
    di: DocumentIntelligenceDouble,
) -> None:
    di.throttle("analyze", times=10, retry_after=0.1)
    async with make_engine(di, max_retries=2) as engine:
        with pytest.raises(TransientEngineError) as raised:
            await engine.extract(PDF, None)

    assert raised.value.retry_after_seconds == pytest.approx(0.1)
    assert "Rate limit" in str(raised.value)
    assert len(di.seen("analyze")) == 3


async def test_long_retry_after_is_not_slept_in_process(di: DocumentIntelligenceDouble) -> None:
    di.throttle("analyze", times=1, retry_after=120)
    async with make_engine(di, max_retry_after_seconds=30) as engine:
        started = time.monotonic()
        with pytest.raises(TransientEngineError) as raised:
            await engine.extract(PDF, None)

    assert raised.value.retry_after_seconds == 120
    assert time.monotonic() - started < 5
    assert len(di.seen("analyze")) == 1


async def test_server_error_is_transient(di: DocumentIntelligenceDouble) -> None:
    di.fail("analyze", 500, "InternalServerError", "An unexpected error occurred.", times=10)
    async with make_engine(di, max_retries=1) as engine:
        with pytest.raises(TransientEngineError, match="unexpected error"):
            await engine.extract(PDF, None)
    assert len(di.seen("analyze")) == 2  # azure-core retries a POST on 500


async def test_unavailable_while_polling_is_transient(di: DocumentIntelligenceDouble) -> None:
    di.fail("poll", 503, "ServiceUnavailable", "The service is unavailable.", times=10)
    async with make_engine(di, max_retries=1) as engine:
        with pytest.raises(TransientEngineError, match="unavailable"):
            await engine.extract(PDF, None)


async def test_failed_analysis_is_an_extraction_error(
    di: DocumentIntelligenceDouble, engine: DocumentIntelligenceEngine
) -> None:
    di.fail_analysis("InvalidContent", "The file is corrupted or format is unsupported.")
    with pytest.raises(ExtractionError, match="InvalidContent: The file is corrupted"):
        await engine.extract(PDF, None)


async def test_invalid_content_is_an_extraction_error_with_the_service_message(
    engine: DocumentIntelligenceEngine,
) -> None:
    garbage = SourceDocument("broken.pdf", "application/pdf", b"\x00\x01not a document", 1)
    with pytest.raises(ExtractionError, match="InvalidContent: The file is corrupted"):
        await engine.extract(garbage, None)


async def test_slow_analysis_times_out_as_transient(di: DocumentIntelligenceDouble) -> None:
    di.polls_until_done = 10_000
    async with make_engine(di, timeout_seconds=0.3) as engine:
        with pytest.raises(TransientEngineError, match="did not finish"):
            await engine.extract(PDF, None)


async def test_wrong_key_is_a_configuration_fault_not_the_documents(
    di: DocumentIntelligenceDouble,
) -> None:
    engine = DocumentIntelligenceEngine(
        di.endpoint, AzureKeyCredential("wrong"), price_per_page_usd=PRICE
    )
    async with engine:
        with pytest.raises(ClientAuthenticationError):
            await engine.extract(PDF, None)


class StaticTokenCredential:
    """An AsyncTokenCredential with a fixed token."""

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("token", int(time.time()) + 3600)


def test_token_credentials_need_https() -> None:
    credential = StaticTokenCredential()
    with pytest.raises(ValueError, match="https"):
        DocumentIntelligenceEngine("http://127.0.0.1:1", credential, price_per_page_usd=PRICE)
    with pytest.raises(ValueError, match="https"):
        ImageAnalysisDescriber("http://127.0.0.1:1", credential)


# --- Document Intelligence: GIF -----------------------------------------------------------


def animated_gif() -> bytes:
    """A two-frame GIF: red, then blue."""
    frames = [Image.new("RGB", (120, 80), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


async def test_the_double_refuses_gif_like_the_service(di: DocumentIntelligenceDouble) -> None:
    async with DocumentIntelligenceClient(di.endpoint, AzureKeyCredential(di.key)) as client:
        with pytest.raises(HttpResponseError) as raised:
            await client.begin_analyze_document("prebuilt-layout", animated_gif())
    assert raised.value.status_code == 400


async def test_gif_is_sent_as_png(
    di: DocumentIntelligenceDouble, engine: DocumentIntelligenceEngine
) -> None:
    gif = SourceDocument("scan.gif", "image/gif", animated_gif(), 1)

    extracted = await engine.extract(gif, PageRange(1, 1))

    assert extracted.layout.pages
    bodies = di.analyzed_bodies()
    assert bodies and all(body.startswith(PNG_MAGIC) for body in bodies)
    assert not any(body.startswith(b"GIF8") for body in bodies)


def test_gif_conversion_keeps_the_first_frame_only() -> None:
    png = sendable_document(SourceDocument("a.gif", "image/gif", animated_gif(), 1))
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert getattr(image, "n_frames", 1) == 1
        assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_other_formats_are_sent_unchanged() -> None:
    assert sendable_document(PDF) == PDF.content


# --- Image Analysis -----------------------------------------------------------------------


async def test_describes_with_caption_confident_tags_and_read_text(
    vision: ImageAnalysisDouble,
) -> None:
    async with make_describer(vision) as describer:
        description = await describer.describe(image_bytes(300, 200))

    assert description.caption == "a bar chart showing revenue by quarter"
    assert description.tags == ["text", "chart"]  # "font" (0.42) is under 0.5
    assert description.text == "Revenue 2024\nQ1 Q2 Q3 Q4"
    assert description.source == "image-analysis"
    (received,) = vision.received
    assert received.features == ["caption", "tags", "read"]


async def test_caption_unsupported_region_falls_back_and_is_remembered() -> None:
    forget_caption_refusals()
    async with ImageAnalysisDouble(caption_supported=False) as double:
        async with make_describer(double) as describer:
            first = await describer.describe(image_bytes(300, 200))
            second = await describer.describe(image_bytes(300, 200))
        async with make_describer(double) as another:
            third = await another.describe(image_bytes(300, 200))
        refused = not describer.caption_supported
    forget_caption_refusals()

    for description in (first, second, third):
        assert description.caption is None
        assert description.tags == ["text", "chart"]
        assert description.text == "Revenue 2024\nQ1 Q2 Q3 Q4"
    features = [request.query["features"] for request in double.seen("analyze")]
    assert features == ["caption,tags,read", "tags,read", "tags,read", "tags,read"]
    assert refused


async def test_caption_refusal_is_recognised_from_the_service_error() -> None:
    async with (
        ImageAnalysisDouble(caption_supported=False) as double,
        ImageAnalysisClient(double.endpoint, AzureKeyCredential(double.key)) as client,
    ):
        with pytest.raises(HttpResponseError) as raised:
            await client.analyze(image_bytes(300, 200), [VisualFeatures.CAPTION])

    assert raised.value.status_code == 400
    assert CAPTION_UNSUPPORTED in str(raised.value)
    assert is_caption_unsupported(raised.value)


async def test_throttled_analysis_is_retried(vision: ImageAnalysisDouble) -> None:
    vision.throttle("analyze", times=1, retry_after=0.1)
    async with make_describer(vision) as describer:
        description = await describer.describe(image_bytes(300, 200))
    assert description.caption is not None
    assert len(vision.seen("analyze")) == 2


async def test_persistent_throttling_is_transient(vision: ImageAnalysisDouble) -> None:
    vision.throttle("analyze", times=10, retry_after=0.1)
    async with make_describer(vision, max_retries=1) as describer:
        with pytest.raises(TransientEngineError) as raised:
            await describer.describe(image_bytes(300, 200))
    assert raised.value.retry_after_seconds == pytest.approx(0.1)
    assert len(vision.seen("analyze")) == 2


async def test_server_error_is_transient_for_vision(vision: ImageAnalysisDouble) -> None:
    vision.fail("analyze", 503, "ServiceUnavailable", "Try again.", times=10)
    async with make_describer(vision, max_retries=0) as describer:
        with pytest.raises(TransientEngineError, match="Try again"):
            await describer.describe(image_bytes(300, 200))


async def test_tiny_and_huge_images_are_resized_before_sending(
    vision: ImageAnalysisDouble,
) -> None:
    async with make_describer(vision) as describer:
        await describer.describe(image_bytes(20, 30))
        await describer.describe(image_bytes(17_000, 60))

    small, long = vision.received
    assert (small.width, small.height) == (50, 75)
    assert long.width == 16_000 and long.height >= 50


async def test_undecodable_image_is_an_extraction_error(vision: ImageAnalysisDouble) -> None:
    async with make_describer(vision) as describer:
        with pytest.raises(ExtractionError):
            await describer.describe(b"not an image")
    assert vision.seen("analyze") == []


def test_acceptable_images_are_sent_unchanged() -> None:
    png = image_bytes(300, 200)
    assert fit_for_analysis(png) is png


def test_extreme_aspect_ratio_is_scaled_then_padded() -> None:
    fitted = fit_for_analysis(image_bytes(20_000, 10))
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.size == (16_000, 50)


def test_oversized_images_are_downscaled_under_the_byte_limit() -> None:
    noise = Image.frombytes("RGB", (400, 400), os.urandom(400 * 400 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert len(buffer.getvalue()) > 100_000

    fitted = fit_for_analysis(buffer.getvalue(), max_bytes=100_000)

    assert len(fitted) <= 100_000
    with Image.open(io.BytesIO(fitted)) as image:
        assert min(image.size) >= 50 and image.size[0] < 400
