"""Dead letters: inspect one, replay it and watch it succeed; bulk actions that
count first, confirm, and list whatever failed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from playwright.sync_api import expect

from tests.dashboard.conftest import KeyedRuntime, dashboard_url, screenshot
from tests.jobs_e2e.support import (
    Handler,
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)


def switchable() -> tuple[Handler, dict[str, bool]]:
    """A target that answers 503 until the test says it has recovered."""
    state = {"up": False}

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200 if state["up"] else 503, text="x")

    return handler, state


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dead_lettered(app: KeyedRuntime, url: str, lane: str) -> str:
    spec = http_job(unique("dl"), url, lane=lane, retry={"maxAttempts": 2})
    return wait_state(app, submit(app, spec)["id"], "dead_lettered")["id"]


def test_replaying_a_dead_letter_from_its_page_runs_it_to_success(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    handler, state = switchable()
    url = target.route(handler)
    job_id = dead_lettered(app, url, "normal")

    page.goto(dashboard_url(app, "deadletters?lane=normal"))
    page.get_by_role("link", name=job_id).click()
    expect(page.locator("[data-field=reason]")).to_contain_text("503")
    expect(page.locator("ol.attempts > li")).to_have_count(2)
    expect(page.locator(".attempt-error").first).not_to_be_empty()
    expect(page.locator("pre.json")).to_contain_text(url)
    screenshot(page, "deadletter")

    state["up"] = True
    page.get_by_role("button", name="Replay").click()
    expect(page).to_have_url(f"{app.base_url}/api/dashboard/#/jobs/{job_id}")
    expect(page.locator("[data-field=status]")).to_have_text(
        "succeeded", timeout=30_000
    )
    expect(page.locator("ol.attempts > li").last).to_contain_text("Run 2 · attempt 1")
    assert app.get(f"/api/deadletters/{job_id}").status_code == 404


def test_replay_all_matching_says_how_many_then_replays_them(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    handler, state = switchable()
    url = target.route(handler)
    since = now_iso()
    ids = [dead_lettered(app, url, "high") for _ in range(2)]

    page.goto(dashboard_url(app, f"deadletters?lane=high&since={since}"))
    expect(page.locator("table[aria-label='Dead letters'] tbody tr")).to_have_count(2)
    screenshot(page, "deadletters")
    state["up"] = True
    page.get_by_role("button", name="Replay all matching…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Replay 2 dead letters matching lane=high")
    dialog.get_by_role("button", name="Replay 2").click()
    expect(page.locator(".report")).to_contain_text("Replayed 2. None failed.")
    for job_id in ids:
        wait_state(app, job_id, "succeeded")


def test_purge_all_matching_lists_each_item_that_failed_and_why(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    url = target.route(respond(404))
    since = now_iso()
    ids = [dead_lettered(app, url, "low") for _ in range(3)]
    refused = ids[1]
    # One delete fails on the server's side; the page must name it and say why.
    page.route(
        f"**/api/deadletters/{refused}",
        lambda route: (
            route.fulfill(
                status=409,
                content_type="application/json",
                body='{"error": "dead letter was changed meanwhile; read it again"}',
            )
            if route.request.method == "DELETE"
            else route.continue_()
        ),
    )
    page.goto(dashboard_url(app, f"deadletters?lane=low&since={since}"))
    expect(page.locator("table[aria-label='Dead letters'] tbody tr")).to_have_count(3)

    page.get_by_role("button", name="Purge all matching…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Purge 3 dead letters matching lane=low")
    dialog.get_by_role("button", name="Cancel").click()
    assert all(app.get(f"/api/deadletters/{i}").status_code == 200 for i in ids)

    page.get_by_role("button", name="Purge all matching…").click()
    dialog.get_by_role("button", name="Purge 3").click()
    report = page.locator(".report")
    expect(report).to_contain_text("Purged 2. 1 failed:")
    expect(report.locator("li")).to_have_count(1)
    expect(report.locator("li")).to_contain_text(refused)
    expect(report.locator("li")).to_contain_text(
        "changed meanwhile; read it again (HTTP 409)"
    )
    assert [app.get(f"/api/deadletters/{i}").status_code for i in ids] == [
        404,
        200,
        404,
    ]
