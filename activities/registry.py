"""The ingestion activities, registered from one table on a Durable blueprint.

Each step is a typed function `step(payload, context) -> result` over the ingest contract
(shared.ingestion.contract); `register` turns it into an activity that decodes its JSON input,
runs it with the process's IngestionContext and encodes its result. The orchestrator calls the
registered activities by reference (`Step.activity`), never by name.
"""

from __future__ import annotations

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
        try:
            result = await run(input_type.parse(payload), await ingestion_context())
        finally:
            release_memory()  # a step's pages, chunks and tensors go back to the system
        return result.as_json()

    activity.__name__ = activity.__qualname__ = run.__name__
    activity.__doc__ = run.__doc__
    built = blueprint.activity_trigger(input_name="payload")(activity)
    return Step(run, input_type, output_type, built)


validate = register(validate_upload, Upload, Checked)
extract = register(extract_layout, ExtractRequest, ExtractedPart)
merge = register(merge_layout, MergeRequest, Merged)
describe = register(describe_figures, DescribeRequest, Described)
chunk = register(chunk_document, Job, Chunked)
embed = register(embed_chunks, EmbedRequest, Embedded)
index = register(index_document, IndexRequest, Indexed)
fail = register(fail_document, FailureReport, FailureRecorded)
STEPS = (validate, extract, merge, describe, chunk, embed, index, fail)
