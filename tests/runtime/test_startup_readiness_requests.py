"""A request that reaches the port while the runtime is still starting waits."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.runtime.harness import APPS, WEBHOOK, RuntimeProcess, unique, wait_until

READINESS_APP = APPS / "readiness" / "readiness_sample_app.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_start_sent_before_listening_waits_and_is_accepted(tmp_path: Path) -> None:
    """The port is bound while the episode processes still import the app; a
    start sent then is answered 202 once the hub runs, not 404."""
    port = free_port()
    runtime = RuntimeProcess(
        READINESS_APP,
        tmp_path,
        env={"DURALANE_ORCHESTRATION_PROCESSES": "1"},
        args=["--port", str(port)],
    )
    runtime.spawn()
    instance = unique("early")
    try:

        def port_open() -> bool:
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait_until(port_open, timeout=60, what="the runtime to bind its port")
        still_starting = "listening on" not in runtime.log()
        response = httpx.post(
            f"http://127.0.0.1:{port}{WEBHOOK}/orchestrators/ready_orchestrator/{instance}",
            timeout=60,
        )
        runtime.base_url = f"http://127.0.0.1:{port}"
        status = runtime.wait_done(instance)
    finally:
        runtime.stop()

    assert still_starting, "the request was not sent during startup"
    assert response.status_code == 202, response.text
    assert status["runtimeStatus"] == "Completed"
