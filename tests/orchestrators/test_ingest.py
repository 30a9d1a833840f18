"""The ingest orchestration replayed through the Durable SDK, as the host drives it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devhost.testing import execution_start, history_event, next_episode
from devhost.testing import replay as replay_orchestrator
from orchestrators.ingest import ingest, page_batches

T0 = "2026-01-01T00:00:00.000Z"
UPLOAD = {
    "container": "uploads",
    "name": "a/b.pdf",
    "etag": "0x8D",
    "size": 3,
    "metadata": {"tenant": "contoso"},
}
UPLOAD_JSON = json.dumps(UPLOAD)
JOB = {
    "document_id": "d1",
    "tenant": "contoso",
    "container": "uploads",
    "name": "a/b.pdf",
    "etag": "0x8D",
    "sha256": "ab" * 32,
    "media_type": "application/pdf",
    "page_count": 45,
    "pages_per_batch": 20,
    "acl": {},
}
ACCEPTED = {"outcome": "accepted", "job": JOB}


def ev(event_type: int, event_id: int = -1, played: bool = True, **fields: Any) -> dict[str, Any]:
    return history_event(event_type, event_id, played, **fields)


def started(input_json: str | None = UPLOAD_JSON) -> list[dict[str, Any]]:
    return execution_start("ingest", input_json)


def replay(history: list[dict[str, Any]], input_json: str | None = UPLOAD_JSON) -> Any:
    return replay_orchestrator(ingest, history, input_json, "ingest-golden")


episode = next_episode


RETRY = {"firstRetryIntervalInMilliseconds": 2000, "maxNumberOfAttempts": 4}


def with_retry(name: str, payload: object) -> dict[str, object]:
    """The action of `call_activity_with_retry(name, TRANSIENT_RETRY, payload)`."""
    return {
        "actionType": 12,
        "compoundActions": [
            {
                "actionType": 1,
                "functionName": name,
                "input": json.dumps(payload),
                "retryOptions": RETRY,
            }
        ],
    }


def completed(task_id: int, result: object) -> dict[str, object]:
    return ev(5, TaskScheduledId=task_id, Result=json.dumps(result), played=False)


def test_first_episode_validates_with_retries() -> None:
    state = replay(started())
    assert state["isDone"] is False
    assert state["actions"] == [[with_retry("validate_upload", UPLOAD)]]
    assert state["customStatus"] == {"step": "validate", "percent": 0}


@pytest.mark.parametrize("outcome", ["rejected", "unchanged", "superseded", "missing"])
def test_a_document_not_accepted_ends_without_extraction(outcome: str) -> None:
    result = {"outcome": outcome, "document_id": "d1"}
    history = [*started(), ev(4, 0, Name="validate_upload"), *episode(completed(0, result))]
    state = replay(history)
    assert state["isDone"] is True
    assert state["output"] == result
    assert state["customStatus"] == {"step": "done", "percent": 100, "outcome": outcome}


def test_accepted_document_fans_out_over_page_ranges() -> None:
    history = [*started(), ev(4, 0, Name="validate_upload"), *episode(completed(0, ACCEPTED))]
    state = replay(history)
    fan_out = state["actions"][0][1]
    assert fan_out["actionType"] == 12
    payloads = [
        json.loads(item["compoundActions"][0]["input"]) for item in fan_out["compoundActions"]
    ]
    assert [payload["pages"] for payload in payloads] == [
        {"first": 1, "last": 20},
        {"first": 21, "last": 40},
        {"first": 41, "last": 45},
    ]
    assert state["customStatus"] == {"step": "extract", "percent": 5, "batches": 3}


def test_a_permanent_extraction_failure_records_the_reason() -> None:
    failure = {"failed": {"code": "unreadable", "reason": "pages 21-40: broken"}}
    part = {"layout": "l.json", "first": 1, "engines": {"pdfplumber": [1]}, "cost_usd": 0}
    # task ids: 0 validate; 1, 2, 3 the three extraction batches; 4 fail_document
    history = [
        *started(),
        ev(4, 0, Name="validate_upload"),
        *episode(completed(0, ACCEPTED)),
        *[ev(4, i, Name="extract_layout") for i in (1, 2, 3)],
        *episode(completed(1, part), completed(2, failure), completed(3, part)),
    ]
    state = replay(history)
    failing = state["actions"][0][-1]
    assert failing == with_retry(
        "fail_document",
        {"job": JOB, "step": "extract", "code": "unreadable", "reason": "pages 21-40: broken"},
    )
    history += [ev(4, 4, Name="fail_document"), *episode(completed(4, {"discarded": 0}))]
    state = replay(history)
    assert state["isDone"] is True
    assert state["output"] == {
        "outcome": "failed", "code": "unreadable", "reason": "pages 21-40: broken",
        "document_id": "d1",
    }  # fmt: skip
    assert state["customStatus"]["step"] == "failed"


def test_page_batches_cover_every_page_once() -> None:
    def batches(pages: int, size: int) -> list[dict[str, int]]:
        return [span.as_json() for span in page_batches(pages, size)]

    assert batches(1, 20) == [{"first": 1, "last": 1}]
    assert batches(40, 20) == [{"first": 1, "last": 20}, {"first": 21, "last": 40}]
    covered = [p for b in batches(1000, 20) for p in range(b["first"], b["last"] + 1)]
    assert covered == list(range(1, 1001))
