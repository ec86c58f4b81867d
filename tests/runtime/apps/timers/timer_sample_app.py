"""A sample app with one timer trigger per schedule form the runtime understands."""

import json
import os
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()


def _record(name: str, timer: func.TimerRequest) -> None:
    """Append one fire to a file in the data dir, for the test to read."""
    path = Path(os.environ["DURALANE_DATA_DIR"]) / "timer-fires.jsonl"
    line = {"name": name, "past_due": timer.past_due, "at": time.time()}
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
def every_second(timer: func.TimerRequest) -> None:
    _record("every_second", timer)


@app.timer_trigger(arg_name="timer", schedule="%TIMER_SCHEDULE%")
def from_setting(timer: func.TimerRequest) -> None:
    _record("from_setting", timer)


@app.timer_trigger(arg_name="timer", schedule="00:00:01")
def timespan(timer: func.TimerRequest) -> None:
    _record("timespan", timer)


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def on_startup(timer: func.TimerRequest) -> None:
    _record("on_startup", timer)
