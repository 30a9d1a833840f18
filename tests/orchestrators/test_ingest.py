"""The ingest orchestration replayed through the Durable SDK, as the host drives it."""

from __future__ import annotations

import json
from typing import Any

from devhost.testing import execution_start, history_event, next_episode
from devhost.testing import replay as replay_orchestrator
from orchestrators.ingest import ingest

T0 = "2026-01-01T00:00:00.000Z"
UPLOAD = {
    "container": "uploads",
    "name": "a/b.pdf",
    "etag": "0x8D",
    "size": 3,
    "metadata": {"tenant": "contoso"},
}
UPLOAD_JSON = json.dumps(UPLOAD)
INSPECTED = {"outcome": "accepted", "media_type": "application/pdf", "size": 3}


def ev(event_type: int, event_id: int = -1, played: bool = True, **fields: Any) -> dict[str, Any]:
    return history_event(event_type, event_id, played, **fields)


def started(input_json: str | None = UPLOAD_JSON) -> list[dict[str, Any]]:
    return execution_start("ingest", input_json)


def replay(history: list[dict[str, Any]], input_json: str | None = UPLOAD_JSON) -> Any:
    return replay_orchestrator(ingest, history, input_json, "ingest-golden")


episode = next_episode


INSPECT_WITH_RETRY = {
    "actionType": 12,
    "compoundActions": [
        {
            "actionType": 1,  # call activity with retry
            "functionName": "inspect_upload",
            "input": UPLOAD_JSON,
            "retryOptions": {"firstRetryIntervalInMilliseconds": 2000, "maxNumberOfAttempts": 4},
        }
    ],
}


def test_first_episode_schedules_inspect_upload_with_retries() -> None:
    state = replay(started())
    assert state["isDone"] is False
    assert state["actions"] == [[INSPECT_WITH_RETRY]]
    assert json.loads(state["actions"][0][0]["compoundActions"][0]["input"]) == UPLOAD
    assert state["customStatus"] == {"step": "inspect", "percent": 0}
    assert "output" not in state


def test_completed_inspection_is_the_output_and_status_is_done() -> None:
    history = [
        *started(),
        ev(4, 0, Name="inspect_upload"),
        *episode(ev(5, TaskScheduledId=0, Result=json.dumps(INSPECTED), played=False)),
    ]
    state = replay(history)
    assert state["isDone"] is True
    assert state["output"] == INSPECTED
    assert state["customStatus"] == {"step": "done", "percent": 100, "outcome": "accepted"}
    assert state["actions"] == [[INSPECT_WITH_RETRY]]  # nothing more scheduled


def test_a_failed_attempt_is_retried_not_fatal() -> None:
    # Attempt 1 is id 0; its failure allocates retry timer id 1; the re-run is id 2.
    history = [
        *started(),
        ev(4, 0, Name="inspect_upload"),
        *episode(ev(6, TaskScheduledId=0, Reason="throttled", Details="")),
    ]
    state = replay(history)
    assert state["isDone"] is False
    assert state["customStatus"] == {"step": "inspect", "percent": 0}
    history += [
        ev(10, 1, FireAt=T0),
        *episode(ev(11, TimerId=1, FireAt=T0)),
        ev(4, 2, Name="inspect_upload"),
        *episode(ev(5, TaskScheduledId=2, Result=json.dumps(INSPECTED), played=False)),
    ]
    state = replay(history)
    assert state["isDone"] is True
    assert state["output"] == INSPECTED
    assert state["customStatus"]["step"] == "done"
