"""An orchestrator whose actions and output depend on parsed history timestamps.

Its module name is unique so loading it in the test process never collides
with another sample app.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def clock_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, Any]:
    """Waits on a timer set from the replayed clock and reports what it saw."""
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(milliseconds=1500))
    echoed = yield context.call_activity("echo", started.isoformat())
    return {
        "started": repr(started),
        "echoed": echoed,
        "now": repr(context.current_utc_datetime),
    }


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    """Return the input unchanged."""
    return value
