"""Dead letters end to end: listing with filters and paging, replay, purge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.jobs_e2e.support import (
    Handler,
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dead_letter(app: RuntimeProcess, url: str, prefix: str, **fields: Any) -> str:
    job_id = unique(prefix)
    submit(app, http_job(job_id, url, **fields))
    wait_state(app, job_id, "dead_lettered")
    return job_id


def _switch() -> tuple[Handler, list[int]]:
    """A handler answering 404 until the test sets the status it should give."""
    status = [404]

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status[0])

    return handler, status


def test_dead_letters_list_by_filter_and_page_by_continuation(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """An operator pages through one lane's dead letters without seeing others."""
    since = _now()
    url = target.route(respond(404))
    low = {_dead_letter(app, url, "dl-list", lane="low") for _ in range(3)}
    other = _dead_letter(app, url, "dl-list-normal", lane="normal")

    seen: list[dict[str, Any]] = []
    continuation = None
    pages = 0
    while True:
        params = {"lane": "low", "since": since, "pageSize": "1"}
        if continuation:
            params["continuation"] = continuation
        response = app.get("/api/deadletters", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 1
        seen.extend(body["items"])
        pages += 1
        continuation = body["continuation"]
        if not continuation:
            break
        assert pages < 50, "paging never ended"

    ids = [item["id"] for item in seen]
    assert low <= set(ids)
    assert other not in ids
    assert len(ids) == len(set(ids)), "a dead letter appeared on two pages"
    assert all(item["lane"] == "low" for item in seen)
    assert pages >= 3


def test_replaying_a_dead_letter_after_the_fix_succeeds_as_run_two(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Replay is how an operator recovers once the target is fixed."""
    handler, status = _switch()
    url = target.route(handler)
    job_id = _dead_letter(app, url, "replay", idempotencyKey="replay-key")
    status[0] = 200

    response = app.post(f"/api/deadletters/{job_id}/replay")

    assert response.status_code == 202, response.text
    job = wait_state(app, job_id, "succeeded")
    assert job["run"] == 2
    assert [(a["run"], a["number"]) for a in job["attempts"]] == [(1, 1), (2, 1)]
    assert app.get(f"/api/deadletters/{job_id}").status_code == 404
    keys = [h.headers.get("Idempotency-Key") for h in target.hits(url)]
    assert keys == ["replay-key", "replay-key"]


def test_bulk_replay_by_filter_reports_how_many_were_replayed(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """After an outage every matching dead letter goes back in one call."""
    since = _now()
    handler, status = _switch()
    url = target.route(handler)
    ids = {_dead_letter(app, url, "bulk", lane="high") for _ in range(3)}
    status[0] = 200

    response = app.post(
        "/api/deadletters/replay", params={"lane": "high", "since": since}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["replayed"] == 3, body
    assert set(body["ids"]) == ids
    assert body["failed"] == []
    for job_id in ids:
        assert wait_state(app, job_id, "succeeded")["run"] == 2


def test_purging_a_dead_letter_removes_it_for_good(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Purge is final: the letter is gone and cannot be replayed."""
    job_id = _dead_letter(app, target.route(respond(404)), "purge")

    response = app.delete(f"/api/deadletters/{job_id}")

    assert response.status_code == 200, response.text
    assert app.get(f"/api/deadletters/{job_id}").status_code == 404
    assert app.post(f"/api/deadletters/{job_id}/replay").status_code == 404
    assert app.delete(f"/api/deadletters/{job_id}").status_code == 404
