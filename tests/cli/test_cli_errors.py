"""Whatever goes wrong, every command ends with one line on stderr and an exit code."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from tests.cli.support import run_cli
from tests.jobs_e2e.support import TargetServer, respond, unique

# Each command with the path it reads; a server that is not Duralane answers
# every one of them 200 with plain text where JSON was expected.
COMMANDS = [
    pytest.param(argv, path, id=" ".join(argv[:2]))
    for argv, path in (
        (["schedules", "list"], "/api/schedules"),
        (["schedules", "get", "s-1"], "/api/schedules/s-1"),
        (["schedules", "runs", "s-1"], "/api/schedules/s-1/runs"),
        (["queue", "peek", "jobs-low"], "/runtime/queues/jobs-low/messages"),
        (["deadletters", "list"], "/api/deadletters"),
        (["jobs", "get", "j-1"], "/api/jobs/j-1"),
    )
]


@pytest.mark.parametrize(("argv", "path"), COMMANDS)
def test_an_unexpected_answer_is_one_line_and_exit_1_in_every_command_group(
    capsys: pytest.CaptureFixture[str],
    target: TargetServer,
    argv: list[str],
    path: str,
) -> None:
    # A prefix of its own per test, so no two tests share a scripted path.
    prefix = "/" + unique("not-duralane")
    target.route(respond(200), path=prefix + path)

    code, out, err = run_cli(capsys, target.base + prefix, *argv)

    assert code == 1, (out, err)
    assert err.startswith("duralane: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_a_refusal_whose_errors_name_no_field_still_gives_each_reason(
    capsys: pytest.CaptureFixture[str], target: TargetServer
) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        body = {"error": "invalid schedule", "errors": [{"reason": "too many"}]}
        return web.json_response(body, status=400)

    prefix = "/" + unique("refusing")
    target.route(refuse, path=prefix + "/api/schedules")
    schedule = json.dumps({"id": unique("cli-refused")})

    code, _, err = run_cli(
        capsys, target.base + prefix, "schedules", "create", schedule
    )

    assert (code, err.strip()) == (
        1,
        "duralane: 400: invalid schedule (body: too many)",
    )
