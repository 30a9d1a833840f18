"""Citations: `page` is the page of the quoted sentence or line; `pages` the chunk's span."""

from __future__ import annotations

from shared.chat.service import best_quote, cite
from shared.documents.pagespans import spans_from_marks
from shared.retrieval.search import RetrievedChunk

TEXT = (
    "# Harbour > ## Operations\n\n"
    "The pilot boat leaves at six. Harbour notes continue.\n\n"
    "- dredged depth: 14 m\n"
    "- tug rotation 12 days\n\n"
    "| Berth | Length |\n|---|---|\n| B7 | 280 m |"
)


def chunk(text: str = TEXT, spans: list[dict[str, int]] | None = None) -> RetrievedChunk:
    marks = [(text.index("The pilot"), 4), (text.index("- dredged"), 5), (text.index("| Berth"), 6)]
    return RetrievedChunk(
        id="c1", document_id="d1", document_name="ops.pdf", pages=[4, 5, 6], text=text,
        kind="text", headings=["Harbour", "Operations"], score=1.0, vector_rank=1,
        keyword_rank=1,
        page_spans=spans_from_marks(marks, len(text)) if spans is None else spans,
    )  # fmt: skip


def test_the_citation_page_is_the_page_of_the_quote() -> None:
    for claim, page, quote in [
        ("The pilot boat leaves at six [1].", 4, "The pilot boat leaves at six."),
        ("dredged depth: 14 m [1].", 5, "- dredged depth: 14 m"),
        ("tug rotation 12 days [1].", 5, "- tug rotation 12 days"),
        ("B7 280 m [1].", 6, "| B7 | 280 m |"),
    ]:
        _, [citation] = cite(claim, [chunk()])
        assert (citation.page, citation.pages, citation.quote) == (page, [4, 5, 6], quote)


def test_a_chunk_indexed_before_spans_cites_its_first_page() -> None:
    _, [citation] = cite("tug rotation 12 days [1].", [chunk(spans=[])])
    assert citation.page == 4


def test_quotes_are_sentences_or_lines_with_their_offsets() -> None:
    quote, offset = best_quote(TEXT, "Harbour notes continue")
    assert quote == "Harbour notes continue." and TEXT[offset:].startswith(quote)
    long = "word " * 100
    quote, offset = best_quote(long, "word")
    assert quote.endswith("…") and len(quote) <= 240 and offset == 0
