"""Turns a normalised Layout into chunks to embed and cite, each with its pages and headings.

Where this differs from azure-search-openai-demo's splitter (see the anchors note):
- Tables are chunks of their own, rendered once: never duplicated into the text around them and
  never cut inside a row. A table over the budget is split between rows, and every part repeats
  the header rows. Tables continued on the next page are merged first.
- Every chunk starts with its heading path ("# Report > ## Revenue"), so a chunk taken out of
  its section still says what it is about.
- Pages are tracked through the splitter, so a chunk that runs over a page break lists both
  pages, and its `page_spans` say where each page's text sits in it (`pagespans.py`): a
  citation names the page of the quoted sentence, not the chunk's first page. Table rows keep
  the page they were printed on through the merge of continued tables.
- Slides (`ChunkingOptions.pages_are_slides`): a chunk never spans two slides, and a slide's
  heading path is its own title only (an untitled slide does not inherit the previous title).

Rendering choice for tables: GitHub markdown, always, with a spanned cell's text repeated in every
slot it covers (`Table.grid()`), rather than HTML with rowspan/colspan. Every row then stands on
its own, so a table can be cut between any two rows without orphaning a rowspan, and markdown
costs far fewer tokens than `<td>` markup (which the demo pays for). What is lost is the
difference between a merged cell and equal neighbours, which retrieval and answers do not need.
Several header rows are folded into one header line per column ("Revenue / 2024"); a table with
no labelled header rows uses each part's first row as the markdown header line, which markdown
requires.

Figures: a described figure becomes a "[Figure: ...]" line placed in the text at its reading
position, so it lands in the chunk around it (never split from its line). When its section has no
body text on the figure's page it becomes a "figure" chunk of its own.

Everything is ordered by (page, order) with ties broken by element kind and list position, so the
same layout always gives the same chunks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from langchain_text_splitters import RecursiveCharacterTextSplitter

from shared.documents.layout import (
    PAGE_FURNITURE,
    SECTION_HEADING,
    TITLE,
    Figure,
    Layout,
    Paragraph,
    Table,
    TableCell,
)
from shared.documents.pagespans import PageSpan, spans_from_marks
from shared.tokens import count_tokens, count_tokens_batch, truncate_to_tokens

ChunkKind = Literal["text", "table", "figure"]

# Paragraphs, then sentences and clauses, then words: the splitter takes the first that occurs.
SEPARATORS = ["\n\n", "\n", ". ", "! ", "? ", "; ", ": ", ", ", " ", ""]
BLOCK_JOIN = "\n\n"
HEADING_JOIN = " > "
# Reserved for a table part's "(part 12 of 15)" marker, so parts stay within the budget.
PART_MARKER_TOKENS = 12
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ChunkingOptions:
    """How big chunks may be, in tokens as `shared.tokens.count_tokens` counts them."""

    max_tokens: int = 500  # the heading path and a table's caption count towards it
    overlap_tokens: int = 50  # text repeated between consecutive text chunks of a section
    pages_are_slides: bool = False  # a deck: each page is a unit no chunk runs across

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError("max_tokens must be at least 16")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("overlap_tokens must be between 0 and max_tokens - 1")


@dataclass
class Chunk:
    """One unit to embed and show: its text, where it comes from and under which headings."""

    ordinal: int
    kind: ChunkKind
    text: str  # what is embedded and shown, starting with the heading path
    pages: list[int]
    headings: list[str]  # the heading path, outermost first, without the "#" marks
    token_count: int
    table_id: str | None = None
    figure_ids: list[str] = field(default_factory=list)
    page_spans: list[PageSpan] = field(default_factory=list)  # where each page's text sits

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (for activity payloads and the index)."""
        return asdict(self)


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Item:
    """An element in reading order; `position` is its index in the document's stream."""

    position: int
    element: Paragraph | Table | Figure


@dataclass
class _Section:
    """The elements under one heading path, up to the next heading."""

    headings: tuple[_Heading, ...]
    items: list[_Item] = field(default_factory=list)


@dataclass(frozen=True)
class _Block:
    """A paragraph or figure line inside a section's joined text."""

    start: int
    end: int
    page: int
    position: int
    figure_id: str | None


@dataclass
class _Draft:
    """A chunk before ordinals and token counts are assigned."""

    position: int
    kind: ChunkKind
    text: str
    pages: list[int]
    headings: list[str]
    table_id: str | None = None
    figure_ids: list[str] = field(default_factory=list)
    page_marks: list[tuple[int, int]] = field(default_factory=list)  # (offset in text, page)


def chunk_layout(layout: Layout, settings: ChunkingOptions) -> list[Chunk]:
    """The layout's chunks in reading order, numbered from 0."""
    tables = merge_continued_tables(layout.tables, paragraphs=layout.paragraphs)
    stream = _reading_order(layout.paragraphs, tables, layout.figures)
    length = lru_cache(maxsize=None)(count_tokens)  # the splitter re-measures the same pieces
    drafts: list[_Draft] = []
    for section in _sections(stream, settings.pages_are_slides):
        drafts.extend(_chunk_section(section, settings, length))
    drafts.sort(key=lambda draft: draft.position)  # stable: parts keep their order
    counts = count_tokens_batch([draft.text for draft in drafts])
    return [
        Chunk(
            ordinal=ordinal,
            kind=draft.kind,
            text=draft.text,
            pages=draft.pages,
            headings=draft.headings,
            token_count=count,
            table_id=draft.table_id,
            figure_ids=draft.figure_ids,
            page_spans=spans_from_marks(draft.page_marks or [(0, draft.pages[0])], len(draft.text)),
        )
        for ordinal, (draft, count) in enumerate(zip(drafts, counts, strict=True))
    ]


# Reading order and sections


def _reading_order(
    paragraphs: Sequence[Paragraph], tables: Sequence[Table], figures: Sequence[Figure]
) -> list[_Item]:
    """Body paragraphs, tables and describable figures sorted by (page, order)."""
    keyed: list[tuple[tuple[int, int, int, int], Paragraph | Table | Figure]] = []
    keyed += [
        ((p.page, p.order, 0, i), p)
        for i, p in enumerate(paragraphs)
        if p.role not in PAGE_FURNITURE and p.text.strip()
    ]
    keyed += [((t.page, t.order, 1, i), t) for i, t in enumerate(tables)]
    keyed += [((f.page, f.order, 2, i), f) for i, f in enumerate(figures) if figure_line(f)]
    keyed.sort(key=lambda pair: pair[0])
    return [_Item(position, element) for position, (_, element) in enumerate(keyed)]


def _is_heading(element: Paragraph | Table | Figure) -> bool:
    """A title or section heading (or any paragraph given a heading level)."""
    return isinstance(element, Paragraph) and (
        element.role in (TITLE, SECTION_HEADING) or element.heading_level is not None
    )


def _heading_level(paragraph: Paragraph) -> int:
    """The paragraph's level; a title without one is 1, a section heading 2."""
    if paragraph.heading_level is not None:
        return max(1, paragraph.heading_level)
    return 1 if paragraph.role == TITLE else 2


def _sections(stream: list[_Item], slides: bool = False) -> list[_Section]:
    """The stream cut at each heading, each part labelled with its heading path.

    With `slides`, a new page also starts a section, with an empty heading path until the
    slide's own title.
    """
    path: list[_Heading] = []
    sections = [_Section(headings=())]
    page = None
    for item in stream:
        element = item.element
        if slides and element.page != page:
            page, path = element.page, []
            sections.append(_Section(headings=()))
        if isinstance(element, Paragraph) and _is_heading(element):
            level = _heading_level(element)
            while path and path[-1].level >= level:
                path.pop()
            path.append(_Heading(level, _one_line(element.text)))
            sections.append(_Section(headings=tuple(path)))
        else:
            sections[-1].items.append(item)
    return [section for section in sections if section.items]


def _heading_line(headings: Sequence[_Heading]) -> str:
    """The heading path as markdown headings joined by " > "."""
    return HEADING_JOIN.join(f"{'#' * min(h.level, 6)} {h.text}" for h in headings)


def _with_heading(prefix: str, body: str) -> str:
    """`body` under its heading path line."""
    return f"{prefix}{BLOCK_JOIN}{body}" if prefix else body


# Sections into chunks


def _chunk_section(
    section: _Section, settings: ChunkingOptions, length: Callable[[str], int]
) -> list[_Draft]:
    """A section's text, table and figure chunks (unsorted)."""
    prefix = _heading_line(section.headings)
    headings = [heading.text for heading in section.headings]
    text_pages = {
        item.element.page for item in section.items if isinstance(item.element, Paragraph)
    }
    blocks: list[_Item] = []
    drafts: list[_Draft] = []
    for item in section.items:
        element = item.element
        if isinstance(element, Table):
            drafts.extend(_table_drafts(item, element, prefix, headings, settings))
        elif isinstance(element, Figure) and element.page not in text_pages:
            drafts.append(_figure_draft(item, element, prefix, headings, settings))
        else:
            blocks.append(item)
    drafts.extend(_text_drafts(blocks, prefix, headings, settings, length))
    return drafts


def _figure_draft(
    item: _Item, figure: Figure, prefix: str, headings: list[str], settings: ChunkingOptions
) -> _Draft:
    """A figure with no text near it, as a chunk of its own."""
    line = figure_line(figure, settings.max_tokens // 2) or ""
    return _Draft(
        position=item.position,
        kind="figure",
        text=_with_heading(prefix, line),
        pages=[figure.page],
        headings=headings,
        figure_ids=[figure.id],
    )


def _text_drafts(
    items: list[_Item],
    prefix: str,
    headings: list[str],
    settings: ChunkingOptions,
    length: Callable[[str], int],
) -> list[_Draft]:
    """Paragraphs and figure lines joined, split by tokens, and mapped back to their pages."""
    if not items:
        return []
    text, blocks = _join_blocks(items, settings)
    budget = max(settings.max_tokens - length(prefix), settings.max_tokens // 2)
    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",  # sentence punctuation stays with its sentence
        chunk_size=budget,
        chunk_overlap=min(settings.overlap_tokens, budget // 2),
        length_function=length,
        strip_whitespace=True,
    )
    body_offset = len(_with_heading(prefix, ""))  # where the piece starts in the chunk text
    drafts = []
    for start, piece in _locate(text, splitter.split_text(text)):
        covered = [b for b in blocks if b.start < start + len(piece) and b.end > start]
        drafts.append(
            _Draft(
                position=covered[0].position if covered else items[0].position,
                kind="text",
                text=_with_heading(prefix, piece),
                pages=sorted({block.page for block in covered}),
                headings=headings,
                figure_ids=[
                    b.figure_id
                    for b in covered
                    if b.figure_id and b.start >= start and b.end <= start + len(piece)
                ],
                page_marks=[(body_offset + max(b.start - start, 0), b.page) for b in covered],
            )
        )
    return drafts


def _join_blocks(items: list[_Item], settings: ChunkingOptions) -> tuple[str, list[_Block]]:
    """The section's text and where each paragraph or figure line sits in it."""
    parts: list[str] = []
    blocks: list[_Block] = []
    offset = 0
    for item in items:
        element = item.element
        if isinstance(element, Figure):
            content = figure_line(element, settings.max_tokens // 2) or ""
            figure_id: str | None = element.id
        else:
            content = element.text.strip()
            figure_id = None
        if parts:
            offset += len(BLOCK_JOIN)
        blocks.append(_Block(offset, offset + len(content), element.page, item.position, figure_id))
        parts.append(content)
        offset += len(content)
    return BLOCK_JOIN.join(parts), blocks


def _locate(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    """Each piece with its start in `text`; pieces are substrings, in order, overlapping."""
    located = []
    cursor = 0
    for piece in pieces:
        start = text.find(piece, cursor)
        if start < 0:  # not expected (pieces are cut from `text`); keep the last known place
            start = cursor
        located.append((start, piece))
        # The next piece starts after this one's start (overlap makes it start before its end).
        cursor = start + 1
    return located


# Figures


def figure_line(figure: Figure, max_tokens: int | None = None) -> str | None:
    """The "[Figure: ...]" line for a described figure, or None when there is nothing to say."""
    if figure.skipped or figure.description is None:
        return None
    description = figure.description
    parts = _unique(
        [
            _one_line(figure.caption or ""),
            _one_line(description.caption or ""),
            _labelled("text", _one_line(description.text)),
            _labelled("tags", ", ".join(_one_line(tag) for tag in description.tags if tag)),
        ]
    )
    if not parts:
        return None
    body = "; ".join(parts)
    if max_tokens is not None:
        body = truncate_to_tokens(body, max(1, max_tokens - 6))  # 6: "[Figure: ... ]"
    return f"[Figure: {body}]"


def _labelled(label: str, value: str) -> str:
    """`label: value`, or empty when there is no value."""
    return f"{label}: {value}" if value else ""


def _unique(values: Iterable[str]) -> list[str]:
    """Non-empty values, first occurrences only (a printed caption often equals the model's)."""
    seen: set[str] = set()
    kept = []
    for value in values:
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def _one_line(text: str) -> str:
    """Whitespace runs collapsed to single spaces."""
    return _SPACES.sub(" ", text).strip()


# Tables into chunks


def _table_drafts(
    item: _Item, table: Table, prefix: str, headings: list[str], settings: ChunkingOptions
) -> list[_Draft]:
    """The table whole if it fits, else parts cut between rows, each repeating the header."""
    grid = table.grid()
    if not any(value.strip() for row in grid for value in row):
        return []
    header_count = min(table.header_rows(), len(grid) - 1) if len(grid) > 1 else 0
    header = _header_line(grid[:header_count]) if header_count else None
    rows = [_markdown_row(row) for row in grid[header_count:]]
    row_pages = [table.row_page(header_count + index) for index in range(len(rows))]
    caption = _one_line(table.caption or "")
    pages = sorted(set(table.pages or [table.page]))

    def draft(part_rows: list[str], marker: str, first: int = 0) -> _Draft:
        title = " ".join(value for value in (caption, marker) if value)
        body = BLOCK_JOIN.join(v for v in (title, _markdown(header, part_rows, table)) if v)
        text = _with_heading(prefix, body)
        marks = _row_marks(text, part_rows, row_pages[first : first + len(part_rows)])
        part_pages = sorted({page for _, page in marks}) if marker else pages
        return _Draft(item.position, "table", text, part_pages or pages, headings, table.id,
                      page_marks=marks)  # fmt: skip

    whole = draft(rows, "")
    if count_tokens(whole.text) <= settings.max_tokens or len(rows) < 2:
        return [whole]
    groups = _row_groups(rows, header, prefix, caption, settings.max_tokens, table.column_count)
    firsts = [sum(len(group) for group in groups[:index]) for index in range(len(groups))]
    return [
        draft(group, f"(part {index} of {len(groups)})", first)
        for index, (group, first) in enumerate(zip(groups, firsts, strict=True), start=1)
    ]


def _row_marks(text: str, rows: list[str], pages: list[int]) -> list[tuple[int, int]]:
    """(offset, page) of each row line in a table chunk's text, in order."""
    marks, cursor = [], 0
    for row, page in zip(rows, pages, strict=True):
        offset = text.find(row, cursor)
        if offset >= 0:
            marks.append((offset, page))
            cursor = offset + len(row)
    return marks


def _row_groups(
    rows: list[str],
    header: str | None,
    prefix: str,
    caption: str,
    max_tokens: int,
    column_count: int,
) -> list[list[str]]:
    """Rows packed greedily into parts that fit beside the repeated header; never a cut row."""
    # Lines are joined by newlines, so a part's count is the sum of its lines' counts.
    fixed = (
        count_tokens(prefix)
        + count_tokens(caption)
        + PART_MARKER_TOKENS
        + count_tokens(header or "")
        + count_tokens(_separator(column_count))
    )
    budget = max_tokens - fixed
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for row, tokens in zip(rows, count_tokens_batch(rows), strict=True):
        if current and used + tokens > budget:
            groups.append(current)
            current, used = [], 0
        current.append(row)  # a row longer than the budget still goes whole, alone
        used += tokens
    groups.append(current)
    return groups


def _markdown(header: str | None, rows: list[str], table: Table) -> str:
    """A markdown table; without a labelled header its first row stands as the header line."""
    if header is None:
        header, rows = rows[0], rows[1:]
    return "\n".join([header, _separator(table.column_count), *rows])


def _header_line(header_rows: list[list[str]]) -> str:
    """Several header rows folded into one line: each column's distinct labels, top down."""
    columns = zip(*header_rows, strict=True)
    labels = [" / ".join(_unique(_one_line(value) for value in column)) for column in columns]
    return _markdown_row(labels)


def _markdown_row(values: Sequence[str]) -> str:
    """One markdown table row, pipes escaped and cell line breaks flattened."""
    return "| " + " | ".join(_one_line(value).replace("|", "\\|") for value in values) + " |"


def _separator(column_count: int) -> str:
    """The markdown line under the header."""
    return "|" + "---|" * column_count


# Tables continued across pages


def merge_continued_tables(
    tables: list[Table], paragraphs: Iterable[Paragraph] = ()
) -> list[Table]:
    """Tables continued on the next page merged into one, returned in reading order.

    Table B continues table A when all of these hold:
    - B starts on the page after A's last page, and no table comes between them in reading
      order (so A is the last table on its page and B the first on its own);
    - no body paragraph sits between them (page headers, footers and numbers may): text in
      between, such as a new caption or a sentence, means a new table. Pass the layout's
      paragraphs for this check; without them only the tables' order is known;
    - both have the same number of columns;
    - B has no caption of its own, or the same caption as A;
    - B's header: if B has labelled header rows, they must repeat A's header text exactly
      (case and spacing aside), and are dropped; if B has none, but its first rows read the same
      as A's header rows (an engine that did not label a repeated header), those are dropped
      too; otherwise B is taken as plain continuation rows.

    The merged table keeps A's id, page, order, region and caption, lists the pages of both, and
    re-indexes B's rows after A's. Input tables are not modified.
    """
    ordered = sorted(tables, key=lambda table: (table.page, table.order))
    body = sorted(
        (p.page, p.order) for p in paragraphs if p.role not in PAGE_FURNITURE and p.text.strip()
    )
    merged: list[Table] = []
    ends: list[tuple[int, int]] = []  # where each merged table's last part sits
    for table in ordered:
        repeated = _continuation_header(merged[-1], ends[-1], table, body) if merged else None
        if repeated is None:
            merged.append(table)
            ends.append((table.page, table.order))
        else:
            merged[-1] = _append_rows(merged[-1], table, repeated)
            ends[-1] = (table.page, table.order)
    return merged


def _continuation_header(
    previous: Table, end: tuple[int, int], table: Table, body: list[tuple[int, int]]
) -> int | None:
    """How many leading rows of `table` repeat `previous`'s header; None: not a continuation."""
    if table.page != end[0] + 1 or table.column_count != previous.column_count:
        return None
    if any(end < position < (table.page, table.order) for position in body):
        return None
    if table.caption and not _same_text(table.caption, previous.caption or ""):
        return None
    header_count = previous.header_rows()
    header = _normalised_rows(previous.grid()[:header_count])
    own_header_count = table.header_rows()
    leading = _normalised_rows(table.grid()[:header_count]) if header_count else []
    if own_header_count:
        return header_count if own_header_count == header_count and leading == header else None
    return header_count if header_count and leading == header else 0


def _same_text(first: str, second: str) -> bool:
    """Equal, case and spacing aside."""
    return _one_line(first).casefold() == _one_line(second).casefold()


def _normalised_rows(rows: list[list[str]]) -> list[list[str]]:
    """Cell texts compared case- and spacing-insensitively."""
    return [[_one_line(value).casefold() for value in row] for row in rows]


def _append_rows(previous: Table, table: Table, drop: int) -> Table:
    """`previous` with `table`'s rows after its own, less `table`'s first `drop` rows."""
    shift = previous.row_count - drop
    cells = [replace(cell) for cell in previous.cells]
    kept = [cell for cell in table.cells if cell.row + cell.row_span > drop]
    cells += [_shifted(cell, drop, shift) for cell in kept]
    pages = sorted({*(previous.pages or [previous.page]), *(table.pages or [table.page])})
    row_pages = [previous.row_page(row) for row in range(previous.row_count)]
    row_pages += [table.row_page(row) for row in range(drop, table.row_count)]
    return replace(
        previous,
        row_count=previous.row_count + table.row_count - drop,
        cells=cells,
        pages=pages,
        caption=previous.caption or table.caption,
        row_pages=row_pages,
    )


def _shifted(cell: TableCell, drop: int, shift: int) -> TableCell:
    """A continuation cell moved below the previous rows (a span into dropped rows is clipped)."""
    first = max(cell.row, drop)
    return replace(cell, row=first + shift, row_span=cell.row + cell.row_span - first)
