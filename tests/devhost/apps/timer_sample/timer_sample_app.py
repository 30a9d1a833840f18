"""Sample v2 app for the timer trigger tests; each test serves only the functions it needs."""

import azure.functions as func

app = func.FunctionApp()

# Every invocation, by function name, read by the tests (the module is re-imported per test).
CALLS: dict[str, list[func.TimerRequest]] = {}


def record(name: str, timer: func.TimerRequest) -> None:
    CALLS.setdefault(name, []).append(timer)


@app.timer_trigger(arg_name="timer", schedule="00:00:00.2")
def every_fifth_second(timer: func.TimerRequest) -> None:
    record("every_fifth_second", timer)


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
async def every_second(timer: func.TimerRequest) -> None:
    record("every_second", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True, use_monitor=False)
def yearly_on_startup(timer: func.TimerRequest) -> None:
    record("yearly_on_startup", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 * * * *", run_on_startup=True)
def hourly(timer: func.TimerRequest) -> None:
    record("hourly", timer)


@app.timer_trigger(arg_name="timer", schedule="%SAMPLE_SCHEDULE%")
def from_setting(timer: func.TimerRequest) -> None:
    record("from_setting", timer)


@app.timer_trigger(arg_name="timer", schedule="00:00:00.2")
def failing(timer: func.TimerRequest) -> None:
    record("failing", timer)
    raise RuntimeError("timer function failed")
