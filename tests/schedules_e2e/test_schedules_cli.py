"""The duralane schedules command against a running app."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.jobs_e2e.support import TargetServer, respond, unique, wait_state
from tests.runtime.harness import REPO, RuntimeProcess


def cli(runtime: RuntimeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "duralane.cli",
            "schedules",
            *args,
            "--url",
            runtime.base_url,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_applies_previews_triggers_and_lists(
    app: RuntimeProcess, target: TargetServer, tmp_path: Path
) -> None:
    url = target.route(respond(200))
    schedule_id = unique("cli")
    body = {
        "id": schedule_id,
        "job": {"kind": "http", "params": {"url": url}},
        "cron": {"expression": "30 2 * * *", "timeZone": "Europe/Berlin"},
    }
    created = cli(app, "create", json.dumps(body), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["id"] == schedule_id

    listed = cli(app, "list")
    assert listed.returncode == 0 and schedule_id in listed.stdout
    assert "cron 30 2 * * * Europe/Berlin" in listed.stdout

    preview = cli(app, "preview", schedule_id, "--count", "2", "--json")
    fires = json.loads(preview.stdout)["fires"]
    assert len(fires) == 2 and all("T02:30:00+0" in f["atLocal"] for f in fires)

    file = tmp_path / "schedules.json"
    file.write_text(json.dumps({"schedules": [body]}))
    applied = cli(app, "apply", str(file))
    assert applied.returncode == 0 and "unchanged" in applied.stdout, applied.stdout

    triggered = cli(app, "trigger", schedule_id, "--json")
    run_id = json.loads(triggered.stdout)["run"]["id"]
    wait_state(app, run_id, "succeeded")
    runs = cli(app, "runs", schedule_id)
    assert run_id in runs.stdout and "succeeded" in runs.stdout

    bad = cli(app, "create", json.dumps({**body, "id": unique("cli"), "overlap": "x"}))
    assert bad.returncode == 1 and "overlap" in bad.stderr
    assert cli(app, "get", unique("missing")).returncode == 4
    assert cli(app, "delete", schedule_id).returncode == 0


def test_cli_pauses_resumes_updates_and_shows_a_schedule_as_table_and_json(
    app: RuntimeProcess, target: TargetServer
) -> None:
    schedule_id = unique("cli-edit")
    body = {
        "id": schedule_id,
        "job": {"kind": "http", "params": {"url": target.route(respond(200))}},
        "every": {"seconds": 3600},
    }
    assert cli(app, "create", json.dumps(body)).returncode == 0

    paused = cli(app, "pause", schedule_id, "--json")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["paused"] is True
    table = cli(app, "get", schedule_id)
    assert table.returncode == 0 and schedule_id in table.stdout
    assert "PAUSED" in table.stdout and " yes " in table.stdout

    resumed = cli(app, "resume", schedule_id, "--json")
    assert json.loads(resumed.stdout)["paused"] is False

    changed = {**body, "every": {"seconds": 7200}}
    updated = cli(app, "update", schedule_id, json.dumps(changed), "--json")
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(cli(app, "get", schedule_id, "--json").stdout)
    assert shown["schedule"]["every"]["seconds"] == 7200
    assert "every 7200s" in cli(app, "get", schedule_id).stdout

    missing = cli(app, "pause", unique("cli-missing"))
    assert missing.returncode == 4 and missing.stderr.startswith("duralane: 404")
