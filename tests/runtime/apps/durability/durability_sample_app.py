"""A sample app for restart and crash tests: activities around a short timer."""

import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="number")
def double(number: int) -> int:
    return number * 2


@app.activity_trigger(input_name="number")
def add_ten(number: int) -> int:
    return number + 10


@app.activity_trigger(input_name="marker")
def record(marker: str) -> str:
    """Append the marker to a file in the data dir, so a test can count runs."""
    path = Path(os.environ["DURALANE_DATA_DIR"]) / "records.log"
    with path.open("a") as handle:
        handle.write(marker + "\n")
    return marker


@app.orchestration_trigger(context_name="context")
def crunch_orchestrator(context: df.DurableOrchestrationContext):
    number = context.get_input()
    doubled = yield context.call_activity("double", number)
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    total = yield context.call_activity("add_ten", doubled)
    return {"number": number, "total": total}


@app.orchestration_trigger(context_name="context")
def sleeper_orchestrator(context: df.DurableOrchestrationContext):
    request = context.get_input()
    fire_at = context.current_utc_datetime + timedelta(seconds=request["seconds"])
    yield context.create_timer(fire_at)
    marker = yield context.call_activity("record", request["marker"])
    return marker


@app.orchestration_trigger(context_name="context")
def timer_and_event_orchestrator(context: df.DurableOrchestrationContext):
    """Waits for a durable timer and an external event named 'go', both."""
    request = context.get_input()
    fire_at = context.current_utc_datetime + timedelta(seconds=request["seconds"])
    timer = context.create_timer(fire_at)
    go = context.wait_for_external_event("go")
    yield context.task_all([timer, go])
    return request["marker"]
