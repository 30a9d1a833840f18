"""A small Durable app for devhost tests: every behaviour the engine must drive."""

import json
import os
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(payload: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json")


# Client functions: the tests drive the engine through the SDK's real client.


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["name"], req.params.get("instance_id"), payload
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="instances/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instance_id"], show_history=True)
    if not found:
        return _json({"error": "not found"}, 404)
    return _json(
        {
            "runtimeStatus": found.runtime_status.value,
            "output": found.output,
            "customStatus": found.custom_status,
            "history": [event["EventType"] for event in (found.historyEvents or [])],
        }
    )


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_all(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    statuses = await client.get_status_all()
    return _json([item.instance_id for item in statuses])


@app.route(route="instances/{instance_id}/events/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def send_event(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    await client.raise_event(
        req.route_params["instance_id"], req.route_params["event"], json.loads(req.get_body())
    )
    return _json({"sent": True}, 202)


@app.route(route="instances/{instance_id}/terminate", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], "test says stop")
    return _json({"terminated": True}, 202)


@app.route(route="instances/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return _json({"deleted": result.instances_deleted})


# Orchestrators.


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    name = context.get_input() or "world"
    results = []
    for greeting in ("Hello", "Bonjour", "Hola"):
        results.append((yield context.call_activity("greet", f"{greeting} {name}")))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    count = context.get_input()
    context.set_custom_status({"scheduled": count})
    doubled = yield context.task_all([context.call_activity("double", i) for i in range(count)])
    return sum(doubled)


@app.orchestration_trigger(context_name="context")
def retry_flaky(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=4)
    result = yield context.call_activity_with_retry("flaky", options, context.get_input())
    after = yield context.call_activity("double", 21)
    return [result, after]


@app.orchestration_trigger(context_name="context")
def retry_exhausted(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    try:
        yield context.call_activity_with_retry("always_fails", options, "x")
    except Exception as error:
        return f"gave up: {str(error).splitlines()[0].strip()}"
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("always_fails", "y")
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def timer(context: df.DurableOrchestrationContext):
    fire_at = context.current_utc_datetime + timedelta(seconds=1)
    yield context.create_timer(fire_at)
    return "fired"


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    approved = context.wait_for_external_event("approve")
    winner = yield context.task_any([approved, deadline])
    if winner == approved:
        deadline.cancel()
        return {"approved": approved.result}
    return {"approved": None}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    child = yield context.call_sub_orchestrator("sequence", "child")
    return {"child": child}


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    value = context.get_input()
    if value >= 3:
        return value
    yield context.call_activity("double", value)
    context.continue_as_new(value + 1)
    return None


@app.orchestration_trigger(context_name="context")
def slow_steps(context: df.DurableOrchestrationContext):
    folder = context.get_input()
    done = []
    for step in range(4):
        done.append((yield context.call_activity("slow_step", {"folder": folder, "step": step})))
    return done


# Activities.


@app.activity_trigger(input_name="text")
def greet(text: str) -> str:
    return f"{text}!"


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.activity_trigger(input_name="folder")
def flaky(folder: str) -> str:
    """Fails twice, then succeeds: the attempt count lives in a file the test owns."""
    counter_file = Path(folder) / "flaky-attempts"
    attempts = int(counter_file.read_text()) + 1 if counter_file.exists() else 1
    counter_file.write_text(str(attempts))
    if attempts < 3:
        raise RuntimeError(f"flaky attempt {attempts}")
    return f"ok after {attempts}"


@app.activity_trigger(input_name="value")
def always_fails(value: str) -> str:
    raise ValueError(f"always fails on {value}")


@app.activity_trigger(input_name="job")
def slow_step(job: dict) -> int:
    """Records each start, then takes a while: the kill-and-resume test stops the host here."""
    folder = Path(job["folder"])
    with (folder / "starts.log").open("a") as log:
        log.write(f"{job['step']} {os.getpid()}\n")
    time.sleep(0.6)
    return job["step"]
