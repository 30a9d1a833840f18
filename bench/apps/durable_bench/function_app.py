"""Bench app: Durable client functions, a fan-out and a chain of one trivial activity."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], None, payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="instances/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The status without history: polling must stay cheap next to what it measures."""
    found = await client.get_status(req.route_params["instance_id"])
    if not found or not found.runtime_status:
        return func.HttpResponse('{"error": "not found"}', status_code=404)
    payload = {
        "runtimeStatus": found.runtime_status.value,
        "output": found.output,
        "createdTime": found.created_time.isoformat() if found.created_time else None,
        "lastUpdatedTime": (
            found.last_updated_time.isoformat() if found.last_updated_time else None
        ),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    """n `double` activities at once (task_all), as tests/devhost's sample app does."""
    count = context.get_input()
    doubled = yield context.task_all([context.call_activity("double", i) for i in range(count)])
    return sum(doubled)


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    """n `double` activities one after the other; n=0 is the empty orchestration."""
    value = 1
    for _ in range(context.get_input()):
        value = yield context.call_activity("double", value % 1000)
    return value


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2
