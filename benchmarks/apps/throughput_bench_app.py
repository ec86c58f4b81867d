"""The smallest Durable Functions app that exercises the runtime's hot paths.

Its module name is unique so the runtime's top-level import never collides with
another app loaded in the same process.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def single_step(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """One activity: the smallest orchestration with two episodes."""
    result = yield context.call_activity("echo", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Start `width` activities at once and sum their results."""
    width = int(context.get_input())
    tasks = [context.call_activity("echo", i) for i in range(width)]
    results = yield context.task_all(tasks)
    return sum(results)


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    """Return the input unchanged, so the measured cost is the runtime's own."""
    return value
