"""Page spans: marks into consecutive spans; the page of an offset."""

from __future__ import annotations

from shared.documents.pagespans import page_of, spans_from_marks


def test_marks_become_consecutive_spans_covering_the_text() -> None:
    spans = spans_from_marks([(12, 3), (40, 3), (55, 4), (90, 5)], 120)
    assert spans == [
        {"page": 3, "start": 0, "end": 55},  # the heading before the first mark is on page 3
        {"page": 4, "start": 55, "end": 90},
        {"page": 5, "start": 90, "end": 120},
    ]


def test_empty_runs_are_dropped_and_runs_of_one_page_merge() -> None:
    assert spans_from_marks([(0, 1), (10, 2), (10, 1), (20, 1)], 30) == [
        {"page": 1, "start": 0, "end": 30}
    ]
    assert spans_from_marks([(0, 1), (50, 2), (40, 3)], 60) == [  # out of order: clamped
        {"page": 1, "start": 0, "end": 50},
        {"page": 3, "start": 50, "end": 60},
    ]
    assert spans_from_marks([], 10) == []


def test_page_of_an_offset_and_the_fallbacks() -> None:
    spans = spans_from_marks([(0, 9), (20, 10)], 40)
    assert [page_of(spans, offset, [9, 10]) for offset in (0, 19, 20, 39, 40)] == [9, 9, 10, 10, 10]
    assert page_of([], 25, [7, 8]) == 7  # chunks indexed before spans: the first page
    assert page_of(None, 0, []) == 1
