"""Serves `timerTrigger` functions: NCRONTAB or TimeSpan schedules, run-on-startup and past-due."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions as func
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequestConverter
from croniter import croniter
from croniter.croniter import CroniterError

from devhost.config import HostConfig, UnsetAppSetting, expand_app_settings
from devhost.functions import TIMER_TRIGGER, FunctionInfo
from devhost.invoker import Invoker

log = logging.getLogger("devhost.timer")

TIME_ZONE_SETTING = "WEBSITE_TIME_ZONE"
# .NET's default(DateTime): what the real host records as `Last` before a first run.
NEVER = "0001-01-01T00:00:00"
MONITOR_MIN_INTERVAL = timedelta(minutes=1)
# Wake at least this often, so a suspended laptop or a clock change is noticed promptly.
MAX_SLEEP_SECONDS = 30.0

ClientBinding = Callable[[FunctionInfo], Any]
Clock = Callable[[], datetime]


class TimerTriggerError(Exception):
    """A timer cannot be served: unparsable schedule or unknown time zone."""


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression: six fields (seconds first) or five (minutes first)."""

    expression: str
    adjust_for_dst = True

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment`, in `moment`'s time zone."""
        with_seconds = len(self.expression.split()) == 6
        # NCRONTAB needs both day-of-month and day-of-week to match (cron would accept either).
        schedule = croniter(self.expression, moment, day_or=False, second_at_beginning=with_seconds)
        return schedule.get_next(datetime)


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (`hh:mm:ss`): every interval after the previous run."""

    interval: timedelta
    adjust_for_dst = False

    def next_after(self, moment: datetime) -> datetime:
        """`moment` plus the interval, as the host's constant schedule computes it."""
        return moment + self.interval


Schedule = CronSchedule | IntervalSchedule

_TIME_SPAN = re.compile(
    r"(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
    r"(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?"
)


def parse_time_span(text: str) -> timedelta | None:
    """Parses .NET TimeSpan text (`[d.]hh:mm[:ss[.fffffff]]`, or whole days); None if not one."""
    text = text.strip()
    if text.isdigit():
        return timedelta(days=int(text))
    found = _TIME_SPAN.fullmatch(text)
    if found is None:
        return None
    hours, minutes = int(found["hours"]), int(found["minutes"])
    seconds = int(found["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = float(f"0.{found['fraction']}") if found["fraction"] else 0.0
    return timedelta(
        days=int(found["days"] or 0), hours=hours, minutes=minutes, seconds=seconds + fraction
    )


def parse_schedule(expression: str) -> Schedule:
    """An NCRONTAB schedule, else a TimeSpan one, in the order the real host tries them."""
    fields = expression.split()
    if len(fields) in (5, 6):
        schedule = CronSchedule(" ".join(fields))
        try:
            # Computing one occurrence also rejects dates that never come (`0 0 0 31 2 *`).
            schedule.next_after(datetime.now(UTC))
        except (CroniterError, ValueError) as error:
            raise TimerTriggerError(f"invalid NCRONTAB schedule {expression!r}: {error}") from error
        return schedule
    interval = parse_time_span(expression)
    if interval is None:
        raise TimerTriggerError(
            f"schedule {expression!r} is neither NCRONTAB (6 fields, seconds first) "
            "nor a TimeSpan (hh:mm:ss)"
        )
    if interval <= timedelta(0):
        raise TimerTriggerError(f"TimeSpan schedule {expression!r} must be positive")
    return IntervalSchedule(interval)


def resolve_time_zone(environ: Mapping[str, str]) -> tzinfo:
    """UTC, or the IANA zone named by `WEBSITE_TIME_ZONE`."""
    name = (environ.get(TIME_ZONE_SETTING) or "").strip()
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise TimerTriggerError(
            f"{TIME_ZONE_SETTING}={name!r} is not an IANA time zone (e.g. Europe/Paris); "
            "Windows zone names are not supported locally"
        ) from error


@dataclass(frozen=True)
class ScheduleStatus:
    """The monitor's record: last run, next expected run, and when it was last written."""

    last: datetime | None
    next: datetime
    last_updated: datetime

    def to_json(self) -> dict[str, str]:
        """The host's `ScheduleStatus` JSON (`Last` is `0001-01-01T00:00:00` before a run)."""
        return {
            "Last": self.last.isoformat() if self.last else NEVER,
            "Next": self.next.isoformat(),
            "LastUpdated": self.last_updated.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> ScheduleStatus:
        """Reads what `to_json` wrote."""
        last = data.get("Last") or NEVER
        return cls(
            last=None if last.startswith(NEVER[:10]) else datetime.fromisoformat(last),
            next=datetime.fromisoformat(data["Next"]),
            last_updated=datetime.fromisoformat(data["LastUpdated"]),
        )


def check_past_due(
    schedule: Schedule, status: ScheduleStatus | None, now: datetime
) -> tuple[ScheduleStatus, bool]:
    """The status to go on with and whether an occurrence was missed, as the host's monitor."""
    if status is None:
        return ScheduleStatus(None, schedule.next_after(now), now), False
    expected = schedule.next_after(status.last or status.last_updated)
    if status.next > expected:
        # The schedule changed to fire sooner than recorded: trust the new schedule.
        status = ScheduleStatus(status.last, expected, now)
    return status, now > status.next


def uses_monitor(schedule: Schedule, use_monitor: bool | None, now: datetime) -> bool:
    """An explicit `use_monitor`, else true for schedules at least a minute apart (host rule)."""
    if use_monitor is not None:
        return use_monitor
    first = schedule.next_after(now)
    return schedule.next_after(first) - first >= MONITOR_MIN_INTERVAL


def timer_request(
    schedule: Schedule, status: ScheduleStatus | None, past_due: bool
) -> func.TimerRequest:
    """The trigger argument, decoded by the SDK's own converter from the host's JSON."""
    payload = {
        "Schedule": {"AdjustForDST": schedule.adjust_for_dst},
        "ScheduleStatus": status.to_json() if status else None,
        "IsPastDue": past_due,
    }
    return TimerRequestConverter.decode(Datum(json.dumps(payload), "json"), trigger_metadata={})


class _StatusStore:
    """Status files at `timers/{hostId}/Host.Functions.{name}/status`, like the host's blobs."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, function: FunctionInfo) -> Path:
        return self._root / f"Host.Functions.{function.name}" / "status"

    def load(self, function: FunctionInfo) -> ScheduleStatus | None:
        path = self.path(function)
        try:
            return ScheduleStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as error:
            log.warning("Ignoring unreadable timer status %s (%s)", path, error)
            return None

    def save(self, function: FunctionInfo, status: ScheduleStatus) -> None:
        path = self.path(function)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(status.to_json()), encoding="utf-8")
        temporary.replace(path)  # atomic: a crash never leaves half a status behind


@dataclass(frozen=True)
class _Timer:
    function: FunctionInfo
    schedule: Schedule
    run_on_startup: bool
    use_monitor: bool | None


class TimerScheduler:
    """Runs each timer function on its schedule until cancelled."""

    def __init__(
        self,
        config: HostConfig,
        functions: Iterable[FunctionInfo],
        invoker: Invoker,
        client_binding: ClientBinding | None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        environment = os.environ if environ is None else environ
        self._invoker = invoker
        self._client_binding = client_binding
        self._time_zone = resolve_time_zone(environment)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._store = _StatusStore(config.data_dir / "timers" / config.host_id)
        self._timers = [
            self._timer(function, environment)
            for function in functions
            if function.trigger_type == TIMER_TRIGGER
        ]

    def _timer(self, function: FunctionInfo, environ: Mapping[str, str]) -> _Timer:
        if function.durable_client_arg and self._client_binding is None:
            raise TimerTriggerError(
                f"function {function.name} takes a durable client, but no durable engine runs"
            )
        trigger = function.trigger
        try:
            schedule = parse_schedule(expand_app_settings(str(trigger["schedule"]), environ))
        except (TimerTriggerError, UnsetAppSetting) as error:
            raise TimerTriggerError(f"function {function.name}: {error}") from error
        return _Timer(
            function=function,
            schedule=schedule,
            run_on_startup=bool(trigger.get("runOnStartup", False)),
            use_monitor=trigger.get("useMonitor"),
        )

    @property
    def time_zone(self) -> tzinfo:
        """The zone schedules are evaluated in."""
        return self._time_zone

    @property
    def function_names(self) -> list[str]:
        """The functions this scheduler serves."""
        return [timer.function.name for timer in self._timers]

    def status_path(self, function: FunctionInfo) -> Path:
        """Where a function's schedule status is kept."""
        return self._store.path(function)

    def now(self) -> datetime:
        """The current time in the schedules' zone."""
        return self._clock().astimezone(self._time_zone)

    async def run(self) -> None:
        """Serves every timer until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for timer in self._timers:
                tasks.create_task(self._serve(timer))

    async def _serve(self, timer: _Timer) -> None:
        now = self.now()
        monitor = uses_monitor(timer.schedule, timer.use_monitor, now)
        stored = self._store.load(timer.function) if monitor else None
        status, past_due = check_past_due(timer.schedule, stored, now)
        if monitor and status != stored:
            self._store.save(timer.function, status)
        log.info(
            "Timer '%s': next run %s%s",
            timer.function.name,
            status.next.isoformat(),
            " (past due: running now)" if past_due else "",
        )
        if past_due:
            status = await self._fire(timer, status, monitor, "past due")
        elif timer.run_on_startup:
            status = await self._fire(timer, status, monitor, "startup")
        while True:
            await self._sleep_until(status.next)
            status = await self._fire(timer, status, monitor, "schedule")

    async def _sleep_until(self, moment: datetime) -> None:
        while True:
            remaining = (moment - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, MAX_SLEEP_SECONDS))

    async def _fire(
        self, timer: _Timer, status: ScheduleStatus, monitor: bool, reason: str
    ) -> ScheduleStatus:
        """Runs one invocation and records it, computing the next occurrence as the host does."""
        fired_at = self.now()
        if reason == "schedule" and status.next > fired_at:
            fired_at = status.next  # woke a hair early: never schedule the same occurrence twice
        past_due = reason == "past due"
        label = "timer" if reason == "schedule" else f"timer ({reason})"
        # Like the host, the function sees the status only when a monitor keeps one.
        await self._invoke(timer, status if monitor else None, label, past_due)
        # Every run, startup and past-due ones included, moves Last on; Next counts from the
        # firing time, so an overrunning function fires again right away.
        updated = ScheduleStatus(
            last=fired_at, next=timer.schedule.next_after(fired_at), last_updated=fired_at
        )
        if monitor:
            self._store.save(timer.function, updated)
        return updated

    async def _invoke(
        self, timer: _Timer, status: ScheduleStatus | None, label: str, past_due: bool
    ) -> None:
        function = timer.function
        arguments: dict[str, Any] = {
            function.trigger_arg: timer_request(timer.schedule, status, past_due)
        }
        if function.durable_client_arg:
            arguments[function.durable_client_arg] = self._client_binding(function)
        try:
            await self._invoker.invoke(function, label, arguments)
        except Exception as error:
            # The schedule goes on: the real host never stops a timer over a failed run.
            log.warning("Timer function '%s' failed", function.name, exc_info=error)
