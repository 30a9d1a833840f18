"""Tests for devhost.timer_trigger: schedule parsing, startup runs, past-due runs, time zones."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import azure.functions as func
import pytest

from devhost.config import HostConfig, HostKeys
from devhost.functions import FunctionInfo
from devhost.invoker import Invoker
from devhost.timer_trigger import (
    NEVER,
    CronSchedule,
    IntervalSchedule,
    ScheduleStatus,
    TimerScheduler,
    TimerTriggerError,
    check_past_due,
    parse_schedule,
    parse_time_span,
    resolve_time_zone,
    timer_request,
    uses_monitor,
)

if TYPE_CHECKING:
    from tests.devhost.conftest import AppLoader

MODULE = "timer_sample_app"
WAIT_SECONDS = 10.0
T0 = datetime(2024, 5, 6, 10, 0, 3, tzinfo=UTC)


# --- schedules (pure) ---


def test_six_field_ncrontab_has_seconds_first() -> None:
    schedule = parse_schedule("*/5 * * * * *")
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(T0) == T0.replace(second=5)


def test_five_field_ncrontab_starts_at_minutes() -> None:
    assert parse_schedule("30 9 * * *").next_after(T0) == datetime(2024, 5, 7, 9, 30, tzinfo=UTC)


def test_ncrontab_needs_day_of_month_and_day_of_week() -> None:
    # Friday the 13th: NCRONTAB requires both fields, where cron would accept either.
    friday_13th = parse_schedule("0 0 0 13 * 5").next_after(T0)
    assert friday_13th == datetime(2024, 9, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("01:30:00", timedelta(hours=1, minutes=30)),
        ("00:00:00.25", timedelta(milliseconds=250)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("00:05", timedelta(minutes=5)),
        ("2", timedelta(days=2)),
    ],
)
def test_timespan_forms(text: str, interval: timedelta) -> None:
    assert parse_time_span(text) == interval
    schedule = parse_schedule(text)
    assert schedule == IntervalSchedule(interval)
    assert schedule.next_after(T0) == T0 + interval


@pytest.mark.parametrize("text", ["* * *", "61 * * * * *", "25:00:00", "00:00:00", "0 0 0 31 2 *"])
def test_bad_schedules_are_rejected(text: str) -> None:
    with pytest.raises(TimerTriggerError):
        parse_schedule(text)


def test_time_zone_defaults_to_utc_and_reads_website_time_zone() -> None:
    assert resolve_time_zone({}) is UTC
    tokyo = resolve_time_zone({"WEBSITE_TIME_ZONE": "Asia/Tokyo"})
    assert tokyo == ZoneInfo("Asia/Tokyo")
    nine_in_tokyo = parse_schedule("0 0 9 * * *").next_after(T0.astimezone(tokyo))
    assert nine_in_tokyo == datetime(2024, 5, 7, 0, 0, tzinfo=UTC)
    assert nine_in_tokyo.utcoffset() == timedelta(hours=9)


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(TimerTriggerError, match="IANA"):
        resolve_time_zone({"WEBSITE_TIME_ZONE": "Pacific Standard Time"})


def test_monitor_default_depends_on_the_interval() -> None:
    assert uses_monitor(parse_schedule("0 */5 * * * *"), None, T0)
    assert not uses_monitor(parse_schedule("*/30 * * * * *"), None, T0)
    assert not uses_monitor(parse_schedule("0 */5 * * * *"), False, T0)


def test_past_due_follows_the_hosts_monitor_rules() -> None:
    hourly = parse_schedule("0 0 * * * *")
    fresh, past_due = check_past_due(hourly, None, T0)
    assert (fresh.last, fresh.next, past_due) == (
        None,
        T0.replace(minute=0, second=0) + timedelta(hours=1),
        False,
    )
    hour = T0.replace(minute=0, second=0)
    missed = ScheduleStatus(hour - timedelta(hours=3), hour - timedelta(hours=2), hour)
    assert check_past_due(hourly, missed, T0) == (missed, True)
    # The schedule changed to fire sooner than recorded: the new schedule wins, not past due.
    far = ScheduleStatus(None, T0 + timedelta(days=30), T0)
    adjusted, past_due = check_past_due(hourly, far, T0)
    assert adjusted.next == T0.replace(minute=0, second=0) + timedelta(hours=1)
    assert not past_due


def test_timer_request_comes_from_the_sdk_converter() -> None:
    status = ScheduleStatus(None, T0, T0)
    request = timer_request(parse_schedule("0 0 * * * *"), status, past_due=True)
    assert isinstance(request, func.TimerRequest)
    assert request.past_due is True
    assert request.schedule == {"AdjustForDST": True}
    assert request.schedule_status == {
        "Last": NEVER,
        "Next": T0.isoformat(),
        "LastUpdated": T0.isoformat(),
    }


# --- the scheduler ---


@pytest.fixture
def sample(load_app: AppLoader) -> tuple[ModuleType, list[FunctionInfo]]:
    """The sample app's module (for its recorded calls) and its indexed functions."""
    functions = load_app("timer_sample", MODULE)
    return sys.modules[MODULE], functions


@pytest.fixture
def invoker() -> Iterator[Invoker]:
    """The host's real invoker."""
    invoker = Invoker(max_threads=4)
    yield invoker
    invoker.close()


@pytest.fixture
def config(tmp_path: Path) -> HostConfig:
    """A host configuration whose data folder is this test's own."""
    return HostConfig(
        app_dir=tmp_path, data_dir=tmp_path / ".devhost", keys=HostKeys(master="m", default="d")
    )


def pick(functions: list[FunctionInfo], *names: str) -> list[FunctionInfo]:
    return [function for function in functions if function.name in names]


@asynccontextmanager
async def running(scheduler: TimerScheduler) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield task
        assert not task.done(), task.exception() if task.done() else None
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def calls(module: ModuleType, name: str) -> list[func.TimerRequest]:
    return module.CALLS.get(name, [])


async def test_run_on_startup_fires_once(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    scheduler = TimerScheduler(config, pick(functions, "yearly_on_startup"), invoker, None, {})
    async with running(scheduler):
        await wait_for(lambda: len(calls(module, "yearly_on_startup")) == 1, "the startup run")
        await asyncio.sleep(0.3)
    (request,) = calls(module, "yearly_on_startup")
    assert request.past_due is False
    # use_monitor=False: like the host, no status is kept or passed.
    assert request.schedule_status == {}
    assert not scheduler.status_path(functions[0]).exists()


async def test_timespan_and_cron_schedules_keep_firing(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    chosen = pick(functions, "every_fifth_second", "every_second")
    async with running(TimerScheduler(config, chosen, invoker, None, {})):
        await wait_for(lambda: len(calls(module, "every_fifth_second")) >= 3, "three interval runs")
        await wait_for(lambda: len(calls(module, "every_second")) >= 1, "a cron run")
    assert not any(request.past_due for request in calls(module, "every_fifth_second"))
    assert calls(module, "every_fifth_second")[0].schedule == {"AdjustForDST": False}
    assert calls(module, "every_second")[0].schedule == {"AdjustForDST": True}


async def test_failing_timer_keeps_its_schedule(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    async with running(TimerScheduler(config, pick(functions, "failing"), invoker, None, {})):
        await wait_for(lambda: len(calls(module, "failing")) >= 3, "three failed runs")


async def test_missed_occurrence_fires_once_past_due_after_downtime(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    hourly = pick(functions, "hourly")
    scheduler = TimerScheduler(config, hourly, invoker, None, {})
    now = scheduler.now()
    missed = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    # As if the host last ran three hours ago and was down when `missed` came.
    path = scheduler.status_path(hourly[0])
    path.parent.mkdir(parents=True)
    status = ScheduleStatus(missed - timedelta(hours=1), missed, missed - timedelta(hours=1))
    path.write_text(json.dumps(status.to_json()))

    async with running(scheduler):
        await wait_for(lambda: len(calls(module, "hourly")) == 1, "the past-due run")
        await asyncio.sleep(0.3)

    # Past due wins over run_on_startup: one invocation, not two.
    (request,) = calls(module, "hourly")
    assert request.past_due is True
    assert request.schedule_status["Next"] == missed.isoformat()
    recorded = ScheduleStatus.from_json(json.loads(path.read_text()))
    assert now <= recorded.last == recorded.last_updated < recorded.next
    assert recorded.next.minute == recorded.next.second == 0

    # Restarting now finds nothing missed: only the startup run happens.
    async with running(TimerScheduler(config, hourly, invoker, None, {})):
        await wait_for(lambda: len(calls(module, "hourly")) == 2, "the startup run")
    restarted = calls(module, "hourly")[1]
    assert restarted.past_due is False
    assert restarted.schedule_status["Last"] == recorded.last.isoformat()


async def test_first_start_records_status_without_firing_past_due(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    chosen = pick(functions, "from_setting")
    environ = {"SAMPLE_SCHEDULE": "0 0 * * * *"}
    scheduler = TimerScheduler(config, chosen, invoker, None, environ)
    async with running(scheduler):
        await wait_for(lambda: scheduler.status_path(chosen[0]).exists(), "the status file")
    assert calls(module, "from_setting") == []
    recorded = json.loads(scheduler.status_path(chosen[0]).read_text())
    assert recorded["Last"] == NEVER


async def test_website_time_zone_sets_the_schedule_zone(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    module, functions = sample
    hourly = pick(functions, "hourly")
    environ = {"WEBSITE_TIME_ZONE": "Asia/Kolkata"}
    scheduler = TimerScheduler(config, hourly, invoker, None, environ)
    kolkata = timedelta(hours=5, minutes=30)
    assert scheduler.now().utcoffset() == kolkata
    async with running(scheduler):
        await wait_for(lambda: len(calls(module, "hourly")) == 1, "the startup run")
    upcoming = datetime.fromisoformat(calls(module, "hourly")[0].schedule_status["Next"])
    # On the hour in Kolkata, which is half past in UTC.
    assert (upcoming.minute, upcoming.utcoffset()) == (0, kolkata)
    assert upcoming.astimezone(UTC).minute == 30
    recorded = json.loads(scheduler.status_path(hourly[0]).read_text())
    assert recorded["Next"].endswith("+05:30")


def test_scheduler_rejects_unknown_zone_and_unresolved_setting(
    sample: tuple[ModuleType, list[FunctionInfo]], config: HostConfig, invoker: Invoker
) -> None:
    _, functions = sample
    with pytest.raises(TimerTriggerError, match="WEBSITE_TIME_ZONE"):
        TimerScheduler(config, functions, invoker, None, {"WEBSITE_TIME_ZONE": "Mars/Olympus"})
    with pytest.raises(TimerTriggerError, match=r"from_setting: .*SAMPLE_SCHEDULE"):
        TimerScheduler(config, pick(functions, "from_setting"), invoker, None, {})
