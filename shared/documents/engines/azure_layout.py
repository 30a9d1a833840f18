"""Document Intelligence `prebuilt-layout` as a LayoutEngine, through the real async SDK.

One `extract` is one analyze operation for one page range (`pages=`), with `output=figures` so
the service crops every figure to a PNG, fetched afterwards by result id. The `AnalyzeResult`
is converted into our Layout. The retry and error-mapping helpers here are shared with the
Image Analysis describer (same azure-core pipeline, same error body).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from azure.ai.documentintelligence.aio import DocumentIntelligenceClient
from azure.ai.documentintelligence.models import (
    AnalyzeOutputOption,
    AnalyzeResult,
    BoundingRegion,
    DocumentFigure,
    DocumentParagraph,
    DocumentSpan,
    DocumentTable,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import AsyncRetryPolicy
from PIL import Image, UnidentifiedImageError

from shared.documents.engines.base import ExtractionError, TransientEngineError
from shared.documents.layout import (
    CONTENT,
    SECTION_HEADING,
    TITLE,
    ExtractedLayout,
    Figure,
    Layout,
    Page,
    PageRange,
    Paragraph,
    Region,
    SourceDocument,
    Table,
    TableCell,
)
from shared.resilience.retry import parse_retry_after

ENGINE_NAME = "document-intelligence"
MODEL_ID = "prebuilt-layout"
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Codes a *failed operation* reports when the service, not the document, was at fault.
TRANSIENT_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "Timeout", "TooManyRequests", "429"}
)
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")

Credential = AzureKeyCredential | AsyncTokenCredential


class CappedRetryPolicy(AsyncRetryPolicy):
    """azure-core's retry policy, except that it never sleeps a Retry-After above the cap.

    A throttled service can ask for minutes; sleeping that long inside a Function burns its
    time limit. Above the cap the error surfaces (as TransientEngineError with the service's
    Retry-After) so the orchestrator can wait on a durable timer instead.
    """

    def __init__(self, *, max_retry_after_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_after_seconds = max_retry_after_seconds

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        """Retries as azure-core does, unless the service asks to wait longer than the cap."""
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.max_retry_after_seconds:
            return False
        return super().is_retry(settings, response)


def build_retry_policy(
    max_retries: int, backoff_seconds: float, max_retry_after_seconds: float
) -> CappedRetryPolicy:
    """The retry policy both Azure engines use.

    azure-core retries a POST on 429 only when Retry-After is present, and on 500/503/504;
    every counter is set because the smallest of them wins.
    """
    return CappedRetryPolicy(
        max_retry_after_seconds=max_retry_after_seconds,
        retry_total=max_retries,
        retry_connect=max_retries,
        retry_read=max_retries,
        retry_status=max_retries,
        retry_backoff_factor=backoff_seconds,
        retry_backoff_max=max(backoff_seconds, max_retry_after_seconds),
    )


def map_service_error(error: AzureError, service: str) -> Exception:
    """The engine error for an SDK error: throttling, 5xx and network faults are transient,
    other 4xx and failed operations are the document's fault. Authentication and not-found
    errors come back unchanged: they are configuration faults, neither transient nor the
    document's."""
    if isinstance(error, ClientAuthenticationError | ResourceNotFoundError):
        return error
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientEngineError(f"{service} unreachable: {error}")
    if not isinstance(error, HttpResponseError):
        return error
    code, message = service_error_detail(error)
    text = f"{service} {code}: {message}" if code else f"{service}: {message}"
    status = error.status_code or 0
    if status in TRANSIENT_STATUS or (status < 400 and code in TRANSIENT_CODES):
        return TransientEngineError(text, retry_after_seconds(error))
    return ExtractionError(text)


def service_error_detail(error: HttpResponseError) -> tuple[str | None, str]:
    """The (code, message) of an error body; the inner error is the specific one
    (e.g. InvalidContent under InvalidRequest), so it wins when present."""
    body = error.error
    if body is None:
        return None, error.reason or str(error)
    inner = body.innererror if isinstance(body.innererror, Mapping) else {}
    code = inner.get("code") or body.code
    message = inner.get("message") or body.message or str(error)
    return code, message


def retry_after_seconds(error: HttpResponseError) -> float | None:
    """Retry-after-ms or Retry-After (seconds or an HTTP date) of the error's response."""
    return parse_retry_after(error.response.headers) if error.response is not None else None


def check_endpoint(endpoint: str, credential: Credential) -> None:
    """Refuses a token credential on plain HTTP up front: azure-core would refuse it on every
    request with a ServiceRequestError, which reads like a network fault."""
    if not isinstance(credential, AzureKeyCredential) and not endpoint.lower().startswith(
        "https://"
    ):
        raise ValueError(f"bearer-token credentials need an https endpoint, not {endpoint!r}")


def sendable_document(source: SourceDocument) -> bytes:
    """The bytes to send: the service refuses GIF, so a GIF becomes a PNG of its first frame.

    Only the first frame: the service reads one image as one page, and an animated GIF's frames
    are states of one picture, not pages (a multi-page TIFF would index the same text N times).
    """
    if source.media_type != "image/gif" and not source.content.startswith(GIF_SIGNATURES):
        return source.content
    try:
        return gif_to_png(source.content)
    except (UnidentifiedImageError, OSError) as error:
        raise ExtractionError(f"the GIF could not be decoded: {error}") from error


def gif_to_png(content: bytes) -> bytes:
    """The first frame of a GIF as PNG, transparency kept as alpha."""
    with Image.open(io.BytesIO(content)) as image:
        image.seek(0)
        frame = image.convert("RGBA")
    buffer = io.BytesIO()
    frame.save(buffer, format="PNG")
    return buffer.getvalue()


class DocumentIntelligenceEngine:
    """Extracts page ranges with Document Intelligence `prebuilt-layout` (async SDK).

    The SDK client is created on first use and kept (connection reuse across calls); call
    `close()` or use `async with` when done. Extra keyword arguments go to the SDK client
    (e.g. `polling_interval`, the poll delay used when the service sends no Retry-After).
    """

    name = ENGINE_NAME

    def __init__(
        self,
        endpoint: str,
        credential: Credential,
        *,
        price_per_page_usd: float,
        max_retries: int = 3,
        retry_backoff_seconds: float = 0.8,
        max_retry_after_seconds: float = 60.0,
        timeout_seconds: float = 300.0,
        figure_concurrency: int = 4,
        **client_options: Any,
    ) -> None:
        check_endpoint(endpoint, credential)
        self.endpoint = endpoint
        self.price_per_page_usd = price_per_page_usd
        self.timeout_seconds = timeout_seconds
        self._credential = credential
        self.figure_concurrency = figure_concurrency
        self._client_options = {
            "retry_policy": build_retry_policy(
                max_retries, retry_backoff_seconds, max_retry_after_seconds
            ),
            **client_options,
        }
        self._client: DocumentIntelligenceClient | None = None

    async def extract(self, source: SourceDocument, pages: PageRange | None) -> ExtractedLayout:
        """Analyzes `pages` (None: all) of `source` and fetches its figures' PNGs."""
        body = sendable_document(source)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result, result_id = await self._analyze(body, pages)
                images = await self._fetch_figures(result, result_id)
        except TimeoutError as error:
            raise TransientEngineError(
                f"Document Intelligence did not finish within {self.timeout_seconds:g} s"
            ) from error
        except AzureError as error:
            mapped = map_service_error(error, "Document Intelligence")
            if mapped is error:
                raise
            raise mapped from error
        layout = convert_result(result, self.price_per_page_usd)
        _record_image_sizes(layout.figures, images)
        return ExtractedLayout(layout=layout, figure_images=images)

    async def close(self) -> None:
        """Closes the SDK client (and its HTTP session)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> DocumentIntelligenceEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _sdk(self) -> DocumentIntelligenceClient:
        if self._client is None:
            self._client = DocumentIntelligenceClient(
                self.endpoint, self._credential, **self._client_options
            )
        return self._client

    async def _analyze(self, body: bytes, pages: PageRange | None) -> tuple[AnalyzeResult, str]:
        """Submits, polls to the end, and returns the result with its result id."""
        poller = await self._sdk().begin_analyze_document(
            MODEL_ID,
            body,
            pages=pages.pages if pages else None,
            output=[AnalyzeOutputOption.FIGURES],
        )
        # The SDK parses the result id out of the 202's Operation-Location header.
        result_id = poller.details["operation_id"]
        return await poller.result(), result_id

    async def _fetch_figures(self, result: AnalyzeResult, result_id: str) -> dict[str, bytes]:
        """Each figure's PNG as the service cropped it, by figure id."""
        ids = [figure.id for figure in result.figures or [] if figure.id]
        slots = asyncio.Semaphore(self.figure_concurrency)  # per call: semaphores bind a loop
        images = await asyncio.gather(
            *(self._fetch_figure(result_id, figure_id, slots) for figure_id in ids)
        )
        return dict(zip(ids, images, strict=True))

    async def _fetch_figure(
        self, result_id: str, figure_id: str, slots: asyncio.Semaphore
    ) -> bytes:
        async with slots:
            stream = await self._sdk().get_analyze_result_figure(MODEL_ID, result_id, figure_id)
            return b"".join([chunk async for chunk in stream])


def _record_image_sizes(figures: list[Figure], images: Mapping[str, bytes]) -> None:
    """Sets each figure's pixel size from its PNG header (decides tiny-figure skipping)."""
    for figure in figures:
        png = images.get(figure.id)
        if not png:
            continue
        try:
            with Image.open(io.BytesIO(png)) as image:
                figure.width_px, figure.height_px = image.size
        except (UnidentifiedImageError, OSError):
            continue  # sizes stay unknown; describing the image will report the fault


# --- AnalyzeResult -> Layout -------------------------------------------------------------


@dataclass
class _Placed:
    """A converted element and where it sits in the content, for reading order."""

    page: int
    position: float
    element: Paragraph | Table | Figure


def convert_result(result: AnalyzeResult, price_per_page_usd: float) -> Layout:
    """Our Layout for one AnalyzeResult."""
    page_spans = _page_spans(result)
    first_page = min(page_spans, default=1)
    skip = _paragraphs_held_elsewhere(result)
    depths = _section_depths(result)
    placed = [
        *_paragraphs(result, skip, depths, page_spans, first_page),
        *_tables(result, page_spans, first_page),
    ]
    placed += _figures(result, page_spans, first_page, placed)
    _number_in_reading_order(placed)
    return Layout(
        pages=[_page(page, price_per_page_usd) for page in result.pages or []],
        paragraphs=[item.element for item in placed if isinstance(item.element, Paragraph)],
        tables=[item.element for item in placed if isinstance(item.element, Table)],
        figures=[item.element for item in placed if isinstance(item.element, Figure)],
    )


def _page(page: Any, price_per_page_usd: float) -> Page:
    return Page(
        number=page.page_number,
        engine=ENGINE_NAME,
        width=page.width,
        height=page.height,
        unit=_plain(page.unit),
        cost_usd=price_per_page_usd,
        word_count=len(page.words or []),
    )


def _paragraphs(
    result: AnalyzeResult,
    skip: set[int],
    depths: dict[int, int],
    page_spans: dict[int, list[DocumentSpan]],
    first_page: int,
) -> list[_Placed]:
    placed = []
    for index, paragraph in enumerate(result.paragraphs or []):
        if index in skip:
            continue
        page = _page_of(paragraph.bounding_regions, paragraph.spans, page_spans, first_page)
        converted = Paragraph(
            text=paragraph.content,
            page=page,
            order=0,
            role=_plain(paragraph.role),
            heading_level=_heading_level(paragraph, depths.get(index)),
            region=_region(paragraph.bounding_regions),
        )
        placed.append(_Placed(page, _start(paragraph.spans), converted))
    return placed


def _heading_level(paragraph: DocumentParagraph, depth: int | None) -> int | None:
    """Title is 1; a section heading is its section's depth (root sections hold the title,
    so their children are 2), or 2 when the result has no sections."""
    if paragraph.role == TITLE:
        return 1
    if paragraph.role == SECTION_HEADING:
        return max(2, (depth or 0) + 1)
    return None


def _tables(
    result: AnalyzeResult, page_spans: dict[int, list[DocumentSpan]], first_page: int
) -> list[_Placed]:
    placed = []
    per_page: dict[int, int] = {}
    for table in result.tables or []:
        page = _page_of(table.bounding_regions, table.spans, page_spans, first_page)
        per_page[page] = per_page.get(page, 0) + 1
        converted = Table(
            id=f"table-{page}.{per_page[page]}",
            page=page,
            order=0,
            row_count=table.row_count,
            column_count=table.column_count,
            cells=[_cell(cell) for cell in table.cells or []],
            pages=sorted({region.page_number for region in table.bounding_regions or []}) or [page],
            caption=table.caption.content if table.caption else None,
            region=_region(table.bounding_regions),
        )
        placed.append(_Placed(page, _table_start(table), converted))
    return placed


def _cell(cell: Any) -> TableCell:
    return TableCell(
        row=cell.row_index,
        column=cell.column_index,
        content=cell.content,
        row_span=cell.row_span or 1,
        column_span=cell.column_span or 1,
        kind=_plain(cell.kind) or CONTENT,
    )


def _table_start(table: DocumentTable) -> float:
    """A table sits where its caption (printed above it) or its first cell starts."""
    starts = [_start(table.spans)]
    if table.caption:
        starts.append(_start(table.caption.spans))
    return min(starts)


def _figures(
    result: AnalyzeResult,
    page_spans: dict[int, list[DocumentSpan]],
    first_page: int,
    text: list[_Placed],
) -> list[_Placed]:
    placed = []
    per_page: dict[int, int] = {}
    for figure in result.figures or []:
        page = _page_of(figure.bounding_regions, figure.spans, page_spans, first_page)
        per_page[page] = per_page.get(page, 0) + 1
        converted = Figure(
            id=figure.id or f"{page}.{per_page[page]}",
            page=page,
            order=0,
            region=_region(figure.bounding_regions),
            caption=figure.caption.content if figure.caption else None,
        )
        placed.append(_Placed(page, _figure_position(figure, converted, text), converted))
    return placed


def _figure_position(figure: DocumentFigure, converted: Figure, text: list[_Placed]) -> float:
    """Where a figure sits in the content: its spans, else its caption's, else (an image
    with no text at all) just after the last paragraph printed above it on its page."""
    spans = list(figure.spans or []) or list(figure.caption.spans if figure.caption else [])
    if spans:
        return _start(spans)
    if converted.region is None:
        return float("inf")
    above = [
        item.position
        for item in text
        if item.page == converted.page
        and isinstance(item.element, Paragraph)
        and item.element.region is not None
        and item.element.region.top <= converted.region.top
    ]
    return max(above, default=-1.0) + 0.5


def _number_in_reading_order(placed: list[_Placed]) -> None:
    """Sets `order` within each page by position in the content (the service's reading order)."""
    placed.sort(key=lambda item: (item.page, item.position))
    counters: dict[int, int] = {}
    for item in placed:
        item.element.order = counters.get(item.page, 0)
        counters[item.page] = item.element.order + 1


def _paragraphs_held_elsewhere(result: AnalyzeResult) -> set[int]:
    """Paragraphs the layout carries elsewhere: table cell text (the service lists it as
    paragraphs too) and table/figure captions (kept on the Table/Figure)."""
    table_ranges = [_ranges(table.spans) for table in result.tables or []]
    inside = {
        index
        for index, paragraph in enumerate(result.paragraphs or [])
        if paragraph.spans
        and any(all(_within(span, ranges) for span in paragraph.spans) for ranges in table_ranges)
    }
    captions = [table.caption for table in result.tables or []]
    captions += [figure.caption for figure in result.figures or []]
    for caption in captions:
        if caption:
            inside.update(_pointer_indexes(caption.elements, "paragraphs"))
    return inside


def _section_depths(result: AnalyzeResult) -> dict[int, int]:
    """Paragraph index -> nesting depth of the section listing it (a root section is 0)."""
    sections = result.sections or []
    children = {
        child for section in sections for child in _pointer_indexes(section.elements, "sections")
    }
    depths: dict[int, int] = {}
    stack = [(index, 0) for index in range(len(sections)) if index not in children]
    seen: set[int] = set()
    while stack:
        index, depth = stack.pop()
        if index in seen or index >= len(sections):
            continue
        seen.add(index)
        elements = sections[index].elements
        for paragraph in _pointer_indexes(elements, "paragraphs"):
            depths.setdefault(paragraph, depth)
        stack += [(child, depth + 1) for child in _pointer_indexes(elements, "sections")]
    return depths


def _pointer_indexes(pointers: Iterable[str] | None, kind: str) -> list[int]:
    """The indexes of JSON pointers like "/paragraphs/3" that point into `kind`."""
    indexes = []
    for pointer in pointers or []:
        _, found, position = [*pointer.split("/"), "", ""][:3]
        if found == kind and position.isdigit():
            indexes.append(int(position))
    return indexes


def _page_spans(result: AnalyzeResult) -> dict[int, list[DocumentSpan]]:
    return {page.page_number: list(page.spans or []) for page in result.pages or []}


def _page_of(
    regions: Sequence[BoundingRegion] | None,
    spans: Sequence[DocumentSpan] | None,
    page_spans: dict[int, list[DocumentSpan]],
    first_page: int,
) -> int:
    """The 1-based page an element starts on: its first region's, else (Office files have no
    regions) the page whose span holds its text."""
    if regions:
        return regions[0].page_number
    if spans:
        for number, ranges in page_spans.items():
            if _within(spans[0], _ranges(ranges)):
                return number
    return first_page


def _region(regions: Sequence[BoundingRegion] | None) -> Region | None:
    """The box around the first region's polygon (flat x, y pairs), in the page's unit."""
    if not regions or not regions[0].polygon:
        return None
    polygon = regions[0].polygon
    xs, ys = polygon[0::2], polygon[1::2]
    return Region(
        page=regions[0].page_number, left=min(xs), top=min(ys), right=max(xs), bottom=max(ys)
    )


def _ranges(spans: Iterable[DocumentSpan] | None) -> list[tuple[int, int]]:
    return [(span.offset, span.offset + span.length) for span in spans or []]


def _within(span: DocumentSpan, ranges: list[tuple[int, int]]) -> bool:
    end = span.offset + span.length
    return any(start <= span.offset and end <= stop for start, stop in ranges)


def _plain(value: str | Enum | None) -> str | None:
    """The SDK gives some strings as str-Enums; the layout holds plain strings (JSON, equality)."""
    return value.value if isinstance(value, Enum) else value


def _start(spans: Sequence[DocumentSpan] | None) -> float:
    return float(min((span.offset for span in spans or []), default=float("inf")))
