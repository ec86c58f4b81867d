"""The overview shows what GET /api/overview and the job list say, per lane."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import expect

from tests.dashboard.conftest import KeyedRuntime, dashboard_url, screenshot
from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_job,
    wait_state,
)
from tests.runtime.harness import wait_until

FIELDS = ("queued", "running", "retrying", "deadLetters", "succeeded", "deadLettered")
TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/home/site/wwwroot/triggers/dashboard.py", line 131, in overview\n'
    "KeyError: 'lanes'"
)


@pytest.fixture
def hanging(target: TargetServer) -> Iterator[str]:
    """A target that holds each request until the test ends."""
    release = asyncio.Event()
    loop: list[asyncio.AbstractEventLoop] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        loop.append(asyncio.get_running_loop())
        await release.wait()
        return web.Response(text="released")

    yield target.route(handler)
    for running in loop[:1]:
        running.call_soon_threadsafe(release.set)


def api_numbers(app: KeyedRuntime) -> dict[str, dict[str, str]]:
    lanes = app.get("/api/overview").json()["lanes"]
    return {
        lane["lane"]: {
            "queued": str(lane["queued"]),
            "running": str(lane["running"]),
            "retrying": str(lane["retrying"]),
            "deadLetters": str(lane["deadLetters"]),
            "succeeded": str(lane["lastHour"]["succeeded"]),
            "deadLettered": str(lane["lastHour"]["deadLettered"]),
        }
        for lane in lanes
    }


def page_numbers(page: Any) -> dict[str, dict[str, str]]:
    return page.evaluate(
        """(fields) => Object.fromEntries(
            [...document.querySelectorAll('table.lanes tbody tr')].map((row) => [
              row.dataset.lane,
              Object.fromEntries(fields.map((f) =>
                [f, row.querySelector(`[data-field="${f}"]`).textContent.trim()])),
            ]))""",
        list(FIELDS),
    )


def listed(app: KeyedRuntime, status: str, lane: str) -> int:
    """How many jobs GET /api/jobs lists for a status and lane, every page."""
    total, continuation = 0, None
    while True:
        params = {"status": status, "lane": lane, "pageSize": 1000}
        if continuation:
            params["continuation"] = continuation
        body = app.get("/api/jobs", params=params).json()
        total += len(body["items"])
        continuation = body["continuation"]
        if not continuation:
            return total


def test_overview_numbers_match_the_api(
    page: Any, app: KeyedRuntime, target: TargetServer, hanging: str
) -> None:
    ok = target.route(respond(200))
    gone = target.route(respond(404))
    for _ in range(3):
        wait_state(
            app,
            submit(app, http_job(unique("ov-ok"), ok, lane="high"))["id"],
            "succeeded",
        )
    wait_state(
        app,
        submit(app, http_job(unique("ov-dead"), gone, lane="low"))["id"],
        "dead_lettered",
    )
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    submit(app, http_job(unique("ov-later"), ok, lane="normal", runAt=later))
    stuck = submit(app, http_job(unique("ov-stuck"), hanging, lane="normal"))["id"]
    wait_job(app, stuck, lambda j: j["status"] == "running", "to be running")

    page.goto(dashboard_url(app, "overview"))
    expect(page.locator("table.lanes tbody tr")).to_have_count(3)

    # The page refreshes on its own; wait until it shows what the API says now.
    wait_until(
        lambda: page_numbers(page) == api_numbers(app),
        timeout=30,
        what="the overview to show the API's numbers",
        interval=0.5,
        detail=lambda: f"page {page_numbers(page)}\napi {api_numbers(app)}",
    )
    shown = page_numbers(page)
    assert int(shown["normal"]["running"]) >= 1
    assert int(shown["normal"]["queued"]) >= 1
    assert int(shown["high"]["succeeded"]) >= 3
    assert int(shown["low"]["deadLetters"]) >= 1
    for lane in ("high", "normal", "low"):
        for status, name in (("queued", "queued"), ("running", "running")):
            assert listed(app, status, lane) == int(shown[lane][name]), (lane, status)
    # In a runtime younger than an hour, with fewer than 500 jobs a lane, the
    # overview's last hour and GET /api/lanes sample the same jobs.
    lanes = {lane["lane"]: lane for lane in app.get("/api/lanes").json()["lanes"]}
    for lane in app.get("/api/overview").json()["lanes"]:
        assert lane["lastHour"]["startLagMs"] == lanes[lane["lane"]]["startLagMs"]
        assert lane["deadlineMs"] == lanes[lane["lane"]]["deadlineMs"]
    expect(page.locator("figure.chart-box")).to_have_count(5)
    screenshot(page, "overview")


def test_a_server_error_shows_as_a_sentence_not_a_trace(
    page: Any, app: KeyedRuntime
) -> None:
    page.route(
        "**/api/overview",
        lambda route: route.fulfill(
            status=500,
            content_type="text/plain",
            body=TRACE,
        ),
    )
    page.goto(dashboard_url(app, "overview"))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "Could not load the overview: Server error (HTTP 500)"
    )
    for trace_text in ("Traceback", 'File "', "line ", "KeyError"):
        expect(alert).not_to_contain_text(trace_text)


def test_a_server_error_with_a_json_reason_shows_that_reason_and_its_fields(
    page: Any, app: KeyedRuntime
) -> None:
    body = {
        "error": "store unavailable\n" + TRACE,
        "errors": [{"field": "lane", "reason": "unknown lane 'fast'"}],
    }
    page.route(
        "**/api/overview",
        lambda route: route.fulfill(status=503, json=body),
    )
    page.goto(dashboard_url(app, "overview"))
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "store unavailable — lane: unknown lane 'fast' (HTTP 503)"
    )
    expect(alert).not_to_contain_text('File "')


def test_without_the_key_the_page_asks_for_it_and_works_once_given(
    browser: Any, app: KeyedRuntime
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    try:
        tab.goto(dashboard_url(app, "overview"))
        expect(tab.get_by_role("alert")).to_contain_text("enter the API key")
        tab.get_by_label("API key").fill("dashboard-test-key")
        tab.get_by_role("button", name="Save").click()
        expect(tab.locator("table.lanes tbody tr")).to_have_count(3)
        assert (
            tab.evaluate("sessionStorage.getItem('duralane.apiKey')")
            == "dashboard-test-key"
        )
    finally:
        context.close()
