"""An OTLP/HTTP collector on a loopback port: what the app exports, kept in memory for tests.

The app's own OTLP exporter (OTEL_EXPORTER_OTLP_ENDPOINT, protobuf over HTTP) sends its spans and
metrics here; tests read them back as plain dicts. It is the in-memory exporter of a process the
test does not run in (devhost serves the app in a child process).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass
class Span:
    """One exported span."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""

    def text(self) -> str:
        """Everything the span carries, as text (for canary checks)."""
        return repr((self.name, self.attributes, self.events, self.status))


@dataclass
class MetricPoint:
    """One data point of an exported metric: its name and attributes."""

    name: str
    attributes: dict[str, Any]
    value: float


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


class OtlpCollector:
    """Receives /v1/traces and /v1/metrics (protobuf, no auth) and keeps what it decoded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._points: list[MetricPoint] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for the app."""
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        """Serves on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [web.post("/v1/traces", self._traces), web.post("/v1/metrics", self._metrics)]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Stops serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def spans(self) -> list[Span]:
        """Every span received so far."""
        with self._lock:
            return list(self._spans)

    def points(self) -> list[MetricPoint]:
        """Every metric data point received so far (cumulative exports repeat them)."""
        with self._lock:
            return list(self._points)

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        spans = [
            Span(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(),
                kind=KINDS.get(span.kind, str(span.kind)),
                attributes=_attributes(span.attributes),
                events=[
                    {"name": event.name, **_attributes(event.attributes)} for event in span.events
                ],
                status=span.status.message,
            )
            for resource in message.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self._spans.extend(spans)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        message = ExportMetricsServiceRequest.FromString(await request.read())
        points = []
        for resource in message.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    data = getattr(metric, metric.WhichOneof("data"))
                    for point in data.data_points:
                        value = getattr(point, "as_double", 0.0) or getattr(point, "as_int", 0)
                        value = value or getattr(point, "sum", 0.0)
                        points.append(
                            MetricPoint(metric.name, _attributes(point.attributes), float(value))
                        )
        with self._lock:
            self._points.extend(points)
        body = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")
