"""The JSON that scripts read from deadletters list and jobs cancel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from duralane.store.schema import iso_utc
from tests.cli.support import run_cli
from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess


def test_deadletters_list_json_is_every_match_with_reason_and_attempts(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    since = iso_utc(datetime.now(UTC))
    job_ids = [unique("cli-dl-json") for _ in range(2)]
    for job_id in job_ids:
        submit(app, http_job(job_id, target.route(respond(404)), lane="high"))
    for job_id in job_ids:
        wait_state(app, job_id, "dead_lettered")

    code, out, err = run_cli(
        capsys,
        app.base_url,
        "deadletters",
        "list",
        *("--lane", "high", "--since", since, "--json"),
    )

    assert code == 0, err
    letters = json.loads(out)
    assert sorted(letter["id"] for letter in letters) == sorted(job_ids)
    for letter in letters:
        assert (letter["source"], letter["lane"], letter["kind"]) == (
            "job",
            "high",
            "http",
        )
        assert "404" in letter["reason"]
        assert [a["outcome"] for a in letter["attempts"]] == ["failed_permanently"]
    for job_id in job_ids:
        app.delete(f"/api/deadletters/{job_id}")


def test_jobs_cancel_json_is_the_job_and_the_request_and_nothing_on_refusal(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(503))
    job_id = unique("cli-cancel-json")
    submit(app, http_job(job_id, url, retry={"initialDelaySeconds": 30}))
    wait_state(app, job_id, "failed")

    code, out, err = run_cli(capsys, app.base_url, "jobs", "cancel", job_id, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["cancelRequested"] is True
    assert answer["job"]["id"] == job_id and answer["job"]["status"] == "failed"
    wait_state(app, job_id, "cancelled")

    code, out, err = run_cli(capsys, app.base_url, "jobs", "cancel", job_id, "--json")
    assert (code, out) == (1, "")
    assert err.strip() == f"duralane: 409: job {job_id} is already cancelled"
