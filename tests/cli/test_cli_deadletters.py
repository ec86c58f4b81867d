"""duralane deadletters purge-all: confirmed, one by one, each failure named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiohttp import web

from duralane.store.schema import iso_utc
from tests.cli.support import run_cli
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


def test_purge_all_needs_yes_then_deletes_only_the_matches_with_progress(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    since = iso_utc(datetime.now(UTC))
    doomed = [unique("cli-pa") for _ in range(2)]
    spared = unique("cli-pa-spared")
    for job_id in doomed:
        submit(app, http_job(job_id, target.route(respond(404)), lane="high"))
    submit(app, http_job(spared, target.route(respond(404)), lane="normal"))
    for job_id in [*doomed, spared]:
        wait_state(app, job_id, "dead_lettered")
    filters = ["--lane", "high", "--since", since]

    code, out, err = run_cli(capsys, app.base_url, "deadletters", "purge-all", *filters)
    assert (code, out) == (2, "")
    assert err.strip() == (
        "duralane: purge-all would delete 2 dead letters for good; add --yes to do it"
    )
    assert all(app.get(f"/api/deadletters/{i}").status_code == 200 for i in doomed)

    code, out, err = run_cli(
        capsys, app.base_url, "deadletters", "purge-all", *filters, "--yes"
    )
    assert (code, out.strip()) == (0, "purged 2 of 2, 0 failed"), err
    assert "purging [" in err and "2/2 failed 0" in err
    assert all(app.get(f"/api/deadletters/{i}").status_code == 404 for i in doomed)
    assert app.get(f"/api/deadletters/{spared}").status_code == 200

    code, out, _ = run_cli(
        capsys, app.base_url, "deadletters", "purge-all", *filters, "--yes", "--json"
    )
    assert (code, json.loads(out)) == (0, {"matched": 0, "purged": [], "failed": []})


def test_purge_all_says_when_limit_caps_what_it_would_delete(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    since = iso_utc(datetime.now(UTC))
    job_ids = [unique("cli-pa-cap") for _ in range(2)]
    for job_id in job_ids:
        submit(app, http_job(job_id, target.route(respond(404)), lane="high"))
    for job_id in job_ids:
        wait_state(app, job_id, "dead_lettered")

    code, _, err = run_cli(
        capsys,
        app.base_url,
        "deadletters",
        "purge-all",
        *("--lane", "high", "--since", since, "--limit", "1"),
    )
    assert code == 2
    assert "would delete 1 dead letter for good (--limit stops it there" in err
    app.delete(f"/api/deadletters/{job_ids[0]}")
    app.delete(f"/api/deadletters/{job_ids[1]}")


def stub_api(target: TargetServer, letter_ids: list[str], purge: dict[str, int]) -> str:
    """A stand-in API listing these dead letters and answering each DELETE."""
    prefix = "/" + unique("stub-api")

    async def listing(request: web.Request) -> web.StreamResponse:
        return web.json_response({"items": [{"id": i} for i in letter_ids]})

    def deleting(letter_id: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            status = purge[letter_id]
            if status == 200:
                return web.json_response({"deleted": 1})
            body = {"error": f"store refused {letter_id}"}
            return web.json_response(body, status=status)

        return handler

    target.route(listing, path=f"{prefix}/api/deadletters")
    for letter_id in letter_ids:
        target.route(deleting(letter_id), path=f"{prefix}/api/deadletters/{letter_id}")
    return target.base + prefix


def test_purge_all_goes_on_past_a_failed_delete_names_it_and_exits_5(
    capsys: pytest.CaptureFixture[str], target: TargetServer
) -> None:
    first, refused, last = (unique("stub-dl") for _ in range(3))
    url = stub_api(
        target, [first, refused, last], {first: 200, refused: 503, last: 200}
    )

    code, out, err = run_cli(capsys, url, "deadletters", "purge-all", "--yes")
    assert code == 5
    assert out.strip().splitlines() == [
        f"{refused}: 503: store refused {refused}",
        "purged 2 of 3, 1 failed",
    ]
    assert "3/3 failed 1" in err

    code, out, _ = run_cli(capsys, url, "deadletters", "purge-all", "--yes", "--json")
    assert code == 5
    assert json.loads(out) == {
        "matched": 3,
        "purged": [first, last],
        "failed": [{"id": refused, "reason": f"503: store refused {refused}"}],
    }


def test_purge_all_where_every_delete_fails_exits_1(
    capsys: pytest.CaptureFixture[str], target: TargetServer
) -> None:
    letter_ids = [unique("stub-dl") for _ in range(2)]
    url = stub_api(target, letter_ids, dict.fromkeys(letter_ids, 409))

    code, out, _ = run_cli(capsys, url, "deadletters", "purge-all", "--yes")

    assert code == 1
    assert out.strip().splitlines()[-1] == "purged 0 of 2, 2 failed"
