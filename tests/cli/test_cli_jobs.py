"""duralane submit, jobs and deadletters: tables, JSON, progress and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from duralane.cli import main
from tests.jobs_e2e.support import (
    TargetServer,
    http_job,
    respond,
    submit,
    unique,
    wait_state,
)
from tests.runtime.harness import RuntimeProcess

Run = tuple[int, str, str]


def run(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess | None, *argv: str
) -> Run:
    """Exit code, stdout and stderr of one duralane command against the app."""
    url = app.base_url if app else "http://127.0.0.1:9"
    code = main([*argv, "--url", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_one_job_prints_a_line_or_json(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(200))
    job_id = unique("cli-one")
    spec = json.dumps(http_job(job_id, url))

    code, out, _ = run(capsys, app, "submit", spec)
    assert code == 0
    assert out.startswith(f"submitted job {job_id} (normal, queued)")

    code, out, _ = run(capsys, app, "submit", spec, "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["job"]["id"] == job_id and answer["created"] is False


def test_submit_reads_a_file_and_stdin(
    capsys: pytest.CaptureFixture[str],
    app: RuntimeProcess,
    target: TargetServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = target.route(respond(200))
    path = tmp_path / "job.json"
    path.write_text(json.dumps(http_job(unique("cli-file"), url)))
    assert run(capsys, app, "submit", str(path))[0] == 0

    monkeypatch.setattr(
        "sys.stdin", io.StringIO(json.dumps(http_job(unique("cli-stdin"), url)))
    )
    assert run(capsys, app, "submit", "-")[0] == 0


def test_bulk_submit_reports_each_bad_line_with_progress(
    capsys: pytest.CaptureFixture[str],
    app: RuntimeProcess,
    target: TargetServer,
    tmp_path: Path,
) -> None:
    url = target.route(respond(200))
    good = [json.dumps(http_job(unique("cli-bulk"), url)) for _ in range(5)]
    lines = [
        good[0],
        good[1],
        "# a comment",
        "{not json",
        good[2],
        "",
        json.dumps({"kind": "nope"}),
        good[3],
        good[4],
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    code, out, err = run(capsys, app, "submit", "--bulk", str(path))

    assert code == 5
    assert "line 4: not JSON" in out
    assert "line 7: 400: invalid job (kind: unknown job kind 'nope'" in out
    assert out.strip().endswith("submitted 5 of 7 (5 new, 0 existing), 2 failed")
    assert "submitting [" in err and "7/7 failed 2" in err

    ok = tmp_path / "ok.jsonl"
    ok.write_text(good[0] + "\n" + json.dumps(http_job(unique("cli-b2"), url)) + "\n")
    code, out, err = run(capsys, app, "submit", "--bulk", str(ok), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["total"] == 2 and len(summary["existing"]) == 1
    assert summary["failed"] == [] and len(summary["created"]) == 1
    assert "2/2 failed 0" in err


def test_bulk_submit_where_every_line_fails_exits_1(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "nope"}\n')
    assert run(capsys, app, "submit", "--bulk", str(path))[0] == 1


def test_jobs_list_get_and_watch(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(500, 200))
    tag = unique("cli-tag")
    job_id = unique("cli-list")
    submit(app, http_job(job_id, url, tags=[tag], lane="high"))

    code, out, _ = run(
        capsys, app, "jobs", "get", job_id, "--watch", "--interval", "0.1"
    )
    assert code == 0
    assert out.splitlines()[0].startswith(f"{job_id}: ")
    assert "status:             succeeded" in out
    assert "ATTEMPT" in out and "failed" in out and "succeeded" in out

    code, out, _ = run(capsys, app, "jobs", "list", "--tag", tag)
    header, row = out.splitlines()
    assert header.split() == [
        "ID", "STATUS", "LANE", "KIND", "ATTEMPTS", "START_LAG_MS", "CREATED",
    ]  # fmt: skip
    assert row.split()[:5] == [job_id, "succeeded", "high", "http", "2"]

    code, out, _ = run(capsys, app, "jobs", "list", "--tag", tag, "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [job_id]

    code, out, _ = run(capsys, app, "jobs", "get", job_id, "--json")
    assert code == 0 and len(json.loads(out)["attempts"]) == 2

    code, out, _ = run(capsys, app, "jobs", "list", "--tag", unique("none"))
    assert (code, out.strip()) == (0, "no jobs")


def test_watching_a_job_that_dead_letters_exits_1(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(404))
    job_id = unique("cli-dead")
    submit(app, http_job(job_id, url))
    code, out, _ = run(
        capsys, app, "jobs", "get", job_id, "--watch", "--interval", "0.1"
    )
    assert code == 1
    assert "dead_lettered" in out


def test_cancel_and_its_exit_codes(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    url = target.route(respond(503, 503, 503))
    job_id = unique("cli-cancel")
    submit(app, http_job(job_id, url, retry={"initialDelaySeconds": 30}))
    wait_state(app, job_id, "failed")

    code, out, _ = run(capsys, app, "jobs", "cancel", job_id)
    assert (code, out.strip()) == (0, f"cancel requested for job {job_id}")
    wait_state(app, job_id, "cancelled")

    code, _, err = run(capsys, app, "jobs", "cancel", job_id)
    assert code == 1
    assert err.strip() == f"duralane: 409: job {job_id} is already cancelled"


def test_exit_codes_for_not_found_unreachable_and_usage(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, tmp_path: Path
) -> None:
    code, _, err = run(capsys, app, "jobs", "get", unique("missing"))
    assert code == 4 and err.startswith("duralane: 404: ")
    assert len(err.strip().splitlines()) == 1

    code, _, err = run(capsys, None, "jobs", "list")
    assert code == 3 and err.startswith("duralane: cannot reach http://127.0.0.1:9")
    assert "Traceback" not in err

    code, _, err = run(capsys, app, "submit", str(tmp_path / "absent.json"))
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, app, "submit", "{broken")
    assert code == 2 and "not JSON" in err
    with pytest.raises(SystemExit) as usage:
        main(["jobs", "list", "--lane", "fast"])
    assert usage.value.code == 2

    code, _, err = run(capsys, app, "submit", '{"kind": "http", "params": {}}')
    assert code == 1 and "params.url" in err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["deadletters", "replay-all", "--help"])
    out = capsys.readouterr().out
    for line in ("0  ok", "3  unreachable", "4  not found", "5  partly failed"):
        assert line in out


def test_deadletters_list_get_replay_and_purge(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    job_id, doomed = unique("cli-dl"), unique("cli-purge")
    submit(app, http_job(job_id, target.route(respond(404, 200))))
    submit(app, http_job(doomed, target.route(respond(404))))
    wait_state(app, job_id, "dead_lettered")
    wait_state(app, doomed, "dead_lettered")

    code, out, _ = run(capsys, app, "deadletters", "list", "--lane", "normal")
    assert code == 0 and "REASON" in out.splitlines()[0]
    assert any(line.startswith(job_id) for line in out.splitlines())

    code, out, _ = run(capsys, app, "deadletters", "get", job_id)
    assert code == 0
    assert "source:         job" in out and "404" in out and "original:" in out
    code, out, err = run(capsys, app, "deadletters", "get", job_id, "--json")
    assert code == 0, err
    assert json.loads(out)["attempts"][0]["outcome"] == "failed_permanently"

    code, out, _ = run(capsys, app, "deadletters", "replay", job_id)
    assert (code, out.strip()) == (0, f"replaying job {job_id} as run 2 (queued)")
    wait_state(app, job_id, "succeeded")
    # A replayed job leaves dead letters.
    assert run(capsys, app, "deadletters", "get", job_id)[0] == 4

    code, out, err = run(capsys, app, "deadletters", "purge", doomed, "--json")
    assert (code, json.loads(out)) == (0, {"deleted": 1}), err
    code, _, err = run(capsys, app, "deadletters", "purge", doomed)
    assert code == 4 and err.startswith("duralane: 404: ")


def test_replay_all_shows_progress_and_replays_every_match(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, target: TargetServer
) -> None:
    ids = [unique("cli-ra") for _ in range(3)]
    for job_id in ids:
        # Each job gets its own path: the first request fails for good, the
        # replay's succeeds.
        submit(app, http_job(job_id, target.route(respond(404, 200)), lane="low"))
    for job_id in ids:
        wait_state(app, job_id, "dead_lettered")

    code, out, err = run(capsys, app, "deadletters", "replay-all", "--lane", "low")
    assert code == 0
    assert "replaying [" in err and "failed 0" in err
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("replayed ") and summary.endswith(", 0 failed")
    for job_id in ids:
        wait_state(app, job_id, "succeeded")

    code, out, _ = run(
        capsys, app, "deadletters", "replay-all", "--lane", "low", "--json"
    )
    result = json.loads(out)
    assert code == 0 and not set(ids) & set(result["replayed"])
