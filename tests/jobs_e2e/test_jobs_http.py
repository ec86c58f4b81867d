"""Http jobs end to end: success, retries, Retry-After, dead letters, timeouts."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from itertools import pairwise

from aiohttp import web

from duralane.jobs.retry import RetryPolicy
from tests.jobs_e2e.support import (
    TargetServer,
    get_job,
    held_until,
    http_job,
    instant,
    respond,
    submit,
    unique,
    wait_job,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess, wait_until

# Timestamps are kept to the microsecond; allow for that rounding only.
ROUNDING = timedelta(microseconds=1)


def _gaps(job: dict[str, object]) -> list[timedelta]:
    """Time from each attempt's end to the next attempt's start."""
    attempts = job["attempts"]
    assert isinstance(attempts, list)
    return [
        instant(later["startedAt"]) - instant(earlier["endedAt"])
        for earlier, later in pairwise(attempts)
    ]


def test_http_job_succeeds_and_target_sees_idempotency_key(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Targets deduplicate on the key, so every request must carry it."""
    url = target.route(respond(200))
    job_id = unique("ok")
    submit(app, http_job(job_id, url, idempotencyKey=f"{job_id}/charge"))

    job = wait_state(app, job_id, "succeeded")

    assert job["result"]["statusCode"] == 200
    assert [a["outcome"] for a in job["attempts"]] == ["succeeded"]
    hits = target.hits(url)
    assert [h.headers.get("Idempotency-Key") for h in hits] == [f"{job_id}/charge"]


def test_server_errors_retry_with_the_policy_backoff_until_success(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Each retry must wait at least what RetryPolicy computes for that attempt."""
    url = target.route(respond(500, 500, 500, 200))
    job_id = unique("backoff")
    retry = {
        "maxAttempts": 5,
        "initialDelaySeconds": 0.2,
        "backoffMultiplier": 2,
        "maxDelaySeconds": 0.5,
        "jitter": 0.5,
    }
    submit(app, http_job(job_id, url, retry=retry))

    job = wait_state(app, job_id, "succeeded")

    attempts = job["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3, 4]
    assert [a["statusCode"] for a in attempts[:3]] == [500, 500, 500]
    assert [a["outcome"] for a in attempts][-1] == "succeeded"
    policy = RetryPolicy(5, 0.2, 2, 0.5, 0.5)
    for number, gap in enumerate(_gaps(job), start=2):
        wanted = timedelta(seconds=policy.delay_before(number, job_id))
        assert gap + ROUNDING >= wanted, (number, gap, wanted)
    assert len(target.hits(url)) == 4


def test_retry_after_makes_the_next_attempt_wait_at_least_that_long(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A 429's Retry-After outweighs a shorter backoff."""
    url = target.route(respond(429, 200, headers={"Retry-After": "1"}))
    job_id = unique("retry-after")
    submit(app, http_job(job_id, url, retry={"initialDelaySeconds": 0}))

    job = wait_state(app, job_id, "succeeded")

    first = job["attempts"][0]
    assert first["statusCode"] == 429
    assert first["retryAfterSeconds"] == 1
    assert _gaps(job)[0] + ROUNDING >= timedelta(seconds=1)


def test_not_found_dead_letters_on_the_first_attempt(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A 404 will not fix itself, so retrying it only wastes attempts."""
    url = target.route(respond(404))
    job_id = unique("gone")
    submit(app, http_job(job_id, url, retry={"maxAttempts": 5}))

    job = wait_state(app, job_id, "dead_lettered")

    assert len(job["attempts"]) == 1
    assert job["attempts"][0]["statusCode"] == 404
    assert job["deadLetterReason"].startswith("permanent:")
    assert "404" in job["deadLetterReason"]
    letter = app.get(f"/api/deadletters/{job_id}").json()
    assert letter["reason"] == job["deadLetterReason"]
    assert len(target.hits(url)) == 1


def test_exhausted_attempts_dead_letter_with_every_attempts_error(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Whoever replays a dead letter needs each attempt's error, not just the last."""
    url = target.route(respond(500, 502, 503))
    job_id = unique("exhaust")
    submit(app, http_job(job_id, url, retry={"maxAttempts": 3}))

    wait_state(app, job_id, "dead_lettered")

    response = app.get(f"/api/deadletters/{job_id}")
    assert response.status_code == 200, response.text
    letter = response.json()
    assert letter["source"] == "job"
    assert letter["spec"]["id"] == job_id
    assert letter["reason"].startswith("attempts exhausted: 3 of 3")
    assert [a["statusCode"] for a in letter["attempts"]] == [500, 502, 503]
    assert all(a["error"] for a in letter["attempts"])
    assert "503" in letter["attempts"][2]["error"]


def test_attempt_slower_than_its_timeout_fails_as_timeout(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A hung target must not hold a job past attemptTimeoutSeconds."""

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="too late")

    url = target.route(slow)
    job_id = unique("slow")
    spec = http_job(job_id, url, retry={"maxAttempts": 1}, attemptTimeoutSeconds=0.5)
    submit(app, spec)

    job = wait_state(app, job_id, "dead_lettered")

    assert len(job["attempts"]) == 1
    attempt = job["attempts"][0]
    assert attempt["outcome"] == "timed_out", attempt
    assert attempt["error"], attempt
    assert "attempts exhausted" in job["deadLetterReason"]


def test_cancelling_during_a_long_backoff_ends_the_job_cancelled(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """DELETE must not have to wait out a five-minute backoff."""
    url = target.route(respond(500))
    job_id = unique("cancel")
    spec = http_job(job_id, url, retry={"maxAttempts": 3, "initialDelaySeconds": 300})
    submit(app, spec)
    wait_job(
        app,
        job_id,
        lambda j: j["status"] == "failed" and len(j["attempts"]) == 1,
        "to fail its first attempt",
    )

    response = app.delete(f"/api/jobs/{job_id}")

    assert response.status_code == 202, response.text
    job = wait_state(app, job_id, "cancelled")
    assert len(job["attempts"]) == 1
    assert len(target.hits(url)) == 1
    assert app.delete(f"/api/jobs/{job_id}").status_code == 409


def test_an_attempt_finishing_after_cancel_leaves_the_job_cancelled(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A request still in flight when DELETE arrives must not revive the job."""
    release = threading.Event()
    url = target.route(held_until(release))
    job_id = unique("cancel-running")
    submit(app, http_job(job_id, url, attemptTimeoutSeconds=60))
    wait_until(lambda: len(target.hits(url)) == 1, timeout=30, what="the request")

    response = app.delete(f"/api/jobs/{job_id}")
    assert response.status_code == 202, response.text
    wait_state(app, job_id, "cancelled")
    release.set()

    job = wait_job(
        app,
        job_id,
        lambda j: j["attempts"][0].get("endedAt") is not None,
        "to record its late attempt",
    )
    assert job["status"] == "cancelled", job
    assert job["attempts"][0]["outcome"] == "succeeded", job
    assert job.get("result") is None, job


def test_resubmitting_the_same_key_returns_the_existing_job(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """A client retrying its POST must not make the target charge twice."""
    url = target.route(respond(200))
    job_id = unique("idem")
    spec = http_job(job_id, url)
    submit(app, spec)
    wait_state(app, job_id, "succeeded")

    again = app.post("/api/jobs", json=spec)
    other_id = unique("idem-other")
    same_key = app.post(
        "/api/jobs", json=http_job(other_id, url, idempotencyKey=job_id)
    )

    assert again.status_code == 200, again.text
    assert again.json()["job"]["id"] == job_id
    assert same_key.status_code == 200, same_key.text
    assert same_key.json()["job"]["id"] == job_id
    assert app.get(f"/api/jobs/{other_id}").status_code == 404
    assert len(get_job(app, job_id)["attempts"]) == 1
    assert len(target.hits(url)) == 1
