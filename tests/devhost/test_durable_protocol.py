"""Golden histories replayed through the pinned Durable SDK.

The local host relies on the SDK's out-of-proc protocol: integer event types, field names, task
id order (including the hidden ids of `call_activity_with_retry`) and the shape of the state it
returns. These tests spell that protocol out literally, so an SDK upgrade that changes it fails
here, loudly, instead of hanging orchestrations in the host.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from devhost.durable import _protocol as protocol
from devhost.testing import REPLAY_TIMESTAMP, execution_start, history_event, next_episode
from devhost.testing import replay as replay_orchestrator

T0 = REPLAY_TIMESTAMP
ev = history_event
episode = next_episode


def started(input_json: str | None = None) -> list[dict[str, Any]]:
    return execution_start("orchestrator", input_json)


def replay(orchestrator: Any, history: list[dict[str, Any]], input_json: str | None = None) -> Any:
    return replay_orchestrator(orchestrator, history, input_json, "golden")


def sequence(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("hello", "a")
    second = yield context.call_activity("hello", "b")
    return [first, second]


def fan_out(context: df.DurableOrchestrationContext):
    results = yield context.task_all([context.call_activity("double", i) for i in range(3)])
    return sum(results)


def with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    try:
        value = yield context.call_activity_with_retry("flaky", options, "x")
    except Exception as error:
        return f"failed: {error}"
    after = yield context.call_activity("hello", "after")
    return [value, after]


def timer(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=5))
    return "fired"


def external_event(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("approve")
    return {"approved": value}


RETRY_ACTION = {
    "actionType": 12,
    "compoundActions": [
        {
            "actionType": 1,
            "functionName": "flaky",
            "input": '"x"',
            "retryOptions": {"firstRetryIntervalInMilliseconds": 1000, "maxNumberOfAttempts": 2},
        }
    ],
}


def test_sequence_schedules_one_activity_per_episode_then_completes() -> None:
    first = replay(sequence, started())
    assert first == {
        "isDone": False,
        "schemaVersion": 2,
        "actions": [[{"actionType": 0, "functionName": "hello", "input": '"a"'}]],
    }
    history = [
        *started(),
        ev(4, 0, Name="hello"),
        *episode(ev(5, TaskScheduledId=0, Result='"A"')),
        ev(4, 1, Name="hello"),
        *episode(ev(5, TaskScheduledId=1, Result='"B"', played=False)),
    ]
    done = replay(sequence, history)
    assert done["isDone"] is True
    assert done["output"] == ["A", "B"]
    assert done["actions"] == [
        [
            {"actionType": 0, "functionName": "hello", "input": '"a"'},
            {"actionType": 0, "functionName": "hello", "input": '"b"'},
        ]
    ]


def test_fan_out_is_one_when_all_and_completes_in_any_order() -> None:
    first = replay(fan_out, started())
    assert first["actions"] == [
        [
            {
                "actionType": 12,
                "compoundActions": [
                    {"actionType": 0, "functionName": "double", "input": str(i)} for i in range(3)
                ],
            }
        ]
    ]
    scheduled = [ev(4, i, Name="double") for i in range(3)]
    history = [
        *started(),
        *scheduled,
        *episode(ev(5, TaskScheduledId=2, Result="4")),
        *episode(ev(5, TaskScheduledId=0, Result="0")),
    ]
    assert replay(fan_out, history)["isDone"] is False
    history += episode(ev(5, TaskScheduledId=1, Result="2", played=False))
    assert replay(fan_out, history) | {"actions": None} == {
        "isDone": True,
        "schemaVersion": 2,
        "actions": None,
        "output": 6,
    }


def test_retry_success_uses_hidden_timer_and_rerun_ids() -> None:
    """Attempt 1 is id 0; its failure allocates timer id 1; the re-run is id 2; then id 3."""
    history = [
        *started(),
        ev(4, 0, Name="flaky"),
        *episode(ev(6, TaskScheduledId=0, Reason="boom", Details="")),
        ev(10, 1, FireAt=T0),
        *episode(ev(11, TimerId=1, FireAt=T0)),
        ev(4, 2, Name="flaky"),
        *episode(ev(5, TaskScheduledId=2, Result='"ok"')),
    ]
    state = replay(with_retry, history)
    assert state["isDone"] is False
    assert state["actions"] == [
        [RETRY_ACTION, {"actionType": 0, "functionName": "hello", "input": '"after"'}]
    ]
    history += [ev(4, 3, Name="hello"), *episode(ev(5, TaskScheduledId=3, Result='"done"'))]
    assert replay(with_retry, history)["output"] == ["ok", "done"]


def test_retry_exhaustion_waits_for_one_more_timer_then_throws() -> None:
    history = [
        *started(),
        ev(4, 0, Name="flaky"),
        *episode(ev(6, TaskScheduledId=0, Reason="boom 1", Details="")),
        ev(10, 1, FireAt=T0),
        *episode(ev(11, TimerId=1, FireAt=T0)),
        ev(4, 2, Name="flaky"),
        *episode(ev(6, TaskScheduledId=2, Reason="boom 2", Details="")),
    ]
    # After the last attempt fails the SDK still waits for a timer (DTFx semantics).
    assert replay(with_retry, history)["isDone"] is False
    history += [ev(10, 3, FireAt=T0), *episode(ev(11, TimerId=3, FireAt=T0))]
    state = replay(with_retry, history)
    assert state["isDone"] is True
    assert state["output"] == "failed: boom 2 \n "


def test_timer_action_and_fire() -> None:
    first = replay(timer, started())
    assert first["actions"] == [
        [{"actionType": 5, "fireAt": "2026-01-01T00:00:05.000000Z", "isCanceled": False}]
    ]
    history = [*started(), ev(10, 0, FireAt=T0), *episode(ev(11, TimerId=0, FireAt=T0))]
    assert replay(timer, history)["output"] == "fired"


def test_external_event_is_keyed_by_name_not_id() -> None:
    first = replay(external_event, started())
    assert first["actions"] == [
        [{"actionType": 6, "externalEventName": "approve", "reason": "ExternalEvent"}]
    ]
    history = [*started(), *episode(ev(15, Name="approve", Input='"yes"'))]
    assert replay(external_event, history)["output"] == {"approved": "yes"}


def test_user_exception_carries_state_after_the_out_of_proc_marker() -> None:
    def boom(context: df.DurableOrchestrationContext):
        yield context.call_activity("hello", "a")
        raise RuntimeError("orchestrator broke")

    history = [*started(), ev(4, 0, Name="hello"), *episode(ev(5, TaskScheduledId=0, Result='"A"'))]
    with pytest.raises(Exception) as raised:
        replay(boom, history)
    outcome = protocol.outcome_from_exception(raised.value)
    assert outcome.done and outcome.error == "orchestrator broke"
    assert [action.kind for action in outcome.actions] == [protocol.CALL_ACTIVITY]


def test_flatten_matches_the_sdk_id_order() -> None:
    actions = [[RETRY_ACTION, replay(fan_out, started())["actions"][0][0]]]
    flat = protocol.flatten_actions(actions)
    assert [item.kind for item in flat] == [1, 0, 0, 0]
    assert [item.fields["functionName"] for item in flat] == ["flaky", "double", "double", "double"]
