"""The endpoint wrapper: problem+json for every error, a SERVER span for every request."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.responses import Response

from shared.http import PROBLEM_JSON, ProblemError, endpoint, json_response

CANARY = "canary-41c9e2-password=hunter2"
ROUTE = "documents/{id}"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans finished in this process. The global provider can be set only once per process:
    reuse an SDK provider someone else installed, else install ours."""
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another non-SDK provider is installed"
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


def request(method: str = "GET") -> Request:
    scope = {
        "type": "http", "method": method, "path": "/api/documents/42", "query_string": b"",
        "headers": [], "scheme": "http", "server": ("localhost", 80),
    }  # fmt: skip
    return Request(scope)


def body_of(response: Response) -> dict:
    return json.loads(response.body)


async def test_success_passes_the_response_through(spans: InMemorySpanExporter) -> None:
    @endpoint(ROUTE)
    async def handler(req: Request) -> Response:
        return json_response({"id": "42"}, status=201)

    response = await handler(request("POST"))
    assert response.status_code == 201
    assert response.media_type == "application/json"
    assert body_of(response) == {"id": "42"}
    (span,) = spans.get_finished_spans()
    assert span.name == f"HTTP POST {ROUTE}"
    assert span.kind == trace.SpanKind.SERVER
    assert span.attributes["http.response.status_code"] == 201
    assert span.attributes["http.request.method"] == "POST"
    assert span.attributes["http.route"] == ROUTE


async def test_problem_error_becomes_problem_json(spans: InMemorySpanExporter) -> None:
    @endpoint(ROUTE)
    async def handler(req: Request) -> Response:
        raise ProblemError(
            429,
            "Too many uploads for this team.",
            headers={"Retry-After": "30"},
            team="contoso",
            limit=10,
        )

    response = await handler(request())
    assert response.status_code == 429
    assert response.media_type == PROBLEM_JSON
    assert response.headers["Retry-After"] == "30"
    assert body_of(response) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Too many uploads for this team.",
        "instance": ROUTE,
        "team": "contoso",
        "limit": 10,
    }
    (span,) = spans.get_finished_spans()
    assert span.name == f"HTTP GET {ROUTE}"
    assert span.kind == trace.SpanKind.SERVER
    assert span.attributes["http.response.status_code"] == 429


async def test_problem_error_with_custom_title(spans: InMemorySpanExporter) -> None:
    @endpoint(ROUTE)
    async def handler(req: Request) -> Response:
        raise ProblemError(503, "Cosmos DB is unavailable.", title="Dependency down")

    response = await handler(request("DELETE"))
    assert response.status_code == 503
    body = body_of(response)
    assert body["title"] == "Dependency down"
    assert body["status"] == 503
    assert body["detail"] == "Cosmos DB is unavailable."
    (span,) = spans.get_finished_spans()
    assert span.name == f"HTTP DELETE {ROUTE}"
    assert span.attributes["http.response.status_code"] == 503


async def test_unexpected_error_is_a_500_without_its_text(spans: InMemorySpanExporter) -> None:
    @endpoint(ROUTE)
    async def handler(req: Request) -> Response:
        raise RuntimeError(f"connection failed: {CANARY}")

    response = await handler(request())
    assert response.status_code == 500
    assert response.media_type == PROBLEM_JSON
    raw = bytes(response.body).decode()
    assert CANARY not in raw
    assert "RuntimeError" not in raw
    body = json.loads(raw)
    assert body["status"] == 500
    assert body["title"] == "Internal Server Error"
    assert body["instance"] == ROUTE
    (span,) = spans.get_finished_spans()
    assert span.attributes["http.response.status_code"] == 500
    # The trace id lets support find the logged details; it is the request span's.
    assert body["traceId"] == format(span.context.trace_id, "032x")
    assert len(body["traceId"]) == 32 and set(body["traceId"]) != {"0"}


async def test_each_call_gets_its_own_span(spans: InMemorySpanExporter) -> None:
    @endpoint("health")
    async def handler(req: Request) -> Response:
        return json_response({"status": "healthy"})

    await handler(request())
    await handler(request())
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["HTTP GET health", "HTTP GET health"]
    assert finished[0].context.trace_id != finished[1].context.trace_id


def test_problem_error_defaults() -> None:
    problem = ProblemError(404, "No such document.")
    assert problem.title == "Not Found"
    assert problem.headers == {}
    assert problem.extra == {}
    assert str(problem) == "No such document."
