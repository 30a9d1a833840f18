"""Offline OCR with rapidocr (PP-OCR ONNX models shipped inside the package: no downloads).

One engine per process, created on first use. Text comes back as lines with boxes, which
`group_lines` joins into paragraphs (the PDF engine groups its text-layer lines the same way).
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image
    from rapidocr import RapidOCR

# Detection resizes so the longest side is at most `limit_side_len` and never upscales (`max`):
# the default (`min`, 736) upscales small images, which is slow and invents characters. 960 (the
# value in our notes) is exact on small images but garbles 10 pt text on a full A4 page rendered
# at 144 dpi (the text gets ~11 px high); 1600 reads such pages at ~1-1.4 s per page (2 cores).
OCR_PARAMS = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 1600,
    "Global.log_level": "warning",
}
# Recognition confidence below which a line is dropped: garbled lines scored 0.58-0.72 on our
# test pages, correctly read ones 0.93 and up. Missing a line beats indexing gibberish.
MIN_SCORE = 0.75
OPEN_PARAGRAPHS = 3  # how many recent paragraphs a line may continue (multi-column pages)

_engine: RapidOCR | None = None
_create_lock = threading.Lock()
# onnxruntime already uses every core for one image; concurrent calls only thrash the cache
# and rapidocr mutates per-call settings on the shared instance, so calls are serialised.
_run_lock = threading.Lock()


@dataclass(frozen=True)
class TextLine:
    """One line of text with its box (top-left origin) and the size its text is set in."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    size: float  # font size (text layer) or box height (OCR)
    bold: bool = False

    @property
    def height(self) -> float:
        """The box height."""
        return self.bottom - self.top


def ocr_engine() -> RapidOCR:
    """The process's rapidocr engine, created on first use (thread-safe)."""
    global _engine
    if _engine is None:
        with _create_lock:
            if _engine is None:
                from rapidocr import RapidOCR

                _engine = RapidOCR(params=OCR_PARAMS)
    return _engine


def read_lines(image: Image.Image, scale: float = 1.0) -> list[TextLine]:
    """The text lines OCR finds in `image`, boxes divided by `scale` (pixels to page units)."""
    with _run_lock:
        result = ocr_engine()(image.convert("RGB"))
    if result.boxes is None or result.txts is None:
        return []
    lines = []
    for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
        if score < MIN_SCORE or not text.strip():
            continue
        xs = [float(point[0]) / scale for point in box]
        ys = [float(point[1]) / scale for point in box]
        top, bottom = min(ys), max(ys)
        lines.append(TextLine(text.strip(), min(xs), top, max(xs), bottom, bottom - top))
    return sort_reading_order(lines)


def sort_reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Lines top to bottom; lines whose vertical centres nearly match read left to right."""
    ordered = sorted(lines, key=lambda line: (line.top, line.left))
    rows: list[list[TextLine]] = []
    for line in ordered:
        if rows and _same_row(rows[-1][0], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda item: item.left)]


def _same_row(first: TextLine, second: TextLine) -> bool:
    """Whether two lines sit at the same height (their centres within a third of a line)."""
    centre = (first.top + first.bottom) / 2
    other = (second.top + second.bottom) / 2
    return abs(centre - other) < min(first.height, second.height) / 3


def group_lines(lines: list[TextLine], gap_ratio: float = 0.5) -> list[list[TextLine]]:
    """Consecutive lines (in reading order) joined into paragraphs.

    A new paragraph starts where the vertical gap exceeds `gap_ratio` times the text size, the
    size or weight changes, or the line does not overlap the previous one horizontally.
    """
    paragraphs: list[list[TextLine]] = []
    for line in lines:
        # Look back a few paragraphs, not just one: side-by-side columns interleave their lines
        # in top-down order, and each line must find its own column's paragraph.
        target = next(
            (
                paragraph
                for paragraph in reversed(paragraphs[-OPEN_PARAGRAPHS:])
                if _continues(paragraph, line, gap_ratio)
            ),
            None,
        )
        if target is None:
            paragraphs.append([line])
        else:
            target.append(line)
    return paragraphs


def _continues(paragraph: list[TextLine], line: TextLine, gap_ratio: float) -> bool:
    """Whether `line` belongs to the paragraph ending with `paragraph[-1]`."""
    previous = paragraph[-1]
    size = statistics.median(item.size for item in paragraph)
    if line.bold != previous.bold or abs(line.size - size) > 0.15 * size:
        return False
    gap = line.top - previous.bottom
    if gap < -previous.height / 2 or gap > gap_ratio * size:
        return False
    return line.left < previous.right and line.right > previous.left


def join_text(lines: list[TextLine]) -> str:
    """A paragraph's text: lines joined by spaces; a line ending in a hyphen joins without one
    (keeping the hyphen: dropping it would break compounds such as "well-known")."""
    text = ""
    for line in lines:
        separator = "" if not text or (text.endswith("-") and text[-2:-1].isalpha()) else " "
        text = f"{text}{separator}{line.text}"
    return text


def bounding_box(lines: list[TextLine]) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) around `lines`."""
    return (
        min(line.left for line in lines),
        min(line.top for line in lines),
        max(line.right for line in lines),
        max(line.bottom for line in lines),
    )
