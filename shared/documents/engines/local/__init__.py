"""The local engine: fully offline extraction into the normalised `Layout`.

`LocalEngine.extract` dispatches on the media type to one module per format (pdf, docx, pptx,
images, text); those modules are imported on first use so a text upload never loads OCR models.
The format modules share the building blocks below (`LayoutBuilder`, table header heuristics,
PNG encoding), which is why they live in the package itself.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from shared.documents.detect import (
    BMP,
    DOCX,
    GIF,
    HTML,
    JPEG,
    MARKDOWN,
    PDF,
    PNG,
    PPTX,
    TEXT,
    TIFF,
    ZIP,
)
from shared.documents.engines.base import ExtractionError
from shared.documents.layout import (
    COLUMN_HEADER,
    ExtractedLayout,
    Figure,
    Layout,
    Page,
    PageRange,
    Paragraph,
    Region,
    SourceDocument,
    Table,
    TableCell,
)

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LocalEngine", "pdf_text_layer_pages"]

# ZIP: what magic-byte detection reports for an Office file it could not tell apart.
IMAGE_TYPES = frozenset({PNG, JPEG, GIF, BMP, "image/x-ms-bmp", TIFF})
PLAIN = TEXT
MARKDOWN_TYPES = frozenset({MARKDOWN, "text/x-markdown"})
HTML_TYPES = frozenset({HTML, "application/xhtml+xml"})

Extractor = Callable[[bytes, PageRange | None], ExtractedLayout]


class LocalEngine:
    """Extracts documents offline: pdfplumber, rapidocr, python-docx, python-pptx, html.parser."""

    name = "local"

    async def extract(self, source: SourceDocument, pages: PageRange | None) -> ExtractedLayout:
        """Reads `pages` (None: the whole document) of `source`."""
        extractor = _extractor_for(source)
        try:
            return await asyncio.to_thread(extractor, source.content, pages)
        except ExtractionError:
            raise
        except Exception as exc:
            # Parsers raise a zoo of types on damaged files (PDFSyntaxError, BadZipFile,
            # UnidentifiedImageError, KeyError...): all mean this file cannot be read.
            raise ExtractionError(
                f"{source.name}: cannot read as {source.media_type}: {exc}"
            ) from exc


def pdf_text_layer_pages(content: bytes, pages: PageRange) -> dict[int, bool]:
    """For each page of `pages` (absolute numbers), whether the PDF has a usable text layer.

    CPU-bound (a few ms per page): async callers run it with `asyncio.to_thread`.
    """
    from shared.documents.engines.local import pdf

    try:
        return pdf.text_layer_pages(content, pages)
    except ExtractionError:
        raise
    except Exception as exc:
        raise ExtractionError(f"cannot read the PDF: {exc}") from exc


def _extractor_for(source: SourceDocument) -> Extractor:
    """The function that reads this media type (Office zips are told apart by their parts)."""
    media_type = source.media_type.split(";")[0].strip().lower()
    if media_type == ZIP:
        media_type = _office_type(source.content)
    if media_type == PDF:
        from shared.documents.engines.local import pdf

        return pdf.extract
    if media_type in IMAGE_TYPES:
        from shared.documents.engines.local import images

        return images.extract
    whole_document = _whole_document_extractor(media_type)
    if whole_document is None:
        raise ExtractionError(f"{source.name}: the local engine cannot read {media_type}")
    return lambda content, pages: restrict(whole_document(content), pages)


def _whole_document_extractor(media_type: str) -> Callable[[bytes], ExtractedLayout] | None:
    """Readers of formats that are parsed whole (their pages come from breaks, or are one)."""
    if media_type == DOCX:
        from shared.documents.engines.local import docx

        return docx.extract
    if media_type == PPTX:
        from shared.documents.engines.local import pptx

        return pptx.extract
    from shared.documents.engines.local import text

    if media_type == PLAIN:
        return text.extract_plain
    if media_type in MARKDOWN_TYPES:
        return text.extract_markdown
    if media_type in HTML_TYPES:
        return text.extract_html
    return None


def _office_type(content: bytes) -> str:
    """DOCX or PPTX by the zip's main part; the zip type itself when it is neither."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"not a readable zip archive: {exc}") from exc
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    return ZIP


def restrict(extracted: ExtractedLayout, pages: PageRange | None) -> ExtractedLayout:
    """Only the elements on `pages` (for formats that are always read whole)."""
    if pages is None:
        return extracted
    wanted = set(pages)
    layout = extracted.layout
    figures = [figure for figure in layout.figures if figure.page in wanted]
    return ExtractedLayout(
        layout=Layout(
            pages=[page for page in layout.pages if page.number in wanted],
            paragraphs=[item for item in layout.paragraphs if item.page in wanted],
            tables=[table for table in layout.tables if table.page in wanted],
            figures=figures,
        ),
        figure_images={figure.id: extracted.figure_images[figure.id] for figure in figures},
    )


# ---------------------------------------------------------------------------------------------
# Building blocks shared by the format modules.


class LayoutBuilder:
    """Accumulates one extraction: reading order per page, stable ids and figure PNGs."""

    def __init__(self) -> None:
        self.layout = Layout()
        self.figure_images: dict[str, bytes] = {}
        self._order: Counter[int] = Counter()
        self._tables: Counter[int] = Counter()
        self._figures: Counter[int] = Counter()

    def add_page(self, page: Page) -> None:
        """Records a page (call in page order)."""
        self.layout.pages.append(page)

    def add_paragraph(
        self,
        text: str,
        page: int,
        role: str | None = None,
        heading_level: int | None = None,
        region: Region | None = None,
    ) -> Paragraph | None:
        """Appends a paragraph; blank text is dropped (None)."""
        text = text.strip()
        if not text:
            return None
        paragraph = Paragraph(text, page, self._next_order(page), role, heading_level, region)
        self.layout.paragraphs.append(paragraph)
        return paragraph

    def add_table(
        self,
        page: int,
        cells: list[TableCell],
        region: Region | None = None,
        caption: str | None = None,
    ) -> Table | None:
        """Appends a table with id `p{page}-t{n}`; a table with no text is dropped (None)."""
        if not any(cell.content.strip() for cell in cells):
            return None
        self._tables[page] += 1
        table = Table(
            id=f"p{page}-t{self._tables[page]}",
            page=page,
            order=self._next_order(page),
            row_count=max(cell.row + cell.row_span for cell in cells),
            column_count=max(cell.column + cell.column_span for cell in cells),
            cells=sorted(cells, key=lambda cell: (cell.row, cell.column)),
            pages=[page],
            caption=caption,
            region=region,
        )
        self.layout.tables.append(table)
        return table

    def add_figure(
        self,
        page: int,
        image: Image.Image,
        region: Region | None = None,
        caption: str | None = None,
    ) -> Figure:
        """Appends a figure with id `p{page}-f{n}` and keeps its PNG bytes."""
        self._figures[page] += 1
        figure = Figure(
            id=f"p{page}-f{self._figures[page]}",
            page=page,
            order=self._next_order(page),
            region=region,
            width_px=image.width,
            height_px=image.height,
            caption=caption,
        )
        self.layout.figures.append(figure)
        self.figure_images[figure.id] = png_bytes(image)
        return figure

    def result(self) -> ExtractedLayout:
        """The extraction, with each page's word count filled in."""
        words: Counter[int] = Counter()
        for paragraph in self.layout.paragraphs:
            words[paragraph.page] += len(paragraph.text.split())
        for table in self.layout.tables:
            words[table.page] += sum(len(cell.content.split()) for cell in table.cells)
        for page in self.layout.pages:
            page.word_count = words[page.number]
        return ExtractedLayout(self.layout, self.figure_images)

    def _next_order(self, page: int) -> int:
        """The next reading-order position on `page` (shared by paragraphs, tables, figures)."""
        order = self._order[page]
        self._order[page] += 1
        return order


def png_bytes(image: Image.Image) -> bytes:
    """`image` encoded as PNG (modes PNG cannot hold, such as CMYK, converted to RGB)."""
    if image.mode not in {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# Signs, currencies and separators written as escapes: some look like ASCII ones.
_MINUS = "\\-\u2212"  # hyphen-minus, minus sign
_APOSTROPHES = "'\u2019"  # thousands separators in Swiss formats
_NUMBER = re.compile(
    rf"^[\s(+{_MINUS}]*[$€£¥]?\s*\d[\d\s.,{_APOSTROPHES}]*(%|[kmb])?\s*\)?[$€£¥]?$", re.IGNORECASE
)


def is_numeric(text: str) -> bool:
    """Whether a cell holds a number (currency, thousands separators, percent allowed)."""
    return bool(_NUMBER.match(text.strip()))


def looks_like_header(rows: Sequence[Sequence[str]], first_row_bold: bool = False) -> bool:
    """Whether the first row of a grid is a column header.

    Yes when it is bold (and the body is not), or when it has no numbers while some column
    below it does; a lone row is never a header.
    """
    if len(rows) < 2 or not any(text.strip() for text in rows[0]):
        return False
    if first_row_bold:
        return True
    if any(is_numeric(text) for text in rows[0] if text.strip()):
        return False
    return any(
        is_numeric(row[column])
        for row in rows[1:]
        for column in range(min(len(row), len(rows[0])))
        if row[column].strip()
    )


def mark_header_row(cells: list[TableCell]) -> None:
    """Marks every cell of row 0 as a column header."""
    for cell in cells:
        if cell.row == 0:
            cell.kind = COLUMN_HEADER


def cells_from_grid(rows: Sequence[Sequence[str]], header: bool) -> list[TableCell]:
    """Cells of a grid with no spans (ragged rows padded with empty cells)."""
    width = max((len(row) for row in rows), default=0)
    cells = [
        TableCell(row=row_index, column=column, content=row[column] if column < len(row) else "")
        for row_index, row in enumerate(rows)
        for column in range(width)
    ]
    if header:
        mark_header_row(cells)
    return cells
