"""One page of an indexed document, as a citation shows it: its passages and its image.

The passages are the document's live chunks on that page (what retrieval cites); the image is
rendered from the original upload, for PDFs (PDFium) and images (each frame of a multi-page
TIFF is a page). Other formats (Word, PowerPoint, text) have no page image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pypdfium2
from PIL import Image

from shared.documents import detect
from shared.documents.index import CHUNKS, LIVE
from shared.documents.pdfium import PDFIUM_LOCK
from shared.documents.records import DocumentRecord
from shared.errors import NotFound
from shared.storage.cosmos import CosmosStore

IMAGE_TYPES = frozenset({detect.PNG, detect.JPEG, detect.GIF, detect.BMP, detect.TIFF})
MAX_IMAGE_WIDTH = 1600  # pixels: enough to read a page, small enough to send quickly


class PageNotFound(NotFound):
    """The document has no such page."""


class NoPageImage(NotFound):
    """The document's format has no page images (only PDFs and images do)."""


@dataclass(frozen=True)
class Passage:
    """One indexed chunk on the page."""

    chunk_id: str
    kind: str
    text: str
    pages: list[int]

    def as_json(self) -> dict[str, Any]:
        """The passage as the page API returns it."""
        return {
            "chunk_id": self.chunk_id,
            "kind": self.kind,
            "text": self.text,
            "pages": self.pages,
        }


def has_page_image(media_type: str | None) -> bool:
    """Whether pages of this format can be rendered as images."""
    return media_type == detect.PDF or media_type in IMAGE_TYPES


def check_page(page: int, page_count: int | None) -> None:
    """PageNotFound unless 1 <= page <= page_count (when the count is known)."""
    if page < 1 or (page_count is not None and page > page_count):
        total = f"; it has {page_count}" if page_count is not None else ""
        raise PageNotFound(f"the document has no page {page}{total}")


async def page_passages(store: CosmosStore, tenant: str, doc_id: str, page: int) -> list[Passage]:
    """The document's live (searchable) chunks that lie on `page`."""
    items = await store.query_partition(
        CHUNKS,
        tenant,
        "c.document_id = @doc AND c.status = @live AND ARRAY_CONTAINS(c.pages, @page)",
        {"@doc": doc_id, "@live": LIVE, "@page": page},
        select="c.id, c.kind, c.text, c.pages",
    )
    return [
        Passage(item["id"], item.get("kind", "text"), item.get("text", ""), item.get("pages", []))
        for item in items
    ]


def page_view(record: DocumentRecord, page: int, passages: list[Passage]) -> dict[str, Any]:
    """`GET /api/documents/{id}/pages/{page}`: the page's passages and its image's URL."""
    image = f"/api/documents/{record.id}/pages/{page}/image"
    return {
        "document_id": record.id,
        "document_name": record.name,
        "media_type": record.media_type,
        "page": page,
        "page_count": record.page_count,
        "passages": [passage.as_json() for passage in passages],
        "image_url": image if has_page_image(record.media_type) else None,
    }


def render_page(content: bytes, media_type: str, page: int, width: int = MAX_IMAGE_WIDTH) -> bytes:
    """PNG of page `page` (1-based) of a PDF or image, at most `width` pixels wide."""
    if media_type == detect.PDF:
        return _render_pdf_page(content, page, width)
    if media_type in IMAGE_TYPES:
        return _render_image_frame(content, page, width)
    raise NoPageImage(f"{media_type} documents have no page images; only PDFs and images do")


def _render_pdf_page(content: bytes, page: int, width: int) -> bytes:
    with PDFIUM_LOCK:
        document = pypdfium2.PdfDocument(content)
        try:
            if not 1 <= page <= len(document):
                raise PageNotFound(f"the document has no page {page}; it has {len(document)}")
            pdf_page = document[page - 1]
            scale = min(width / max(pdf_page.get_width(), 1.0), 3.0)
            image = pdf_page.render(scale=scale).to_pil()
            pdf_page.close()
        finally:
            document.close()
    return _png(image)


def _render_image_frame(content: bytes, page: int, width: int) -> bytes:
    with Image.open(io.BytesIO(content)) as source:
        frames = getattr(source, "n_frames", 1)
        if not 1 <= page <= frames:
            raise PageNotFound(f"the image has no page {page}; it has {frames}")
        source.seek(page - 1)
        image = source.convert("RGB")
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
