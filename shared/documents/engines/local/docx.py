"""DOCX: paragraphs with heading styles, tables with merged cells and inline pictures, in body
order. Word documents have no fixed pages: page numbers come from explicit page breaks,
page-starting section breaks and the breaks Word recorded when it last laid the file out.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import docx
from docx.document import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml.ns import qn
from docx.styles.style import BaseStyle
from lxml.etree import _Element
from PIL import Image, UnidentifiedImageError

from shared.documents.engines.local import LayoutBuilder, looks_like_header, mark_header_row
from shared.documents.layout import (
    COLUMN_HEADER,
    SECTION_HEADING,
    TITLE,
    ExtractedLayout,
    Page,
    TableCell,
)

ENGINE = "python-docx"
HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)
TEXT_TAGS = {qn("w:t"): None, qn("w:tab"): "\t", qn("w:cr"): "\n", qn("w:noBreakHyphen"): "-"}
BREAK = qn("w:br")
RENDERED_BREAK = qn("w:lastRenderedPageBreak")
BLIP = qn("a:blip")
VML_IMAGE = "{urn:schemas-microsoft-com:vml}imagedata"
EMBED = qn("r:embed")
RELATIONSHIP_ID = qn("r:id")
PAGE_STARTING_SECTIONS = {"nextPage", "evenPage", "oddPage"}


@dataclass
class _Pager:
    """Tracks the current page while walking the body in order."""

    page: int = 1
    content_since_break: bool = False
    last_page: int = 1

    def hard_break(self) -> None:
        """An explicit page break or a page-starting section break."""
        self._advance()

    def rendered_break(self) -> None:
        """A break Word recorded while laying out; ignored right after another break, where Word
        also records one for the page the explicit break already started."""
        if self.content_since_break:
            self._advance()

    def saw_content(self) -> None:
        """Text, a table or a picture was placed on the current page."""
        self.content_since_break = True

    def _advance(self) -> None:
        self.page += 1
        self.last_page = max(self.last_page, self.page)
        self.content_since_break = False


@dataclass
class _Walker:
    """The state of one walk through the document body."""

    document: Document
    styles: dict[str | None, BaseStyle]
    builder: LayoutBuilder = field(default_factory=LayoutBuilder)
    pager: _Pager = field(default_factory=_Pager)
    section_types: list[str] = field(default_factory=list)
    sections_seen: int = 0


def extract(content: bytes) -> ExtractedLayout:
    """The layout of the whole DOCX in `content`."""
    document = docx.Document(io.BytesIO(content))
    walker = _Walker(document, _paragraph_styles(document), section_types=_section_types(document))
    for element in _block_items(document.element.body):
        if element.tag == qn("w:p"):
            _walk_paragraph(walker, element)
        elif element.tag == qn("w:tbl"):
            _walk_table(walker, element)
    for number in range(1, walker.pager.last_page + 1):
        walker.builder.add_page(Page(number=number, engine=ENGINE))
    walker.builder.layout.pages.sort(key=lambda page: page.number)
    return walker.builder.result()


def _block_items(parent: _Element) -> Iterator[_Element]:
    """Paragraphs and tables in body order, looking inside content controls (w:sdt)."""
    for child in parent.iterchildren():
        if child.tag in (qn("w:p"), qn("w:tbl")):
            yield child
        elif child.tag == qn("w:sdt"):
            content = child.find(qn("w:sdtContent"))
            if content is not None:
                yield from _block_items(content)


def _section_types(document: Document) -> list[str]:
    """Each section's start type in order (the body's final sectPr is the last section)."""
    types = []
    for sect_pr in document.element.body.iter(qn("w:sectPr")):
        start = sect_pr.find(qn("w:type"))
        types.append(start.get(qn("w:val")) if start is not None else "nextPage")
    return types


# ---------------------------------------------------------------------------------------------
# Paragraphs.


def _walk_paragraph(walker: _Walker, element: _Element) -> None:
    """Emits a paragraph, split where page breaks fall inside it, and its pictures."""
    role, level = _paragraph_role(walker.styles, element)
    if _has_page_break_before(element) and walker.pager.content_since_break:
        walker.pager.hard_break()
    text = ""
    for node in element.iter():
        if node.tag in TEXT_TAGS:
            text += TEXT_TAGS[node.tag] or node.text or ""
        elif node.tag == BREAK:
            text = _on_break(walker, node, text, role, level)
        elif node.tag == RENDERED_BREAK:
            _flush(walker, text, role, level)
            text = ""
            walker.pager.rendered_break()
        elif node.tag in (BLIP, VML_IMAGE):
            _flush(walker, text, role, level)
            text = ""
            _add_picture(walker, node)
    _flush(walker, text, role, level)
    _end_section_if_any(walker, element)


def _on_break(
    walker: _Walker, node: _Element, text: str, role: str | None, level: int | None
) -> str:
    """Handles a w:br: a page break flushes the text so far; a line break is a newline."""
    if node.get(qn("w:type")) == "page":
        _flush(walker, text, role, level)
        walker.pager.hard_break()
        return ""
    return text if node.get(qn("w:type")) == "column" else text + "\n"


def _flush(walker: _Walker, text: str, role: str | None, level: int | None) -> None:
    """Adds the text gathered so far as a paragraph on the current page."""
    if text.strip():
        walker.builder.add_paragraph(text, walker.pager.page, role, level)
        walker.pager.saw_content()


def _end_section_if_any(walker: _Walker, element: _Element) -> None:
    """A paragraph holding a sectPr ends a section: a page starts when the next one says so."""
    p_pr = element.find(qn("w:pPr"))
    if p_pr is None or p_pr.find(qn("w:sectPr")) is None:
        return
    walker.sections_seen += 1
    following = walker.section_types[walker.sections_seen : walker.sections_seen + 1]
    if following and following[0] in PAGE_STARTING_SECTIONS:
        walker.pager.hard_break()


def _has_page_break_before(element: _Element) -> bool:
    """Whether the paragraph's own properties start it on a new page."""
    p_pr = element.find(qn("w:pPr"))
    flag = p_pr.find(qn("w:pageBreakBefore")) if p_pr is not None else None
    return flag is not None and flag.get(qn("w:val"), "true") not in ("0", "false", "off")


def _paragraph_styles(document: Document) -> dict[str | None, BaseStyle]:
    """Paragraph styles by id; key None is the default paragraph style."""
    styles = {
        style.style_id: style for style in document.styles if style.type == WD_STYLE_TYPE.PARAGRAPH
    }
    styles[None] = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    return styles


def _paragraph_role(
    styles: dict[str | None, BaseStyle], element: _Element
) -> tuple[str | None, int | None]:
    """(role, heading level) from the paragraph's style chain or its outline level."""
    p_pr = element.find(qn("w:pPr"))
    style_id = None
    if p_pr is not None and p_pr.find(qn("w:pStyle")) is not None:
        style_id = p_pr.find(qn("w:pStyle")).get(qn("w:val"))
    style = styles.get(style_id)
    while style is not None:
        name = style.name or ""
        if name.lower() == "title":
            return TITLE, None
        match = HEADING_STYLE.match(name)
        if match:
            return SECTION_HEADING, int(match.group(1))
        level = _outline_level(style.element.find(qn("w:pPr")))
        if level is not None:
            return SECTION_HEADING, level
        style = style.base_style
    level = _outline_level(p_pr)
    return (SECTION_HEADING, level) if level is not None else (None, None)


def _outline_level(p_pr: _Element | None) -> int | None:
    """The 1-based outline level a paragraph or style declares (9 means body text)."""
    if p_pr is None or p_pr.find(qn("w:outlineLvl")) is None:
        return None
    value = int(p_pr.find(qn("w:outlineLvl")).get(qn("w:val"), "9"))
    return value + 1 if value < 9 else None


def _add_picture(walker: _Walker, node: _Element) -> None:
    """Adds the picture a blip (or VML image) points at, when Pillow can decode it."""
    relationship = node.get(EMBED) or node.get(RELATIONSHIP_ID)
    part = walker.document.part.related_parts.get(relationship) if relationship else None
    if part is None:
        return
    try:
        image = Image.open(io.BytesIO(part.blob))
        image.load()
    except (UnidentifiedImageError, OSError):
        return  # EMF/WMF/SVG cannot be rasterised offline: no PNG, so no figure
    walker.builder.add_figure(walker.pager.page, image)
    walker.pager.saw_content()


# ---------------------------------------------------------------------------------------------
# Tables.


def _walk_table(walker: _Walker, element: _Element) -> None:
    """Emits a table on the page it starts on; rendered breaks inside it move the page on."""
    rows = element.findall(qn("w:tr"))
    # A break Word recorded in the first row means the table itself starts the new page.
    for _ in rows[0].iter(RENDERED_BREAK) if rows else ():
        walker.pager.rendered_break()
    start = walker.pager.page
    cells, header_rows, bold_first = _table_cells(element)
    if header_rows or looks_like_header(_grid(cells), first_row_bold=bold_first):
        mark_header_row(cells)
    table = walker.builder.add_table(start, cells)
    walker.pager.saw_content()
    for row in rows[1:]:
        for _ in row.iter(RENDERED_BREAK):
            walker.pager.rendered_break()
    if table is not None:
        table.pages = list(range(start, walker.pager.page + 1))


def _table_cells(element: _Element) -> tuple[list[TableCell], int, bool]:
    """Cells with spans from gridSpan and vMerge; the count of rows marked as repeating
    headers; whether the whole first row is bold."""
    cells: list[TableCell] = []
    open_merges: dict[int, TableCell] = {}  # grid column -> cell a vMerge continues
    header_rows = 0
    rows = element.findall(qn("w:tr"))
    for row_index, row in enumerate(rows):
        if row_index == header_rows and _is_header_row(row):
            header_rows += 1
        column = row.grid_before
        for tc in row.findall(qn("w:tc")):
            span = tc.grid_span
            if tc.vMerge == "continue" and column in open_merges:
                open_merges[column].row_span += 1
            else:
                cell = TableCell(row_index, column, _cell_text(tc), column_span=span)
                cells.append(cell)
                if tc.vMerge == "restart":
                    open_merges[column] = cell
                else:
                    open_merges.pop(column, None)
            column += span
    if header_rows:
        for cell in cells:
            if cell.row < header_rows:
                cell.kind = COLUMN_HEADER
    return cells, header_rows, bool(rows) and _all_bold(rows[0])


def _cell_text(tc: _Element) -> str:
    """A cell's paragraphs joined by spaces."""
    texts = ["".join(node.text or "" for node in p.iter(qn("w:t"))) for p in tc.iter(qn("w:p"))]
    return " ".join(text.strip() for text in texts if text.strip())


def _is_header_row(row: _Element) -> bool:
    """Whether the row repeats as a header on each page (w:tblHeader)."""
    tr_pr = row.find(qn("w:trPr"))
    flag = tr_pr.find(qn("w:tblHeader")) if tr_pr is not None else None
    return flag is not None and flag.get(qn("w:val"), "true") not in ("0", "false", "off")


def _all_bold(row: _Element) -> bool:
    """Whether every run with text in the row is bold by direct formatting."""
    runs = [run for run in row.iter(qn("w:r")) if "".join(run.itertext()).strip()]
    return bool(runs) and all(_run_bold(run) for run in runs)


def _run_bold(run: _Element) -> bool:
    """Whether a run sets bold on."""
    r_pr = run.find(qn("w:rPr"))
    bold = r_pr.find(qn("w:b")) if r_pr is not None else None
    return bold is not None and bold.get(qn("w:val"), "true") not in ("0", "false", "off")


def _grid(cells: list[TableCell]) -> list[list[str]]:
    """Cell texts laid out by row and column (spanned slots left empty)."""
    rows = max((cell.row + cell.row_span for cell in cells), default=0)
    columns = max((cell.column + cell.column_span for cell in cells), default=0)
    grid = [["" for _ in range(columns)] for _ in range(rows)]
    for cell in cells:
        grid[cell.row][cell.column] = cell.content
    return grid
