"""Upload events become exactly one ingest orchestration per blob version."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.blob import BlobConverter

from shared.ingestion.contract import Upload
from shared.ingestion.start import (
    INGEST_ORCHESTRATOR,
    ingest_instance_id,
    start_ingestion,
)
from shared.telemetry.context import current_traceparent

UPLOAD = Upload(
    container="uploads",
    name="a/b.pdf",
    etag="0x8D",
    size=3,
    metadata={"tenant": "contoso"},
)


def blob_stream(
    path: str = "uploads/a/b.pdf",
    properties: str = '{"ContentLength": 3, "ETag": "\\"0x8D\\""}',
    metadata: str = '{"tenant":"contoso"}',
) -> Any:
    return BlobConverter.decode(
        meta.Datum(b"abc", "bytes"),
        trigger_metadata={
            "BlobTrigger": meta.Datum(path, "string"),
            "Uri": meta.Datum(f"http://127.0.0.1:10000/devstoreaccount1/{path}", "string"),
            "Properties": meta.Datum(properties, "json"),
            "Metadata": meta.Datum(metadata, "json"),
        },
    )


def test_upload_from_a_real_blob_trigger_stream() -> None:
    upload = Upload.from_blob(blob_stream())
    assert upload == UPLOAD
    assert json.loads(json.dumps(upload.as_input())) == {
        "container": "uploads",
        "name": "a/b.pdf",
        "etag": "0x8D",
        "size": 3,
        "metadata": {"tenant": "contoso"},
    }


def test_upload_accepts_etag_spelled_etag_and_stringifies_metadata() -> None:
    upload = Upload.from_blob(
        blob_stream(
            properties='{"ContentLength": 3, "Etag": "0x8DAB"}',
            metadata='{"pages": 4}',
        )
    )
    assert upload.etag == "0x8DAB"
    assert upload.metadata == {"pages": "4"}


def test_instance_id_is_deterministic() -> None:
    same = Upload("uploads", "a/b.pdf", "0x8D", None, {})  # size and metadata do not matter
    assert ingest_instance_id(UPLOAD) == ingest_instance_id(same)
    assert ingest_instance_id(UPLOAD).startswith("ingest-")
    assert len(ingest_instance_id(UPLOAD)) == len("ingest-") + 40


@pytest.mark.parametrize(
    "other",
    [
        replace(UPLOAD, etag="0x8E"),
        replace(UPLOAD, name="a/c.pdf"),
        replace(UPLOAD, container="other"),
        replace(UPLOAD, name="a/B.pdf"),  # blob names are case-sensitive
    ],
)
def test_instance_id_differs_per_blob_version(other: Upload) -> None:
    assert ingest_instance_id(other) != ingest_instance_id(UPLOAD)


class FakeClient:
    """The two DurableOrchestrationClient calls start_ingestion makes."""

    def __init__(self, statuses: list[Any], start_error: Exception | None = None) -> None:
        self.statuses = list(statuses)
        self.start_error = start_error
        self.status_calls: list[str] = []
        self.starts: list[tuple[str, str, Any]] = []

    async def get_status(self, instance_id: str) -> Any:
        self.status_calls.append(instance_id)
        return self.statuses.pop(0)

    async def start_new(self, name: str, instance_id: str, client_input: Any) -> str:
        self.starts.append((name, instance_id, client_input))
        if self.start_error:
            raise self.start_error
        return instance_id


async def test_existing_instance_is_a_no_op() -> None:
    client = FakeClient(statuses=[{"runtimeStatus": "Running"}])
    assert await start_ingestion(client, UPLOAD) is None
    assert client.starts == []
    assert client.status_calls == [ingest_instance_id(UPLOAD)]


async def test_new_upload_starts_ingest_with_the_derived_id() -> None:
    client = FakeClient(statuses=[None])
    instance_id = await start_ingestion(client, UPLOAD)
    assert instance_id == ingest_instance_id(UPLOAD)
    expected_input = {**UPLOAD.as_input(), "instance_id": instance_id}
    (started,) = client.starts
    # With a tracer provider installed, the input carries the ingest.start span's context.
    sent = dict(started[2])
    traceparent = sent.pop("traceparent", None)
    shape = r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"
    assert traceparent is None or re.fullmatch(shape, traceparent)
    assert (started[0], started[1], sent) == (INGEST_ORCHESTRATOR, instance_id, expected_input)


async def test_the_orchestration_input_continues_the_trace_of_the_upload() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("upload request") as request_span:
        uploader = trace.format_trace_id(request_span.get_span_context().trace_id)
        carrier = current_traceparent()
    client = FakeClient(statuses=[None])
    upload = replace(UPLOAD, metadata={**UPLOAD.metadata, "traceparent": carrier})
    await start_ingestion(client, upload)
    sent = Upload.parse(client.starts[0][2])
    assert sent.traceparent and sent.traceparent.split("-")[1] == uploader  # the same trace


async def test_start_lost_to_a_concurrent_duplicate_is_a_no_op() -> None:
    client = FakeClient(
        statuses=[None, {"runtimeStatus": "Pending"}],
        start_error=RuntimeError("instance already exists"),
    )
    assert await start_ingestion(client, UPLOAD) is None
    assert len(client.starts) == 1
    assert client.status_calls == [ingest_instance_id(UPLOAD)] * 2


async def test_start_failure_without_an_instance_is_raised() -> None:
    error = RuntimeError("storage unavailable")
    client = FakeClient(statuses=[None, None], start_error=error)
    with pytest.raises(RuntimeError) as raised:
        await start_ingestion(client, UPLOAD)
    assert raised.value is error
    assert len(client.status_calls) == 2


def test_contract_payloads_round_trip_through_plain_json() -> None:
    from shared.ingestion.contract import Checked, FailureReport, Job, PageSpan

    job = Job("d1", "contoso", "uploads", "a/b.pdf", "0x8D", "ab" * 32, "application/pdf", 3, 20)
    payloads = [
        replace(UPLOAD, size=None),  # a required field may be null; it must come back
        Checked("unchanged", "d1"),
        Checked("accepted", job=job),
        FailureReport(job, None, "unreadable", "pages 1-3: broken"),
        PageSpan(1, 20),
    ]
    for payload in payloads:
        wire = json.loads(json.dumps(payload.as_json()))
        assert type(payload).parse(wire) == payload
    assert Checked("unchanged", "d1").as_json() == {"outcome": "unchanged", "document_id": "d1"}
