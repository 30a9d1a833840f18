"""Chunking a hand-built Layout: headings, pages, tables, figures, furniture, determinism."""

from __future__ import annotations

import copy
import itertools
import random

import pytest

from shared.documents.chunking import (
    Chunk,
    ChunkingOptions,
    chunk_layout,
    figure_line,
    merge_continued_tables,
)
from shared.documents.layout import (
    COLUMN_HEADER,
    PAGE_FOOTER,
    PAGE_HEADER,
    PAGE_NUMBER,
    SECTION_HEADING,
    TITLE,
    Figure,
    FigureDescription,
    Layout,
    Paragraph,
    Table,
    TableCell,
)
from shared.documents.pagespans import page_of
from shared.tokens import count_tokens

SMALL = ChunkingOptions(max_tokens=80, overlap_tokens=10)


def sentence(topic: str, index: int) -> str:
    """A distinct sentence of about 12 tokens."""
    return f"Sentence {index} about {topic} explains one more detail of the matter at hand."


def prose(topic: str, count: int, first: int = 0) -> str:
    """`count` distinct sentences."""
    return " ".join(sentence(topic, index) for index in range(first, first + count))


def make_table(
    table_id: str,
    page: int,
    order: int,
    header: list[str] | None,
    rows: list[list[str]],
    *,
    caption: str | None = None,
    header_kind: str = COLUMN_HEADER,
) -> Table:
    """A table from a header row (labelled `header_kind`) and body rows."""
    cells: list[TableCell] = []
    all_rows = ([header] if header else []) + rows
    for r, row in enumerate(all_rows):
        for c, value in enumerate(row):
            kind = header_kind if header and r == 0 else "content"
            cells.append(TableCell(row=r, column=c, content=value, kind=kind))
    width = len(all_rows[0])
    return Table(table_id, page, order, len(all_rows), width, cells, [page], caption)


def described(figure_id: str, page: int, order: int, caption: str, **extra) -> Figure:
    """A figure with a description."""
    description = FigureDescription(caption=caption, tags=["chart"], text="Q1 Q2", source="local")
    return Figure(figure_id, page, order, description=description, **extra)


def text_chunks(chunks: list[Chunk]) -> list[Chunk]:
    return [chunk for chunk in chunks if chunk.kind == "text"]


# Headings


def test_each_chunk_starts_with_its_heading_path() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Annual Report", 1, 0, role=TITLE),
            Paragraph("Opening words.", 1, 1),
            Paragraph("Revenue", 1, 2, role=SECTION_HEADING, heading_level=2),
            Paragraph("Europe", 1, 3, role=SECTION_HEADING, heading_level=3),
            Paragraph("Europe grew.", 1, 4),
            Paragraph("Costs", 1, 5, role=SECTION_HEADING, heading_level=2),
            Paragraph("Costs fell.", 1, 6),
        ]
    )
    chunks = chunk_layout(layout, SMALL)
    assert [chunk.headings for chunk in chunks] == [
        ["Annual Report"],
        ["Annual Report", "Revenue", "Europe"],
        ["Annual Report", "Costs"],  # a level-2 heading closes Revenue and Europe
    ]
    assert chunks[0].text == "# Annual Report\n\nOpening words."
    assert chunks[1].text == "# Annual Report > ## Revenue > ### Europe\n\nEurope grew."
    assert chunks[2].text.startswith("# Annual Report > ## Costs\n\n")


def test_text_before_any_heading_has_no_heading_line() -> None:
    layout = Layout(paragraphs=[Paragraph("Just text.", 1, 0)])
    [chunk] = chunk_layout(layout, SMALL)
    assert chunk.text == "Just text."
    assert chunk.headings == []


def test_heading_path_is_repeated_in_every_chunk_of_a_long_section() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Revenue", 1, 0, role=SECTION_HEADING, heading_level=1),
            Paragraph(prose("revenue", 30), 1, 1),
        ]
    )
    chunks = chunk_layout(layout, SMALL)
    assert len(chunks) > 3
    assert all(chunk.text.startswith("# Revenue\n\n") for chunk in chunks)
    assert all(chunk.token_count <= SMALL.max_tokens for chunk in chunks)
    assert all(chunk.token_count == count_tokens(chunk.text) for chunk in chunks)


def test_long_sections_overlap_and_keep_sentences_whole() -> None:
    # Overlap is made of whole sentences, so it needs room for at least one (about 14 tokens).
    layout = Layout(paragraphs=[Paragraph(prose("overlap", 30), 1, 0)])
    chunks = chunk_layout(layout, ChunkingOptions(max_tokens=80, overlap_tokens=30))
    assert len(chunks) > 3
    for previous, current in itertools.pairwise(chunks):
        last_sentence = previous.text.rsplit(". ", 1)[-1]
        assert last_sentence in current.text  # the overlap repeats the previous tail
    for chunk in chunks:
        assert chunk.text.startswith("Sentence ") and chunk.text.endswith(".")


# Pages


def test_chunk_spanning_a_page_break_lists_both_pages() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Start of the argument on page one.", 1, 0),
            Paragraph("It ends on page two.", 2, 0),
            Paragraph(prose("page three", 20), 3, 0),
        ]
    )
    chunks = chunk_layout(layout, SMALL)
    assert chunks[0].pages == [1, 2, 3] or chunks[0].pages == [1, 2]
    spanning = [chunk for chunk in chunks if chunk.pages[:2] == [1, 2]]
    assert spanning and "page one" in spanning[0].text and "page two" in spanning[0].text
    assert chunks[-1].pages == [3]
    assert all(chunk.pages == sorted(set(chunk.pages)) for chunk in chunks)


def test_pages_of_each_chunk_match_the_paragraphs_in_it() -> None:
    paragraphs = [Paragraph(sentence(f"page {page}", page), page, 0) for page in range(1, 13)]
    chunks = chunk_layout(Layout(paragraphs=paragraphs), SMALL)
    assert len(chunks) > 1
    for chunk in chunks:
        expected = [page for page in range(1, 13) if f"about page {page} " in chunk.text]
        assert chunk.pages == expected


# Furniture


def test_page_furniture_is_dropped() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("ACME Corp confidential", 1, 0, role=PAGE_HEADER),
            Paragraph("Body text on page one.", 1, 1),
            Paragraph("Page 1 of 2", 1, 2, role=PAGE_FOOTER),
            Paragraph("1", 1, 3, role=PAGE_NUMBER),
            Paragraph("ACME Corp confidential", 2, 0, role=PAGE_HEADER),
            Paragraph("Body text on page two.", 2, 1),
        ]
    )
    [chunk] = chunk_layout(layout, SMALL)
    assert chunk.text == "Body text on page one.\n\nBody text on page two."
    assert chunk.pages == [1, 2]


# Tables


def test_small_table_is_one_chunk_rendered_once() -> None:
    table = make_table(
        "t1", 1, 2, ["Region", "Sales"], [["EU", "10"], ["US", "12"]], caption="Table 1: Sales"
    )
    layout = Layout(
        paragraphs=[
            Paragraph("Results", 1, 0, role=SECTION_HEADING, heading_level=1),
            Paragraph("Sales by region follow.", 1, 1),
            Paragraph("Both regions grew.", 1, 3),
        ],
        tables=[table],
    )
    chunks = chunk_layout(layout, SMALL)
    tables = [chunk for chunk in chunks if chunk.kind == "table"]
    assert len(tables) == 1
    assert tables[0].text == (
        "# Results\n\nTable 1: Sales\n\n| Region | Sales |\n|---|---|\n| EU | 10 |\n| US | 12 |"
    )
    assert tables[0].table_id == "t1"
    assert tables[0].pages == [1]
    assert tables[0].headings == ["Results"]
    assert not any("| EU |" in chunk.text for chunk in text_chunks(chunks))  # not duplicated


def test_big_table_is_split_between_rows_with_the_header_in_every_part() -> None:
    rows = [[f"Item {index}", f"{index * 7}.50", f"note for item {index}"] for index in range(60)]
    table = make_table("big", 2, 1, ["Name", "Price", "Note"], rows, caption="Price list")
    layout = Layout(tables=[table])
    options = ChunkingOptions(max_tokens=120, overlap_tokens=10)
    parts = chunk_layout(layout, options)
    assert len(parts) > 3
    seen_rows: list[str] = []
    for number, part in enumerate(parts, start=1):
        assert part.kind == "table" and part.table_id == "big" and part.pages == [2]
        assert part.token_count <= options.max_tokens
        title, markdown = part.text.split("\n\n")
        assert title == f"Price list (part {number} of {len(parts)})"
        lines = markdown.split("\n")
        assert lines[:2] == ["| Name | Price | Note |", "|---|---|---|"]
        seen_rows += lines[2:]
    expected_rows = [f"| Item {i} | {i * 7}.50 | note for item {i} |" for i in range(60)]
    assert seen_rows == expected_rows  # every row once, whole, in order


def test_row_longer_than_the_budget_stays_whole() -> None:
    long_note = prose("a very long cell", 12)
    rows = [["a", "short"], ["b", long_note], ["c", "short"]]
    table = make_table("t", 1, 0, ["Key", "Value"], rows)
    parts = chunk_layout(Layout(tables=[table]), SMALL)
    assert any(f"| b | {long_note} |" in part.text for part in parts)
    assert all(part.text.count("| Key | Value |") == 1 for part in parts)


def test_spanned_cells_repeat_and_header_rows_fold_into_one_line() -> None:
    cells = [
        TableCell(0, 0, "Region", row_span=2, kind=COLUMN_HEADER),
        TableCell(0, 1, "Revenue", column_span=2, kind=COLUMN_HEADER),
        TableCell(1, 1, "2023", kind=COLUMN_HEADER),
        TableCell(1, 2, "2024", kind=COLUMN_HEADER),
        TableCell(2, 0, "EU", row_span=2),
        TableCell(2, 1, "1"),
        TableCell(2, 2, "2"),
        TableCell(3, 1, "3"),
        TableCell(3, 2, "4"),
    ]
    table = Table("s", 1, 0, 4, 3, cells, [1])
    [chunk] = chunk_layout(Layout(tables=[table]), SMALL)
    assert chunk.text == (
        "| Region | Revenue / 2023 | Revenue / 2024 |\n|---|---|---|\n"
        "| EU | 1 | 2 |\n| EU | 3 | 4 |"
    )


def test_table_without_labelled_header_uses_its_first_row_and_escapes_pipes() -> None:
    table = make_table("t", 1, 0, None, [["a|b", "line\nbreak"], ["c", "d"]])
    [chunk] = chunk_layout(Layout(tables=[table]), SMALL)
    assert chunk.text == "| a\\|b | line break |\n|---|---|\n| c | d |"


def test_empty_table_gives_no_chunk() -> None:
    table = make_table("t", 1, 0, None, [["", ""], [" ", ""]])
    assert chunk_layout(Layout(tables=[table]), SMALL) == []


def test_table_continued_on_the_next_page_becomes_one_chunk() -> None:
    first = make_table("t1", 1, 5, ["Name", "Qty"], [["a", "1"], ["b", "2"]], caption="Stock")
    second = make_table("t2", 2, 1, ["Name", "Qty"], [["c", "3"]])
    layout = Layout(
        paragraphs=[
            Paragraph("Stock levels follow.", 1, 4),
            Paragraph("Page 1", 1, 9, role=PAGE_FOOTER),
            Paragraph("ACME", 2, 0, role=PAGE_HEADER),
            Paragraph("That was the stock.", 2, 2),
        ],
        tables=[first, second],
    )
    chunks = chunk_layout(layout, SMALL)
    [table] = [chunk for chunk in chunks if chunk.kind == "table"]
    assert table.pages == [1, 2]
    assert table.text == "Stock\n\n| Name | Qty |\n|---|---|\n| a | 1 |\n| b | 2 |\n| c | 3 |"
    assert [chunk.kind for chunk in chunks] == ["text", "table"]  # text joins around it


# Figures


def test_figure_description_joins_the_text_near_it() -> None:
    figure = Figure(
        "1.1",
        1,
        2,
        caption="Figure 1: Revenue",
        description=FigureDescription(
            caption="a bar chart of revenue by quarter",
            tags=["chart", "bar"],
            text="Q1\nQ2",
            source="image-analysis",
        ),
    )
    layout = Layout(
        paragraphs=[
            Paragraph("Revenue rose every quarter.", 1, 1),
            Paragraph("The chart shows the trend.", 1, 3),
        ],
        figures=[figure],
    )
    [chunk] = chunk_layout(layout, SMALL)
    assert chunk.kind == "text"
    assert chunk.figure_ids == ["1.1"]
    assert chunk.text == (
        "Revenue rose every quarter.\n\n"
        "[Figure: Figure 1: Revenue; a bar chart of revenue by quarter; text: Q1 Q2; "
        "tags: chart, bar]\n\n"
        "The chart shows the trend."
    )


def test_skipped_and_undescribed_figures_are_ignored() -> None:
    layout = Layout(
        paragraphs=[Paragraph("Some text.", 1, 0)],
        figures=[
            described("logo", 1, 1, "a company logo", skipped="decorative"),
            Figure("blank", 1, 2),
            Figure("empty", 1, 3, description=FigureDescription(None, [], " ", "local")),
        ],
    )
    [chunk] = chunk_layout(layout, SMALL)
    assert chunk.text == "Some text."
    assert chunk.figure_ids == []


def test_figure_without_text_on_its_page_is_its_own_chunk() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Charts", 1, 0, role=SECTION_HEADING, heading_level=1),
            Paragraph("Text on page one.", 1, 1),
            Paragraph("Text on page three.", 3, 0),
        ],
        figures=[described("2.1", 2, 0, "a pie chart")],
    )
    chunks = chunk_layout(layout, SMALL)
    figures = [chunk for chunk in chunks if chunk.kind == "figure"]
    assert len(figures) == 1
    assert figures[0].text == "# Charts\n\n[Figure: a pie chart; text: Q1 Q2; tags: chart]"
    assert figures[0].pages == [2] and figures[0].figure_ids == ["2.1"]
    assert figures[0].headings == ["Charts"]
    assert all("[Figure:" not in chunk.text for chunk in text_chunks(chunks))


def test_long_figure_description_is_capped() -> None:
    figure = described("f", 1, 1, prose("figure", 40))
    line = figure_line(figure, 40)
    assert line is not None and line.startswith("[Figure: ") and line.endswith("]")
    assert count_tokens(line) <= 40


# Ordering and determinism


def test_chunks_follow_reading_order_with_ordinals() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Second page text.", 2, 0),
            Paragraph("First page text.", 1, 0),
            Paragraph("Appendix", 3, 0, role=SECTION_HEADING, heading_level=1),
            Paragraph("Appendix text.", 3, 2),
        ],
        tables=[make_table("t", 1, 1, ["A"], [["x"]])],
        figures=[described("f", 2, 1, "a map")],
    )
    chunks = chunk_layout(layout, SMALL)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    # Text runs on around a table (a chunk is ordered where it starts); a heading ends it.
    assert [(chunk.kind, chunk.pages, chunk.headings) for chunk in chunks] == [
        ("text", [1, 2], []),
        ("table", [1], []),
        ("text", [3], ["Appendix"]),
    ]
    assert (
        chunks[0].text
        == "First page text.\n\nSecond page text.\n\n[Figure: a map; text: Q1 Q2; tags: chart]"
    )


def rich_layout() -> Layout:
    """Headings, long text over pages, tables (one continued) and figures."""
    rows = [[f"r{index}", str(index)] for index in range(40)]
    return Layout(
        paragraphs=[
            Paragraph("Report", 1, 0, role=TITLE),
            Paragraph("Header", 1, 1, role=PAGE_HEADER),
            Paragraph(prose("intro", 12), 1, 2),
            Paragraph("Details", 1, 3, role=SECTION_HEADING, heading_level=2),
            Paragraph(prose("details", 15), 1, 5),
            Paragraph(prose("details", 15, first=15), 2, 2),
        ],
        tables=[
            make_table("t1", 1, 6, ["Key", "Value"], rows),
            make_table("t2", 2, 0, ["Key", "Value"], rows[:5]),
        ],
        figures=[described("f1", 1, 4, "a diagram"), described("f2", 3, 0, "a photo")],
    )


def test_same_layout_gives_the_same_chunks() -> None:
    layout = rich_layout()
    first = chunk_layout(layout, SMALL)
    assert chunk_layout(copy.deepcopy(layout), SMALL) == first
    assert chunk_layout(Layout.from_json(layout.to_json()), SMALL) == first
    shuffled = copy.deepcopy(layout)
    random.Random(7).shuffle(shuffled.paragraphs)
    random.Random(7).shuffle(shuffled.tables)
    assert chunk_layout(shuffled, SMALL) == first
    assert [chunk.to_json() for chunk in first] == [chunk.to_json() for chunk in first]


def test_chunking_leaves_the_layout_unchanged() -> None:
    layout = rich_layout()
    before = layout.to_json()
    chunk_layout(layout, SMALL)
    assert layout.to_json() == before


def test_options_are_validated() -> None:
    with pytest.raises(ValueError):
        ChunkingOptions(max_tokens=8)
    with pytest.raises(ValueError):
        ChunkingOptions(max_tokens=100, overlap_tokens=100)


# Tables continued across pages


def continued(second: Table, *, paragraphs: list[Paragraph] | None = None) -> list[Table]:
    first = make_table("t1", 1, 8, ["Name", "Qty"], [["a", "1"], ["b", "2"]], caption="Stock")
    return merge_continued_tables([first, second], paragraphs=paragraphs or [])


def test_merges_a_continuation_that_repeats_the_labelled_header() -> None:
    [merged] = continued(make_table("t2", 2, 1, ["Name", "Qty"], [["c", "3"], ["d", "4"]]))
    assert merged.id == "t1" and merged.page == 1 and merged.pages == [1, 2]
    assert merged.row_count == 5 and merged.caption == "Stock"
    assert merged.grid() == [["Name", "Qty"], ["a", "1"], ["b", "2"], ["c", "3"], ["d", "4"]]
    assert merged.header_rows() == 1
    assert sorted({cell.row for cell in merged.cells}) == [0, 1, 2, 3, 4]


def test_merges_a_repeated_header_the_engine_did_not_label() -> None:
    second = make_table("t2", 2, 0, ["NAME ", "qty"], [["c", "3"]], header_kind="content")
    [merged] = continued(second)
    assert merged.grid() == [["Name", "Qty"], ["a", "1"], ["b", "2"], ["c", "3"]]


def test_merges_a_continuation_without_a_header() -> None:
    [merged] = continued(make_table("t2", 2, 0, None, [["c", "3"], ["d", "4"]]))
    assert merged.grid()[-2:] == [["c", "3"], ["d", "4"]] and merged.row_count == 5


def test_merges_over_three_pages_past_page_furniture() -> None:
    furniture = [
        Paragraph("Page 1", 1, 9, role=PAGE_NUMBER),
        Paragraph("ACME", 2, 0, role=PAGE_HEADER),
        Paragraph("ACME", 3, 0, role=PAGE_HEADER),
    ]
    first = make_table("t1", 1, 8, ["Name", "Qty"], [["a", "1"]])
    second = make_table("t2", 2, 1, ["Name", "Qty"], [["b", "2"]])
    third = make_table("t3", 3, 1, None, [["c", "3"]])
    [merged] = merge_continued_tables([third, first, second], paragraphs=furniture)
    assert merged.pages == [1, 2, 3]
    assert merged.grid() == [["Name", "Qty"], ["a", "1"], ["b", "2"], ["c", "3"]]


def test_merge_does_not_modify_its_inputs() -> None:
    first = make_table("t1", 1, 8, ["Name", "Qty"], [["a", "1"]])
    second = make_table("t2", 2, 1, ["Name", "Qty"], [["b", "2"]])
    snapshot = copy.deepcopy([first, second])
    merge_continued_tables([first, second])
    assert [first, second] == snapshot


@pytest.mark.parametrize(
    ("second", "paragraphs", "why"),
    [
        (make_table("t2", 2, 0, ["Name", "Qty", "Price"], [["c", "3", "9"]]), [], "columns"),
        (make_table("t2", 3, 0, ["Name", "Qty"], [["c", "3"]]), [], "skips a page"),
        (make_table("t2", 1, 9, ["Name", "Qty"], [["c", "3"]]), [], "same page"),
        (make_table("t2", 2, 0, ["Item", "Count"], [["c", "3"]]), [], "other header"),
        (
            make_table("t2", 2, 0, None, [["c", "3"]], caption="Table 2: Prices"),
            [],
            "own caption",
        ),
        (
            make_table("t2", 2, 3, None, [["c", "3"]]),
            [Paragraph("Table 2 lists prices.", 2, 1)],
            "text between",
        ),
        (
            make_table("t2", 2, 3, None, [["c", "3"]]),
            [Paragraph("A closing remark.", 1, 9)],
            "text after the first table",
        ),
    ],
)
def test_does_not_merge_tables_that_do_not_continue(
    second: Table, paragraphs: list[Paragraph], why: str
) -> None:
    tables = continued(second, paragraphs=paragraphs)
    assert [table.id for table in tables] == ["t1", "t2"], why


def test_does_not_merge_when_the_first_table_is_not_the_last_on_its_page() -> None:
    first = make_table("t1", 1, 2, ["Name", "Qty"], [["a", "1"]])
    other = make_table("t9", 1, 5, ["X", "Y", "Z"], [["1", "2", "3"]])
    second = make_table("t2", 2, 0, None, [["c", "3"]])
    assert [t.id for t in merge_continued_tables([first, other, second])] == ["t1", "t9", "t2"]


def test_does_not_merge_when_the_second_table_is_not_first_on_its_page() -> None:
    first = make_table("t1", 1, 2, ["Name", "Qty"], [["a", "1"]])
    other = make_table("t9", 2, 0, ["X", "Y", "Z"], [["1", "2", "3"]])
    second = make_table("t2", 2, 5, None, [["c", "3"]])
    assert [t.id for t in merge_continued_tables([first, second, other])] == ["t1", "t9", "t2"]


# Page spans: where each page's text sits in a chunk (a citation's page is its quote's page)


def page_at(chunk: Chunk, words: str) -> int:
    """The page the chunk's spans give to `words`."""
    return page_of(chunk.page_spans, chunk.text.index(words), chunk.pages)


def test_spans_cover_a_multi_page_chunk_and_give_each_paragraph_its_page() -> None:
    facts = [
        "Cranes lift forty boxes an hour.",
        "Tugs rotate every twelve days.",
        "Pilots board at dawn.",
    ]
    layout = Layout(
        paragraphs=[Paragraph("Harbour", 1, 0, role=TITLE)]
        + [Paragraph(fact, page, 1) for page, fact in enumerate(facts, start=1)]
    )
    [chunk] = chunk_layout(layout, SMALL)
    assert chunk.pages == [1, 2, 3]
    assert chunk.page_spans[0]["start"] == 0 and chunk.page_spans[-1]["end"] == len(chunk.text)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(chunk.page_spans))
    assert [page_at(chunk, fact) for fact in facts] == [1, 2, 3]
    assert page_at(chunk, "# Harbour") == 1  # the heading path is on the first page


def test_spans_follow_the_splitter_and_its_overlap() -> None:
    paragraphs = [Paragraph(prose(f"page{page}", 6), page, 0) for page in range(1, 5)]
    chunks = chunk_layout(Layout(paragraphs=paragraphs), SMALL)
    assert len(chunks) > 2
    for chunk in chunks:
        assert {span["page"] for span in chunk.page_spans} == set(chunk.pages)
        for page in chunk.pages:
            for index in range(6):
                words = sentence(f"page{page}", index)
                if words in chunk.text:
                    assert page_at(chunk, words) == page, (chunk.text, chunk.page_spans)


def test_slides_never_share_a_chunk_and_do_not_inherit_titles() -> None:
    layout = Layout(
        paragraphs=[
            Paragraph("Roadmap", 1, 0, role=TITLE),
            Paragraph("We ship the crane app in May.", 1, 1),
            Paragraph("The canteen serves soup on Thursdays.", 2, 0),  # an untitled slide
            Paragraph("Parking costs nine euros.", 3, 0),
        ]
    )
    blurred = chunk_layout(layout, SMALL)
    assert [chunk.pages for chunk in blurred] == [[1, 2, 3]]  # not slides: one section
    slides = chunk_layout(layout, ChunkingOptions(80, 10, pages_are_slides=True))
    assert [chunk.pages for chunk in slides] == [[1], [2], [3]]
    assert [chunk.headings for chunk in slides] == [["Roadmap"], [], []]
    assert slides[1].text == "The canteen serves soup on Thursdays."


def test_a_continued_table_keeps_the_page_of_each_row() -> None:
    first = make_table("t1", 1, 5, ["Name", "Qty"], [["a", "1"], ["b", "2"]], caption="Stock")
    second = make_table("t2", 2, 1, ["Name", "Qty"], [["c", "3"]])
    [table] = chunk_layout(Layout(tables=[first, second]), SMALL)
    assert table.pages == [1, 2]
    assert [page_at(table, row) for row in ("Stock", "| a | 1 |", "| b | 2 |", "| c | 3 |")] == [
        1, 1, 1, 2,
    ]  # fmt: skip


def test_parts_of_a_long_continued_table_list_only_their_pages() -> None:
    rows = [[f"item{index}", str(index)] for index in range(40)]
    first = make_table("t1", 1, 0, ["Name", "Qty"], rows[:20])
    second = make_table("t2", 2, 0, ["Name", "Qty"], rows[20:])
    parts = chunk_layout(Layout(tables=[first, second]), SMALL)
    assert len(parts) > 2
    assert parts[0].pages == [1] and parts[-1].pages == [2]
    for part in parts:
        for name, qty in rows:
            row = f"| {name} | {qty} |"
            if row in part.text:
                assert page_at(part, row) == (1 if int(qty) < 20 else 2)
