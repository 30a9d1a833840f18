"""Model and embedding calls as OpenTelemetry GenAI spans and metrics.

Each call is a CLIENT span named `{operation} {model}` with the GenAI semantic conventions'
attributes (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.usage.input_tokens` / `output_tokens`, `server.address`,
`error.type`) and feeds `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`.

Never recorded: prompts, answers, inputs, keys and exception messages (a service's error text
may quote the request). A failure is its `error.type` only: the LlmError kind, an HTTP status,
or the exception's class name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlparse

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from shared.telemetry import names, tracer
from shared.telemetry.instruments import record


def error_type(error: BaseException) -> str:
    """A low-cardinality name for a failure: LlmError's kind, a status code, or the class."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    kind = getattr(error, "kind", None)
    if isinstance(kind, str):
        return kind
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    if isinstance(status, int):
        return str(status)
    return type(error).__qualname__


class ModelCall:
    """One model or embedding call in flight: its span, and the metrics recorded at its end."""

    def __init__(
        self,
        operation: str,
        provider: str,
        request_model: str,
        endpoint: str | None,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> None:
        parsed = urlparse(endpoint) if endpoint else None
        self._metric_attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION: operation,
            names.GEN_AI_PROVIDER: provider,
            names.GEN_AI_REQUEST_MODEL: request_model,
            names.SERVER_ADDRESS: parsed.hostname if parsed else None,
        }
        span_attributes = {
            **self._metric_attributes,
            names.GEN_AI_SYSTEM: names.AZURE_OPENAI_SYSTEM
            if provider == names.AZURE_OPENAI
            else provider,
            names.SERVER_PORT: (parsed.port or (443 if parsed.scheme == "https" else 80))
            if parsed
            else None,
            names.GEN_AI_MAX_TOKENS: max_tokens,
            names.GEN_AI_TEMPERATURE: temperature,
        }
        self.span = tracer().start_span(
            f"{operation} {request_model}",
            kind=trace.SpanKind.CLIENT,
            attributes={key: value for key, value in span_attributes.items() if value is not None},
        )
        self._started = time.perf_counter()
        self._ended = False

    def activate(self) -> AbstractContextManager[trace.Span]:
        """Makes the span current (spans of the SDK's own HTTP call nest under it)."""
        return trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def responded(
        self,
        *,
        response_model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reason: str | None = None,
    ) -> None:
        """What the service answered: model, usage and finish reason (never the content)."""
        if response_model:
            self.span.set_attribute(names.GEN_AI_RESPONSE_MODEL, response_model)
            self._metric_attributes[names.GEN_AI_RESPONSE_MODEL] = response_model
        if finish_reason:
            self.span.set_attribute(names.GEN_AI_FINISH_REASONS, [finish_reason])
        for attribute, token_type, tokens in (
            (names.GEN_AI_INPUT_TOKENS, "input", input_tokens),
            (names.GEN_AI_OUTPUT_TOKENS, "output", output_tokens),
        ):
            if tokens is None:
                continue
            self.span.set_attribute(attribute, tokens)
            record(
                names.TOKEN_USAGE,
                tokens,
                {**self._metric_attributes, names.GEN_AI_TOKEN_TYPE: token_type},
            )

    def end(self, error: BaseException | None = None) -> None:
        """Ends the span (once) and records the call's duration, with error.type on failure."""
        if self._ended:
            return
        self._ended = True
        attributes = dict(self._metric_attributes)
        if error is not None:
            kind = error_type(error)
            attributes[names.ERROR_TYPE] = kind
            self.span.set_attribute(names.ERROR_TYPE, kind)
            self.span.set_status(Status(StatusCode.ERROR, kind))
        record(names.OPERATION_DURATION, time.perf_counter() - self._started, attributes)
        self.span.end()


@contextmanager
def model_call(
    operation: str,
    provider: str,
    request_model: str,
    endpoint: str | None,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Iterator[ModelCall]:
    """A ModelCall around a block: ended when the block ends, failed if it raises."""
    call = ModelCall(
        operation,
        provider,
        request_model,
        endpoint,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    try:
        with call.activate():
            yield call
    except BaseException as error:
        call.end(error)
        raise
    call.end()
