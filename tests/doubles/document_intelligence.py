"""A local Document Intelligence v4 (2024-11-30) double: analyze, poll, figure images.

It speaks the REST protocol of `prebuilt-layout` as the real service does: the analyze POST
answers 202 with Operation-Location and Retry-After, polls go notStarted -> running ->
succeeded (or failed), `pages=` restricts the result to those pages (page numbers keep their
place in the document), figure PNGs are served when `output=figures` was asked, and GIF is
refused with 400 InvalidContent. The analyzeResult comes from a scripted fixture per document
(`sample_analyze_result` by default): spans consistent with `content`, polygons, words, roles,
sections, a table with a columnHeader row, a rowSpan and a columnSpan, figures with and
without a caption.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from PIL import Image

from tests.doubles import HttpDouble, error_response

API_VERSION = "2024-11-30"
MODEL_ID = "prebuilt-layout"
PAGE_WIDTH_INCH = 8.5
PAGE_HEIGHT_INCH = 11.0
LINE_HEIGHT_INCH = 0.3
FIGURE_DPI = 72  # the service crops figures at its own resolution; any fixed one will do

ResultBuilder = Callable[[list[int]], dict[str, Any]]

# What the service accepts, by magic bytes (Office files are zip containers).
_ACCEPTED_SIGNATURES = (
    b"%PDF-",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"PK\x03\x04",
    b"<!DOCTYPE html",
    b"<html",
)


@dataclass
class ScriptedDocument:
    """A document the double knows: its page count and how to build its analyzeResult."""

    page_count: int = 3
    build: ResultBuilder = field(default=lambda pages: sample_analyze_result(pages))


@dataclass
class Operation:
    """One analyze operation and how far its polling has gone."""

    id: str
    created: str
    until: int
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    figure_output: bool = False
    polls: int = 0


class DocumentIntelligenceDouble(HttpDouble):
    """Document Intelligence on a loopback port; scripted failures go through `fail`/`throttle`
    on the routes "analyze", "poll" and "figure".

    `retry_after` is whole seconds, as the service sends it (the SDK parses the 202's header as
    an int). With 0 the SDK falls back to its `polling_interval`: fast tests use both.
    """

    def __init__(
        self,
        *,
        key: str = "test-key",
        default: ScriptedDocument | None = None,
        polls_until_done: int = 2,
        retry_after: int = 1,
    ) -> None:
        super().__init__(key=key)
        self.default = default or ScriptedDocument()
        self.documents: dict[str, ScriptedDocument] = {}
        self.polls_until_done = polls_until_done
        self.retry_after = retry_after
        self.operations: dict[str, Operation] = {}
        self._failed_analyses: list[dict[str, str]] = []

    def routes(self) -> list[web.RouteDef]:
        """Analyze, poll and figure routes under /documentintelligence."""
        base = "/documentintelligence/documentModels"
        return [
            web.post(base + "/{action}", self._analyze, name="analyze"),
            web.get(base + "/{model}/analyzeResults/{result_id}", self._poll, name="poll"),
            web.get(
                base + "/{model}/analyzeResults/{result_id}/figures/{figure_id}",
                self._figure,
                name="figure",
            ),
        ]

    def add_document(self, content: bytes, document: ScriptedDocument) -> None:
        """Scripts the result for these exact bytes (others get `default`)."""
        self.documents[_digest(content)] = document

    def fail_analysis(self, code: str, message: str) -> None:
        """Makes the next accepted operation end with status "failed" and this error."""
        self._failed_analyses.append({"code": code, "message": message})

    def analyzed_bodies(self) -> list[bytes]:
        """The document bytes of every analyze request, in order."""
        return [request.body for request in self.seen("analyze")]

    async def _analyze(self, request: web.Request) -> web.Response:
        model, _, verb = request.match_info["action"].partition(":")
        if verb != "analyze":
            return error_response(404, "404", "Resource not found.")
        problem = _check_api_version(request)
        if problem is not None:
            return problem
        if model != MODEL_ID:
            return error_response(
                404, "ModelNotFound", f"The requested model '{model}' was not found."
            )
        content = _document_bytes(request.content_type, await request.read())
        if not content.startswith(_ACCEPTED_SIGNATURES):
            return error_response(
                400,
                "InvalidRequest",
                "Invalid request.",
                innererror={
                    "code": "InvalidContent",
                    "message": "The file is corrupted or format is unsupported. Refer to "
                    "documentation for the list of supported formats.",
                },
            )
        document = self.documents.get(_digest(content), self.default)
        try:
            pages = _selected_pages(request.query.get("pages"), document.page_count)
        except ValueError as error:
            return error_response(
                400,
                "InvalidArgument",
                "Invalid argument.",
                innererror={"code": "InvalidParameter", "message": str(error)},
            )
        operation = self._start_operation(document, pages, request.query.get("output", ""))
        location = (
            f"{self.endpoint}/documentintelligence/documentModels/{MODEL_ID}"
            f"/analyzeResults/{operation.id}?api-version={API_VERSION}"
        )
        return web.Response(
            status=202,
            headers={
                "Operation-Location": location,
                "Retry-After": str(self.retry_after),
                "apim-request-id": operation.id,
            },
        )

    def _start_operation(
        self, document: ScriptedDocument, pages: list[int], output: str
    ) -> Operation:
        now = _timestamp()
        operation = Operation(
            id=str(uuid.uuid4()),
            created=now,
            until=self.polls_until_done,
            figure_output="figures" in output.split(","),
        )
        if self._failed_analyses:
            operation.error = self._failed_analyses.pop(0)
        else:
            operation.result = document.build(pages)
        self.operations[operation.id] = operation
        return operation

    async def _poll(self, request: web.Request) -> web.Response:
        operation = self.operations.get(request.match_info["result_id"])
        if operation is None:
            return error_response(404, "NotFound", "Resource not found.")
        operation.polls += 1
        body: dict[str, Any] = {
            "status": _status(operation),
            "createdDateTime": operation.created,
            "lastUpdatedDateTime": _timestamp(),
        }
        if body["status"] in ("notStarted", "running"):
            # Only unfinished operations carry Retry-After, as the service does.
            return web.json_response(body, headers={"Retry-After": str(self.retry_after)})
        if operation.error is not None:
            body["error"] = {**operation.error, "innererror": dict(operation.error)}
        else:
            body["analyzeResult"] = operation.result
        return web.json_response(body)

    async def _figure(self, request: web.Request) -> web.Response:
        operation = self.operations.get(request.match_info["result_id"])
        figure = _find_figure(operation, request.match_info["figure_id"])
        if operation is None or not operation.figure_output or figure is None:
            return error_response(404, "NotFound", "Resource not found.")
        return web.Response(body=figure_png(figure), content_type="image/png")


def _status(operation: Operation) -> str:
    """notStarted on the first poll, running until `until` polls were answered, then done."""
    if operation.polls <= operation.until:
        return "notStarted" if operation.polls == 1 else "running"
    return "failed" if operation.error is not None else "succeeded"


def _check_api_version(request: web.Request) -> web.Response | None:
    if request.query.get("api-version") == API_VERSION:
        return None
    return error_response(
        404,
        "404",
        f"Resource not found: unsupported api-version {request.query.get('api-version')!r}.",
    )


def _document_bytes(content_type: str, body: bytes) -> bytes:
    """Raw bytes, or the `base64Source` of a JSON body."""
    if content_type == "application/json":
        return base64.b64decode(json.loads(body).get("base64Source", ""))
    return body


def _selected_pages(pages: str | None, page_count: int) -> list[int]:
    """Parses `pages=1-3,5` and keeps the pages that exist."""
    if not pages:
        return list(range(1, page_count + 1))
    selected: set[int] = set()
    for part in pages.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"The parameter pages is invalid: {pages!r}.")
        selected.update(range(int(first), int(last or first) + 1))
    kept = sorted(page for page in selected if 1 <= page <= page_count)
    if not kept:
        raise ValueError(f"The pages {pages!r} are outside the document's {page_count} pages.")
    return kept


def _find_figure(operation: Operation | None, figure_id: str) -> dict[str, Any] | None:
    if operation is None or operation.result is None:
        return None
    return next(
        (figure for figure in operation.result["figures"] if figure["id"] == figure_id), None
    )


def figure_png(figure: dict[str, Any]) -> bytes:
    """A PNG the size of the figure's region, coloured by its id (so images differ)."""
    polygon = figure["boundingRegions"][0]["polygon"]
    width = round((max(polygon[0::2]) - min(polygon[0::2])) * FIGURE_DPI)
    height = round((max(polygon[1::2]) - min(polygon[1::2])) * FIGURE_DPI)
    shade = int(hashlib.sha256(figure["id"].encode()).hexdigest()[:6], 16)
    colour = (shade >> 16 & 255, shade >> 8 & 255, shade & 255)
    buffer = io.BytesIO()
    Image.new("RGB", (max(width, 1), max(height, 1)), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnalyzeResultBuilder:
    """Accumulates an analyzeResult whose spans, words and polygons agree with `content`."""

    def __init__(self) -> None:
        self.content = ""
        self.pages: dict[int, dict[str, Any]] = {}
        self.paragraphs: list[dict[str, Any]] = []
        self.tables: list[dict[str, Any]] = []
        self.figures: list[dict[str, Any]] = []
        self.sections: list[dict[str, Any]] = [{"spans": [], "elements": []}]
        self._cursor: dict[int, float] = {}

    def begin_page(self, number: int) -> None:
        """Starts a page; everything added next lands on it."""
        self.pages[number] = {
            "pageNumber": number,
            "angle": 0,
            "width": PAGE_WIDTH_INCH,
            "height": PAGE_HEIGHT_INCH,
            "unit": "inch",
            "words": [],
            "lines": [],
            "spans": [{"offset": self._next_offset(), "length": 0}],
        }
        self._cursor[number] = 0.5

    def end_page(self, number: int) -> None:
        """Closes the page's span at the end of its content."""
        span = self.pages[number]["spans"][0]
        span["length"] = len(self.content) - span["offset"]

    def paragraph(
        self,
        page: int,
        text: str,
        role: str | None = None,
        *,
        height: float = LINE_HEIGHT_INCH,
        left: float = 1.0,
        right: float = 7.5,
    ) -> int:
        """Adds a paragraph (one line of words) and returns its index."""
        span, polygon = self._text(page, text, left=left, right=right, height=height)
        paragraph: dict[str, Any] = {
            "spans": [span],
            "boundingRegions": [{"pageNumber": page, "polygon": polygon}],
            "content": text,
        }
        if role:
            paragraph["role"] = role
        self.paragraphs.append(paragraph)
        return len(self.paragraphs) - 1

    def table(self, page: int, rows: list[list[dict[str, Any]]], caption: str | None = None) -> int:
        """Adds a table from rows of cells ({content, kind?, rowSpan?, columnSpan?}, None for a
        slot covered by a span); cell texts are paragraphs too, as the service lists them."""
        caption_index = self.paragraph(page, caption) if caption else None
        top = self._cursor[page]
        cells = []
        table_start = self._next_offset()
        for row_index, row in enumerate(rows):
            for column_index, cell in enumerate(row):
                if cell is not None:
                    cells.append(self._cell(page, row_index, column_index, cell))
        end = len(self.content)
        table: dict[str, Any] = {
            "rowCount": len(rows),
            "columnCount": max(len(row) for row in rows),
            "cells": cells,
            "boundingRegions": [
                {"pageNumber": page, "polygon": _box(1.0, top, 7.5, self._cursor[page])}
            ],
            "spans": [{"offset": table_start, "length": end - table_start}],
        }
        if caption_index is not None:
            table["caption"] = self._caption(caption_index)
        self.tables.append(table)
        return len(self.tables) - 1

    def figure(self, page: int, inner_text: Iterable[str] = (), caption: str | None = None) -> int:
        """Adds a figure (its inner text becomes paragraphs, as the service does) and returns its
        index; figure ids are "{page}.{n}"."""
        top = self._cursor[page]
        self._cursor[page] += 0.2  # text printed inside the drawing, below its top edge
        start = self._next_offset()
        elements = [
            f"/paragraphs/{self.paragraph(page, text, left=1.7, right=5.3)}" for text in inner_text
        ]
        self._cursor[page] = top + 2.5  # the drawing's height
        number = 1 + sum(1 for figure in self.figures if figure["id"].startswith(f"{page}."))
        figure: dict[str, Any] = {
            "id": f"{page}.{number}",
            "boundingRegions": [
                {"pageNumber": page, "polygon": _box(1.5, top, 5.5, self._cursor[page])}
            ],
            "spans": [{"offset": start, "length": len(self.content) - start}] if elements else [],
            "elements": elements,
        }
        if caption:
            figure["caption"] = self._caption(self.paragraph(page, caption))
        self.figures.append(figure)
        return len(self.figures) - 1

    def section(self, parent: int, elements: list[str]) -> int:
        """Adds a section under `parent` (0 is the root) and returns its index."""
        self.sections.append({"spans": [], "elements": elements})
        index = len(self.sections) - 1
        self.sections[parent]["elements"].append(f"/sections/{index}")
        return index

    def result(self) -> dict[str, Any]:
        """The analyzeResult JSON."""
        for index in range(len(self.sections)):
            self._span_section(index)
        return {
            "apiVersion": API_VERSION,
            "modelId": MODEL_ID,
            "stringIndexType": "textElements",
            "contentFormat": "text",
            "content": self.content,
            "pages": [self.pages[number] for number in sorted(self.pages)],
            "paragraphs": self.paragraphs,
            "tables": self.tables,
            "figures": self.figures,
            "sections": self.sections,
            "styles": [],
            "warnings": [],
        }

    def _cell(self, page: int, row: int, column: int, cell: dict[str, Any]) -> dict[str, Any]:
        paragraph = self.paragraphs[self.paragraph(page, cell["content"])]
        body: dict[str, Any] = {
            "rowIndex": row,
            "columnIndex": column,
            "content": cell["content"],
            "boundingRegions": paragraph["boundingRegions"],
            "spans": paragraph["spans"],
            "elements": [f"/paragraphs/{len(self.paragraphs) - 1}"],
        }
        for key in ("kind", "rowSpan", "columnSpan"):
            if key in cell:
                body[key] = cell[key]
        return body

    def _caption(self, paragraph_index: int) -> dict[str, Any]:
        paragraph = self.paragraphs[paragraph_index]
        return {
            "content": paragraph["content"],
            "boundingRegions": paragraph["boundingRegions"],
            "spans": paragraph["spans"],
            "elements": [f"/paragraphs/{paragraph_index}"],
        }

    def _text(
        self, page: int, text: str, *, left: float, right: float, height: float
    ) -> tuple[dict[str, int], list[float]]:
        """Appends `text` to content with its words and line; returns its span and polygon."""
        offset = self._next_offset()
        self.content += ("\n" if self.content else "") + text
        top = self._cursor[page]
        self._cursor[page] = top + height
        polygon = _box(left, top, right, top + height)
        self._add_words(page, text, offset, left, right, top, height)
        self.pages[page]["lines"].append(
            {
                "content": text,
                "polygon": polygon,
                "spans": [{"offset": offset, "length": len(text)}],
            }
        )
        return {"offset": offset, "length": len(text)}, polygon

    def _add_words(
        self,
        page: int,
        text: str,
        offset: int,
        left: float,
        right: float,
        top: float,
        height: float,
    ) -> None:
        step = (right - left) / max(len(text), 1)
        position = 0
        for word in text.split(" "):
            if word:
                x0 = left + position * step
                self.pages[page]["words"].append(
                    {
                        "content": word,
                        "polygon": _box(x0, top, x0 + len(word) * step, top + height),
                        "span": {"offset": offset + position, "length": len(word)},
                        "confidence": 0.99,
                    }
                )
            position += len(word) + 1

    def _next_offset(self) -> int:
        return len(self.content) + (1 if self.content else 0)

    def _span_section(self, index: int) -> None:
        """A section spans from its first to its last element's text."""
        offsets = list(self._element_offsets(self.sections[index]["elements"]))
        if offsets:
            start = min(start for start, _ in offsets)
            end = max(end for _, end in offsets)
            self.sections[index]["spans"] = [{"offset": start, "length": end - start}]

    def _element_offsets(self, elements: list[str]) -> Iterable[tuple[int, int]]:
        for pointer in elements:
            _, kind, position = pointer.split("/")
            if kind == "sections":
                yield from self._element_offsets(self.sections[int(position)]["elements"])
                continue
            element = {
                "paragraphs": self.paragraphs,
                "tables": self.tables,
                "figures": self.figures,
            }[kind][int(position)]
            for span in element["spans"]:
                yield span["offset"], span["offset"] + span["length"]


def _box(left: float, top: float, right: float, bottom: float) -> list[float]:
    """A clockwise polygon from the top-left corner, as the service gives it."""
    return [round(value, 4) for value in (left, top, right, top, right, bottom, left, bottom)]


def sample_table_rows(page: int) -> list[list[dict[str, Any] | None]]:
    """A header row, a rowSpan (a region over two quarters) and a columnSpan (the total)."""
    header = {"kind": "columnHeader"}
    return [
        [
            {**header, "content": "Region"},
            {**header, "content": "Quarter"},
            {**header, "content": "Revenue"},
        ],
        [
            {"content": "North", "kind": "rowHeader", "rowSpan": 2},
            {"content": "Q1"},
            {"content": f"{10 + page}"},
        ],
        [None, {"content": "Q2"}, {"content": f"{12 + page}"}],
        [{"content": "South", "kind": "rowHeader"}, {"content": "Q1"}, {"content": "7"}],
        [{"content": "Total", "columnSpan": 2}, None, {"content": f"{29 + 2 * page}"}],
    ]


def sample_analyze_result(pages: list[int]) -> dict[str, Any]:
    """A report's analyzeResult for the given pages. Every page has a header, a chapter heading
    with a subsection, body text, a page number and a footer; page 1 has the title. Pages
    p % 3 == 2 hold a captioned table and a footnote, p % 3 == 0 a captioned chart figure with
    text inside, p % 3 == 1 an uncaptioned logo figure."""
    builder = AnalyzeResultBuilder()
    for page in pages:
        builder.begin_page(page)
        builder.paragraph(page, "Contoso Ltd. Annual Report", "pageHeader")
        if page == 1:
            title = builder.paragraph(page, "Contoso Annual Report 2024", "title", height=0.6)
            builder.sections[0]["elements"].append(f"/paragraphs/{title}")
        _add_chapter(builder, page)
        builder.paragraph(page, f"{page}", "pageNumber")
        builder.paragraph(page, "Confidential", "pageFooter")
        builder.end_page(page)
    return builder.result()


def _add_chapter(builder: AnalyzeResultBuilder, page: int) -> None:
    heading = builder.paragraph(page, f"{page}. Chapter {page}", "sectionHeading")
    overview = builder.paragraph(
        page, f"Chapter {page} opens with an overview of the results for this part of the year."
    )
    chapter = builder.section(0, [f"/paragraphs/{heading}", f"/paragraphs/{overview}"])
    subheading = builder.paragraph(page, f"{page}.1 Details", "sectionHeading")
    details = builder.paragraph(
        page, f"The details of chapter {page} follow the overview and cite the evidence below."
    )
    elements = [f"/paragraphs/{subheading}", f"/paragraphs/{details}"]
    if page % 3 == 2:
        table = builder.table(
            page, sample_table_rows(page), caption=f"Table {page}: Revenue by region"
        )
        footnote = builder.paragraph(page, "* Unaudited figures.", "footnote")
        elements += [f"/tables/{table}", f"/paragraphs/{footnote}"]
    elif page % 3 == 0:
        chart = builder.figure(
            page,
            inner_text=["Revenue 2024", "Q1 Q2 Q3 Q4"],
            caption=f"Figure {page}: Revenue by quarter",
        )
        elements.append(f"/figures/{chart}")
    else:
        elements.append(f"/figures/{builder.figure(page)}")
    builder.section(chapter, elements)
