"""The probe kind's fan-out pieces: one endpoint at a time, then a summary."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp import web
from jobs_support import FIXED_NOW, LOOPBACK_ALLOWED, NOTHING_ALLOWED, Target, context

from duralane.jobs.kinds import run_job
from duralane.jobs.kinds.probe import (
    ProbeEndpoint,
    ProbeParams,
    ProbeResult,
    probe_endpoint,
    summarize,
)

pytestmark = pytest.mark.anyio


def status(code: int):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code)

    return handler


async def probe(endpoint: dict[str, object], policy=LOOPBACK_ALLOWED) -> ProbeResult:
    return await probe_endpoint(
        ProbeEndpoint.model_validate(endpoint),
        policy=policy,
        job_id="job-probe-test",
        clock=lambda: FIXED_NOW,
    )


async def test_a_healthy_endpoint_reports_status_and_latency(target: Target) -> None:
    url = target.route("/health", status(204))

    result = await probe({"name": "api", "url": url})

    assert (result.endpoint, result.status, result.ok, result.error) == (
        "api",
        204,
        True,
        None,
    )
    assert result.latency_ms is not None and result.latency_ms >= 0
    assert result.checked_at == FIXED_NOW


async def test_an_unexpected_status_is_a_finding_not_an_exception(
    target: Target,
) -> None:
    url = target.route("/health", status(503))

    result = await probe({"name": "api", "url": url})

    assert not result.ok
    assert result.status == 503
    assert result.error == "status 503, expected 2xx"


async def test_expect_status_accepts_a_chosen_status(target: Target) -> None:
    url = target.route("/teapot", status(418))

    result = await probe({"name": "pot", "url": url, "expectStatus": 418})

    assert result.ok


async def test_a_refused_target_is_reported_without_a_request(
    target: Target,
) -> None:
    url = target.route("/health", status(200))

    result = await probe({"name": "api", "url": url}, policy=NOTHING_ALLOWED)

    assert not result.ok
    assert result.error is not None and result.error.startswith("refused:")
    assert result.latency_ms is None
    assert target.seen == []


async def test_a_timeout_is_reported_as_the_error(target: Target) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 10)
        return web.Response()

    url = target.route("/stall", stall)
    try:
        result = await probe({"name": "slow", "url": url, "timeoutSeconds": 0.1})
    finally:
        release.set()

    assert result.error == "timed out after 0.1s"
    assert result.status is None


async def test_connection_refused_is_reported(refused_port: int) -> None:
    result = await probe({"name": "down", "url": f"http://127.0.0.1:{refused_port}/"})

    assert not result.ok
    assert result.error is not None and "Connect" in result.error


def test_the_summary_names_failing_endpoints() -> None:
    def result(name: str, ok: bool, latency: float | None, minutes: int) -> ProbeResult:
        return ProbeResult(
            endpoint=name,
            url=f"https://{name}.example/",
            status=200 if ok else None,
            latency_ms=latency,
            error=None if ok else "down",
            checked_at=FIXED_NOW + timedelta(minutes=minutes),
            ok=ok,
        )

    summary = summarize(
        [
            result("a", True, 12.5, 0),
            result("b", False, None, 2),
            result("c", True, 40, 1),
        ]
    )

    assert (summary.total, summary.healthy, summary.failing, summary.ok) == (
        3,
        2,
        ["b"],
        False,
    )
    assert summary.max_latency_ms == 40
    assert summary.checked_at == FIXED_NOW + timedelta(minutes=2)


def test_an_empty_summary_is_vacuously_ok() -> None:
    summary = summarize([])

    assert summary.ok and summary.total == 0 and summary.max_latency_ms is None


async def test_the_probe_kind_fans_out_and_summarizes(target: Target) -> None:
    up = target.route("/up", status(200))
    down = target.route("/down", status(500))

    summary = await run_job(
        "probe",
        {"endpoints": [{"name": "up", "url": up}, {"name": "down", "url": down}]},
        context(),
    )

    assert summary["total"] == 2
    assert summary["failing"] == ["down"]
    assert {r["endpoint"] for r in summary["results"]} == {"up", "down"}


@pytest.mark.parametrize(
    "params",
    [
        {"endpoints": []},
        {"endpoints": [{"name": "a", "url": "ftp://x/"}]},
        {"endpoints": [{"name": "a", "url": "http://x/"}] * 2},
        {"endpoints": [{"name": "a", "url": "http://x/", "expectStatus": 700}]},
        {"endpoints": [{"name": "a", "url": "http://x/", "timeoutSeconds": 0}]},
        {"endpoints": [{"name": "", "url": "http://x/"}]},
    ],
)
def test_bad_probe_params_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProbeParams.model_validate(params)
