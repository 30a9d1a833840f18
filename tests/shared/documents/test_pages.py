"""Page images for citations: the right page of a PDF or a multi-page image, as PNG."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.documents import detect
from shared.documents.pages import (
    NoPageImage,
    PageNotFound,
    check_page,
    has_page_image,
    render_page,
)
from tests.fixtures import bad_documents, documents


def _image(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(png))


def test_a_pdf_page_renders_at_the_requested_width() -> None:
    rendered = _image(render_page(documents.report_pdf(), detect.PDF, 3, width=400))
    assert rendered.width == pytest.approx(400, abs=2)
    assert rendered.height > rendered.width  # a portrait page


def test_each_pdf_page_is_its_own_image() -> None:
    report = documents.report_pdf()
    first, third = (render_page(report, detect.PDF, page, width=300) for page in (1, 3))
    assert first != third


def test_a_tiff_frame_is_a_page_and_wide_images_shrink() -> None:
    tiff = documents.multipage_tiff()
    frames = Image.open(io.BytesIO(tiff)).n_frames
    assert frames > 1
    assert _image(render_page(tiff, detect.TIFF, frames, width=50)).width <= 50
    with pytest.raises(PageNotFound):
        render_page(tiff, detect.TIFF, frames + 1)


def test_missing_pages_and_formats_without_images_are_not_found() -> None:
    with pytest.raises(PageNotFound, match="it has 3"):
        render_page(documents.report_pdf(), detect.PDF, 4)
    with pytest.raises(NoPageImage):
        render_page(bad_documents.docx(), detect.DOCX, 1)
    with pytest.raises(PageNotFound, match="no page 0"):
        check_page(0, 3)
    check_page(3, 3)
    check_page(7, None)  # the count is unknown until validation: the query decides
    assert has_page_image(detect.PNG) and not has_page_image(detect.DOCX)
