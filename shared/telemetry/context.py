"""Trace context across process and history boundaries, as W3C `traceparent` strings.

An HTTP upload stores its `traceparent` in the blob's metadata; the blob trigger continues that
trace (or starts one) and puts its own `traceparent` into the orchestration input (`Upload`,
then every `Job`), and each activity continues it. The orchestrator only copies the string, so
it stays deterministic. One trace thus runs from the HTTP request or the blob event through
every activity and every outbound call they make.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.telemetry import tracer

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The current span's context as a `traceparent` value; None outside a sampled span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context a `traceparent` names; None when absent or malformed (a new trace starts)."""
    if not traceparent:
        return None
    extracted = _PROPAGATOR.extract({TRACEPARENT: traceparent})
    valid = trace.get_current_span(extracted).get_span_context().is_valid
    return extracted if valid else None


@contextmanager
def continued_span(
    name: str,
    traceparent: str | None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    **attributes: Any,
) -> Iterator[trace.Span]:
    """A span whose parent is `traceparent`'s span (a root span when there is none)."""
    shown = {key: value for key, value in attributes.items() if value is not None}
    with tracer().start_as_current_span(
        name, context=context_of(traceparent), kind=kind, attributes=shown
    ) as current:
        yield current
