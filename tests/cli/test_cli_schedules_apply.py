"""duralane schedules apply: every entry applied or named with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import run_cli
from tests.jobs_e2e.support import TargetServer, respond, unique
from tests.runtime.harness import RuntimeProcess


def nightly(schedule_id: str, url: str, **fields: Any) -> dict[str, Any]:
    """A schedule that will not fire while the test runs."""
    return {
        "id": schedule_id,
        "job": {"kind": "http", "params": {"url": url}},
        "cron": {"expression": "30 2 * * *", "timeZone": "Europe/Berlin"},
        **fields,
    }


def test_apply_goes_on_past_bad_entries_names_each_and_exits_5(
    capsys: pytest.CaptureFixture[str],
    app: RuntimeProcess,
    target: TargetServer,
    tmp_path: Path,
) -> None:
    url = target.route(respond(200))
    good, refused = unique("cli-apply"), unique("cli-apply-bad")
    declared = [
        nightly(good, url),
        1,
        {"job": {"kind": "http", "params": {"url": url}}},
        nightly(refused, url, overlap="sometimes"),
    ]
    file = tmp_path / "schedules.json"
    file.write_text(json.dumps({"schedules": declared}))

    code, out, err = run_cli(capsys, app.base_url, "schedules", "apply", str(file))

    assert code == 5, (out, err)
    lines = out.strip().splitlines()
    assert lines[1].split() == [good, "created"]
    assert lines[2] == "entry 2: not a schedule object but 1"
    assert lines[3].startswith("entry 3: no id")
    assert lines[4].startswith(f"entry 4 ({refused}): 400: ") and "overlap" in lines[4]
    assert lines[5] == "applied 1 of 4, 3 failed"
    assert err == ""

    code, out, _ = run_cli(
        capsys, app.base_url, "schedules", "apply", str(file), "--json"
    )
    summary = json.loads(out)
    assert code == 5 and summary["total"] == 4
    assert summary["applied"] == [{"id": good, "result": "unchanged"}]
    assert [(f["entry"], f["id"]) for f in summary["failed"]] == [
        (2, None),
        (3, None),
        (4, refused),
    ]
    assert all(f["reason"] for f in summary["failed"])
    assert app.get(f"/api/schedules/{refused}").status_code == 404
    app.delete(f"/api/schedules/{good}")


def test_apply_where_every_entry_fails_exits_1_without_a_trace(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, tmp_path: Path
) -> None:
    file = tmp_path / "numbers.json"
    file.write_text("[1]")

    code, out, err = run_cli(capsys, app.base_url, "schedules", "apply", str(file))

    assert code == 1
    assert out.strip().splitlines() == [
        "entry 1: not a schedule object but 1",
        "applied 0 of 1, 1 failed",
    ]
    assert "Traceback" not in err


def test_apply_refuses_a_file_that_holds_no_list_as_usage(
    capsys: pytest.CaptureFixture[str], app: RuntimeProcess, tmp_path: Path
) -> None:
    file = tmp_path / "one.json"
    file.write_text(json.dumps({"id": unique("cli-apply-one")}))

    code, _, err = run_cli(capsys, app.base_url, "schedules", "apply", str(file))

    assert code == 2
    assert err.strip() == (
        f'duralane: {file} holds no list of schedules, nor {{"schedules": [...]}}'
    )
