"""Where each page's text sits inside a chunk, so a citation names the page of its quote.

A chunk may run over a page break (a paragraph continued on the next page, small frames of a
TIFF, a table continued over two pages). Its `pages` lists the span; its `page_spans` cut its
text into consecutive character ranges, one per page run, covering the whole text:

    [{"page": 9, "start": 0, "end": 412}, {"page": 10, "start": 412, "end": 780}]

The heading path at the top of a chunk belongs to the first span. A citation's `page` is the
page of the span holding the quoted sentence (`page_of`). Chunks indexed before spans existed
have none; they cite their first page, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PageSpan = dict[str, int]  # {"page": p, "start": s, "end": e}: text[s:e] is on page p


def spans_from_marks(marks: Iterable[tuple[int, int]], length: int) -> list[PageSpan]:
    """Spans covering text[0:length] from (offset, page) marks where each page's text starts.

    Marks are in text order. The first span starts at 0 (whatever precedes the first mark, such
    as the heading path, is on its page); empty runs are dropped and runs of one page merged.
    """
    starts: list[tuple[int, int]] = []
    for offset, page in marks:  # clamped into the text, never before the previous mark
        floor = starts[-1][0] if starts else 0
        starts.append((min(max(offset, floor), length) if starts else 0, page))
    spans: list[PageSpan] = []
    for index, (offset, page) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else length
        if end <= offset:
            continue
        if spans and spans[-1]["page"] == page:
            spans[-1]["end"] = end
        else:
            spans.append({"page": page, "start": offset, "end": end})
    return spans


def page_of(spans: Sequence[Mapping[str, Any]] | None, offset: int, pages: Sequence[int]) -> int:
    """The page of the character at `offset`; without spans, the chunk's first page (or 1)."""
    for span in spans or ():
        if span["start"] <= offset < span["end"]:
            return int(span["page"])
    if spans:  # past the end (an offset at len(text)): the last page
        return int(spans[-1]["page"])
    return pages[0] if pages else 1


__all__ = ["PageSpan", "page_of", "spans_from_marks"]
