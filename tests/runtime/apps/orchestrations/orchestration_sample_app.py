"""A sample app exercising every orchestrator action the embedded runtime runs."""

import json
import os
import threading
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Attempts per key, so a flaky activity or child fails a set number of times.
_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()


def _attempt(key: str) -> int:
    with _attempts_lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        return _attempts[key]


def _record(line: str) -> None:
    """Append a line to a file in the data dir, so a test can count executions."""
    path = Path(os.environ["DURALANE_DATA_DIR"]) / "executions.log"
    with path.open("a") as handle:
        handle.write(line + "\n")


# Activities


@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="number")
def square(number: int) -> int:
    return number * number


@app.activity_trigger(input_name="request")
def flaky(request: dict) -> int:
    attempt = _attempt(request["key"])
    if attempt <= request["failures"]:
        raise RuntimeError(f"flaky attempt {attempt} for {request['key']} failed")
    return attempt


@app.activity_trigger(input_name="marker")
def record(marker: str) -> str:
    _record(marker)
    return marker


# Orchestrators


@app.orchestration_trigger(context_name="context")
def hello_orchestrator(context: df.DurableOrchestrationContext):
    greeting = yield context.call_activity("say_hello", context.get_input())
    return greeting


@app.orchestration_trigger(context_name="context")
def retry_orchestrator(context: df.DurableOrchestrationContext):
    request = context.get_input()
    options = df.RetryOptions(100, request["attempts"])
    attempt = yield context.call_activity_with_retry("flaky", options, request)
    return attempt


@app.activity_trigger(input_name="key")
def count_attempt(key: str) -> int:
    """Count in an activity: orchestrators may replay in any episode process."""
    return _attempt(key)


@app.orchestration_trigger(context_name="context")
def flaky_child_orchestrator(context: df.DurableOrchestrationContext):
    request = context.get_input()
    attempt = yield context.call_activity("count_attempt", "child:" + request["key"])
    if attempt <= request["failures"]:
        raise ValueError(f"child attempt {attempt} failed")
    greeting = yield context.call_activity("say_hello", request["key"])
    return greeting


@app.orchestration_trigger(context_name="context")
def parent_orchestrator(context: df.DurableOrchestrationContext):
    request = context.get_input()
    if request["mode"] == "retry":
        options = df.RetryOptions(100, request["attempts"])
        result = yield context.call_sub_orchestrator_with_retry(
            "flaky_child_orchestrator", options, request, request.get("child_id")
        )
    else:
        result = yield context.call_sub_orchestrator(
            "hello_orchestrator", request["name"], request.get("child_id")
        )
    return {"child": result}


@app.orchestration_trigger(context_name="context")
def timer_orchestrator(context: df.DurableOrchestrationContext):
    request = context.get_input()
    fire_at = context.current_utc_datetime + timedelta(seconds=request["seconds"])
    yield context.create_timer(fire_at)
    marker = yield context.call_activity("record", request["marker"])
    return marker


@app.orchestration_trigger(context_name="context")
def race_orchestrator(context: df.DurableOrchestrationContext):
    """Wait for approval or a timeout; optionally linger for a second event."""
    request = context.get_input()
    deadline = context.current_utc_datetime + timedelta(seconds=request["seconds"])
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("approve")
    winner = yield context.task_any([timeout, approval])
    if winner == approval:
        timeout.cancel()
        outcome = {"approved": approval.result}
    else:
        outcome = {"approved": None}
    if request.get("linger"):
        yield context.wait_for_external_event("finish")
    return outcome


@app.orchestration_trigger(context_name="context")
def two_events_orchestrator(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("first")
    second = yield context.wait_for_external_event("second")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def fan_out_orchestrator(context: df.DurableOrchestrationContext):
    count = context.get_input()
    squares = yield context.task_all(
        [context.call_activity("square", n) for n in range(count)]
    )
    return sum(squares)


@app.orchestration_trigger(context_name="context")
def any_orchestrator(context: df.DurableOrchestrationContext):
    greeting = context.call_activity("say_hello", "first")
    never = context.wait_for_external_event("never")
    winner = yield context.task_any([greeting, never])
    return winner.result


@app.orchestration_trigger(context_name="context")
def counter_orchestrator(context: df.DurableOrchestrationContext):
    state = context.get_input()
    if state["count"] < state["target"]:
        state["count"] += 1
        context.continue_as_new(state)
        return None
    return state


@app.orchestration_trigger(context_name="context")
def status_orchestrator(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "waiting", "progress": 50})
    payload = yield context.wait_for_external_event("go")
    context.set_custom_status({"stage": "done", "progress": 100})
    return payload


@app.orchestration_trigger(context_name="context")
def nondeterministic_orchestrator(context: df.DurableOrchestrationContext):
    """Calls a different activity when replayed, as edited code would."""
    if not context.is_replaying:
        yield context.call_activity("say_hello", "once")
    else:
        yield context.call_activity("square", 3)
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def failing_orchestrator(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "before the failure")
    raise ValueError(f"cannot process order {context.get_input()}: stock is negative")


# HTTP triggers driving the unchanged DurableOrchestrationClient


@app.route(route="client/start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_start(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["name"], req.params.get("id"), payload
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="client/status/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def client_status(req: func.HttpRequest, client) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"])
    body = {
        "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
        "output": status.output,
        "customStatus": status.custom_status,
        "name": status.name,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="client/raise/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_raise(req: func.HttpRequest, client) -> func.HttpResponse:
    await client.raise_event(
        req.route_params["instance_id"], req.route_params["event"], req.get_json()
    )
    return func.HttpResponse(status_code=202)


@app.route(route="client/terminate/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_terminate(req: func.HttpRequest, client) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], req.params["reason"])
    return func.HttpResponse(status_code=202)


@app.route(route="client/purge/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def client_purge(req: func.HttpRequest, client) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    body = json.dumps({"instancesDeleted": result.instances_deleted})
    return func.HttpResponse(body, mimetype="application/json")


# Plain HTTP triggers


@app.route(route="items/{category}/{item_id?}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "category": req.route_params.get("category"),
        "item_id": req.route_params.get("item_id"),
        "colour": req.params.get("colour"),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"{req.method}:{req.get_body().decode()}")


@app.route(route="secure", auth_level=func.AuthLevel.FUNCTION)
def secure(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret")


@app.route(route="public", auth_level=func.AuthLevel.ANONYMOUS)
def public(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("open")


@app.orchestration_trigger(context_name="context")
def repeated_event_orchestrator(context: df.DurableOrchestrationContext):
    """Wait for 'go', then for two 'item' events that may already be buffered."""
    yield context.wait_for_external_event("go")
    first = yield context.wait_for_external_event("item")
    second = yield context.wait_for_external_event("item")
    return [first, second]
