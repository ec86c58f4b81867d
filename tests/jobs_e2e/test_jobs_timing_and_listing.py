"""runAt, deadline, GET /api/jobs filters and paging, and GET /api/lanes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.jobs_e2e.support import (
    TargetServer,
    get_job,
    http_job,
    instant,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_job_waits_for_run_at_and_counts_start_lag_from_it(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    job_id = unique("run-at")
    run_at = later(2.0)
    submit(app, http_job(job_id, url, runAt=run_at))

    assert get_job(app, job_id)["status"] == "queued"
    job = wait_state(app, job_id, "succeeded", timeout=20)

    started = instant(job["attempts"][0]["startedAt"])
    assert started >= instant(run_at)
    assert target.hits(url)[0].at >= instant(run_at).timestamp()
    # Measured from runAt, the lag is the scheduler's delay alone; measured
    # from submission it would be at least the two seconds waited.
    assert 0 <= job["startLagMs"] < 1500, job["startLagMs"]


def test_retry_due_after_the_deadline_dead_letters_with_that_reason(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(503, 503, 503))
    job_id = unique("deadline")
    deadline = later(2.0)
    spec = http_job(job_id, url, deadline=deadline, retry={"initialDelaySeconds": 5})
    submit(app, spec)

    job = wait_state(app, job_id, "dead_lettered", timeout=20)

    assert len(job["attempts"]) == 1
    assert "deadline" in job["deadLetterReason"]
    letter = app.get(f"/api/deadletters/{job_id}").json()
    assert "deadline" in letter["reason"]
    # Dead-lettered at once, not after sleeping through the backoff.
    assert instant(letter["deadLetteredAt"]) < instant(deadline) + timedelta(seconds=2)


def test_list_filters_by_tag_lane_kind_status_and_time_and_pages(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    tag = unique("batch")
    before = datetime.now(UTC).isoformat()
    ids = {lane: unique(f"list-{lane}") for lane in ("high", "normal", "low")}
    for lane, job_id in ids.items():
        submit(app, http_job(job_id, url, lane=lane, tags=[tag]))
    for job_id in ids.values():
        wait_state(app, job_id, "succeeded")

    def listed(**params: str) -> list[str]:
        response = app.get("/api/jobs", params={"tag": tag, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert sorted(listed()) == sorted(ids.values())
    assert listed(lane="high") == [ids["high"]]
    assert sorted(listed(kind="http", status="succeeded")) == sorted(ids.values())
    assert listed(status="dead_lettered") == []
    assert listed(kind="probe") == []
    assert sorted(listed(since=before)) == sorted(ids.values())
    assert listed(until=before) == []

    first = app.get("/api/jobs", params={"tag": tag, "pageSize": "2"}).json()
    assert len(first["items"]) == 2 and first["continuation"]
    second = app.get(
        "/api/jobs",
        params={"tag": tag, "pageSize": "2", "continuation": first["continuation"]},
    ).json()
    paged = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(paged) == sorted(ids.values())
    assert not second["continuation"]

    bad = app.get("/api/jobs", params={"colour": "red"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "colour"
    assert app.get("/api/jobs", params={"pageSize": "0"}).status_code == 400


def test_time_filters_honour_the_offset_they_are_written_in(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """since/until at +05:00 mean the same instants as in UTC, not their text."""
    url = target.route(respond(200))
    tag = unique("offsets")
    job_id = unique("offset")
    submit(app, http_job(job_id, url, tags=[tag]))
    created = instant(get_job(app, job_id)["createdAt"])
    plus_five = timezone(timedelta(hours=5))

    def listed(**params: str) -> list[str]:
        response = app.get("/api/jobs", params={"tag": tag, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    just_before = (created - timedelta(seconds=1)).astimezone(plus_five).isoformat()
    just_after = (created + timedelta(seconds=1)).astimezone(plus_five).isoformat()
    assert listed(since=just_before) == [job_id]
    assert listed(since=just_after) == []
    assert listed(until=just_before) == []
    assert listed(until=just_after) == [job_id]


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("/api/jobs", {"status": "finished"}, "status"),
        ("/api/jobs", {"lane": "urgent"}, "lane"),
        ("/api/jobs", {"since": "yesterday"}, "since"),
        ("/api/jobs", {"until": "2026-13-01"}, "until"),
        (
            "/api/jobs",
            {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "until",
        ),
        ("/api/jobs", {"continuation": "%%not-a-token"}, None),
        ("/api/deadletters", {"source": "email"}, "source"),
        ("/api/deadletters", {"lane": "HIGH"}, "lane"),
    ],
)
def test_a_filter_that_can_match_nothing_is_400_not_an_empty_list(
    app: RuntimeProcess, route: str, params: dict[str, str], field: str | None
) -> None:
    """A typo in a filter must say so; an empty page would read as 'no such jobs'."""
    response = app.get(route, params=params)

    assert response.status_code == 400, response.text
    if field is not None:
        assert response.json()["errors"][0]["field"] == field, response.text
    else:
        assert "continuation" in response.json()["error"], response.text


def test_lanes_report_start_lag_percentiles_against_deadlines(
    app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    for _ in range(3):
        job_id = unique("lag")
        submit(app, http_job(job_id, url, lane="high"))
        wait_state(app, job_id, "succeeded")

    body = app.get("/api/lanes").json()
    lanes = {lane["lane"]: lane for lane in body["lanes"]}
    assert set(lanes) == {"high", "normal", "low"}
    assert lanes["high"]["deadlineMs"] == 1000
    assert lanes["normal"]["deadlineMs"] == 60_000
    assert lanes["low"]["deadlineMs"] == 3_600_000
    high = lanes["high"]
    assert high["sampled"] >= 3
    lag = high["startLagMs"]
    assert 0 <= lag["p50"] <= lag["p95"] <= lag["p99"]
