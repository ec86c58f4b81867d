"""A runtime that cannot start as configured exits non-zero with one line saying why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from duralane.cli import main
from duralane.runtime.host import Runtime
from tests.runtime.harness import RuntimeProcess

TIMER_APP = """
import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(schedule="{schedule}", arg_name="timer")
def nightly_cleanup(timer: func.TimerRequest) -> None:
    pass
"""

QUEUE_APP = """
import azure.functions as func

app = func.FunctionApp()


@app.service_bus_queue_trigger(
    arg_name="message", queue_name="%ORDERS_QUEUE%", connection="SB"
)
def take_order(message: func.ServiceBusMessage) -> None:
    pass
"""


def _write_app(folder: Path, name: str, source: str, host: dict[str, object]) -> Path:
    """An app module and its host.json in a folder of their own."""
    folder.mkdir(parents=True)
    (folder / "host.json").write_text(json.dumps({"version": "2.0", **host}))
    app = folder / f"{name}.py"
    app.write_text(source)
    return app


def _failure(app: Path, data_dir: Path) -> str:
    """Run the app until it exits; return its output, insisting on a clean refusal."""
    runtime = RuntimeProcess(app, data_dir)
    runtime.spawn()

    code = runtime.wait_exit()

    assert code != 0, runtime.log()
    assert "Traceback" not in runtime.log(), runtime.log()
    assert runtime.lines, "the runtime exited without saying why"
    return runtime.lines[-1]


@pytest.mark.parametrize("schedule", ["*/5 * * *", "0 99 * * * *"])
def test_a_timer_with_a_bad_ncrontab_names_its_function(
    tmp_path: Path, schedule: str
) -> None:
    """The host refuses to index such a function; so does the runtime, in one line."""
    app = _write_app(
        tmp_path / "app",
        "bad_timer_app",
        TIMER_APP.format(schedule=schedule),
        {},
    )

    line = _failure(app, tmp_path / "data")

    assert "nightly_cleanup" in line, line
    assert "cannot start" in line, line


def test_a_queue_name_from_an_unset_setting_names_the_setting(tmp_path: Path) -> None:
    """%ORDERS_QUEUE% with no such app setting is a configuration error, not a crash."""
    app = _write_app(tmp_path / "app", "unset_queue_app", QUEUE_APP, {})

    line = _failure(app, tmp_path / "data")

    assert "take_order" in line, line
    assert "ORDERS_QUEUE" in line, line


@pytest.mark.parametrize(
    ("host", "key"),
    [
        (
            {"extensions": {"durableTask": {"maxConcurrentActivityFunctions": "x"}}},
            "maxConcurrentActivityFunctions",
        ),
        (
            {"extensions": {"serviceBus": {"maxDeliveryCount": 0}}},
            "maxDeliveryCount",
        ),
        (
            {"extensions": {"duralane": {"fastTimestamps": "no"}}},
            "fastTimestamps",
        ),
    ],
)
def test_a_host_json_limit_that_is_no_count_names_the_key(
    tmp_path: Path, host: dict[str, object], key: str
) -> None:
    """A typo in host.json says which key and value, instead of an int() traceback."""
    app = _write_app(
        tmp_path / "app",
        "bad_host_app",
        TIMER_APP.format(schedule="0 0 * * * *"),
        host,
    )

    line = _failure(app, tmp_path / "data")

    assert key in line, line
    assert "host.json" in line, line


def test_an_unexpected_crash_is_one_line_and_keeps_its_trace_in_the_data_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug says what broke in one line and where its traceback was written."""
    app = _write_app(
        tmp_path / "app",
        "crashing_app",
        TIMER_APP.format(schedule="0 0 * * * *"),
        {},
    )
    data_dir = tmp_path / "data"

    async def crash(self: Runtime) -> None:
        raise KeyError("lane")

    # The runtime writes its settings into the environment; keep them out of
    # this test process's.
    monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.setattr(Runtime, "serve_forever", crash)

    code = main(["run", "--app", str(app), "--data-dir", str(data_dir), "--port", "0"])

    error = capsys.readouterr().err
    assert code == 1
    assert error.count("\n") == 1, error
    assert "KeyError" in error and "crash.log" in error, error
    assert "Traceback" not in error
    assert "in crash" in (data_dir / "crash.log").read_text()


def test_a_second_runtime_on_a_data_directory_in_use_refuses_until_the_first_dies(
    tmp_path: Path,
) -> None:
    """Two runtimes on one directory would both run its hubs, queues and timers:
    the second refuses, naming the first, and a killed first leaves no lock."""
    app = _write_app(
        tmp_path / "app",
        "shared_dir_app",
        TIMER_APP.format(schedule="0 0 * * * *"),
        {},
    )
    data_dir = tmp_path / "data"
    first = RuntimeProcess(app, data_dir).start()
    try:
        assert first.process is not None
        line = _failure(app, data_dir)

        assert "in use by another runtime" in line, line
        assert f"pid {first.process.pid}" in line, line
    finally:
        first.kill()

    after_the_kill = RuntimeProcess(app, data_dir)
    try:
        after_the_kill.start()
    finally:
        code = after_the_kill.stop()
    assert code == 0, after_the_kill.log()
