"""Images (PNG, JPEG, GIF, BMP, TIFF): one page per frame (multi-page TIFF, animated GIF).

Each page is OCR'd into paragraphs and is also a figure covering the whole page, so a photo or
chart without text still reaches the figure describer. Regions are in pixels.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from shared.documents.engines.base import ExtractionError
from shared.documents.engines.local import LayoutBuilder
from shared.documents.engines.local.ocr import bounding_box, group_lines, join_text, read_lines
from shared.documents.layout import ExtractedLayout, Page, PageRange, Region

ENGINE = "rapidocr"


def extract(content: bytes, pages: PageRange | None) -> ExtractedLayout:
    """The layout of `pages` (None: all) of the frames of the image in `content`."""
    builder = LayoutBuilder()
    with Image.open(io.BytesIO(content)) as image:
        frame_count = getattr(image, "n_frames", 1)
        for number in _frame_numbers(pages, frame_count):
            image.seek(number - 1)
            _emit_frame(builder, number, _frame(image))
    return builder.result()


def _frame_numbers(pages: PageRange | None, count: int) -> range:
    """1-based frame numbers to read: the range clipped to the image's frames."""
    if pages is None:
        return range(1, count + 1)
    if pages.first < 1 or pages.first > count or pages.last < pages.first:
        raise ExtractionError(f"pages {pages.pages} are outside the image's {count} frames")
    return range(pages.first, min(pages.last, count) + 1)


def _frame(image: Image.Image) -> Image.Image:
    """The current frame as an upright RGB(A) copy (GIF palettes and CMYK converted)."""
    frame = ImageOps.exif_transpose(image.copy())
    has_alpha = "A" in frame.getbands() or "transparency" in frame.info
    return frame.convert("RGBA" if has_alpha else "RGB")


def _emit_frame(builder: LayoutBuilder, number: int, frame: Image.Image) -> None:
    """Adds a frame's page, its OCR paragraphs and the frame itself as a figure."""
    width, height = frame.size
    builder.add_page(
        Page(number, ENGINE, width=width, height=height, unit="pixel", has_text_layer=False)
    )
    builder.add_figure(number, frame, Region(number, 0, 0, width, height))
    for lines in group_lines(read_lines(_on_white(frame))):
        left, top, right, bottom = bounding_box(lines)
        region = Region(number, round(left), round(top), round(right), round(bottom))
        builder.add_paragraph(join_text(lines), number, region=region)


def _on_white(frame: Image.Image) -> Image.Image:
    """The frame flattened onto white: OCR of transparent pixels reads them as black."""
    if frame.mode != "RGBA":
        return frame
    background = Image.new("RGB", frame.size, "white")
    background.paste(frame, mask=frame.getchannel("A"))
    return background
