"""Text formats, each one page: plain text (blank-line paragraphs), Markdown (ATX and setext
headings, lists, fenced code, pipe tables) and HTML (stdlib parser: headings, blocks, tables
with colspan/rowspan; script, style and other non-content elements dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from shared.documents.engines.local import LayoutBuilder, cells_from_grid, looks_like_header
from shared.documents.layout import (
    COLUMN_HEADER,
    CONTENT,
    ROW_HEADER,
    SECTION_HEADING,
    ExtractedLayout,
    Page,
    TableCell,
)

PAGE = 1
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)$")
TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def decode(content: bytes) -> str:
    """UTF-8 text (a byte-order mark dropped, invalid bytes replaced)."""
    return content.decode("utf-8-sig", errors="replace")


def _builder(engine: str) -> LayoutBuilder:
    """A builder holding the single page text formats have."""
    builder = LayoutBuilder()
    builder.add_page(Page(PAGE, engine))
    return builder


# ---------------------------------------------------------------------------------------------
# Plain text.


def extract_plain(content: bytes) -> ExtractedLayout:
    """Paragraphs separated by blank lines; lines inside a paragraph joined by spaces."""
    builder = _builder("text")
    for block in re.split(r"\n\s*\n", decode(content).replace("\r\n", "\n")):
        builder.add_paragraph(" ".join(block.split()), PAGE)
    return builder.result()


# ---------------------------------------------------------------------------------------------
# Markdown.


@dataclass
class _MarkdownState:
    """Lines gathered for the paragraph or table being read."""

    builder: LayoutBuilder
    paragraph: list[str] = field(default_factory=list)
    table: list[str] = field(default_factory=list)
    code: list[str] | None = None
    fence: str = ""

    def flush(self) -> None:
        """Emits the pending paragraph and table."""
        if self.paragraph:
            self.builder.add_paragraph(" ".join(" ".join(self.paragraph).split()), PAGE)
            self.paragraph = []
        if self.table:
            _emit_pipe_table(self.builder, self.table)
            self.table = []


def extract_markdown(content: bytes) -> ExtractedLayout:
    """Headings with their levels, paragraphs, list items, code blocks and pipe tables."""
    state = _MarkdownState(_builder("markdown"))
    lines = decode(content).replace("\r\n", "\n").split("\n")
    for index, line in enumerate(lines):
        if state.code is not None:
            _read_code_line(state, line)
        else:
            _read_markdown_line(state, line, lines[index + 1] if index + 1 < len(lines) else "")
    if state.code is not None:  # an unclosed fence runs to the end of the document
        state.builder.add_paragraph("\n".join(state.code), PAGE)
    state.flush()
    return state.builder.result()


def _read_code_line(state: _MarkdownState, line: str) -> None:
    """Inside a fenced block: lines are kept verbatim until the closing fence."""
    code = state.code if state.code is not None else []
    if line.strip().startswith(state.fence):
        state.builder.add_paragraph("\n".join(code), PAGE)
        state.code = None
    else:
        code.append(line)
        state.code = code


def _read_markdown_line(state: _MarkdownState, line: str, following: str) -> None:
    """One line outside code: a block boundary, heading, list item, table row or text."""
    fence = FENCE.match(line)
    heading = ATX_HEADING.match(line)
    item = LIST_ITEM.match(line)
    if fence:
        state.flush()
        state.code, state.fence = [], fence.group(1)
    elif not line.strip():
        state.flush()
    elif heading:
        state.flush()
        text = heading.group(2) or ""
        state.builder.add_paragraph(text, PAGE, SECTION_HEADING, len(heading.group(1)))
    elif state.paragraph and SETEXT_UNDERLINE.match(line) and not state.table:
        level = 1 if line.strip().startswith("=") else 2
        text = " ".join(" ".join(state.paragraph).split())
        state.paragraph = []
        state.builder.add_paragraph(text, PAGE, SECTION_HEADING, level)
    elif state.table or ("|" in line and TABLE_DELIMITER.match(following) and "-" in following):
        if not state.table:
            state.flush()
        state.table.append(line)
    elif item:
        state.flush()
        state.paragraph = [item.group(1)]
        state.flush()
    else:
        state.paragraph.append(line.strip())


def _split_row(line: str) -> list[str]:
    """A pipe table row's cells (outer pipes optional, `\\|` kept as a literal pipe)."""
    line = line.strip()
    line = line.removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [cell.strip().replace("\\|", "|") for cell in cells]


def _emit_pipe_table(builder: LayoutBuilder, lines: list[str]) -> None:
    """Adds a pipe table: its first row is the header (the delimiter row says so)."""
    rows = [_split_row(line) for index, line in enumerate(lines) if index != 1]
    width = len(rows[0])
    rows = [(row + [""] * width)[:width] for row in rows]  # GFM: the header fixes the width
    builder.add_table(PAGE, cells_from_grid(rows, header=True))


# ---------------------------------------------------------------------------------------------
# HTML.

DROPPED = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
BLOCKS = {
    "p", "div", "li", "dt", "dd", "blockquote", "pre", "address", "section", "article",
    "header", "footer", "nav", "aside", "main", "figure", "figcaption", "form", "fieldset",
    "ul", "ol", "dl", "hr", "body", "html", "details", "summary",
}  # fmt: skip
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


@dataclass
class _HtmlTable:
    """A table being read: cells placed on a grid that honours spans."""

    cells: list[TableCell] = field(default_factory=list)
    taken: set[tuple[int, int]] = field(default_factory=set)
    row: int = -1
    column: int = 0
    in_head: bool = False
    caption: str | None = None
    cell: TableCell | None = None
    cell_text: list[str] = field(default_factory=list)

    def start_row(self) -> None:
        """A new row starts at the first free column."""
        self.row += 1
        self.column = 0

    def start_cell(self, kind: str, row_span: int, column_span: int) -> None:
        """A cell at the next column not covered by a row span from above."""
        if self.row < 0:
            self.start_row()
        while (self.row, self.column) in self.taken:
            self.column += 1
        self.cell = TableCell(self.row, self.column, "", row_span, column_span, kind)
        self.cell_text = []
        for row in range(self.row, self.row + row_span):
            for column in range(self.column, self.column + column_span):
                self.taken.add((row, column))
        self.column += column_span

    def end_cell(self) -> None:
        """Closes the open cell."""
        if self.cell is None:
            return
        self.cell.content = " ".join("".join(self.cell_text).split())
        self.cells.append(self.cell)
        self.cell = None


class _LayoutHtmlParser(HTMLParser):
    """Collects paragraphs and tables from HTML into a LayoutBuilder."""

    def __init__(self, builder: LayoutBuilder) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = builder
        self.text: list[str] = []
        self.heading: int | None = None
        self.dropped = 0  # depth inside elements whose text is not content
        self.pre = 0
        self.tables: list[_HtmlTable] = []
        self.in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Opens blocks, headings, tables and cells."""
        if tag == "body":
            self.dropped = 0  # a <head> left unclosed must not swallow the page
        if tag in DROPPED:
            self.dropped += 1
            return
        if self.dropped:
            return
        if tag == "br":
            self._append("\n")
        elif tag in HEADINGS or tag in BLOCKS:
            self._end_block()
            self.heading = HEADINGS.get(tag, self.heading)
            self.pre += tag == "pre"
        elif tag == "table":
            self._end_block()
            self.tables.append(_HtmlTable())
        elif self.tables:
            self._table_tag(tag, dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        """Closes what handle_starttag opened."""
        if tag in DROPPED:
            self.dropped = max(self.dropped - 1, 0)
            return
        if self.dropped:
            return
        if tag in HEADINGS or tag in BLOCKS:
            self._end_block()
            self.heading = None if tag in HEADINGS else self.heading
            self.pre = max(self.pre - (tag == "pre"), 0)
        elif tag == "table" and self.tables:
            self._end_table()
        elif self.tables:
            self._table_end_tag(tag)

    def handle_data(self, data: str) -> None:
        """Text goes to the open cell, caption or paragraph."""
        if not self.dropped:
            self._append(data)

    def close(self) -> None:
        """Flushes what is still open at the end of the document."""
        super().close()
        while self.tables:
            self._end_table()
        self._end_block()

    def _append(self, data: str) -> None:
        """Appends text where it belongs: the open caption, the open cell or the paragraph."""
        table = self.tables[-1] if self.tables else None
        if table is not None and self.in_caption:
            table.caption = (table.caption or "") + data
        elif table is not None and table.cell is not None:
            table.cell_text.append(data)
        else:
            self.text.append(data)

    def _end_block(self) -> None:
        """Emits the text gathered since the last block boundary (inside a cell: a space)."""
        table = self.tables[-1] if self.tables else None
        if table is not None and table.cell is not None:
            table.cell_text.append(" ")
            return
        raw = "".join(self.text)
        self.text = []
        text = raw.strip("\n") if self.pre else " ".join(raw.replace("\n", " ").split())
        if not text.strip():
            return
        role = SECTION_HEADING if self.heading else None
        self.builder.add_paragraph(text, PAGE, role, self.heading)

    def _table_tag(self, tag: str, attrs: dict[str, str | None]) -> None:
        """Rows, cells, header sections and captions of the innermost table."""
        table = self.tables[-1]
        if tag == "thead":
            table.in_head = True
        elif tag in ("tbody", "tfoot"):
            table.in_head = False
        elif tag == "tr":
            table.end_cell()
            table.start_row()
        elif tag in ("td", "th"):
            table.end_cell()
            kind = _cell_kind(table, tag, attrs.get("scope"))
            table.start_cell(kind, _span(attrs.get("rowspan")), _span(attrs.get("colspan")))
        elif tag == "caption":
            self.in_caption = True

    def _table_end_tag(self, tag: str) -> None:
        """Closes cells, rows and captions."""
        table = self.tables[-1]
        if tag in ("td", "th", "tr"):
            table.end_cell()
        elif tag == "caption":
            self.in_caption = False
        elif tag == "thead":
            table.in_head = False

    def _end_table(self) -> None:
        """Emits the innermost table; a nested table's text joins its parent's open cell."""
        table = self.tables.pop()
        table.end_cell()
        if self.tables and self.tables[-1].cell is not None:
            texts = [cell.content for cell in table.cells if cell.content]
            self.tables[-1].cell_text.append(" " + " ".join(texts))
            return
        if not table.cells:
            return
        if all(cell.kind == CONTENT for cell in table.cells):
            _mark_guessed_header(table.cells)
        caption = " ".join(table.caption.split()) if table.caption else None
        self.builder.add_table(PAGE, table.cells, caption=caption or None)


def _cell_kind(table: _HtmlTable, tag: str, scope: str | None) -> str:
    """td: content; th: a column header in thead, in the first row or with scope=col,
    otherwise (a th down the side of the body) a row header."""
    if tag == "td":
        return CONTENT
    if scope in ("col", "colgroup") or table.in_head or max(table.row, 0) == 0:
        return COLUMN_HEADER
    return ROW_HEADER


def _span(value: str | None) -> int:
    """A rowspan/colspan attribute as a positive int (browsers treat junk as 1)."""
    try:
        return max(1, min(int(value or 1), 1000))
    except ValueError:
        return 1


def _mark_guessed_header(cells: list[TableCell]) -> None:
    """Without th cells, the first row is a header when it looks like one."""
    rows = max(cell.row + 1 for cell in cells)
    columns = max(cell.column + cell.column_span for cell in cells)
    grid = [["" for _ in range(columns)] for _ in range(rows)]
    for cell in cells:
        grid[cell.row][cell.column] = cell.content
    if looks_like_header(grid):
        for cell in cells:
            if cell.row == 0:
                cell.kind = COLUMN_HEADER


def extract_html(content: bytes) -> ExtractedLayout:
    """Headings (h1-h6 levels), block text and tables from an HTML page."""
    builder = _builder("html.parser")
    parser = _LayoutHtmlParser(builder)
    parser.feed(decode(content))
    parser.close()
    return builder.result()
