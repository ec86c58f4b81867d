"""Probe jobs end to end: fan-out over endpoints, each result stored."""

from __future__ import annotations

import socket

from tests.jobs_e2e.support import TargetServer, respond, submit, unique, wait_state
from tests.runtime.harness import RuntimeProcess


def test_probe_fans_out_and_stores_each_endpoints_result(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A failing endpoint is a finding in the summary, not a failed job."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    endpoints = [
        {"name": "up", "url": target.route(respond(200))},
        {"name": "teapot", "url": target.route(respond(418))},
        {"name": "down", "url": refused, "timeoutSeconds": 5},
        {"name": "accepts-500", "url": target.route(respond(500)), "expectStatus": 500},
    ]
    job_id = unique("probe")
    try:
        submit(app, {"id": job_id, "kind": "probe", "params": {"endpoints": endpoints}})
        job = wait_state(app, job_id, "succeeded")
    finally:
        closed.close()

    summary = job["result"]["summary"]
    assert (summary["total"], summary["healthy"]) == (4, 2)
    assert sorted(summary["failing"]) == ["down", "teapot"]
    assert summary["ok"] is False
    results = {r["endpoint"]: r for r in job["result"]["results"]}
    assert set(results) == {"up", "teapot", "down", "accepts-500"}
    assert results["up"]["ok"] and results["up"]["status"] == 200
    assert results["accepts-500"]["ok"] and results["accepts-500"]["status"] == 500
    assert not results["teapot"]["ok"] and results["teapot"]["status"] == 418
    assert not results["down"]["ok"] and results["down"]["error"]
    assert results["down"]["status"] is None
    answered = ("up", "teapot", "accepts-500")
    assert all(results[name]["latencyMs"] is not None for name in answered)
