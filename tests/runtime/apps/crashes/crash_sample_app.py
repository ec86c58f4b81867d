"""Orchestrations that crash the runtime's side of an episode, for crash-loop tests.

Its module name is unique so loading it in the test process never collides
with another sample app.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def echo_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, Any]:
    """One activity, so a healthy instance needs two episodes."""
    result = yield context.call_activity("echo", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def process_killer(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Ends the process replaying it, as a crashing native extension would."""
    os._exit(3)
    yield context.call_activity("echo", "unreachable")


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    """Return the input unchanged."""
    return value


@app.orchestration_trigger(context_name="context")
def echo_parent(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Runs echo_orchestrator as a sub-orchestration: its start is a message
    to another instance, stored by the parent's episode."""
    result = yield context.call_sub_orchestrator(
        "echo_orchestrator", context.get_input()
    )
    return result
