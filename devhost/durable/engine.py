"""The Durable engine: replays orchestrators through the SDK and runs their activities.

An episode delivers every ready event at once, like the real host, with one exception. For
`call_*_with_retry` the SDK silently allocates task ids for the retry timer and the re-run when
it replays a failure or that timer; an event that moves a retry on is therefore delivered alone,
which makes those hidden ids a pure function of the stored history (the count of scheduling
events so far), so the engine records them exactly as the Durable Task Framework does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.config import HostConfig
from devhost.durable import _protocol as p
from devhost.durable.store import (
    ActivityWork,
    DurableStore,
    Instance,
    Message,
    NewActivity,
    NewMessage,
)
from devhost.functions import ACTIVITY_TRIGGER, ORCHESTRATION_TRIGGER, FunctionInfo
from devhost.invoker import InvocationFailed, Invoker

log = logging.getLogger("devhost.durable")
# Bounds one replay's new events; the rest wait for the next episode.
MAX_EVENTS_PER_EPISODE = 100


class DurableError(Exception):
    """A client request the engine must refuse."""


class UnknownOrchestrator(DurableError):
    """No orchestrator function has that name."""


class InstanceNotFound(DurableError):
    """No instance has that id."""


class InstanceConflict(DurableError):
    """The instance is in a state that forbids the request (running, or already finished)."""


def utc_now() -> datetime:
    """The engine's clock (replaceable in tests)."""
    return datetime.now(UTC)


@dataclass
class _Plan:
    """Everything one episode writes, committed in one transaction."""

    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    activities: list[NewActivity] = field(default_factory=list)
    children: list[Instance] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)


class _Scheduler:
    """Turns an episode's new actions (and retry bookkeeping) into events and work."""

    @classmethod
    def for_history(cls, history: list[dict[str, Any]], now: datetime) -> _Scheduler:
        """A scheduler used only to inspect a history (no instance to schedule for)."""
        return cls(None, history, now)  # type: ignore[arg-type]

    def moves_retry(self, delivered: dict[str, Any]) -> bool:
        """Whether delivering this event makes the SDK allocate hidden retry ids."""
        kind = delivered["EventType"]
        if kind in (p.TASK_FAILED, p.SUB_ORCHESTRATION_FAILED):
            return "RetryGroup" in self.scheduled.get(delivered["TaskScheduledId"], {})
        if kind == p.TIMER_FIRED:
            return "RetryGroup" in self.scheduled.get(delivered["TimerId"], {})
        return False

    def __init__(self, instance: Instance, history: list[dict[str, Any]], now: datetime) -> None:
        self.instance = instance
        self.now = now
        self.plan = _Plan()
        self.scheduled = {
            item["EventId"]: item for item in history if item["EventType"] in p.SCHEDULING_EVENTS
        }
        self.next_id = len(self.scheduled)

    def _allocate(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def _add_scheduling_event(self, item: dict[str, Any]) -> None:
        self.scheduled[item["EventId"]] = item
        self.plan.events.append(item)

    def schedule_work(
        self, kind: int, name: str, input_json: str | None, extra: dict[str, Any]
    ) -> int:
        """Schedules an activity or a sub-orchestration and returns its task id."""
        task_id = self._allocate()
        if kind in (p.CALL_ACTIVITY, p.CALL_ACTIVITY_WITH_RETRY):
            self._add_scheduling_event(
                p.event(p.TASK_SCHEDULED, self.now, task_id, Name=name, Input=input_json, **extra)
            )
            self.plan.activities.append(
                NewActivity(
                    self.instance.instance_id, self.instance.execution_id, task_id, name, input_json
                )
            )
        else:
            child_id = extra.pop("ChildInstanceId", None) or (
                f"{self.instance.instance_id}:{task_id:04d}"
            )
            self._add_scheduling_event(
                p.event(
                    p.SUB_ORCHESTRATION_CREATED,
                    self.now,
                    task_id,
                    Name=name,
                    Input=input_json,
                    InstanceId=child_id,
                    **extra,
                )
            )
            self.plan.children.append(self._child(child_id, name, input_json, task_id))
        return task_id

    def _child(self, child_id: str, name: str, input_json: str | None, task_id: int) -> Instance:
        stamp = p.timestamp(self.now)
        return Instance(
            instance_id=child_id,
            name=name,
            execution_id=uuid.uuid4().hex,
            status="Pending",
            input=input_json,
            output=None,
            custom_status=None,
            created=stamp,
            updated=stamp,
            parent_instance_id=self.instance.instance_id,
            parent_execution_id=self.instance.execution_id,
            parent_task_id=task_id,
            action_ids=[],
        )

    def schedule_timer(self, fire_at: datetime, extra: dict[str, Any]) -> int:
        """Creates a durable timer and its future TimerFired message."""
        task_id = self._allocate()
        fire_text = p.timestamp(fire_at)
        self._add_scheduling_event(
            p.event(p.TIMER_CREATED, self.now, task_id, FireAt=fire_text, **extra)
        )
        fired = p.event(p.TIMER_FIRED, fire_at, TimerId=task_id, FireAt=fire_text)
        self.plan.messages.append(
            NewMessage(
                self.instance.instance_id, self.instance.execution_id, fire_at.timestamp(), fired
            )
        )
        return task_id

    # Retries: the engine owns the DTFx retry loop the SDK replays against.

    def _retry_attempts(self, group: int) -> list[dict[str, Any]]:
        return [
            item
            for item in self.scheduled.values()
            if item.get("RetryGroup") == group and item["EventType"] != p.TIMER_CREATED
        ]

    def continue_retry(self, delivered: dict[str, Any]) -> None:
        """After a failed attempt: a backoff timer. After that timer: the next attempt."""
        kind = delivered["EventType"]
        if kind in (p.TASK_FAILED, p.SUB_ORCHESTRATION_FAILED):
            attempt = self.scheduled.get(delivered["TaskScheduledId"], {})
            if "RetryGroup" not in attempt:
                return
            group = attempt["RetryGroup"]
            options = self.scheduled[group]["RetryOptions"]
            exhausted = len(self._retry_attempts(group)) >= options["maxNumberOfAttempts"]
            # DTFx waits on one more timer even after the last attempt; the SDK replays it.
            delay_ms = 0 if exhausted else options["firstRetryIntervalInMilliseconds"]
            self.schedule_timer(self.now + timedelta(milliseconds=delay_ms), {"RetryGroup": group})
        elif kind == p.TIMER_FIRED:
            timer = self.scheduled.get(delivered["TimerId"], {})
            if "RetryGroup" not in timer:
                return
            group = timer["RetryGroup"]
            first = self.scheduled[group]
            if len(self._retry_attempts(group)) < first["RetryOptions"]["maxNumberOfAttempts"]:
                kind_of_work = (
                    p.CALL_ACTIVITY
                    if first["EventType"] == p.TASK_SCHEDULED
                    else p.CALL_SUB_ORCHESTRATOR
                )
                self.schedule_work(
                    kind_of_work, first["Name"], first["Input"], {"RetryGroup": group}
                )

    def schedule_actions(self, actions: list[p.FlatAction]) -> tuple[list[int | None], str | None]:
        """Schedules actions not seen in earlier episodes; returns ids and any refusal."""
        action_ids = list(self.instance.action_ids)
        for action in actions[len(action_ids) :]:
            if action.kind in p.UNSUPPORTED_ACTIONS:
                return action_ids, (
                    f"devhost does not support {p.UNSUPPORTED_ACTIONS[action.kind]}"
                )
            action_ids.append(self._schedule_action(action))
        for index, action in enumerate(actions):
            if action.kind == p.CREATE_TIMER and action.fields.get("isCanceled"):
                self.plan.cancelled_timers.append(action_ids[index])
        return action_ids, None

    def _schedule_action(self, action: p.FlatAction) -> int | None:
        fields = action.fields
        if action.kind == p.CREATE_TIMER:
            return self.schedule_timer(p.parse_timestamp(fields["fireAt"]), {})
        if action.kind not in p.SEQUENCED_ACTIONS:
            return None  # external events are keyed by name; continue-as-new ends the episode
        extra: dict[str, Any] = {}
        if fields.get("instanceId"):
            extra["ChildInstanceId"] = fields["instanceId"]
        retry = fields.get("retryOptions")
        if retry:
            extra["RetryGroup"] = self.next_id
            extra["RetryOptions"] = retry
        return self.schedule_work(action.kind, fields["functionName"], fields.get("input"), extra)


class DurableEngine:
    """Runs orchestrations and activities from the durable store until cancelled."""

    def __init__(
        self,
        config: HostConfig,
        functions: list[FunctionInfo],
        invoker: Invoker,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.orchestrators = {
            f.name: f for f in functions if f.trigger_type == ORCHESTRATION_TRIGGER
        }
        self.activities = {f.name: f for f in functions if f.trigger_type == ACTIVITY_TRIGGER}
        self.invoker = invoker
        self.clock = clock
        self.store = DurableStore(config.data_dir / "durable" / f"{config.task_hub}.sqlite3")
        self._wake = asyncio.Event()
        self._busy_instances: set[str] = set()
        self._busy_activities: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # Client operations (the Durable HTTP API calls these) ---------------------------------

    def start(self, name: str, instance_id: str | None, input_json: str | None) -> Instance:
        """Creates an instance (replacing a finished one with the same id)."""
        if name not in self.orchestrators:
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist or is not an orchestrator."
            )
        instance_id = instance_id or uuid.uuid4().hex
        existing = self.store.get_instance(instance_id)
        if existing and existing.status in p.RUNNING_STATES:
            raise InstanceConflict(
                f"An orchestration instance with the ID '{instance_id}' is already "
                f"{existing.status.lower()}."
            )
        stamp = p.timestamp(self.clock())
        instance = Instance(
            instance_id=instance_id,
            name=name,
            execution_id=uuid.uuid4().hex,
            status="Pending",
            input=input_json,
            output=None,
            custom_status=None,
            created=stamp,
            updated=stamp,
            parent_instance_id=None,
            parent_execution_id=None,
            parent_task_id=None,
            action_ids=[],
        )
        with self.store.transaction() as tx:
            if existing:
                tx.delete_instance(instance_id)
            self._create(tx, instance)
        self.wake()
        return instance

    def _create(self, tx: Any, instance: Instance) -> None:
        tx.put_instance(instance)
        started = p.execution_started(self.clock(), instance.name, instance.input)
        tx.enqueue([NewMessage(instance.instance_id, instance.execution_id, 0.0, started)])

    def get(self, instance_id: str) -> Instance:
        """The instance, or InstanceNotFound."""
        instance = self.store.get_instance(instance_id)
        if instance is None:
            raise InstanceNotFound(f"No instance with ID '{instance_id}' found.")
        return instance

    def raise_event(self, instance_id: str, name: str, input_json: str | None) -> None:
        """Delivers an external event to a running instance."""
        instance = self.get(instance_id)
        if instance.status in p.TERMINAL_STATES:
            raise InstanceConflict(f"Instance '{instance_id}' is {instance.status.lower()}.")
        raised = p.event(p.EVENT_RAISED, self.clock(), Name=name, Input=input_json)
        with self.store.transaction() as tx:
            # No execution id: events raised before a continue-as-new are kept for the next one.
            tx.enqueue([NewMessage(instance_id, None, self.clock().timestamp(), raised)])
        self.wake()

    def terminate(self, instance_id: str, reason: str) -> bool:
        """Ends a running instance; False when it had already finished."""
        instance = self.get(instance_id)
        if instance.status in p.TERMINAL_STATES:
            return False
        self._finish(instance, "Terminated", json.dumps(reason))
        return True

    def set_suspended(self, instance_id: str, suspended: bool) -> bool:
        """Suspends or resumes a running instance; False when it is not in a state to."""
        instance = self.get(instance_id)
        allowed_from = ("Running", "Pending") if suspended else ("Suspended",)
        if instance.status not in allowed_from:
            return False
        with self.store.transaction() as tx:
            tx.put_instance(
                replace(
                    instance,
                    status="Suspended" if suspended else "Running",
                    updated=p.timestamp(self.clock()),
                )
            )
        self.wake()
        return True

    def purge(self, instances: list[Instance]) -> int:
        """Deletes finished instances and their history; running ones are kept."""
        finished = [item for item in instances if item.status in p.TERMINAL_STATES]
        with self.store.transaction() as tx:
            for item in finished:
                tx.delete_instance(item.instance_id)
        return len(finished)

    def _finish(self, instance: Instance, status: str, output_json: str | None) -> None:
        with self.store.transaction() as tx:
            tx.drop_pending_work(instance.instance_id)
            tx.put_instance(
                replace(
                    instance, status=status, output=output_json, updated=p.timestamp(self.clock())
                )
            )
            tx.enqueue(self._parent_notice(instance, status, output_json))
        self.wake()

    # The dispatcher ------------------------------------------------------------------------

    def wake(self) -> None:
        """Tells the dispatcher that new work may be ready."""
        self._wake.set()

    async def run(self) -> None:
        """Dispatches episodes and activities until cancelled."""
        pending = self.store.pending_activities(set(), 1_000_000)
        if pending:
            log.info("Resuming %d activities left unfinished by the last run", len(pending))
        try:
            while True:
                self._dispatch()
                await self._sleep_until_due()
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _sleep_until_due(self) -> None:
        due = self.store.next_due(self._busy_instances)
        timeout = 1.0
        if due is not None:
            timeout = min(timeout, max(0.0, due - self.clock().timestamp()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("devhost durable worker crashed", exc_info=task.exception())
        self.wake()

    def _dispatch(self) -> None:
        now = self.clock().timestamp()
        free = self.config.max_concurrent_orchestrations - len(self._busy_instances)
        for instance_id in self.store.ready_instances(now, free + len(self._busy_instances)):
            if free <= 0:
                break
            if instance_id in self._busy_instances:
                continue
            free -= 1
            self._busy_instances.add(instance_id)
            self._spawn(self._run_episode_guarded(instance_id))
        free = self.config.max_concurrent_activities - len(self._busy_activities)
        if free > 0:
            for work in self.store.pending_activities(self._busy_activities, free):
                self._busy_activities.add(work.id)
                self._spawn(self._run_activity(work))

    # Episodes --------------------------------------------------------------------------------

    async def _run_episode_guarded(self, instance_id: str) -> None:
        try:
            await self._run_episode(instance_id)
        finally:
            self._busy_instances.discard(instance_id)

    async def _run_episode(self, instance_id: str) -> None:
        messages = self.store.ready_messages(
            instance_id, self.clock().timestamp(), MAX_EVENTS_PER_EPISODE
        )
        instance = self.store.get_instance(instance_id)
        stale = [item for item in messages if not self._deliverable(instance, item)]
        if stale:
            with self.store.transaction() as tx:
                for item in stale:
                    tx.delete_message(item.id)
        if not messages or stale or instance is None:
            return  # the dispatcher comes back for what is left
        now = self.clock()
        history = [dict(item, IsPlayed=True) for item in self.store.history(instance_id)]
        batch = self._batch(messages, history, now)
        new_events = [p.event(p.ORCHESTRATOR_STARTED, now), *(item.event for item in batch)]
        outcome = await self._replay(instance, history + new_events)
        self._commit_episode(instance, batch, history + new_events, new_events, outcome, now)

    @staticmethod
    def _batch(
        messages: list[Message], history: list[dict[str, Any]], now: datetime
    ) -> list[Message]:
        """The messages one episode delivers: all that are ready, except that an event moving a
        retry on is delivered alone, so the ids the SDK allocates for it are known."""
        probe = _Scheduler.for_history(history, now)
        batch: list[Message] = []
        for message in messages:
            if probe.moves_retry(message.event):
                return batch or [message]
            batch.append(message)
        return batch

    @staticmethod
    def _deliverable(instance: Instance | None, message: Message) -> bool:
        if instance is None or instance.status in p.TERMINAL_STATES:
            return False
        return message.execution_id in (None, instance.execution_id)

    async def _replay(self, instance: Instance, history: list[dict[str, Any]]) -> p.EpisodeOutcome:
        function = self.orchestrators.get(instance.name)
        if function is None:
            return p.EpisodeOutcome([], True, None, f"orchestrator '{instance.name}' is gone", None)
        body = p.orchestrator_input(
            history, instance.instance_id, instance.input, instance.parent_instance_id
        )
        parameter = next(iter(inspect.signature(function.user_function).parameters))
        try:
            state = await self.invoker.invoke(function, "orchestration", {parameter: body})
        except InvocationFailed as failure:
            return p.outcome_from_exception(failure.cause)
        return p.parse_episode_state(state)

    def _commit_episode(
        self,
        instance: Instance,
        batch: list[Message],
        history: list[dict[str, Any]],
        new_events: list[dict[str, Any]],
        outcome: p.EpisodeOutcome,
        now: datetime,
    ) -> None:
        scheduler = _Scheduler(instance, history, now)
        if len(batch) == 1:
            scheduler.continue_retry(batch[0].event)
        action_ids, refusal = scheduler.schedule_actions(outcome.actions)
        plan = scheduler.plan
        stamp = p.timestamp(now)
        custom = json.dumps(outcome.custom_status) if outcome.custom_status is not None else None
        updated = replace(
            instance,
            status="Running",
            action_ids=action_ids,
            updated=stamp,
            custom_status=custom if custom is not None else instance.custom_status,
        )
        error = refusal or outcome.error
        continue_as_new = next(
            (a for a in outcome.actions if a.kind == p.CONTINUE_AS_NEW_ACTION), None
        )
        with self.store.transaction() as tx:
            for message in batch:
                tx.delete_message(message.id)
            current = self.store.get_instance(instance.instance_id)
            if (
                current is None
                or current.execution_id != instance.execution_id
                or (current.status in p.TERMINAL_STATES)
            ):
                return  # terminated, purged or restarted while the episode ran
            if current.status == "Suspended":
                updated = replace(updated, status="Suspended")
            if outcome.done or refusal:
                if continue_as_new and not error:
                    self._restart(tx, updated, continue_as_new.fields.get("input"))
                    return
                status = "Failed" if error else "Completed"
                output = json.dumps(error if error else outcome.output)
                done_event = p.event(
                    p.EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=output
                )
                tx.append_history(instance.instance_id, [*new_events, *plan.events, done_event])
                tx.drop_pending_work(instance.instance_id)
                tx.put_instance(replace(updated, status=status, output=output))
                tx.enqueue(self._parent_notice(instance, status, output))
                log.info("Orchestration %s (%s) %s", instance.instance_id, instance.name, status)
                return
            closing = p.event(p.ORCHESTRATOR_COMPLETED, now)
            tx.append_history(instance.instance_id, [*new_events, *plan.events, closing])
            tx.put_instance(updated)
            tx.enqueue(plan.messages)
            tx.enqueue_activities(plan.activities)
            tx.delete_timer_messages(instance.instance_id, plan.cancelled_timers)
            for child in plan.children:
                self._start_child(tx, child, instance)

    def _start_child(self, tx: Any, child: Instance, parent: Instance) -> None:
        existing = self.store.get_instance(child.instance_id)
        if existing and existing.status in p.RUNNING_STATES:
            failed = p.event(
                p.SUB_ORCHESTRATION_FAILED,
                self.clock(),
                TaskScheduledId=child.parent_task_id,
                Reason=f"Instance '{child.instance_id}' is already running.",
                Details="",
            )
            tx.enqueue([NewMessage(parent.instance_id, parent.execution_id, 0.0, failed)])
            return
        if existing:
            tx.delete_instance(child.instance_id)
        self._create(tx, child)

    def _restart(self, tx: Any, instance: Instance, input_json: str | None) -> None:
        """continue_as_new: a fresh execution with the new input; raised events carry over."""
        tx.drop_pending_work(instance.instance_id, keep_events=True)
        tx.reset_history(instance.instance_id)
        restarted = replace(
            instance,
            execution_id=uuid.uuid4().hex,
            input=input_json,
            action_ids=[],
            status="Running",
        )
        tx.put_instance(restarted)
        started = p.execution_started(self.clock(), instance.name, input_json)
        tx.enqueue([NewMessage(instance.instance_id, restarted.execution_id, 0.0, started)])

    def _parent_notice(
        self, child: Instance, status: str, output_json: str | None
    ) -> list[NewMessage]:
        if child.parent_instance_id is None:
            return []
        now = self.clock()
        if status == "Completed":
            notice = p.event(
                p.SUB_ORCHESTRATION_COMPLETED,
                now,
                TaskScheduledId=child.parent_task_id,
                Result=output_json,
            )
        else:
            reason = json.loads(output_json) if output_json else status
            notice = p.event(
                p.SUB_ORCHESTRATION_FAILED,
                now,
                TaskScheduledId=child.parent_task_id,
                Reason=str(reason),
                Details="",
            )
        return [
            NewMessage(child.parent_instance_id, child.parent_execution_id, now.timestamp(), notice)
        ]

    # Activities ------------------------------------------------------------------------------

    async def _run_activity(self, work: ActivityWork) -> None:
        try:
            self.store.mark_activity_started(work.id)
            result = await self._invoke_activity(work)
            if not self.store.activity_exists(work.id):
                return  # the instance was terminated or restarted meanwhile
            with self.store.transaction() as tx:
                tx.finish_activity(work.id)
                tx.enqueue(
                    [
                        NewMessage(
                            work.instance_id, work.execution_id, self.clock().timestamp(), result
                        )
                    ]
                )
        finally:
            self._busy_activities.discard(work.id)

    async def _invoke_activity(self, work: ActivityWork) -> dict[str, Any]:
        function = self.activities.get(work.name)
        now = self.clock
        if function is None:
            return p.event(
                p.TASK_FAILED,
                now(),
                TaskScheduledId=work.task_id,
                Reason=f"The activity function '{work.name}' doesn't exist.",
                Details="",
            )
        argument = None
        if work.input is not None:
            argument = ActivityTriggerConverter.decode(
                meta.Datum(work.input, "json"), trigger_metadata=None
            )
        try:
            value = await self.invoker.invoke(
                function, "activity", {function.trigger_arg: argument}
            )
            encoded = ActivityTriggerConverter.encode(value, expected_type=None).value
        except InvocationFailed as failure:
            error = failure.cause
            log.warning(
                "Activity %s failed for %s: %s",
                work.name,
                work.instance_id,
                "".join(traceback.format_exception(error)).rstrip(),
            )
            return p.event(
                p.TASK_FAILED,
                now(),
                TaskScheduledId=work.task_id,
                Reason=f"{type(error).__name__}: {error}",
                Details="",
            )
        return p.event(p.TASK_COMPLETED, now(), TaskScheduledId=work.task_id, Result=encoded)

    def close(self) -> None:
        """Closes the store."""
        self.store.close()
