"""Born-digital PDF pages read from PDFium's text page: words, images and ruling lines.

pdfplumber builds every character as a Python object through pdfminer's layout analysis (about
0.1 s per page of prose); PDFium parses the page in C. Here a page's text comes out in one call
and only each word's first and last characters are measured, so a page of prose takes a few
milliseconds. The words have the shape pdfplumber's `extract_words(extra_attrs=["size",
"fontname"])` gives (text, x0, x1, top, bottom, size, fontname; PDF points from the page's
top-left corner; a character's box is its font size high, from the baseline's descent, as
pdfminer measures it), so `pdf.py` turns them into lines, paragraphs and headings with the same
code.

A page that may hold a table (a path long enough to be a table edge: the only tables the
pdfplumber path finds are drawn ones) keeps its ruling lines as pdfplumber-style edges
(`edges`), taken from the path objects' segments in page space, and `PlumberView` lets
pdfplumber's own table finder run over them and over the characters of the table areas only
(measured one by one): the same tables, without pdfminer parsing the whole page. Paths this
reader does not translate exactly (curves, diagonal or multi-segment shapes, paths nested in
form XObjects, a media box off the origin) leave `edges` None, and the page goes to pdfplumber,
as do pages whose text layer cannot be trusted (characters PDFium could not map to Unicode, text
it cannot index one-to-one) and scans. Callers hold `PDFIUM_LOCK`.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from typing import Any

import pypdfium2
import pypdfium2.raw as pdfium_c

RULE_MIN_POINTS = 3.0  # pdfplumber's edge_min_length: shorter strokes never make table edges
STRAIGHT = 0.01  # points: a segment this close to level or plumb is horizontal or vertical
_WORD = re.compile(r"\S+")
# Replacement, non-characters and private use: glyphs whose meaning the text layer lost.
_UNMAPPED = re.compile("[\ufffd\ufffe\uffff\ue000-\uf8ff\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass
class PdfiumPage:
    """What PDFium reads on one page."""

    width: float
    height: float
    words: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    real_chars: int = 0  # visible, mapped characters
    unmapped_chars: int = 0
    may_hold_table: bool = False  # ruling lines or rectangles: pdfplumber looks for tables
    edges: list[dict[str, Any]] | None = field(default_factory=list)  # None: not translatable
    trusted: bool = True  # False: read this page with pdfplumber
    textpage: pypdfium2.PdfTextPage | None = None  # kept open for `chars_in` (table pages)
    text: str = ""  # the text page's characters, one per index


@dataclass
class _Font:
    """Per text object: the name pdfplumber reports and the descent at its size."""

    name: str
    size: float
    descent: float


def read_page(page: pypdfium2.PdfPage) -> PdfiumPage:
    """Words, figure candidates and table signals of `page`; when the page may hold a table its
    text page stays open in `textpage` (close it with `close`)."""
    width, height = page.get_size()
    result = PdfiumPage(width=float(width), height=float(height))
    _read_objects(page, result)
    if result.may_hold_table and tuple(page.get_mediabox()[:2]) != (0.0, 0.0):
        result.edges = None  # pdfplumber measures from the media box: leave it the page
    textpage = page.get_textpage()
    try:
        _read_words(textpage, result)
    finally:
        if result.may_hold_table and result.edges is not None:
            result.textpage = textpage
        else:
            textpage.close()
    return result


def close(page: PdfiumPage) -> None:
    """Closes the text page `read_page` kept open, if any."""
    if page.textpage is not None:
        page.textpage.close()
        page.textpage = None


def _read_objects(page: pypdfium2.PdfPage, result: PdfiumPage) -> None:
    """Images (in pdfplumber's dict shape) and whether any path could be a table edge."""
    kinds = (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH)
    for item in page.get_objects(filter=kinds):
        left, bottom, right, top = item.get_bounds()
        if item.type == pdfium_c.FPDF_PAGEOBJ_PATH:
            if max(right - left, top - bottom) >= RULE_MIN_POINTS:
                result.may_hold_table = True
            if result.edges is not None:
                edges = None if item.level > 0 else _path_edges(item, result.height)
                result.edges = None if edges is None else result.edges + edges
            continue
        pixels = item.get_px_size()
        result.images.append(
            {
                "x0": float(left),
                "x1": float(right),
                "top": result.height - float(top),
                "bottom": result.height - float(bottom),
                "srcsize": (int(pixels[0]), int(pixels[1])),
            }
        )


def _read_words(textpage: pypdfium2.PdfTextPage, result: PdfiumPage) -> None:
    """The page's words; marks the page untrusted when its text layer is not one-to-one."""
    count = pdfium_c.FPDFText_CountChars(textpage)
    if count <= 0:
        return
    text = textpage.get_text_range(0, count)
    if len(text) != count:  # characters outside the BMP: indexes no longer line up
        result.trusted = False
        return
    result.text = text
    fonts: dict[int, _Font] = {}
    box = pdfium_c.FS_RECTF()
    origin_x, origin_y = ctypes.c_double(), ctypes.c_double()
    end_x, end_y = ctypes.c_double(), ctypes.c_double()
    for match in _WORD.finditer(text):
        first, last = match.start(), match.end() - 1
        word = match.group()
        unmapped = len(_UNMAPPED.findall(word))
        if unmapped or pdfium_c.FPDFText_HasUnicodeMapError(textpage, first):
            result.unmapped_chars += unmapped or len(word)
            continue
        result.real_chars += len(word)
        font = _font_of(textpage, first, fonts)
        if font is None or font.size <= 0:
            continue
        pdfium_c.FPDFText_GetCharOrigin(textpage, first, origin_x, origin_y)
        pdfium_c.FPDFText_GetLooseCharBox(textpage, first, box)
        x0 = box.left
        if last != first:
            pdfium_c.FPDFText_GetCharOrigin(textpage, last, end_x, end_y)
            if abs(end_y.value - origin_y.value) > font.size / 2:  # no line break between
                result.trusted = False  # rotated or oddly ordered text: pdfplumber reads it
                return
            pdfium_c.FPDFText_GetLooseCharBox(textpage, last, box)
        bottom = result.height - (origin_y.value + font.descent)
        result.words.append(
            {
                "text": word,
                "x0": float(x0),
                "x1": float(box.right),
                "top": bottom - font.size,
                "bottom": bottom,
                "size": font.size,
                "fontname": font.name,
                "chars": (first, last + 1),  # text page indexes, for `chars_in`
            }
        )


def _font_of(textpage: pypdfium2.PdfTextPage, index: int, fonts: dict[int, _Font]) -> _Font | None:
    """The font of character `index`, cached per text object (one font and size each)."""
    handle = pdfium_c.FPDFText_GetTextObject(textpage, index)
    key = ctypes.cast(handle, ctypes.c_void_p).value or 0
    cached = fonts.get(key)
    if cached is not None:
        return cached
    if not key:
        return None
    size = float(pdfium_c.FPDFText_GetFontSize(textpage, index))
    font = pdfium_c.FPDFTextObj_GetFont(handle)
    name = ctypes.create_string_buffer(256)
    length = pdfium_c.FPDFFont_GetBaseFontName(font, name, len(name))
    descent = ctypes.c_float()
    if not pdfium_c.FPDFFont_GetDescent(font, ctypes.c_float(size), descent):
        descent.value = 0.0
    base = name.raw[: max(length - 1, 0)].decode("latin-1") if length else ""
    fonts[key] = _Font(name=base, size=round(size, 4), descent=float(descent.value))
    return fonts[key]


def _path_edges(item: pypdfium2.PdfObject, height: float) -> list[dict[str, Any]] | None:
    """pdfplumber's edges of one painted path - a straight line (one edge) or an axis-aligned
    rectangle (four) - in page space; None for anything else."""
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    pdfium_c.FPDFPath_GetDrawMode(item, fill, stroke)
    if not fill.value and not stroke.value:
        return []  # not painted: pdfminer emits nothing for it
    a, b, c, d, e, f = item.get_matrix().get()
    x, y = ctypes.c_float(), ctypes.c_float()
    points: list[tuple[float, float]] = []
    closed = False
    for index in range(pdfium_c.FPDFPath_CountSegments(item)):
        segment = pdfium_c.FPDFPath_GetPathSegment(item, index)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        if kind == pdfium_c.FPDF_SEGMENT_BEZIERTO or (
            kind == pdfium_c.FPDF_SEGMENT_MOVETO and index
        ):
            return None  # curves and several subpaths: pdfplumber reads them its own way
        pdfium_c.FPDFPathSegment_GetPoint(segment, x, y)
        points.append((a * x.value + c * y.value + e, height - (b * x.value + d * y.value + f)))
        closed = closed or bool(pdfium_c.FPDFPathSegment_GetClose(segment))
    if len(points) == 2 and not closed:
        edge = _edge(*points)
        return None if edge is None else [edge]
    if closed and points[-1] == points[0]:
        points.pop()
    if len(points) != 4:
        return None
    edges = [_edge(points[index], points[(index + 1) % 4]) for index in range(4)]
    if any(edge is None for edge in edges):
        return None
    return edges  # type: ignore[return-value]


def _edge(start: tuple[float, float], end: tuple[float, float]) -> dict[str, Any] | None:
    """The edge between two points if it is horizontal or vertical, else None."""
    (x0, y0), (x1, y1) = start, end
    if abs(y1 - y0) <= STRAIGHT:
        orientation = "h"
        y1 = y0
    elif abs(x1 - x0) <= STRAIGHT:
        orientation = "v"
        x1 = x0
    else:
        return None
    left, right, top, bottom = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    return {
        "object_type": "line",
        "orientation": orientation,
        "x0": left,
        "x1": right,
        "top": top,
        "bottom": bottom,
        "doctop": top,
        "width": right - left,
        "height": bottom - top,
    }


def chars_in(
    page: PdfiumPage, boxes: list[tuple[float, float, float, float]]
) -> list[dict[str, Any]]:
    """pdfplumber-style characters of the words overlapping `boxes`, measured one by one (only
    table areas are: most of a page never needs per-character boxes)."""
    if page.textpage is None:
        raise ValueError("the page's text page was not kept (no table signal)")
    box = pdfium_c.FS_RECTF()
    chars = []
    for word in page.words:
        if not any(_overlaps(word, area) for area in boxes):
            continue
        start, end = word["chars"]
        while end < len(page.text) and page.text[end] == " ":
            if pdfium_c.FPDFText_IsGenerated(page.textpage, end):
                break  # PDFium's own word break: pdfminer has no such character
            end += 1  # a space the PDF draws: pdfplumber's cell text keeps it
        for index in range(start, end):
            pdfium_c.FPDFText_GetLooseCharBox(page.textpage, index, box)
            chars.append(
                {
                    "object_type": "char",
                    "text": page.text[index],
                    "x0": float(box.left),
                    "x1": float(box.right),
                    "top": word["top"],
                    "bottom": word["bottom"],
                    "doctop": word["top"],
                    "width": float(box.right - box.left),
                    "height": word["bottom"] - word["top"],
                    "size": word["size"],
                    "fontname": word["fontname"],
                    "upright": True,
                }
            )
    return chars


def _overlaps(word: dict[str, Any], area: tuple[float, float, float, float]) -> bool:
    """Whether a word's box meets `area` (x0, top, x1, bottom)."""
    x0, top, x1, bottom = area
    return word["x1"] >= x0 and word["x0"] <= x1 and word["bottom"] >= top and word["top"] <= bottom


class PlumberView:
    """Just enough of a pdfplumber page for its TableFinder and Table.extract: PDFium's edges
    and the table areas' characters."""

    def __init__(self, page: PdfiumPage) -> None:
        self.edges = page.edges or []
        self.bbox = (0.0, 0.0, page.width, page.height)
        self.chars: list[dict[str, Any]] = []
