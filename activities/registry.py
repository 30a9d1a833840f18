"""The ingestion activities, registered from one table on a Durable blueprint.

Each step is a typed function `step(payload, context) -> result` over the ingest contract
(shared.ingestion.contract); `register` turns it into an activity that decodes its JSON input,
runs it with the process's IngestionContext and encodes its result. The orchestrator calls the
registered activities by reference (`Step.activity`), never by name.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import azure.durable_functions as df
from azure.functions.decorators.function_app import FunctionBuilder

from activities.chunk_document import chunk_document
from activities.context import IngestionContext
from activities.describe_figures import describe_figures
from activities.embed_chunks import embed_chunks
from activities.extract_layout import extract_layout
from activities.fail_document import fail_document
from activities.index_document import index_document
from activities.merge_layout import merge_layout
from activities.validate_upload import validate_upload
from shared.compute import release_memory
from shared.ingestion.contract import (
    Checked,
    Chunked,
    Contract,
    Described,
    DescribeRequest,
    Embedded,
    EmbedRequest,
    ExtractedPart,
    ExtractRequest,
    FailureRecorded,
    FailureReport,
    Indexed,
    IndexRequest,
    Job,
    Merged,
    MergeRequest,
    Upload,
)
from shared.services import ingestion_context
from shared.telemetry import names
from shared.telemetry.context import continued_span
from shared.telemetry.genai import error_type
from shared.telemetry.instruments import record

In = TypeVar("In", bound=Contract)
Out = TypeVar("Out", bound=Contract)

blueprint = df.Blueprint()


@dataclass(frozen=True)
class Step(Generic[In, Out]):
    """One registered activity: its function, its input and result types."""

    run: Callable[[In, IngestionContext], Awaitable[Out]]
    input: type[In]
    output: type[Out]
    activity: FunctionBuilder

    def result(self, raw: Any) -> Out:
        """The activity's JSON result, decoded."""
        return self.output.parse(raw)


def register(
    run: Callable[[In, IngestionContext], Awaitable[Out]],
    input_type: type[In],
    output_type: type[Out],
) -> Step[In, Out]:
    """`run` as an activity named after it (the name the orchestration's history records)."""

    async def activity(payload: dict[str, Any]) -> dict[str, Any]:
        parsed = input_type.parse(payload)
        job = parsed if isinstance(parsed, Job) else getattr(parsed, "job", None)
        source = job or parsed  # the Upload, for validate_upload
        step = run.__name__
        with continued_span(
            f"ingest.{step}",
            getattr(source, "traceparent", None),
            **{names.STEP: step, names.DOCUMENT_ID: getattr(job, "document_id", None)},
        ):
            started, failure = time.perf_counter(), None
            try:
                result = await run(parsed, await ingestion_context())
            except BaseException as error:
                failure = error_type(error)
                raise
            finally:
                release_memory()  # a step's pages, chunks and tensors go back to the system
                seconds = time.perf_counter() - started
                record(names.STEP_DURATION, seconds, {names.STEP: step, names.ERROR_TYPE: failure})
            measure(parsed, result, seconds)
        return result.as_json()

    activity.__name__ = activity.__qualname__ = run.__name__
    activity.__doc__ = run.__doc__
    built = blueprint.activity_trigger(input_name="payload")(activity)
    return Step(run, input_type, output_type, built)


def measure(payload: Contract, result: Contract, seconds: float) -> None:
    """What a step's result says about ingestion: pages per second of an extraction, and a
    document finished (indexed, or failed with its code: rejected at validation or recorded
    by fail_document, the two places a document's ingestion fails)."""
    if isinstance(result, ExtractedPart) and result.engines and seconds > 0:
        pages = sum(len(numbers) for numbers in result.engines.values())
        engine = next(iter(result.engines)) if len(result.engines) == 1 else "mixed"
        record(names.PAGES_PER_SECOND, pages / seconds, {names.ENGINE: engine})
    elif isinstance(result, Indexed) and result.outcome == "indexed":
        record(names.DOCUMENTS, 1, {names.OUTCOME: "indexed"})
    elif isinstance(result, Checked) and result.outcome == "rejected" and result.failed:
        record(names.DOCUMENTS, 1, {names.OUTCOME: "failed", names.REASON: result.failed.code})
    elif isinstance(payload, FailureReport):
        record(names.DOCUMENTS, 1, {names.OUTCOME: "failed", names.REASON: payload.code})


validate = register(validate_upload, Upload, Checked)
extract = register(extract_layout, ExtractRequest, ExtractedPart)
merge = register(merge_layout, MergeRequest, Merged)
describe = register(describe_figures, DescribeRequest, Described)
chunk = register(chunk_document, Job, Chunked)
embed = register(embed_chunks, EmbedRequest, Embedded)
index = register(index_document, IndexRequest, Indexed)
fail = register(fail_document, FailureReport, FailureRecorded)
STEPS = (validate, extract, merge, describe, chunk, embed, index, fail)
