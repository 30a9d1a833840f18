"""The local engine's building blocks: DOCX pagination, line grouping, header heuristics, OCR
running offline."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import docx
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from shared.documents.engines.local import LocalEngine, looks_like_header
from shared.documents.engines.local import docx as docx_engine
from shared.documents.engines.local.ocr import TextLine, group_lines, join_text
from shared.documents.layout import PageRange, SourceDocument
from tests.fixtures import documents as fixtures

ROOT = Path(__file__).resolve().parents[3]


def _rendered_break_run(paragraph) -> None:
    """Prepends a run holding w:lastRenderedPageBreak, as Word writes on each laid-out page."""
    run = OxmlElement("w:r")
    run.append(OxmlElement("w:lastRenderedPageBreak"))
    paragraph._p.insert(1 if paragraph._p.pPr is not None else 0, run)


def _section_break(paragraph, start: str) -> None:
    """Ends a section at `paragraph`; the following section starts as `start` says."""
    sect_pr = OxmlElement("w:sectPr")
    kind = OxmlElement("w:type")
    kind.set(qn("w:val"), start)
    sect_pr.append(kind)
    paragraph._p.get_or_add_pPr().append(sect_pr)


def _pages_of(document: docx.Document) -> list[tuple[int, str]]:
    """(page, text) of each paragraph the engine extracts from `document`."""
    buffer = io.BytesIO()
    document.save(buffer)
    layout = docx_engine.extract(buffer.getvalue()).layout
    return [(item.page, item.text) for item in layout.paragraphs]


def test_docx_rendered_break_after_a_hard_break_is_not_counted_twice() -> None:
    document = docx.Document()
    document.add_paragraph("one")
    document.add_paragraph().add_run().add_break(docx.enum.text.WD_BREAK.PAGE)
    two = document.add_paragraph("two")
    _rendered_break_run(two)  # Word records the page the hard break started
    three = document.add_paragraph("three")
    _rendered_break_run(three)  # a page Word filled up and broke on its own

    assert _pages_of(document) == [(1, "one"), (2, "two"), (3, "three")]


def test_docx_rendered_break_inside_a_paragraph_splits_it() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("end of the page")
    paragraph._p.append(OxmlElement("w:r"))
    paragraph._p[-1].append(OxmlElement("w:lastRenderedPageBreak"))
    paragraph.add_run(" start of the next")

    assert _pages_of(document) == [(1, "end of the page"), (2, "start of the next")]


def test_docx_section_breaks_start_pages_unless_continuous() -> None:
    # A sectPr closes its section and its w:type says how that section started: section 1's
    # type does not matter, section 2 starts on a new page, section 3 (the body's sectPr)
    # continues on the same page.
    document = docx.Document()
    _section_break(document.add_paragraph("first section"), "continuous")
    _section_break(document.add_paragraph("second section"), "nextPage")
    document.add_paragraph("third section")
    body_type = OxmlElement("w:type")
    body_type.set(qn("w:val"), "continuous")
    document.element.body.sectPr.insert(0, body_type)

    assert _pages_of(document) == [
        (1, "first section"),
        (2, "second section"),
        (2, "third section"),
    ]


def test_group_lines_splits_on_gaps_and_follows_each_column() -> None:
    def line(text: str, left: float, top: float) -> TextLine:
        return TextLine(text, left, top, left + 200, top + 10, 10)

    lines = [
        line("left one", 50, 100),
        line("right one", 300, 100),
        line("left two", 50, 112),
        line("right two", 300, 112),
        line("left new paragraph", 50, 140),
    ]
    paragraphs = [join_text(group) for group in group_lines(lines)]

    assert paragraphs == ["left one left two", "right one right two", "left new paragraph"]


def test_join_text_keeps_hyphens_of_words_broken_over_lines() -> None:
    lines = [TextLine("a well-", 0, 0, 50, 10, 10), TextLine("known fact", 0, 12, 50, 22, 10)]

    assert join_text(lines) == "a well-known fact"


def test_looks_like_header() -> None:
    assert looks_like_header([["Name", "Amount"], ["Rent", "1,200.00"]])
    assert looks_like_header([["Name", "City"], ["Ann", "Oslo"]], first_row_bold=True)
    assert not looks_like_header([["Name", "City"], ["Ann", "Oslo"]])  # nothing tells
    assert not looks_like_header([["2023", "2024"], ["5", "7"]])  # numbers are data
    assert not looks_like_header([["Only", "row"]])


async def test_same_input_gives_same_ids_and_figure_bytes() -> None:
    source = SourceDocument("deck.pptx", "application/zip", fixtures.pptx_deck(), 2)
    first = await LocalEngine().extract(source, None)
    second = await LocalEngine().extract(source, PageRange(1, 2))

    assert first == second
    assert list(first.figure_images) == ["p2-f1"]


def test_ocr_runs_with_the_network_blocked() -> None:
    """A fresh process with sockets disabled creates the engine and reads text: the models
    ship in the rapidocr package and nothing is fetched."""
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled for this test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from PIL import Image
        import io
        from shared.documents.engines.local.ocr import read_lines
        from tests.fixtures.documents import text_png
        print("|".join(line.text for line in read_lines(Image.open(io.BytesIO(text_png())))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "|".join(fixtures.SCANNED_LINES)
