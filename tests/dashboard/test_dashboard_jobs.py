"""Searching jobs, paging through them, and one job's attempts on a timeline."""

from __future__ import annotations

import asyncio
from typing import Any

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


def rows(page: Any) -> Any:
    return page.locator("table[aria-label='Jobs'] tbody tr")


def test_search_by_tag_and_status_finds_exactly_those_jobs(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    tag = unique("search")
    ok, gone = target.route(respond(200)), target.route(respond(404))
    succeeded = [
        wait_state(
            app,
            submit(app, http_job(unique("s-ok"), ok, tags=[tag]))["id"],
            "succeeded",
        )["id"]
        for _ in range(2)
    ]
    wait_state(
        app,
        submit(app, http_job(unique("s-gone"), gone, tags=[tag]))["id"],
        "dead_lettered",
    )

    page.goto(dashboard_url(app, "jobs"))
    page.get_by_label("Tag").fill(tag)
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Search").click()

    expect(rows(page)).to_have_count(2)
    found = rows(page).evaluate_all("rows => rows.map((r) => r.dataset.id)")
    assert sorted(found) == sorted(succeeded)
    assert "status=succeeded" in page.url and f"tag={tag}" in page.url
    screenshot(page, "jobs")


def test_results_page_with_continuations_both_ways(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    tag = unique("pages")
    ok = target.route(respond(200))
    ids = [submit(app, http_job(unique("p"), ok, tags=[tag]))["id"] for _ in range(3)]
    for job_id in ids:
        wait_state(app, job_id, "succeeded")

    page.goto(dashboard_url(app, f"jobs?tag={tag}&pageSize=2"))
    expect(rows(page)).to_have_count(2)
    first = rows(page).evaluate_all("rows => rows.map((r) => r.dataset.id)")
    page.get_by_role("button", name="Next page").click()
    expect(rows(page)).to_have_count(1)
    last = rows(page).first.get_attribute("data-id")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows(page)).to_have_count(2)
    # Newest first across both pages, each job exactly once.
    assert [*first, last] == list(reversed(ids))


def test_bad_input_is_refused_before_anything_is_sent(
    page: Any, app: KeyedRuntime
) -> None:
    page.goto(dashboard_url(app, "jobs"))
    expect(page.get_by_role("button", name="Search")).to_be_visible()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.get_by_label("Job id").fill("not an id!")
    page.get_by_label("Tag").fill("no spaces allowed")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_label("Job id")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error").first).to_contain_text("1 to 64 letters")
    expect(page.get_by_label("Tag")).to_have_attribute("aria-invalid", "true")
    assert not [url for url in sent if "/api/jobs" in url]

    page.get_by_label("Job id").fill(unique("missing"))
    page.get_by_label("Tag").fill("")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("No job has the id")


def test_a_jobs_page_shows_every_attempt_with_its_error_on_a_timeline(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    flaky = target.route(respond(503, 503, 200))
    job_id = submit(app, http_job(unique("timeline"), flaky, tags=["dashboard"]))["id"]
    wait_state(app, job_id, "succeeded")

    page.goto(dashboard_url(app, f"jobs/{job_id}"))
    expect(page.locator("[data-field=status]")).to_have_text("succeeded")
    attempts = page.locator("ol.attempts > li")
    expect(attempts).to_have_count(3)
    expect(attempts.nth(0)).to_contain_text("HTTP 503")
    expect(attempts.nth(0).locator(".attempt-error")).not_to_be_empty()
    expect(attempts.nth(2)).to_contain_text("succeeded")
    expect(page.locator(".timeline rect.bar")).to_have_count(3)
    expect(page.locator(".timeline rect.o-succeeded")).to_have_count(1)
    expect(page.locator("pre.json").first).to_contain_text(flaky)
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    screenshot(page, "job")


def test_cancel_from_the_jobs_page_after_confirming(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    release = asyncio.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def hang(request: web.Request) -> web.StreamResponse:
        loops.append(asyncio.get_running_loop())
        await release.wait()
        return web.Response(text="late")

    job_id = submit(app, http_job(unique("cancel"), target.route(hang)))["id"]
    try:
        wait_job(app, job_id, lambda j: j["status"] == "running", "to be running")
        page.goto(dashboard_url(app, f"jobs/{job_id}"))
        expect(page.locator("[data-field=status]")).to_have_text("running")

        page.get_by_role("button", name="Cancel job").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(f"Cancel job {job_id}?")
        dialog.get_by_role("button", name="Cancel", exact=True).click()
        expect(page.locator("[data-field=status]")).to_have_text("running")

        page.get_by_role("button", name="Cancel job").click()
        dialog.get_by_role("button", name="Cancel job").click()
        expect(page.locator("[data-field=status]")).to_have_text(
            "cancelled", timeout=30_000
        )
        expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    finally:
        for loop in loops[:1]:
            loop.call_soon_threadsafe(release.set)
