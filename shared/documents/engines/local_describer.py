"""Figure descriptions without a vision model: the text read inside, and image properties.

No caption is invented: a caption needs a vision model. What is said is what can be measured:
the words OCR reads in the image, its size and shape, and whether it is colour or greyscale.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image, ImageStat

from shared.documents.layout import FigureDescription

GREYSCALE_SPREAD = 12.0  # mean channel difference below which an image reads as greyscale


def image_tags(image: Image.Image) -> list[str]:
    """Tags measured from the pixels: orientation, colour, and how busy it is."""
    width, height = image.size
    tags = ["wide" if width > 1.3 * height else "tall" if height > 1.3 * width else "square"]
    rgb = image.convert("RGB")
    stats = ImageStat.Stat(rgb)
    red, green, blue = stats.mean
    spread = max(abs(red - green), abs(green - blue), abs(red - blue))
    tags.append("greyscale" if spread < GREYSCALE_SPREAD else "colour")
    busy = sum(ImageStat.Stat(rgb.convert("L")).stddev) > 60
    tags.append("detailed" if busy else "plain")
    return tags


def _describe(png: bytes) -> FigureDescription:
    from shared.documents.engines.local.ocr import join_text, read_lines, sort_reading_order

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        tags = image_tags(image)
        lines = sort_reading_order(read_lines(image.convert("RGB")))
        width, height = image.size
    text = join_text(lines) if lines else ""
    if text:
        tags.append("text")
    tags.append(f"{width}x{height}px")
    return FigureDescription(caption=None, tags=tags, text=text, source="local")


class LocalFigureDescriber:
    """OCR text and image properties, offline."""

    name = "local"

    async def describe(self, png: bytes) -> FigureDescription:
        """Reads the image in a worker thread (OCR is CPU-bound)."""
        return await asyncio.to_thread(_describe, png)
