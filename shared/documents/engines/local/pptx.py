"""PPTX: one page per slide. Shapes are read top-to-bottom, left-to-right (the shape tree is
z-order, not reading order); the title placeholder comes first. Regions are in points.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from PIL import Image, UnidentifiedImageError
from pptx import Presentation
from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER
from pptx.shapes.base import BaseShape
from pptx.shapes.graphfrm import GraphicFrame
from pptx.shapes.picture import Picture
from pptx.shapes.placeholder import PlaceholderPicture
from pptx.slide import Slide

from shared.documents.engines.local import LayoutBuilder, looks_like_header, mark_header_row
from shared.documents.layout import TITLE, ExtractedLayout, Page, Region, TableCell

ENGINE = "python-pptx"
EMU_PER_POINT = 12700
TITLE_PLACEHOLDERS = {
    PP_PLACEHOLDER.TITLE,
    PP_PLACEHOLDER.CENTER_TITLE,
    PP_PLACEHOLDER.VERTICAL_TITLE,
}


def extract(content: bytes) -> ExtractedLayout:
    """The layout of every slide of the PPTX in `content`."""
    deck = Presentation(io.BytesIO(content))
    width, height = _points(deck.slide_width), _points(deck.slide_height)
    builder = LayoutBuilder()
    for number, slide in enumerate(deck.slides, start=1):
        builder.add_page(Page(number, ENGINE, width=width, height=height, unit="point"))
        for shape in _reading_order(slide):
            _emit_shape(builder, number, shape)
    return builder.result()


def _points(emu: int | None) -> float | None:
    """EMU (1/12700 pt) to points."""
    return None if emu is None else round(emu / EMU_PER_POINT, 2)


def _reading_order(slide: Slide) -> list[BaseShape]:
    """Leaf shapes (groups flattened): the title first, then top-to-bottom, left-to-right."""
    shapes = list(_leaf_shapes(slide.shapes))
    return sorted(shapes, key=lambda shape: (not _is_title(shape), shape.top or 0, shape.left or 0))


def _leaf_shapes(shapes) -> Iterator[BaseShape]:
    """Shapes with group shapes replaced by their members."""
    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _leaf_shapes(shape.shapes)
        else:
            yield shape


def _is_title(shape: BaseShape) -> bool:
    """Whether the shape is the slide's title placeholder."""
    return shape.is_placeholder and shape.placeholder_format.type in TITLE_PLACEHOLDERS


def _region(page: int, shape: BaseShape) -> Region | None:
    """The shape's box in points (None when the shape inherits its position from the layout
    and python-pptx cannot resolve it)."""
    if shape.left is None or shape.top is None or shape.width is None or shape.height is None:
        return None
    left, top = _points(shape.left), _points(shape.top)
    return Region(page, left, top, left + _points(shape.width), top + _points(shape.height))


def _emit_shape(builder: LayoutBuilder, page: int, shape: BaseShape) -> None:
    """Adds what a shape holds: a picture, a table or text."""
    if isinstance(shape, Picture | PlaceholderPicture):
        _emit_picture(builder, page, shape)
    elif isinstance(shape, GraphicFrame) and shape.has_table:
        _emit_table(builder, page, shape)
    elif shape.has_text_frame:
        _emit_text(builder, page, shape)


def _emit_text(builder: LayoutBuilder, page: int, shape: BaseShape) -> None:
    """Adds a text frame: the title as one paragraph, other frames paragraph by paragraph."""
    region = _region(page, shape)
    if _is_title(shape):
        builder.add_paragraph(" ".join(shape.text_frame.text.split()), page, TITLE, region=region)
        return
    for paragraph in shape.text_frame.paragraphs:
        # A vertical tab is how PowerPoint stores a soft line break inside a paragraph.
        builder.add_paragraph(paragraph.text.replace("\v", "\n"), page, region=region)


def _emit_picture(builder: LayoutBuilder, page: int, shape: BaseShape) -> None:
    """Adds a picture as a figure when it is embedded and Pillow can decode it (linked pictures
    and EMF/WMF/SVG are skipped: there is no PNG to give)."""
    try:
        image = Image.open(io.BytesIO(shape.image.blob))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError):
        return
    builder.add_figure(page, image, _region(page, shape))


def _emit_table(builder: LayoutBuilder, page: int, frame: GraphicFrame) -> None:
    """Adds a table: merge origins carry their spans, the cells they cover are skipped."""
    table = frame.table
    cells = []
    grid = []
    for row_index, row in enumerate(table.rows):
        grid.append([])
        for column_index, cell in enumerate(row.cells):
            text = " ".join(cell.text.split())
            grid[-1].append("" if cell.is_spanned else text)
            if cell.is_spanned:
                continue
            cells.append(
                TableCell(
                    row=row_index,
                    column=column_index,
                    content=text,
                    row_span=cell.span_height if cell.is_merge_origin else 1,
                    column_span=cell.span_width if cell.is_merge_origin else 1,
                )
            )
    # PowerPoint's "Header Row" table option styles the first row as the header.
    if (table.first_row and len(grid) > 1) or looks_like_header(grid):
        mark_header_row(cells)
    builder.add_table(page, cells, _region(page, frame))
