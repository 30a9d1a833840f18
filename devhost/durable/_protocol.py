"""Wire encodings of the Durable out-of-proc protocol: history events, actions, statuses.

Only this module knows the integer codes and field names the `azure-functions-durable` SDK
expects. `tests/devhost/test_durable_protocol.py` replays golden histories through the pinned
SDK, so an upgrade that changes any of this fails loudly there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# History event types (DurableTask.Core EventType).
EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_FAILED = 2
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_ORCHESTRATION_CREATED = 7
SUB_ORCHESTRATION_COMPLETED = 8
SUB_ORCHESTRATION_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16

# Action types returned by the SDK's orchestrator `handle`.
CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW_ACTION = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

# Actions that consume one task sequence number when first scheduled.
SEQUENCED_ACTIONS = frozenset(
    {
        CALL_ACTIVITY,
        CALL_ACTIVITY_WITH_RETRY,
        CALL_SUB_ORCHESTRATOR,
        CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        CREATE_TIMER,
    }
)
UNSUPPORTED_ACTIONS = {
    CALL_ENTITY: "durable entities",
    SIGNAL_ENTITY: "durable entities",
    CALL_HTTP: "call_http",
}
# Events that consumed a sequence number: their count is the next task id.
SCHEDULING_EVENTS = frozenset({TASK_SCHEDULED, TIMER_CREATED, SUB_ORCHESTRATION_CREATED})

REPLAY_SCHEMA = {"upperSchemaVersion": 1, "upperSchemaVersionNew": 3}
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"

RUNNING_STATES = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})
TERMINAL_STATES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
# Status codes the SDK's `get_status` understands, per runtime status.
STATUS_HTTP_CODES = {"Completed": 200, "Failed": 500, "Terminated": 400, "Canceled": 400}


def timestamp(moment: datetime) -> str:
    """Formats a moment as the SDK expects: UTC, millisecond precision, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parses the SDK's `fireAt` and our own timestamps (always timezone-aware)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event(event_type: int, moment: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """Builds one history event with the fields every event must carry."""
    return {
        "EventType": event_type,
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": timestamp(moment),
        **fields,
    }


def execution_started(moment: datetime, name: str, input_json: str | None) -> dict[str, Any]:
    """The event that opens every execution; the SDK needs a `Version` key."""
    return event(EXECUTION_STARTED, moment, Name=name, Input=input_json, Version=None)


@dataclass(frozen=True)
class FlatAction:
    """One atomic action, in the order the SDK assigned task ids to it."""

    kind: int
    fields: dict[str, Any]


def flatten_actions(actions: list[Any]) -> list[FlatAction]:
    """Flattens the SDK's action list depth-first through `task_all`/`task_any` compounds."""
    return list(_walk(actions))


def _walk(actions: list[Any]) -> Iterator[FlatAction]:
    for action in actions:
        if isinstance(action, list):  # replay schema V1 nests each episode's actions
            yield from _walk(action)
        elif action["actionType"] in (WHEN_ALL, WHEN_ANY):
            yield from _walk(action["compoundActions"])
        else:
            yield FlatAction(action["actionType"], action)


@dataclass(frozen=True)
class EpisodeOutcome:
    """What one orchestrator invocation decided: actions so far, and completion if any."""

    actions: list[FlatAction]
    done: bool
    output: Any
    error: str | None
    custom_status: Any


def parse_episode_state(state_json: str) -> EpisodeOutcome:
    """Reads the JSON `handle` returns (or embeds after `$OutOfProcData$` when user code raised)."""
    state = json.loads(state_json)
    return EpisodeOutcome(
        actions=flatten_actions(state.get("actions") or []),
        done=bool(state.get("isDone")),
        output=state.get("output"),
        error=state.get("error"),
        custom_status=state.get("customStatus"),
    )


def outcome_from_exception(error: Exception) -> EpisodeOutcome:
    """The SDK reports user-code failures by raising with the state appended to the message."""
    message = str(error)
    head, marker, state_json = message.partition(OUT_OF_PROC_MARKER)
    head = head.strip()
    if not marker:
        return EpisodeOutcome([], True, None, head, None)
    outcome = parse_episode_state(state_json)
    return EpisodeOutcome(outcome.actions, True, None, outcome.error or head, outcome.custom_status)


def orchestrator_input(
    history: list[dict[str, Any]], instance_id: str, input_json: str | None, parent: str | None
) -> str:
    """The JSON body the SDK's orchestrator `handle` accepts in place of an OrchestrationContext."""
    return json.dumps(
        {
            "history": history,
            "input": input_json,
            "instanceId": instance_id,
            "isReplaying": any(item["IsPlayed"] for item in history),
            "parentInstanceId": parent,
            **REPLAY_SCHEMA,
        }
    )
