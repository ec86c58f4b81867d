"""duralane schedules: create, inspect, pause, trigger and preview schedules."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from duralane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    Commands,
    add_connection_options,
    checked,
    read_body,
    request,
)
from duralane.cli.common import print_table as _print_table


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    """A table, or a line saying there is nothing to show."""
    if rows:
        _print_table(columns, rows)
    else:
        print("(none)")


def register(commands: Commands) -> None:
    """Add the schedules command group."""
    group = commands.add_parser("schedules", help="manage recurring and one-off jobs")
    sub = group.add_subparsers(title="schedules commands")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        add_connection_options(parser)
        parser.set_defaults(handler=handler)
        return parser

    command("list", schedules_list, "list schedules, soonest due first")
    for name, handler, text in (
        ("get", schedules_get, "show one schedule"),
        ("delete", schedules_delete, "delete a schedule (its runs stay)"),
        ("pause", schedules_pause, "stop firing until resumed"),
        ("resume", schedules_resume, "fire again"),
        ("trigger", schedules_trigger, "start a run now, even while paused"),
        ("runs", schedules_runs, "a schedule's runs with fire lag and status"),
    ):
        command(name, handler, text).add_argument("id")
    preview = command("preview", schedules_preview, "the next fire instants")
    preview.add_argument("id")
    preview.add_argument("--count", type=int, default=10)
    create = command("create", schedules_create, "create a schedule from JSON")
    create.add_argument("body", help="schedule JSON; @file reads a file, - stdin")
    update = command("update", schedules_update, "replace a schedule's declaration")
    update.add_argument("id")
    update.add_argument("body", help="schedule JSON; @file reads a file, - stdin")
    apply = command(
        "apply", schedules_apply, "create or update every schedule in a file"
    )
    apply.add_argument("file", type=Path)


def _show(args: argparse.Namespace, schedules: list[dict[str, Any]]) -> None:
    if args.json:
        print(json.dumps(schedules if len(schedules) != 1 else schedules[0], indent=2))
        return
    rows = []
    for item in schedules:
        declared = item["schedule"]
        if "cron" in declared:
            trigger = (
                f"cron {declared['cron']['expression']} {declared['cron']['timeZone']}"
            )
        elif "every" in declared:
            trigger = f"every {declared['every']['seconds']}s"
        else:
            trigger = f"at {declared['at']['instant']}"
        last = item.get("lastFire") or {}
        rows.append(
            [
                item["id"],
                trigger,
                declared["job"].get("kind", ""),
                "yes" if item["paused"] else "no",
                str(item.get("nextFireAt") or "-"),
                str(last.get("startedAt") or "-"),
                str(len(item.get("activeRunIds") or [])),
            ]
        )
    print_table(
        ["id", "trigger", "kind", "paused", "next fire", "last start", "active"], rows
    )


def schedules_list(args: argparse.Namespace) -> int:
    """Every schedule, following continuation tokens."""
    items: list[dict[str, Any]] = []
    continuation = None
    while True:
        params = {"pageSize": "1000"}
        if continuation:
            params["continuation"] = continuation
        page = checked(request(args, "GET", "/api/schedules", params=params))
        items += page["items"]
        continuation = page.get("continuation")
        if not continuation:
            break
    _show(args, items)
    return EXIT_OK


def schedules_get(args: argparse.Namespace) -> int:
    """One schedule."""
    _show(args, [checked(request(args, "GET", f"/api/schedules/{args.id}"))])
    return EXIT_OK


def _json_body(text: str) -> Any:
    try:
        return json.loads(read_body(text))
    except ValueError as exc:
        raise CliError(f"schedule is not JSON: {exc}", EXIT_USAGE) from exc


def schedules_create(args: argparse.Namespace) -> int:
    """Create one schedule."""
    body = _json_body(args.body)
    _show(args, [checked(request(args, "POST", "/api/schedules", json=body))])
    return EXIT_OK


def schedules_update(args: argparse.Namespace) -> int:
    """Replace one schedule's declaration."""
    body = _json_body(args.body)
    response = request(args, "PUT", f"/api/schedules/{args.id}", json=body)
    _show(args, [checked(response)])
    return EXIT_OK


def schedules_apply(args: argparse.Namespace) -> int:
    """Create or update every schedule in a file; name each entry that failed."""
    entries = _declared_entries(args.file)
    applied: list[dict[str, str]] = []
    failed: list[dict[str, Any]] = []
    for number, entry in enumerate(entries, start=1):
        schedule_id = entry.get("id") if isinstance(entry, dict) else None
        try:
            result = _apply_one(args, entry)
        except CliError as exc:
            if exc.code == EXIT_UNREACHABLE:
                raise
            failed.append({"entry": number, "id": schedule_id, "reason": str(exc)})
            continue
        applied.append({"id": str(schedule_id), "result": result})

    if args.json:
        summary = {"total": len(entries), "applied": applied, "failed": failed}
        print(json.dumps(summary, indent=2))
    else:
        if applied:
            print_table(["id", "result"], [[a["id"], a["result"]] for a in applied])
        for failure in failed:
            named = f" ({failure['id']})" if failure["id"] else ""
            print(f"entry {failure['entry']}{named}: {failure['reason']}")
        print(f"applied {len(applied)} of {len(entries)}, {len(failed)} failed")
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if applied else EXIT_FAILED


def _declared_entries(path: Path) -> list[Any]:
    """The entries of a schedules file: a list, or {"schedules": [...]}."""
    if not path.is_file():
        raise CliError(f"schedules file {path} does not exist", EXIT_USAGE)
    declared = _json_body(f"@{path}")
    entries = declared.get("schedules") if isinstance(declared, dict) else declared
    if not isinstance(entries, list):
        raise CliError(
            f'{path} holds no list of schedules, nor {{"schedules": [...]}}',
            EXIT_USAGE,
        )
    return entries


def _apply_one(args: argparse.Namespace, entry: Any) -> str:
    """Create or replace one declaration: created, updated or unchanged."""
    if not isinstance(entry, dict):
        raise CliError(f"not a schedule object but {json.dumps(entry)[:60]}")
    schedule_id = entry.get("id")
    if not isinstance(schedule_id, str) or not schedule_id:
        raise CliError("no id: apply finds the schedule to update by its id")
    current = request(args, "GET", f"/api/schedules/{schedule_id}")
    if current.status_code == 404:
        checked(request(args, "POST", "/api/schedules", json=entry))
        return "created"
    shown = checked(current)["schedule"]
    response = request(args, "PUT", f"/api/schedules/{schedule_id}", json=entry)
    return "unchanged" if checked(response)["schedule"] == shown else "updated"


def schedules_delete(args: argparse.Namespace) -> int:
    """Delete one schedule."""
    checked(request(args, "DELETE", f"/api/schedules/{args.id}"))
    if not args.json:
        print(f"deleted schedule {args.id}")
    return EXIT_OK


def schedules_pause(args: argparse.Namespace) -> int:
    """Pause one schedule."""
    _show(args, [checked(request(args, "POST", f"/api/schedules/{args.id}/pause"))])
    return EXIT_OK


def schedules_resume(args: argparse.Namespace) -> int:
    """Resume one schedule."""
    _show(args, [checked(request(args, "POST", f"/api/schedules/{args.id}/resume"))])
    return EXIT_OK


def schedules_trigger(args: argparse.Namespace) -> int:
    """Start a run now."""
    body = checked(request(args, "POST", f"/api/schedules/{args.id}/trigger"))
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"started run {body['run']['id']} ({body['run']['status']})")
    return EXIT_OK


def schedules_preview(args: argparse.Namespace) -> int:
    """The next fires, in UTC and on the schedule's wall clock."""
    path = f"/api/schedules/{args.id}/preview"
    body = checked(request(args, "GET", path, params={"count": str(args.count)}))
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        rows = [[f["atUtc"], f["atLocal"]] for f in body["fires"]]
        print_table(["utc", f"local ({body['timeZone']})"], rows)
    return EXIT_OK


def schedules_runs(args: argparse.Namespace) -> int:
    """A schedule's runs, newest first."""
    path = f"/api/schedules/{args.id}/runs"
    body = checked(request(args, "GET", path, params={"pageSize": "100"}))
    if args.json:
        print(json.dumps(body["items"], indent=2))
        return EXIT_OK
    rows = [
        [
            run["id"],
            run["scheduledAt"],
            str(run.get("startedAt") or "-"),
            f"{run['fireLagMs']:.0f}" if run.get("fireLagMs") is not None else "-",
            run["status"],
        ]
        for run in body["items"]
    ]
    print_table(["run", "scheduled", "started", "lag ms", "status"], rows)
    return EXIT_OK
