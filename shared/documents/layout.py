"""The one normalised layout model every extraction engine produces.

Modelled on Document Intelligence's `AnalyzeResult` (pages, paragraphs with roles, tables with
cells, figures with regions), trimmed to what chunking and indexing read. Engines convert into
it; nothing downstream knows which engine ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Paragraph roles, as Document Intelligence names them.
TITLE = "title"
SECTION_HEADING = "sectionHeading"
PAGE_HEADER = "pageHeader"
PAGE_FOOTER = "pageFooter"
PAGE_NUMBER = "pageNumber"
FOOTNOTE = "footnote"
FORMULA = "formulaBlock"
PAGE_FURNITURE = frozenset({PAGE_HEADER, PAGE_FOOTER, PAGE_NUMBER})

# Table cell kinds, as Document Intelligence names them.
CONTENT = "content"
COLUMN_HEADER = "columnHeader"
ROW_HEADER = "rowHeader"
STUB_HEAD = "stubHead"


@dataclass(frozen=True)
class Region:
    """Where an element sits on its page: a box in the page's unit (points, pixels)."""

    page: int
    left: float
    top: float
    right: float
    bottom: float


@dataclass
class Page:
    """One page (a PDF page, a slide, a TIFF frame, an image, a DOCX page break section)."""

    number: int  # 1-based
    engine: str  # which extractor read it, e.g. "pdfplumber", "rapidocr", "document-intelligence"
    width: float | None = None
    height: float | None = None
    unit: str | None = None  # "point", "pixel", "inch", or None for Office/text formats
    has_text_layer: bool = True
    cost_usd: float = 0.0  # what reading this page cost (cloud engines), for the status
    word_count: int = 0


@dataclass
class Paragraph:
    """A block of text in reading order; headings carry a level (1 = top)."""

    text: str
    page: int
    order: int  # reading order within the page
    role: str | None = None
    heading_level: int | None = None
    region: Region | None = None


@dataclass
class TableCell:
    """One cell; spans and kinds follow Document Intelligence's table model."""

    row: int
    column: int
    content: str
    row_span: int = 1
    column_span: int = 1
    kind: str = CONTENT


@dataclass
class Table:
    """A table, possibly continued over several pages (merged into one)."""

    id: str
    page: int  # where it starts
    order: int
    row_count: int
    column_count: int
    cells: list[TableCell]
    pages: list[int] = field(default_factory=list)
    caption: str | None = None
    region: Region | None = None
    row_pages: list[int] = field(default_factory=list)  # each row's page; empty: all on `page`

    def row_page(self, row: int) -> int:
        """The page row `row` was printed on (a continued table's rows keep theirs)."""
        return self.row_pages[row] if row < len(self.row_pages) else self.page

    def grid(self) -> list[list[str]]:
        """The cell texts as rows by columns, spanned cells repeated in each slot they cover."""
        rows = [["" for _ in range(self.column_count)] for _ in range(self.row_count)]
        for cell in self.cells:
            for row in range(cell.row, min(cell.row + cell.row_span, self.row_count)):
                for column in range(
                    cell.column, min(cell.column + cell.column_span, self.column_count)
                ):
                    rows[row][column] = cell.content
        return rows

    def header_rows(self) -> int:
        """How many leading rows are column headers."""
        count = 0
        for row in range(self.row_count):
            kinds = {cell.kind for cell in self.cells if cell.row == row}
            if kinds and kinds <= {COLUMN_HEADER, STUB_HEAD}:
                count += 1
            else:
                break
        return count


@dataclass
class FigureDescription:
    """What a figure shows: a caption, tags and the text read inside it."""

    caption: str | None
    tags: list[str]
    text: str
    source: str  # "image-analysis" (Azure Vision) or "local" (OCR + image properties)


@dataclass
class Figure:
    """An image region: cropped to PNG, stored by hash, described later."""

    id: str
    page: int
    order: int
    region: Region | None = None
    image_sha256: str | None = None  # the PNG's hash: the figure-description cache key
    image_blob: str | None = None  # where the cropped PNG is stored
    width_px: int | None = None
    height_px: int | None = None
    caption: str | None = None  # a caption printed in the document, if any
    description: FigureDescription | None = None
    skipped: str | None = None  # why it is not described (tiny, decorative), if so


@dataclass
class Layout:
    """A document's (or a page range's) extracted content."""

    pages: list[Page] = field(default_factory=list)
    paragraphs: list[Paragraph] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for blobs and activity payloads)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        """The inverse of `to_json`."""

        def region(value: dict[str, Any] | None) -> Region | None:
            return Region(**value) if value else None

        return cls(
            pages=[Page(**item) for item in data.get("pages", [])],
            paragraphs=[
                Paragraph(**{**item, "region": region(item.get("region"))})
                for item in data.get("paragraphs", [])
            ],
            tables=[
                Table(
                    **{
                        **item,
                        "cells": [TableCell(**cell) for cell in item["cells"]],
                        "region": region(item.get("region")),
                    }
                )
                for item in data.get("tables", [])
            ],
            figures=[
                Figure(
                    **{
                        **item,
                        "region": region(item.get("region")),
                        "description": FigureDescription(**item["description"])
                        if item.get("description")
                        else None,
                    }
                )
                for item in data.get("figures", [])
            ],
        )

    def extend(self, other: Layout) -> None:
        """Appends another page range's layout (callers merge ranges in page order)."""
        self.pages.extend(other.pages)
        self.paragraphs.extend(other.paragraphs)
        self.tables.extend(other.tables)
        self.figures.extend(other.figures)


@dataclass(frozen=True)
class SourceDocument:
    """The bytes to extract from, with the type detected by validation."""

    name: str
    media_type: str
    content: bytes
    page_count: int


@dataclass(frozen=True)
class PageRange:
    """Pages `first`..`last` inclusive, 1-based."""

    first: int
    last: int

    def __iter__(self):
        return iter(range(self.first, self.last + 1))

    @property
    def pages(self) -> str:
        """Document Intelligence's `pages=` form, e.g. "21-40"."""
        return f"{self.first}-{self.last}"


@dataclass
class ExtractedLayout:
    """An engine's output for one page range: the layout, and figure images not yet stored."""

    layout: Layout
    figure_images: dict[str, bytes] = field(default_factory=dict)  # figure id -> PNG bytes
