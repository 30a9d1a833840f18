"""What every extraction engine and figure describer provides."""

from __future__ import annotations

from typing import Protocol

from shared.documents.layout import ExtractedLayout, FigureDescription, PageRange, SourceDocument


class ExtractionError(Exception):
    """The engine could not read the document (permanent: retrying will not help)."""


class TransientEngineError(Exception):
    """The engine's service is throttled, timed out or failed with a 5xx: retry later."""

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class LayoutEngine(Protocol):
    """Extracts pages of a document into the normalised layout."""

    name: str

    async def extract(self, source: SourceDocument, pages: PageRange | None) -> ExtractedLayout:
        """Reads `pages` (None: the whole document) of `source`."""
        ...


class FigureDescriber(Protocol):
    """Describes one figure image (PNG bytes)."""

    name: str

    async def describe(self, png: bytes) -> FigureDescription:
        """Caption, tags and text read inside the image."""
        ...
