"""Born-digital PDF pages read from PDFium's text page: words, images and ruling lines.

pdfplumber builds every character as a Python object through pdfminer's layout analysis (about
0.1 s per page of prose); PDFium parses the page in C. Here a page's text comes out in one call
and only each word's first and last characters are measured, so a page of prose takes a few
milliseconds. The words have the shape pdfplumber's `extract_words(extra_attrs=["size",
"fontname"])` gives (text, x0, x1, top, bottom, size, fontname; PDF points from the page's
top-left corner; a character's box is its font size high, from the baseline's descent, as
pdfminer measures it), so `pdf.py` turns them into lines, paragraphs and headings with the same
code.

`read_page` also says whether the page may hold a table (ruling lines or rectangles: the only
tables the pdfplumber path finds are drawn ones) and whether its text layer can be trusted
(characters PDFium could not map to Unicode, or text it cannot index one-to-one): such pages,
and scans, go to the pdfplumber path instead. Callers hold `PDFIUM_LOCK`.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from typing import Any

import pypdfium2
import pypdfium2.raw as pdfium_c

RULE_MIN_POINTS = 3.0  # pdfplumber's edge_min_length: shorter strokes never make table edges
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
    trusted: bool = True  # False: read this page with pdfplumber


@dataclass
class _Font:
    """Per text object: the name pdfplumber reports and the descent at its size."""

    name: str
    size: float
    descent: float


def read_page(page: pypdfium2.PdfPage) -> PdfiumPage:
    """Words, figure candidates and table signals of `page`."""
    width, height = page.get_size()
    result = PdfiumPage(width=float(width), height=float(height))
    _read_objects(page, result)
    textpage = page.get_textpage()
    try:
        _read_words(textpage, result)
    finally:
        textpage.close()
    return result


def _read_objects(page: pypdfium2.PdfPage, result: PdfiumPage) -> None:
    """Images (in pdfplumber's dict shape) and whether any path could be a table edge."""
    kinds = (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH)
    for item in page.get_objects(filter=kinds):
        left, bottom, right, top = item.get_bounds()
        if item.type == pdfium_c.FPDF_PAGEOBJ_PATH:
            if max(right - left, top - bottom) >= RULE_MIN_POINTS:
                result.may_hold_table = True
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
