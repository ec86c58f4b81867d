"""Schedules: next fires on the schedule's own clock, pause, trigger now, runs."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import KeyedRuntime, dashboard_url, screenshot
from tests.jobs_e2e.support import TargetServer, http_job, respond, unique, wait_state


def test_pause_trigger_and_resume_a_schedule_from_the_page(
    page: Any, app: KeyedRuntime, target: TargetServer
) -> None:
    schedule_id = unique("nightly")
    job = http_job("unused", target.route(respond(200)), lane="high")
    del job["id"]
    created = app.post(
        "/api/schedules",
        json={
            "id": schedule_id,
            "job": job,
            "cron": {"expression": "0 2 * * *", "timeZone": "Europe/Berlin"},
        },
    )
    assert created.status_code == 201, created.text

    page.goto(dashboard_url(app, "schedules"))
    row = page.locator(f"tr[data-id='{schedule_id}']")
    expect(row.locator("[data-field=state]")).to_have_text("active")
    # 02:00 on Berlin's wall clock, whatever zone the browser is in (UTC here).
    expect(row.locator("[data-field=next]")).to_contain_text("02:00:00 Europe/Berlin")
    screenshot(page, "schedules")

    row.get_by_role("button", name=f"Pause {schedule_id}").click()
    expect(row.locator("[data-field=state]")).to_have_text("paused")
    assert app.get(f"/api/schedules/{schedule_id}").json()["paused"] is True

    row.get_by_role("link", name=schedule_id).click()
    expect(page.get_by_role("list", name="Upcoming fires").locator("li")).to_have_count(
        5
    )
    expect(
        page.get_by_role("list", name="Upcoming fires").locator("li").first
    ).to_contain_text("02:00:00")
    page.get_by_role("button", name=f"Trigger now {schedule_id}").click()
    runs = page.locator("table[aria-label='Recent runs'] tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first.locator("[data-field=fireLag]")).not_to_have_text("—")
    run_id = runs.first.get_attribute("data-id")
    assert run_id
    wait_state(app, run_id, "succeeded")
    screenshot(page, "schedule")

    page.get_by_role("button", name=f"Resume {schedule_id}").click()
    expect(page.get_by_role("button", name=f"Pause {schedule_id}")).to_be_visible()
    assert app.get(f"/api/schedules/{schedule_id}").json()["paused"] is False
