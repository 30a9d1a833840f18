"""The local engine on generated documents: content, positions and structure, per format."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.documents.engines.base import ExtractionError
from shared.documents.engines.local import LocalEngine, pdf_text_layer_pages
from shared.documents.layout import (
    COLUMN_HEADER,
    CONTENT,
    PAGE_HEADER,
    PAGE_NUMBER,
    ROW_HEADER,
    SECTION_HEADING,
    TITLE,
    ExtractedLayout,
    Layout,
    PageRange,
    Paragraph,
    SourceDocument,
    Table,
)
from tests.fixtures import documents as fixtures

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def extract(
    content: bytes, media_type: str, pages: PageRange | None = None
) -> ExtractedLayout:
    """Runs the local engine on bytes."""
    source = SourceDocument("test", media_type, content, page_count=0)
    return await LocalEngine().extract(source, pages)


def paragraph(layout: Layout, text: str) -> Paragraph:
    """The one paragraph whose text contains `text`."""
    found = [item for item in layout.paragraphs if text in item.text]
    assert len(found) == 1, (text, [item.text for item in layout.paragraphs])
    return found[0]


def body_texts(layout: Layout) -> str:
    """All paragraph text, for "is this word anywhere" checks."""
    return "\n".join(item.text for item in layout.paragraphs)


def assert_png(extracted: ExtractedLayout, figure_id: str, size: tuple[int, int]) -> None:
    """The figure's bytes are a PNG of the recorded size."""
    data = extracted.figure_images[figure_id]
    assert data.startswith(PNG_SIGNATURE)
    assert Image.open(io.BytesIO(data)).size == size


# ---------------------------------------------------------------------------------------------
# PDF: born-digital text.


async def test_pdf_text_pages_headings_and_furniture() -> None:
    result = await extract(fixtures.report_pdf(), PDF)
    layout = result.layout

    assert [(page.number, page.engine, page.has_text_layer) for page in layout.pages] == [
        (1, "pdfium", True),
        (2, "pdfium", True),
        (3, "pdfium", True),
    ]
    title = paragraph(layout, fixtures.REPORT_TITLE)
    assert (title.role, title.heading_level, title.page) == (TITLE, None, 1)
    for page, (heading, text) in enumerate(fixtures.REPORT_SECTIONS, start=1):
        found = paragraph(layout, heading)
        assert (found.text, found.role, found.heading_level, found.page) == (
            heading,
            SECTION_HEADING,
            1,
            page,
        )
        first_body = [item for item in layout.paragraphs if item.text == text]
        assert len(first_body) == 1 and first_body[0].page == page and first_body[0].role is None
    sub = paragraph(layout, fixtures.REPORT_SUBHEADING)
    assert (sub.role, sub.heading_level, sub.page) == (SECTION_HEADING, 2, 2)
    assert paragraph(layout, fixtures.REPORT_SUBTEXT).page == 2


async def test_pdf_running_header_and_page_numbers_are_furniture() -> None:
    layout = (await extract(fixtures.report_pdf(), PDF)).layout

    headers = [item for item in layout.paragraphs if item.text == fixtures.REPORT_HEADER]
    assert [(item.page, item.role) for item in headers] == [(n, PAGE_HEADER) for n in (1, 2, 3)]
    numbers = [item for item in layout.paragraphs if item.text.startswith("Page ")]
    assert [(item.text, item.role) for item in numbers] == [
        (f"Page {n}", PAGE_NUMBER) for n in (1, 2, 3)
    ]


async def test_pdf_reading_order_and_regions() -> None:
    layout = (await extract(fixtures.report_pdf(), PDF)).layout
    page_two = sorted((p for p in layout.paragraphs if p.page == 2), key=lambda p: p.order)

    assert [item.text[:20] for item in page_two] == [
        fixtures.REPORT_HEADER[:20],
        "Cargo Volumes",
        "Container volumes ro",
        "Container volumes ro",
        fixtures.REPORT_SUBHEADING,
        fixtures.REPORT_SUBTEXT[:20],
        "Page 2",
    ]
    tops = [item.region.top for item in page_two if item.region]
    assert tops == sorted(tops)
    heading = paragraph(layout, "Cargo Volumes").region
    assert heading is not None and heading.page == 2
    assert 70 <= heading.left <= 80 and 75 <= heading.top <= 90  # 1 inch margin, A4 points


async def test_pdf_page_range_reads_only_those_pages_with_absolute_numbers() -> None:
    layout = (await extract(fixtures.report_pdf(), PDF, PageRange(2, 3))).layout

    assert [page.number for page in layout.pages] == [2, 3]
    assert {item.page for item in layout.paragraphs} == {2, 3}
    assert fixtures.REPORT_TITLE not in body_texts(layout)
    assert paragraph(layout, "Safety Record").page == 3
    # Levels come from size relative to body text, so a batch without page 1 agrees.
    assert paragraph(layout, "Cargo Volumes").heading_level == 1


async def test_pdf_page_range_past_the_end_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError):
        await extract(fixtures.report_pdf(), PDF, PageRange(5, 6))


async def test_damaged_pdf_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError):
        await extract(b"%PDF-1.7\nthis is not really a pdf", PDF)


# ---------------------------------------------------------------------------------------------
# PDF: the two readers (PDFium's text page, pdfplumber) make the same layout.


def reading(layout: Layout) -> list[tuple[object, ...]]:
    """What chunking and citations use of a layout: paragraphs with page, role and level,
    tables as grids, figures with captions."""
    return [
        *((item.page, item.role, item.heading_level, item.text) for item in layout.paragraphs),
        *((table.page, table.grid(), table.header_rows()) for table in layout.tables),
        *((figure.page, figure.caption, figure.width_px) for figure in layout.figures),
    ]


@pytest.mark.parametrize(
    "document",
    [
        fixtures.report_pdf,
        fixtures.figure_pdf,
        fixtures.ruled_table_pdf,
        fixtures.long_table_pdf,
        fixtures.flowing_pdf,
    ],
)
async def test_pdfium_pages_read_as_pdfplumber_reads_them(
    document: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.documents.engines.local import pdf

    content = document()  # type: ignore[operator]
    fast = (await extract(content, PDF)).layout
    monkeypatch.setattr(pdf, "_fast_path_suffices", lambda page: False)
    slow = (await extract(content, PDF)).layout

    assert {page.engine for page in slow.pages} == {"pdfplumber"}
    assert reading(fast) == reading(slow)
    for ours, theirs in zip(fast.paragraphs, slow.paragraphs, strict=True):
        assert ours.region is not None and theirs.region is not None
        assert abs(ours.region.top - theirs.region.top) < 1.0  # points: the same place
        assert abs(ours.region.left - theirs.region.left) < 0.5


def drawing_pdf() -> bytes:
    """One page of prose with a rounded box around it: curves PDFium's reader leaves alone."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4)
    for line in range(6):
        page.drawString(80, 700 - 14 * line, f"Line {line} of the note about crane maintenance.")
    page.roundRect(70, 600, 400, 120, 12)
    page.save()
    return buffer.getvalue()


async def test_tables_are_found_on_pdfium_pages_and_curves_go_to_pdfplumber() -> None:
    tables = (await extract(fixtures.long_table_pdf(), PDF)).layout
    drawing = (await extract(drawing_pdf(), PDF)).layout

    assert {page.engine for page in tables.pages} == {"pdfium"}  # ruling lines it translates
    assert len(tables.tables) == 2
    assert [page.engine for page in drawing.pages] == ["pdfplumber"]  # a rounded rectangle
    assert "Line 5 of the note" in body_texts(drawing)


def test_pdfium_reader_words_and_table_signal() -> None:
    import pypdfium2

    from shared.documents.engines.local.pdf_text import read_page

    document = pypdfium2.PdfDocument(fixtures.ruled_table_pdf())
    try:
        page = read_page(document[0])
    finally:
        document.close()
    words = [word["text"] for word in page.words]
    assert page.trusted and page.may_hold_table and page.unmapped_chars == 0
    assert "Quarterly" in words and "4,500.00" in words
    header = next(word for word in page.words if word["text"] == "Revenue")
    assert header["bottom"] - header["top"] == pytest.approx(header["size"])
    assert "Bold" in header["fontname"]


# ---------------------------------------------------------------------------------------------
# PDF: tables.


async def test_pdf_ruled_table_cells_header_and_text_removed_from_paragraphs() -> None:
    layout = (await extract(fixtures.ruled_table_pdf(), PDF)).layout

    assert len(layout.tables) == 1
    table = layout.tables[0]
    assert (table.id, table.page, table.pages) == ("p1-t1", 1, [1])
    assert (table.row_count, table.column_count) == (4, 3)
    assert table.grid() == [list(fixtures.TABLE_HEADER), *map(list, fixtures.TABLE_ROWS)]
    assert table.header_rows() == 1
    assert all(cell.kind == CONTENT for cell in table.cells if cell.row > 0)
    assert paragraph(layout, fixtures.TABLE_INTRO).order < table.order
    assert "Revenue" not in body_texts(layout) and "4,500.00" not in body_texts(layout)
    assert table.region is not None and table.region.top > paragraph(layout, "Quarterly").region.top


def assert_long_table_part(table: Table, page: int, first: int, last: int) -> None:
    """One page's part of the long table: its repeated header and rows first..last."""
    rows = fixtures.long_table_rows()
    assert (table.page, table.pages, table.column_count) == (page, [page], 3)
    assert table.grid() == [
        list(fixtures.LONG_TABLE_HEADER),
        *(list(row) for row in rows[first - 1 : last]),
    ]
    assert table.header_rows() == 1


async def test_pdf_table_over_two_pages_comes_out_as_one_table_per_page() -> None:
    layout = (await extract(fixtures.long_table_pdf(), PDF)).layout

    assert [table.id for table in layout.tables] == ["p1-t1", "p2-t1"]
    first, second = layout.tables
    split = first.row_count - 1  # body rows on page 1
    assert 20 < split < fixtures.LONG_TABLE_ROW_COUNT
    assert_long_table_part(first, 1, 1, split)
    assert_long_table_part(second, 2, split + 1, fixtures.LONG_TABLE_ROW_COUNT)
    assert second.grid()[1] == ["Item 038", "Antwerp", "266"]


async def test_pdf_table_second_half_alone_in_a_batch() -> None:
    layout = (await extract(fixtures.long_table_pdf(), PDF, PageRange(2, 2))).layout

    assert [table.id for table in layout.tables] == ["p2-t1"]
    assert layout.tables[0].grid()[-1] == ["Item 060", "Rotterdam", "420"]


# ---------------------------------------------------------------------------------------------
# PDF: figures and scans.


async def test_pdf_image_becomes_a_figure_with_region_caption_and_png() -> None:
    result = await extract(fixtures.figure_pdf(), PDF)
    layout = result.layout

    assert len(layout.figures) == 1
    figure = layout.figures[0]
    assert (figure.id, figure.page, figure.caption) == ("p1-f1", 1, fixtures.FIGURE_CAPTION)
    region = figure.region
    assert region is not None
    assert (region.left, region.top, region.right, region.bottom) == (72, 150, 272, 270)
    # Rendered at the image's own resolution: 400 px over 200 pt.
    assert (figure.width_px, figure.height_px) == (400, 240)
    assert_png(result, figure.id, (400, 240))
    intro = paragraph(layout, "Throughput grew")
    caption = paragraph(layout, fixtures.FIGURE_CAPTION)
    assert intro.order < figure.order < caption.order


async def test_scanned_pdf_page_is_read_by_ocr() -> None:
    layout = (await extract(fixtures.scanned_pdf(), PDF)).layout

    assert [(p.number, p.engine, p.has_text_layer) for p in layout.pages] == [
        (1, "pdfium", True),
        (2, "rapidocr", False),
    ]
    scanned = " ".join(item.text for item in layout.paragraphs if item.page == 2)
    for line in fixtures.SCANNED_LINES:
        assert line in scanned
    assert layout.pages[1].word_count == sum(len(line.split()) for line in fixtures.SCANNED_LINES)
    invoice = paragraph(layout, "Invoice number 4471")
    assert invoice.region is not None and invoice.region.left < 60  # points, not pixels
    assert layout.figures == []  # the scan itself is the page, not a figure


def test_text_layer_pages_tells_scans_apart() -> None:
    content = fixtures.scanned_pdf()

    assert pdf_text_layer_pages(content, PageRange(1, 2)) == {1: True, 2: False}
    assert pdf_text_layer_pages(content, PageRange(2, 2)) == {2: False}
    assert pdf_text_layer_pages(fixtures.figure_pdf(), PageRange(1, 1)) == {1: True}


# ---------------------------------------------------------------------------------------------
# Office.


async def test_docx_headings_table_spans_picture_and_page_break() -> None:
    result = await extract(fixtures.docx_document(), DOCX)
    layout = result.layout

    assert [(page.number, page.unit) for page in layout.pages] == [(1, None), (2, None)]
    assert (paragraph(layout, fixtures.DOCX_TITLE).role, paragraph(layout, "Handbook").page) == (
        TITLE,
        1,
    )
    heading = paragraph(layout, fixtures.DOCX_HEADING)
    assert (heading.role, heading.heading_level, heading.page) == (SECTION_HEADING, 1, 1)
    assert paragraph(layout, fixtures.DOCX_INTRO).page == 1
    returns = paragraph(layout, fixtures.DOCX_PAGE2_HEADING)
    assert (returns.role, returns.heading_level, returns.page) == (SECTION_HEADING, 2, 2)
    assert paragraph(layout, fixtures.DOCX_PAGE2_TEXT).page == 2

    table = layout.tables[0]
    assert (table.page, table.row_count, table.column_count) == (1, 4, 3)
    assert table.header_rows() == 1
    cells = {(cell.row, cell.column): cell for cell in table.cells}
    assert (cells[1, 0].content, cells[1, 0].row_span, cells[1, 0].column_span) == (
        "Acme Metals",
        2,
        1,
    )
    assert (2, 0) not in cells  # covered by the vertical merge
    assert (cells[3, 0].content, cells[3, 0].column_span) == ("Total suppliers: 1", 3)
    assert table.grid()[2] == ["Acme Metals", "John Roe", "B"]

    figure = layout.figures[0]
    assert (figure.id, figure.page, figure.region) == ("p1-f1", 1, None)
    assert table.order < figure.order
    assert_png(result, figure.id, (400, 240))


async def test_office_file_detected_as_zip_is_dispatched_by_its_parts() -> None:
    layout = (await extract(fixtures.docx_document(), "application/zip")).layout

    assert paragraph(layout, fixtures.DOCX_HEADING).role == SECTION_HEADING


async def test_docx_page_range_keeps_only_those_pages() -> None:
    result = await extract(fixtures.docx_document(), DOCX, PageRange(2, 2))

    assert [page.number for page in result.layout.pages] == [2]
    assert [item.text for item in result.layout.paragraphs] == [
        fixtures.DOCX_PAGE2_HEADING,
        fixtures.DOCX_PAGE2_TEXT,
    ]
    assert result.layout.tables == [] and result.figure_images == {}


async def test_pptx_slides_title_table_with_merge_and_picture() -> None:
    result = await extract(fixtures.pptx_deck(), PPTX)
    layout = result.layout

    assert [(p.number, p.width, p.height, p.unit) for p in layout.pages] == [
        (1, 720.0, 540.0, "point"),
        (2, 720.0, 540.0, "point"),
    ]
    assert (paragraph(layout, fixtures.PPTX_TITLE).role, paragraph(layout, "Quarterly").page) == (
        TITLE,
        1,
    )
    assert paragraph(layout, fixtures.PPTX_SUBTITLE).page == 1
    slide_title = paragraph(layout, fixtures.PPTX_SLIDE2_TITLE)
    assert (slide_title.role, slide_title.page, slide_title.order) == (TITLE, 2, 0)
    assert paragraph(layout, fixtures.PPTX_NOTE).page == 2

    table = layout.tables[0]
    assert (table.id, table.page) == ("p2-t1", 2)
    assert table.grid()[:3] == [list(row) for row in fixtures.PPTX_TABLE[:3]]
    assert table.header_rows() == 1
    total = next(cell for cell in table.cells if cell.content == "Total")
    assert (total.row, total.column, total.column_span) == (3, 0, 2)
    assert table.grid()[3] == ["Total", "Total", "100%"]

    figure = layout.figures[0]
    assert (figure.id, figure.page) == ("p2-f1", 2)
    region = figure.region
    assert region is not None  # 6 in and 2 in from the corner, 3 in wide: 72 pt per inch
    assert (region.left, region.top, region.right) == (432.0, 144.0, 648.0)
    assert_png(result, figure.id, (400, 240))


# ---------------------------------------------------------------------------------------------
# Images.


async def test_multipage_tiff_one_page_per_frame_with_ocr_and_figure() -> None:
    result = await extract(fixtures.multipage_tiff(), "image/tiff")
    layout = result.layout

    assert [(p.number, p.engine, p.unit, p.width) for p in layout.pages] == [
        (1, "rapidocr", "pixel", 1000),
        (2, "rapidocr", "pixel", 1000),
    ]
    for page, text in enumerate(fixtures.TIFF_PAGES, start=1):
        assert paragraph(layout, text).page == page
    assert [figure.id for figure in layout.figures] == ["p1-f1", "p2-f1"]
    assert layout.figures[1].region is not None and layout.figures[1].region.right == 1000
    assert_png(result, "p2-f1", (1000, 400))


async def test_tiff_page_range_reads_one_frame() -> None:
    layout = (await extract(fixtures.multipage_tiff(), "image/tiff", PageRange(2, 2))).layout

    assert [page.number for page in layout.pages] == [2]
    assert body_texts(layout) == fixtures.TIFF_PAGES[1]


async def test_animated_gif_frames_are_pages() -> None:
    result = await extract(fixtures.animated_gif(), "image/gif")
    layout = result.layout

    assert [page.number for page in layout.pages] == [1, 2]
    assert [(item.page, item.text) for item in layout.paragraphs] == [
        (1, fixtures.GIF_TEXT),
        (2, fixtures.GIF_TEXT),
    ]
    assert_png(result, "p1-f1", (900, 300))


async def test_png_text_lines_and_figure() -> None:
    result = await extract(fixtures.text_png(), "image/png")

    assert [item.text for item in result.layout.paragraphs] == list(fixtures.SCANNED_LINES)
    assert result.figure_images["p1-f1"] == fixtures.text_png()  # same pixels, same encoder


async def test_unreadable_image_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError):
        await extract(b"\x89PNG\r\n\x1a\nbroken", "image/png")


# ---------------------------------------------------------------------------------------------
# Text formats.


async def test_plain_text_paragraphs() -> None:
    layout = (await extract(fixtures.plain_text(), "text/plain")).layout

    assert [(item.text, item.page, item.order) for item in layout.paragraphs] == [
        ("Opening hours are nine to five.", 1, 0),
        ("Visitors must sign in at reception and wear a badge at all times.", 1, 1),
        ("Parking is available behind the building.", 1, 2),
    ]
    assert layout.pages[0].word_count == 6 + 13 + 6


async def test_markdown_headings_lists_code_and_pipe_table() -> None:
    layout = (await extract(fixtures.markdown_text(), "text/markdown")).layout

    headings = [(p.text, p.heading_level) for p in layout.paragraphs if p.role == SECTION_HEADING]
    assert headings == [
        (fixtures.MARKDOWN_TITLE, 1),
        ("Requirements", 2),
        ("Supported platforms", 3),
    ]
    assert paragraph(layout, "Two gigabytes").text == "Two gigabytes of memory"
    code = paragraph(layout, "pip install agent")
    assert code.text == "# not a heading: a shell comment\npip install agent" and code.role is None
    table = layout.tables[0]
    assert table.grid() == [
        ["Platform", "Supported", "Notes"],
        ["Linux", "yes", "tested daily"],
        ["Windows", "no", "planned"],
    ]
    assert table.header_rows() == 1
    assert table.order > paragraph(layout, "Supported platforms").order


async def test_html_blocks_tables_with_spans_and_dropped_script() -> None:
    layout = (await extract(fixtures.html_text(), "text/html; charset=utf-8")).layout

    assert [(p.text, p.role, p.heading_level) for p in layout.paragraphs] == [
        (fixtures.HTML_TITLE, SECTION_HEADING, 1),
        ("Employees may book economy class flights for trips under six hours.", None, None),
        ("Allowances", SECTION_HEADING, 2),
        ("Meals are reimbursed", None, None),
        ("Taxis need a receipt", None, None),
        ("Questions go to & through the travel desk.", None, None),
    ]
    table = layout.tables[0]
    assert table.caption == "Daily allowance"
    assert table.grid() == [
        ["City", "Allowance", "Allowance"],
        ["London", "Meals", "60"],
        ["London", "Hotel", "220"],
        ["Paris", "Meals", "55"],
    ]
    cells = {(cell.row, cell.column): cell for cell in table.cells}
    assert (cells[0, 1].column_span, cells[0, 1].kind) == (2, COLUMN_HEADER)
    assert (cells[1, 0].row_span, cells[1, 0].content) == (2, "London")
    assert (cells[2, 1].content, cells[3, 0].content) == ("Hotel", "Paris")
    assert table.header_rows() == 1
    assert "secret" not in body_texts(layout) and "Ignored title" not in body_texts(layout)


async def test_html_th_down_the_side_is_a_row_header() -> None:
    html = b"<table><tr><th>Metric</th><th>Value</th></tr><tr><th>Speed</th><td>9</td></tr></table>"
    table = (await extract(html, "text/html")).layout.tables[0]

    kinds = {(cell.row, cell.column): cell.kind for cell in table.cells}
    assert kinds == {
        (0, 0): COLUMN_HEADER,
        (0, 1): COLUMN_HEADER,
        (1, 0): ROW_HEADER,
        (1, 1): CONTENT,
    }


async def test_unsupported_media_type_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError, match="cannot read"):
        await extract(b"MZ\x90\x00", "application/x-msdownload")


async def test_layout_round_trips_through_json() -> None:
    layout = (await extract(fixtures.docx_document(), DOCX)).layout

    assert Layout.from_json(layout.to_json()) == layout
