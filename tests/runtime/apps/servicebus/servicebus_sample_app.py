"""A sample app with Service Bus queue triggers: one that records, one that fails."""

import json
import os
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()


@app.service_bus_queue_trigger(
    arg_name="message", queue_name="orders", connection="ServiceBusConnection"
)
def take_order(message: func.ServiceBusMessage) -> None:
    """Record what the function received, for the test to read."""
    line = {
        "body": message.get_body().decode(),
        "message_id": message.message_id,
        "application_properties": message.application_properties,
        "delivery_count": message.delivery_count,
    }
    path = Path(os.environ["DURALANE_DATA_DIR"]) / "orders.jsonl"
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")


@app.service_bus_queue_trigger(
    arg_name="message", queue_name="poison", connection="ServiceBusConnection"
)
def reject_everything(message: func.ServiceBusMessage) -> None:
    raise ValueError(f"cannot parse order {message.get_body().decode()!r}")
