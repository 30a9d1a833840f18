"""PDF pages: PDFium's text page reads born-digital pages (`pdf_text`); pdfplumber reads the
pages that may hold a table (ruling lines), whose text layer PDFium cannot map one-to-one, or
that look scanned; pages without a usable text layer are rendered with pypdfium2 and OCR'd. Both
readers produce the same words, so lines, paragraphs, headings, furniture and figures come out of
the same code. Only the requested pages are opened (pdfplumber only when a page needs it).

Coordinates are PDF points from the page's top-left corner (pdfplumber's convention).
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pdfplumber
import pypdfium2
from pdfplumber.page import Page as PlumberPage
from pdfplumber.table import Table as PlumberTable
from pdfplumber.table import TableFinder, TableSettings

from shared.documents.engines.base import ExtractionError
from shared.documents.engines.local import (
    LayoutBuilder,
    looks_like_header,
    mark_header_row,
)
from shared.documents.engines.local.ocr import (
    TextLine,
    bounding_box,
    group_lines,
    join_text,
    read_lines,
    sort_reading_order,
)
from shared.documents.engines.local.pdf_text import (
    PdfiumPage,
    PlumberView,
    chars_in,
    close,
    read_page,
)
from shared.documents.layout import (
    PAGE_FOOTER,
    PAGE_HEADER,
    PAGE_NUMBER,
    SECTION_HEADING,
    TITLE,
    ExtractedLayout,
    Page,
    PageRange,
    Region,
    TableCell,
)
from shared.documents.pdfium import PDFIUM_LOCK

FAST_ENGINE = "pdfium"  # born-digital pages without ruling lines
TEXT_ENGINE = "pdfplumber"  # pages that may hold a table, or whose text PDFium cannot map
OCR_ENGINE = "rapidocr"
MIN_TEXT_CHARS = 25  # fewer real characters than this on a page with a big image: a scan
SCAN_COVERAGE = 0.5  # an image over this share of the page is what a scan looks like
# 216 dpi. At 144 dpi PP-OCRv6 (small) garbled about one long 10 pt line in 25 on our test
# pages; at 216 dpi none, for the same time (detection is capped at 1600 px either way).
OCR_SCALE = 3.0
MIN_FIGURE_POINTS = 16.0  # smaller images are bullets, rules and spacers, not figures
MAX_FIGURE_SCALE = 3.0
# A gap wider than this share of the font size separates words. pdfplumber's default is a
# fixed 3 points, which glues every word of a tightly set 10-point body (the space is ~2.5 pt)
# into one ("Thisisversion0.21oftheSharedMIME-info...") and splits nothing at large sizes.
WORD_GAP = 0.15
MAX_FIGURE_PIXELS = 2000  # longest side of a rendered figure crop
MARGIN_BAND = 0.075  # top/bottom share of the page where running headers and footers sit
COLUMN_GAP = 2.5  # a gap between words wider than this many text sizes separates columns
CAPTION_DISTANCE = 36.0  # points between a figure and the caption under it
BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
CAPTION = re.compile(r"^(figure|fig\.|chart|diagram|image|photo|exhibit)\s*\d", re.IGNORECASE)
_DASHES = "\\-\u2013\u2014"  # hyphen, en dash, em dash: "- 3 -" style page numbers
PAGE_NUMBER_TEXT = re.compile(
    rf"^(page\s*)?#+(\s*(of|/)\s*#+)?$"  # 3, Page 3, 3 of 9, 3/9
    rf"|^[{_DASHES}]\s*#+\s*[{_DASHES}]$"  # - 3 -
    r"|^(?!$)c{0,3}(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})$",  # roman numerals up to ccc
    re.IGNORECASE,
)


@dataclass
class _PageRead:
    """What one page holds before it becomes layout elements."""

    number: int
    width: float
    height: float
    has_text_layer: bool
    lines: list[TextLine]
    engine: str = TEXT_ENGINE
    tables: list[PlumberTable] = field(default_factory=list)
    table_bold_rows: list[bool] = field(default_factory=list)
    table_texts: list[list[list[str | None]]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)


def extract(content: bytes, pages: PageRange | None) -> ExtractedLayout:
    """The layout of `pages` (None: all) of the PDF in `content`."""
    builder = LayoutBuilder()
    with PDFIUM_LOCK, _open(content) as readers:
        numbers = _page_numbers(pages, len(readers.pdfium))
        reads = [_read(readers, number) for number in numbers]
        body_size = _body_size(reads)
        pdfium = readers.pdfium
        furniture = _furniture_roles(reads)
        for read in reads:
            _emit_page(builder, read, pdfium[read.number - 1], body_size, furniture)
    return builder.result()


def text_layer_pages(content: bytes, pages: PageRange) -> dict[int, bool]:
    """For each page in `pages`, whether it has a usable text layer (False: it needs OCR)."""
    with PDFIUM_LOCK, _open(content) as readers:
        numbers = _page_numbers(pages, len(readers.pdfium))
        result = {}
        for number in numbers:
            fast = read_page(readers.pdfium[number - 1])
            if fast.trusted and fast.unmapped_chars == 0 and fast.real_chars >= MIN_TEXT_CHARS:
                result[number] = True
                continue
            page = readers.plumber.pages[number - 1]
            result[number] = _has_usable_text(page)
            page.close()
    return result


class _Readers:
    """PDFium over the document, and pdfplumber opened only if a page needs it."""

    def __init__(self, content: bytes, pdfium: pypdfium2.PdfDocument) -> None:
        self.content = content
        self.pdfium = pdfium
        self._plumber: pdfplumber.PDF | None = None

    @property
    def plumber(self) -> pdfplumber.PDF:
        """pdfplumber over the same bytes, opened on first use."""
        if self._plumber is None:
            self._plumber = pdfplumber.open(io.BytesIO(self.content))
        return self._plumber

    def close(self) -> None:
        """Closes both readers."""
        if self._plumber is not None:
            self._plumber.close()
        self.pdfium.close()


@contextmanager
def _open(content: bytes) -> Iterator[_Readers]:
    """The readers over `content`, closed afterwards."""
    try:
        pdfium = pypdfium2.PdfDocument(content)
    except pypdfium2.PdfiumError as exc:
        raise ExtractionError(f"pdfium cannot open the PDF: {exc}") from exc
    readers = _Readers(content, pdfium)
    try:
        yield readers
    finally:
        readers.close()


def _page_numbers(pages: PageRange | None, count: int) -> range:
    """Absolute page numbers to read: the range clipped to the document."""
    if pages is None:
        return range(1, count + 1)
    if pages.first < 1 or pages.first > count or pages.last < pages.first:
        raise ExtractionError(f"pages {pages.pages} are outside the document's {count} pages")
    return range(pages.first, min(pages.last, count) + 1)


# ---------------------------------------------------------------------------------------------
# Reading a page.


def _read(readers: _Readers, number: int) -> _PageRead:
    """One page: from PDFium's text page when it suffices, else through pdfplumber."""
    pdfium_page = readers.pdfium[number - 1]
    fast = read_page(pdfium_page)
    try:
        if not _fast_path_suffices(fast):
            return _read_page(readers.plumber.pages[number - 1], pdfium_page)
        read = _PageRead(
            number=number,
            width=fast.width,
            height=fast.height,
            has_text_layer=True,
            lines=[],
            images=[image for image in fast.images if _is_figure_sized(image)],
            engine=FAST_ENGINE,
        )
        words = fast.words
        if fast.may_hold_table:
            words = _read_tables(fast, read)
        read.lines = _lines_from_words(words)
        return read
    finally:
        close(fast)


def _read_tables(fast: PdfiumPage, read: _PageRead) -> list[dict[str, Any]]:
    """pdfplumber's table finder over PDFium's edges and the table areas' characters, kept as
    the pdfplumber path keeps them (`_is_tabular`); fills the tables of `read` and returns the
    words outside them."""
    view = PlumberView(fast)
    finder = TableFinder(view, TableSettings.resolve(None))  # what page.find_tables() runs
    found = [table for table in finder.tables if table.cells]
    if not found:
        return fast.words
    view.chars = chars_in(fast, [table.bbox for table in found])
    extracted = [(table, table.extract(x_tolerance_ratio=WORD_GAP)) for table in found]
    kept = [(table, rows) for table, rows in extracted if _is_tabular(rows)]
    read.tables = [table for table, _ in kept]
    read.table_texts = [rows for _, rows in kept]
    read.table_bold_rows = [
        _first_row_bold([char for char in view.chars if _touches(char, table.bbox)], table)
        for table in read.tables
    ]
    boxes = [table.bbox for table in read.tables]
    return [word for word in fast.words if not any(_centre_in(word, box) for box in boxes)]


def _touches(obj: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    """Whether an object overlaps `box` (pdfplumber's within_bbox with strict=False)."""
    x0, top, x1, bottom = box
    return obj["x1"] >= x0 and obj["x0"] <= x1 and obj["bottom"] >= top and obj["top"] <= bottom


def _centre_in(obj: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    """Whether an object's centre lies inside `box` (how table text leaves the paragraphs)."""
    x0, top, x1, bottom = box
    x = (obj["x0"] + obj["x1"]) / 2
    y = (obj["top"] + obj["bottom"]) / 2
    return x0 <= x <= x1 and top <= y <= bottom


def _fast_path_suffices(page: PdfiumPage) -> bool:
    """Whether PDFium's reading is the whole story: a trusted, fully mapped text layer with
    enough real characters (a usable one whatever its images), and ruling lines, if any, that
    it translated exactly. Anything else - and every decision about scans - is pdfplumber's."""
    return (
        page.trusted
        and page.edges is not None
        and page.unmapped_chars == 0
        and page.real_chars >= MIN_TEXT_CHARS
    )


def _read_page(page: PlumberPage, pdfium_page: pypdfium2.PdfPage) -> _PageRead:
    """Text lines (outside tables), tables and images of a page; OCR lines for a scan."""
    read = _PageRead(
        number=page.page_number,
        width=float(page.width),
        height=float(page.height),
        has_text_layer=_has_usable_text(page),
        lines=[],
        images=[image for image in page.images if _is_figure_sized(image)],
    )
    if read.has_text_layer:
        # Extracted now, while the page is parsed: after close() pdfplumber would parse it again.
        found = [
            (table, table.extract(x_tolerance_ratio=WORD_GAP))
            for table in page.find_tables()
            if table.cells
        ]
        kept = [(table, rows) for table, rows in found if _is_tabular(rows)]
        read.tables = [table for table, _ in kept]
        read.table_texts = [rows for _, rows in kept]
        read.table_bold_rows = [
            _first_row_bold(page.within_bbox(table.bbox, strict=False).chars, table)
            for table in read.tables
        ]
        words = _without_tables(page, read.tables).extract_words(
            extra_attrs=["size", "fontname"], keep_blank_chars=False, x_tolerance_ratio=WORD_GAP
        )
        read.lines = _lines_from_words(words)
    else:
        read.images = [image for image in read.images if not _is_scan(image, page)]
        read.lines = _ocr_lines(pdfium_page)
    page.close()  # pdfplumber caches parsed objects per page: free them batch by batch
    return read


def _has_usable_text(page: PlumberPage) -> bool:
    """Whether the text layer is real: enough mapped characters, or no scan-like image."""
    real = sum(1 for char in page.chars if char["text"].strip() and "(cid:" not in char["text"])
    unmapped = sum(1 for char in page.chars if "(cid:" in char["text"])
    if unmapped > real:  # glyphs without a Unicode mapping: the text layer is gibberish
        return False
    if real >= MIN_TEXT_CHARS:
        return True
    return not any(_is_scan(image, page) for image in page.images)


def _is_scan(image: dict[str, Any], page: PlumberPage) -> bool:
    """Whether an image covers enough of the page to be the page itself."""
    return _covers(image, float(page.width), float(page.height))


def _covers(image: dict[str, Any], page_width: float, page_height: float) -> bool:
    """Whether an image covers at least SCAN_COVERAGE of a page of this size."""
    width = min(image["x1"], page_width) - max(image["x0"], 0)
    height = min(image["bottom"], page_height) - max(image["top"], 0)
    return width > 0 and height > 0 and width * height >= SCAN_COVERAGE * page_width * page_height


def _is_figure_sized(image: dict[str, Any]) -> bool:
    """Whether an image is big enough to be a figure."""
    return (image["x1"] - image["x0"]) >= MIN_FIGURE_POINTS and (
        image["bottom"] - image["top"]
    ) >= MIN_FIGURE_POINTS


def _without_tables(page: PlumberPage, tables: list[PlumberTable]) -> PlumberPage:
    """The page without the characters inside `tables` (table text is emitted as cells)."""
    if not tables:
        return page
    boxes = [table.bbox for table in tables]

    def outside(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        x = (obj["x0"] + obj["x1"]) / 2
        y = (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    return page.filter(outside)


def _lines_from_words(words: list[dict[str, Any]]) -> list[TextLine]:
    """Words (pdfplumber's shape, from either reader) clustered into lines, split where a wide
    gap separates columns, in reading order."""
    rows: list[list[dict[str, Any]]] = []
    for word in sorted(words, key=lambda item: (round(item["top"]), item["x0"])):
        if rows and _same_line(rows[-1][0], word):
            rows[-1].append(word)
        else:
            rows.append([word])
    lines = [line for row in rows for line in _split_columns(row)]
    return sort_reading_order(lines)


def _same_line(first: dict[str, Any], word: dict[str, Any]) -> bool:
    """Whether two words share a baseline (their centres within a third of the text size)."""
    centre = (first["top"] + first["bottom"]) / 2
    other = (word["top"] + word["bottom"]) / 2
    return abs(centre - other) < min(first["size"], word["size"]) / 3


def _split_columns(row: list[dict[str, Any]]) -> list[TextLine]:
    """A row of words as one line per column (words far apart belong to different columns)."""
    row = sorted(row, key=lambda word: word["x0"])
    groups: list[list[dict[str, Any]]] = [[row[0]]]
    for word in row[1:]:
        previous = groups[-1][-1]
        if word["x0"] - previous["x1"] > COLUMN_GAP * max(previous["size"], word["size"]):
            groups.append([word])
        else:
            groups[-1].append(word)
    return [_line(group) for group in groups]


def _line(words: list[dict[str, Any]]) -> TextLine:
    """A line made of words: its text, box, dominant size and weight."""
    weights = Counter()
    for word in words:
        weights[bool(BOLD_FONT.search(word["fontname"]))] += len(word["text"])
    return TextLine(
        text=" ".join(word["text"] for word in words),
        left=min(word["x0"] for word in words),
        top=min(word["top"] for word in words),
        right=max(word["x1"] for word in words),
        bottom=max(word["bottom"] for word in words),
        size=round(statistics.median(word["size"] for word in words), 1),
        bold=weights[True] > weights[False],
    )


def _ocr_lines(pdfium_page: pypdfium2.PdfPage) -> list[TextLine]:
    """OCR lines of the rendered page, boxes in points."""
    image = pdfium_page.render(scale=OCR_SCALE).to_pil()
    return read_lines(image, scale=OCR_SCALE)


def _is_tabular(rows: list[list[str | None]]) -> bool:
    """Whether ruled boxes hold a table: at least two rows have two cells with text. Shaded
    frames and boxed layouts (a slide's title, body and footer bars; a framed note) find
    "tables" whose rows are one merged cell each, bar perhaps a split footer line; their text
    is read as paragraphs instead."""
    return sum(sum(1 for cell in row if cell and cell.strip()) >= 2 for row in rows) >= 2


def _first_row_bold(chars: list[dict[str, Any]], table: PlumberTable) -> bool:
    """Whether the first row is set in bold while the rest of the table is not (`chars`: those
    touching the table: one found at the page edge may overhang the page box by a rounding
    error)."""
    first = table.rows[0].bbox
    head = [char for char in chars if first[1] <= char["top"] < first[3] and char["text"].strip()]
    body = [char for char in chars if char["top"] >= first[3] and char["text"].strip()]
    head_bold = bool(head) and all(BOLD_FONT.search(char["fontname"]) for char in head)
    body_bold = bool(body) and all(BOLD_FONT.search(char["fontname"]) for char in body)
    return head_bold and not body_bold


# ---------------------------------------------------------------------------------------------
# Range-wide signals: body text size and running headers/footers.


def _body_size(reads: list[_PageRead]) -> float | None:
    """The text size most characters are set in across the range (None without text)."""
    sizes: Counter[float] = Counter()
    for read in reads:
        if read.has_text_layer:
            for line in read.lines:
                sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else None


def _furniture_roles(reads: list[_PageRead]) -> dict[tuple[int, int], str]:
    """Roles of margin lines, keyed by (page, line index): page numbers by their pattern,
    headers and footers by repeating (digits aside) on two pages or more of the range."""
    candidates: list[tuple[int, int, str, str]] = []  # page, index, band, normalised text
    for read in reads:
        for index, line in enumerate(read.lines):
            band = _margin_band(line, read.height)
            if band:
                candidates.append((read.number, index, band, _normalise(line.text)))
    pages_by_text: dict[tuple[str, str], set[int]] = {}
    for page, _, band, text in candidates:
        pages_by_text.setdefault((band, text), set()).add(page)
    roles = {}
    for page, index, band, text in candidates:
        if PAGE_NUMBER_TEXT.match(text):
            roles[(page, index)] = PAGE_NUMBER
        elif len(pages_by_text[(band, text)]) >= 2:
            roles[(page, index)] = PAGE_HEADER if band == "top" else PAGE_FOOTER
    return roles


def _margin_band(line: TextLine, page_height: float) -> str | None:
    """ "top" or "bottom" when the line sits in the page's header or footer band."""
    if line.bottom <= page_height * MARGIN_BAND:
        return "top"
    if line.top >= page_height * (1 - MARGIN_BAND):
        return "bottom"
    return None


def _normalise(text: str) -> str:
    """Text compared across pages: lower case, digits as '#', single spaces."""
    return re.sub(r"\d+", "#", " ".join(text.lower().split()))


# ---------------------------------------------------------------------------------------------
# Emitting layout elements.


def _emit_page(
    builder: LayoutBuilder,
    read: _PageRead,
    pdfium_page: pypdfium2.PdfPage,
    body_size: float | None,
    furniture: dict[tuple[int, int], str],
) -> None:
    """Adds the page and its paragraphs, tables and figures in reading (top-down) order."""
    builder.add_page(
        Page(
            number=read.number,
            engine=read.engine if read.has_text_layer else OCR_ENGINE,
            width=read.width,
            height=read.height,
            unit="point",
            has_text_layer=read.has_text_layer,
        )
    )
    blocks = _paragraph_blocks(read, furniture)
    roles = _paragraph_roles(read, blocks, body_size)
    captions = _figure_captions(read, blocks)
    items: list[tuple[float, int, Any]] = []
    items += [
        (block[1][0].top, 0, (block, role)) for block, role in zip(blocks, roles, strict=True)
    ]
    items += [
        (table.bbox[1], 1, (table, bold, texts))
        for table, bold, texts in zip(
            read.tables, read.table_bold_rows, read.table_texts, strict=True
        )
    ]
    items += [(image["top"], 2, image) for image in read.images]
    for _, kind, payload in sorted(items, key=lambda item: (item[0], item[1])):
        if kind == 0:
            _emit_paragraph(builder, read.number, payload)
        elif kind == 1:
            _emit_table(builder, read.number, *payload)
        else:
            _emit_figure(builder, read, pdfium_page, payload, captions.get(id(payload)))


def _paragraph_blocks(
    read: _PageRead, furniture: dict[tuple[int, int], str]
) -> list[tuple[str | None, list[TextLine]]]:
    """Furniture lines as their own blocks (with their role), the rest grouped in paragraphs."""
    blocks: list[tuple[str | None, list[TextLine]]] = []
    body = []
    for index, line in enumerate(read.lines):
        role = furniture.get((read.number, index))
        if role:
            blocks.append((role, [line]))
        else:
            body.append(line)
    blocks += [(None, group) for group in group_lines(body)]
    return sorted(blocks, key=lambda block: (block[1][0].top, block[1][0].left))


def _paragraph_roles(
    read: _PageRead,
    blocks: list[tuple[str | None, list[TextLine]]],
    body_size: float | None,
) -> list[tuple[str | None, int | None]]:
    """(role, heading level) per block: furniture as found, headings by size and weight, and
    the first paragraph of page 1 as the title when it is the largest text there."""
    if not read.has_text_layer:
        # OCR boxes measure ink plus padding, not font sizes: no heading signal to trust.
        return [(role, None) for role, _ in blocks]
    roles = [(role, None) if role else _heading(lines, body_size) for role, lines in blocks]
    if read.number != 1 or body_size is None:
        return roles
    body = [index for index, (role, _) in enumerate(blocks) if role is None]
    if body:
        first = body[0]
        largest = max(_size(blocks[index][1]) for index in body)
        if _size(blocks[first][1]) >= largest and _size(blocks[first][1]) >= 1.5 * body_size:
            roles[first] = (TITLE, None)
    return roles


def _heading(lines: list[TextLine], body_size: float | None) -> tuple[str | None, int | None]:
    """(sectionHeading, level) when a block looks like a heading, else (None, None).

    Levels come from the size relative to body text (not from ranking the sizes seen), so they
    agree between page batches of one document.
    """
    if body_size is None:
        return None, None
    text = join_text(lines)
    ratio = _size(lines) / body_size
    short = len(text.split()) <= 20 and len(lines) <= 3
    if ratio >= 1.6 and short:
        return SECTION_HEADING, 1
    if ratio >= 1.3 and short:
        return SECTION_HEADING, 2
    if ratio >= 1.15 and short:
        return SECTION_HEADING, 3
    bold_label = all(line.bold for line in lines) and len(text.split()) <= 12
    if ratio >= 0.95 and bold_label and len(lines) == 1 and not text.endswith((".", ",", ";")):
        return SECTION_HEADING, 4
    return None, None


def _size(lines: list[TextLine]) -> float:
    """The median text size of lines."""
    return statistics.median(line.size for line in lines)


def _figure_captions(
    read: _PageRead, blocks: list[tuple[str | None, list[TextLine]]]
) -> dict[int, str]:
    """Caption text per image (keyed by id()): a "Figure N..." paragraph just below it."""
    captions = {}
    for image in read.images:
        for role, lines in blocks:
            text = join_text(lines)
            distance = lines[0].top - image["bottom"]
            if role is None and 0 <= distance <= CAPTION_DISTANCE and CAPTION.match(text):
                captions[id(image)] = text
                break
    return captions


def _emit_paragraph(
    builder: LayoutBuilder,
    page: int,
    payload: tuple[tuple[str | None, list[TextLine]], tuple[str | None, int | None]],
) -> None:
    """Adds one paragraph block with its role and region."""
    (_, lines), (role, level) = payload
    left, top, right, bottom = bounding_box(lines)
    region = Region(page, round(left, 2), round(top, 2), round(right, 2), round(bottom, 2))
    builder.add_paragraph(join_text(lines), page, role, level, region)


def _emit_table(
    builder: LayoutBuilder,
    page: int,
    table: PlumberTable,
    bold: bool,
    texts: list[list[str | None]],
) -> None:
    """Adds a ruled table: cells placed on the grid the ruling lines form, spans included."""
    cells = _table_cells(table, texts)
    grid = [["" for _ in range(max(c.column + c.column_span for c in cells))] for _ in table.rows]
    for cell in cells:
        grid[cell.row][cell.column] = cell.content
    if looks_like_header(grid, first_row_bold=bold):
        mark_header_row(cells)
    x0, top, x1, bottom = table.bbox
    builder.add_table(
        page, cells, Region(page, round(x0, 2), round(top, 2), round(x1, 2), round(bottom, 2))
    )


def _table_cells(table: PlumberTable, texts: list[list[str | None]]) -> list[TableCell]:
    """Cells with row/column spans measured against the table's distinct cell edges."""
    boxes = [box for row in table.rows for box in row.cells if box is not None]
    xs = sorted({round(value, 1) for box in boxes for value in (box[0], box[2])})
    ys = sorted({round(value, 1) for box in boxes for value in (box[1], box[3])})
    cells, seen = [], set()
    for row_index, row in enumerate(table.rows):
        for column_index, box in enumerate(row.cells):
            if box is None or box in seen:
                continue
            seen.add(box)
            left, right = xs.index(round(box[0], 1)), xs.index(round(box[2], 1))
            top, bottom = ys.index(round(box[1], 1)), ys.index(round(box[3], 1))
            text = texts[row_index][column_index] or ""
            cells.append(
                TableCell(
                    row=top,
                    column=left,
                    content=" ".join(text.split()),
                    row_span=max(bottom - top, 1),
                    column_span=max(right - left, 1),
                )
            )
    return cells


def _emit_figure(
    builder: LayoutBuilder,
    read: _PageRead,
    pdfium_page: pypdfium2.PdfPage,
    image: dict[str, Any],
    caption: str | None,
) -> None:
    """Adds an image as a figure: its region clipped to the page, rendered as PNG."""
    left, top = max(image["x0"], 0.0), max(image["top"], 0.0)
    right, bottom = min(image["x1"], read.width), min(image["bottom"], read.height)
    if right - left < 1 or bottom - top < 1:
        return
    native = image["srcsize"][0] / max(image["x1"] - image["x0"], 1.0)
    scale = min(max(native, 1.0), MAX_FIGURE_SCALE)
    scale = min(scale, MAX_FIGURE_PIXELS / max(right - left, bottom - top))
    # pypdfium2 crops by the amount to cut from each side (left, bottom, right, top).
    crop = (left, read.height - bottom, read.width - right, top)
    picture = pdfium_page.render(scale=scale, crop=crop).to_pil()
    region = Region(read.number, round(left, 2), round(top, 2), round(right, 2), round(bottom, 2))
    builder.add_figure(read.number, picture, region, caption)
