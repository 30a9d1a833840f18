"""OpenTelemetry set-up, once per process, and the tracer and meter docgate's code uses.

Azure Monitor's exporter (`azure-monitor-opentelemetry`) replaces the retired OpenCensus
exporter: OpenCensus stopped receiving fixes in 2023, while OpenTelemetry is the standard the
Functions host and the Azure SDKs now emit. With neither exporter configured nothing is sent,
but spans are still created (with real trace ids), so the code paths are the same everywhere.

The Azure SDKs (Blob Storage, Cosmos DB, Key Vault, Document Intelligence, ...) report each call
as a span of the current trace (azure-core's OpenTelemetry plugin). Names of every metric and
attribute: `shared.telemetry.names` (docs/telemetry.md); model calls: `shared.telemetry.genai`;
trace context through the orchestration: `shared.telemetry.context`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace

log = logging.getLogger(__name__)
_lock = threading.Lock()
_configured: str | None = None
TRACER_NAME = "docgate"


def configure_telemetry(
    service_name: str,
    applicationinsights_connection_string: str | None = None,
    otlp_endpoint: str | None = None,
) -> str:
    """Installs the exporter asked for, once per process; returns which ("azure-monitor"...)."""
    global _configured
    with _lock:
        if _configured is None:
            _configured = _install(
                service_name, applicationinsights_connection_string, otlp_endpoint
            )
            log.info("Telemetry exporter: %s", _configured)
        return _configured


def _install(service_name: str, connection_string: str | None, otlp_endpoint: str | None) -> str:
    resource_attributes = {"service.name": service_name}
    _trace_azure_sdks()
    if connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection_string, resource=_resource(resource_attributes)
        )
        return "azure-monitor"
    if otlp_endpoint:
        _install_otlp(otlp_endpoint, resource_attributes)
        return "otlp"
    # No exporter, but a real provider: spans get real trace ids, which answers report.
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider(resource=_resource(resource_attributes)))
    return "none"


def _trace_azure_sdks() -> None:
    """Every Azure SDK call becomes a span (configure_azure_monitor does this too)."""
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry"


def _resource(attributes: dict[str, Any]) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create(attributes)


def _install_otlp(endpoint: str, attributes: dict[str, Any]) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = endpoint.rstrip("/")
    resource = _resource(attributes)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def current_trace_id() -> str:
    """The 32-hex id of the current trace, or "" outside one."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else ""


def tracer() -> trace.Tracer:
    """docgate's tracer (a no-op until a provider is installed)."""
    return trace.get_tracer(TRACER_NAME)


def meter() -> metrics.Meter:
    """docgate's meter."""
    return metrics.get_meter(TRACER_NAME)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span around one step, with attributes (never secrets: callers pass ids and counts)."""
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current
