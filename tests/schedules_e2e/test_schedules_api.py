"""The schedules API over real HTTP on the embedded runtime."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duralane.settings import Settings
from duralane.store import open_store
from tests.jobs_e2e.support import (
    TargetServer,
    get_job,
    http_job,
    instant,
    respond,
    unique,
    wait_state,
)
from tests.runtime.harness import HTTP, RuntimeProcess
from tests.schedules_e2e.support import create, runs, wait_runs


def http_template(url: str) -> dict[str, Any]:
    """An http job template: the job without id, fast retries."""
    job = http_job("unused", url)
    del job["id"]
    return job


def test_create_get_preview_and_conflict(app: RuntimeProcess) -> None:
    schedule_id = unique("nightly")
    body = {
        "id": schedule_id,
        "job": http_template("http://127.0.0.1:9/"),
        "cron": {"expression": "0 2 * * *", "timeZone": "Europe/Berlin"},
        "overlap": "buffer_one",
    }
    created = create(app, body)
    assert created["schedule"]["cron"]["timeZone"] == "Europe/Berlin"
    assert created["nextFireAt"] is not None

    fetched = app.get(f"/api/schedules/{schedule_id}").json()
    assert fetched["schedule"] == created["schedule"]

    preview = app.get(f"/api/schedules/{schedule_id}/preview?count=3").json()
    assert preview["timeZone"] == "Europe/Berlin"
    assert len(preview["fires"]) == 3
    for fire in preview["fires"]:
        local = datetime.fromisoformat(fire["atLocal"])
        assert (local.hour, local.minute) == (2, 0)
        assert datetime.fromisoformat(fire["atUtc"]) == local
    assert app.post("/api/schedules", json=body).status_code == 409
    listed = app.get("/api/schedules?pageSize=1000").json()["items"]
    assert schedule_id in {item["id"] for item in listed}


def test_unknown_schedule_is_404_everywhere(app: RuntimeProcess) -> None:
    missing = unique("missing")
    assert app.get(f"/api/schedules/{missing}").status_code == 404
    assert app.delete(f"/api/schedules/{missing}").status_code == 404
    assert app.post(f"/api/schedules/{missing}/pause").status_code == 404
    assert app.post(f"/api/schedules/{missing}/trigger").status_code == 404
    assert app.get(f"/api/schedules/{missing}/preview").status_code == 404
    assert app.get(f"/api/schedules/{missing}/runs").status_code == 404
    put = HTTP.put(app.url(f"/api/schedules/{missing}"), json={})
    assert put.status_code == 404


def _bad(field: str, **changes: Any) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {
        "id": "bad-input",
        "job": {"kind": "http", "params": {"url": "http://127.0.0.1:9/"}},
        "every": {"seconds": 60},
    }
    body.update(changes)
    return field, {k: v for k, v in body.items() if v is not None}


PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("field", "body"),
    [
        _bad("cron.expression", every=None, cron={"expression": "61 * * * *"}),
        _bad("cron.expression", every=None, cron={"expression": "* * *"}),
        _bad(
            "cron.timeZone",
            every=None,
            cron={"expression": "0 2 * * *", "timeZone": "Mars/Olympus"},
        ),
        _bad("every.seconds", every={"seconds": 0}),
        _bad("every.seconds", every={"seconds": -5}),
        _bad("at.instant", every=None, at={"instant": PAST}),
        _bad("overlap", overlap="sometimes"),
        _bad("misfire", misfire="never"),
        _bad("dst", dst="maybe"),
        _bad("job.kind", job={"kind": "teleport"}),
        _bad("job.params.url", job={"kind": "http", "params": {"url": "ftp://x"}}),
        _bad(
            "job.id",
            job={
                "id": "fixed",
                "kind": "http",
                "params": {"url": "http://127.0.0.1:9/"},
            },
        ),
        _bad("id", id="has spaces"),
        _bad("endAt", startAt="2031-01-02T00:00:00Z", endAt="2031-01-01T00:00:00Z"),
        _bad("color", color="blue"),
    ],
)
def test_bad_input_is_400_with_field_and_reason(
    app: RuntimeProcess, field: str, body: dict[str, Any]
) -> None:
    response = app.post("/api/schedules", json=body)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert field in {e["field"] for e in errors}, errors
    assert all(e["reason"] for e in errors)


def test_bad_preview_count_and_body_are_400(app: RuntimeProcess) -> None:
    schedule_id = unique("counted")
    create(
        app,
        {
            "id": schedule_id,
            "job": http_template("http://127.0.0.1:9/"),
            "every": {"seconds": 3600},
        },
    )
    for count in ("abc", "0", "100000"):
        response = app.get(f"/api/schedules/{schedule_id}/preview?count={count}")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "count"
    response = app.post("/api/schedules", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_pause_trigger_now_resume_and_update(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    schedule_id = unique("manual")
    create(
        app,
        {"id": schedule_id, "job": http_template(url), "every": {"seconds": 3600}},
    )
    paused = app.post(f"/api/schedules/{schedule_id}/pause").json()
    assert paused["paused"] is True and paused["nextDueAt"] is None

    triggered = app.post(f"/api/schedules/{schedule_id}/trigger")
    assert triggered.status_code == 202, triggered.text
    run = triggered.json()["run"]
    assert run["id"].endswith("-now") and run["reason"] == "manual"
    wait_state(app, run["jobId"], "succeeded")
    assert len(target.hits(url)) == 1

    resumed = app.post(f"/api/schedules/{schedule_id}/resume").json()
    assert resumed["paused"] is False and resumed["nextDueAt"] is not None

    changed = HTTP.put(
        app.url(f"/api/schedules/{schedule_id}"),
        json={"job": http_template(url), "every": {"seconds": 7200}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["schedule"]["every"]["seconds"] == 7200
    assert app.delete(f"/api/schedules/{schedule_id}").status_code == 200
    assert app.get(f"/api/schedules/{schedule_id}").status_code == 404


def test_recurring_schedule_fires_http_jobs_with_fire_lag(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    schedule_id = unique("every")
    create(
        app,
        {
            "id": schedule_id,
            "job": http_template(url),
            "every": {"seconds": 1},
            "overlap": "allow",
        },
    )
    done = wait_runs(
        app,
        schedule_id,
        lambda rs: sum(r["status"] == "succeeded" for r in rs) >= 3,
        "to have three succeeded runs",
    )
    app.post(f"/api/schedules/{schedule_id}/pause")
    for run in done:
        assert run["id"] == f"sched-{schedule_id}-" + instant(
            run["scheduledAt"]
        ).strftime("%Y%m%dT%H%M%SZ")
        assert run["fireLagMs"] >= 0
        assert instant(run["startedAt"]) >= instant(run["scheduledAt"])
    succeeded = [r for r in done if r["status"] == "succeeded"]
    for run in succeeded:
        job = get_job(app, run["jobId"])
        assert job["status"] == "succeeded"
        assert f"schedule={schedule_id}" in job["tags"]
    assert len(target.hits(url)) >= len(succeeded)
    last = app.get(f"/api/schedules/{schedule_id}").json()["lastFire"]
    assert last["fireLagMs"] >= 0 and last["jobId"].startswith(f"sched-{schedule_id}-")


def test_template_that_turns_invalid_dead_letters_its_run(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    schedule_id = unique("rotten")
    create(
        app,
        {"id": schedule_id, "job": http_template(url), "every": {"seconds": 1}},
    )
    # A later deployment dropped the job kind: edit the stored template the
    # way only a code change could, since the API refuses invalid templates.
    _store_template(app, schedule_id, {"kind": "retired-kind", "params": {}})

    found = wait_runs(
        app,
        schedule_id,
        lambda rs: any(r["status"] == "dead_lettered" for r in rs),
        "to dead-letter a run",
    )
    run = next(r for r in found if r["status"] == "dead_lettered")
    letter = app.get(f"/api/deadletters/{run['id']}").json()
    assert letter["source"] == "schedule"
    assert "retired-kind" in letter["reason"] and schedule_id in letter["reason"]

    # The dispatcher carried on: a schedule created afterwards fires, and the
    # rotten one keeps ticking, dead-lettering each fire rather than sticking.
    later_id = unique("after-rotten")
    create(
        app,
        {"id": later_id, "job": http_template(url), "every": {"seconds": 1}},
    )
    wait_runs(
        app,
        later_id,
        lambda rs: any(r["status"] == "succeeded" for r in rs),
        "to fire after the dead letter",
    )
    wait_runs(
        app,
        schedule_id,
        lambda rs: sum(r["status"] == "dead_lettered" for r in rs) >= 2,
        "to dead-letter its next fire too",
    )
    for paused in (schedule_id, later_id):
        app.post(f"/api/schedules/{paused}/pause")


def test_a_schedule_whose_stored_record_no_longer_parses_is_set_aside(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    broken_id = unique("unreadable")
    healthy_id = unique("readable")
    for schedule_id in (broken_id, healthy_id):
        create(
            app,
            {"id": schedule_id, "job": http_template(url), "every": {"seconds": 1}},
        )
    # The record as an older version wrote it: a policy this one does not know.
    _edit_stored(
        app,
        broken_id,
        lambda doc: {**doc, "schedule": {**doc["schedule"], "overlap": "queue_all"}},
    )

    app.wait_for_log(
        re.compile(
            rf"WARNING \S+: duralane\.schedule\.set_aside schedule {broken_id}:"
        ),
        30,
    )
    shown = app.get(f"/api/schedules/{broken_id}").json()
    assert shown["status"] == "invalid", shown
    assert "overlap" in shown["error"]
    assert shown["schedule"]["overlap"] == "queue_all", "shown as stored"
    assert shown["nextFireAt"] is None

    # The dispatcher goes on with the others, and does not try the broken one
    # again: one warning, no failed dispatch.
    fired = len(runs(app, healthy_id))
    wait_runs(
        app,
        healthy_id,
        lambda rs: sum(r["status"] == "succeeded" for r in rs) >= fired + 3,
        "to fire three more times",
    )
    app.post(f"/api/schedules/{healthy_id}/pause")
    about_broken = [line for line in list(app.lines) if broken_id in line]
    assert sum("duralane.schedule.set_aside" in line for line in about_broken) == 1
    assert not [line for line in about_broken if "dispatch failed" in line]
    assert app.get(f"/api/schedules/{broken_id}").json()["status"] == "invalid"


def _store_template(app: RuntimeProcess, schedule_id: str, job: dict[str, Any]) -> None:
    """Replace a stored job template, as only a code change could make it invalid."""
    _edit_stored(
        app,
        schedule_id,
        lambda doc: {**doc, "schedule": {**doc["schedule"], "job": job}},
    )


def _edit_stored(
    app: RuntimeProcess,
    schedule_id: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Write a schedule's raw record through the store, past the API's checks."""
    settings = Settings.from_environ(app.env)

    async def edit() -> None:
        store = await open_store(settings)
        try:
            await store.update("schedules", schedule_id, change)
        finally:
            await store.close()

    asyncio.run(edit())
