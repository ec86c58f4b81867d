"""SSRF refusals through the API: refused targets end as permanent dead letters."""

from __future__ import annotations

import pytest

from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess


def _refused(app: RuntimeProcess, url: str) -> dict[str, object]:
    job_id = unique("ssrf")
    submit(app, http_job(job_id, url, retry={"maxAttempts": 3}))
    job = wait_state(app, job_id, "dead_lettered")
    assert len(job["attempts"]) == 1, job
    reason = job["deadLetterReason"]
    assert isinstance(reason, str) and reason.startswith("permanent:"), reason
    return job


def test_loopback_target_is_refused_without_an_allow_list(
    guarded_app: RuntimeProcess, target: TargetServer
) -> None:
    """In Azure nothing is allow-listed, so a job must never reach loopback."""
    url = target.route(respond(200))

    _refused(guarded_app, url)

    assert target.hits(url) == []


@pytest.mark.parametrize(
    "url",
    ["http://2130706433/", "http://[::1]/", "http://0x7f.1/", "http://127.1/"],
)
def test_encoded_loopback_addresses_are_refused(
    guarded_app: RuntimeProcess, url: str
) -> None:
    """Encoded forms of 127.0.0.1 must not slip past the address check."""
    _refused(guarded_app, url)


def test_redirect_from_an_allowed_target_to_a_refused_one_is_refused(
    app: RuntimeProcess, target: TargetServer
) -> None:
    """Each redirect hop is checked, so an allowed host cannot bounce a job inward."""
    url = target.route(
        respond(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    )

    job = _refused(app, url)

    assert "169.254.169.254" in str(job["deadLetterReason"])
    assert len(target.hits(url)) == 1
