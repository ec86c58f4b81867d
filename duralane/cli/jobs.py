"""duralane submit and duralane jobs: submit one job or a JSON-lines file, list,
watch and cancel jobs, against a local runtime or an Azure deployment.

Exit codes: 0 ok, 1 failed, 2 usage, 3 unreachable, 4 not found, 5 partly failed
(see duralane.cli.common).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
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
    Progress,
    add_connection_options,
    call,
    cell,
    checked,
    print_table,
    request,
    short_time,
)

logger = logging.getLogger(__name__)

FINAL = {"succeeded", "dead_lettered", "cancelled"}
STATUSES = ["queued", "running", "succeeded", "failed", "dead_lettered", "cancelled"]
LANES = ["high", "normal", "low"]
JOB_COLUMNS = ["id", "status", "lane", "kind", "attempts", "start_lag_ms", "created"]


def register(commands: Commands) -> None:
    """Add `submit` and the `jobs` command group."""
    submit = commands.add_parser(
        "submit",
        help="submit one job, or many from a JSON-lines file with --bulk",
        description="Submit a job: SOURCE is a JSON file, - for standard input, or "
        "the JSON itself. With --bulk, SOURCE is a JSON-lines file (one job per "
        "line; blank lines and lines starting with # are skipped).",
    )
    submit.add_argument("source", metavar="FILE|-|JSON")
    submit.add_argument(
        "--bulk", action="store_true", help="SOURCE holds one job per line"
    )
    add_connection_options(submit)
    submit.set_defaults(handler=submit_command)

    jobs = commands.add_parser("jobs", help="list, inspect, watch and cancel jobs")
    job_commands = jobs.add_subparsers(title="jobs commands")

    listing = job_commands.add_parser("list", help="jobs newest first, filtered")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--lane", choices=LANES)
    listing.add_argument("--kind")
    listing.add_argument("--tag")
    listing.add_argument("--since", help="created at or after (ISO 8601)")
    listing.add_argument("--until", help="created before (ISO 8601)")
    listing.add_argument(
        "--limit", type=int, default=50, help="at most this many (default 50)"
    )
    listing.add_argument(
        "--watch", action="store_true", help="redraw every --interval until Ctrl-C"
    )
    listing.add_argument("--interval", type=float, default=2.0, help="seconds")
    add_connection_options(listing)
    listing.set_defaults(handler=jobs_list)

    get = job_commands.add_parser("get", help="one job with every attempt")
    get.add_argument("id")
    get.add_argument(
        "--watch",
        action="store_true",
        help="follow the job until it is final; exit 0 only if it succeeded",
    )
    get.add_argument("--interval", type=float, default=1.0, help="seconds")
    add_connection_options(get)
    get.set_defaults(handler=jobs_get)

    cancel = job_commands.add_parser("cancel", help="cancel a job not yet final")
    cancel.add_argument("id")
    add_connection_options(cancel)
    cancel.set_defaults(handler=jobs_cancel)


def submit_command(args: argparse.Namespace) -> int:
    """Submit one job, or every line of a JSON-lines file."""
    if args.bulk:
        return submit_bulk(args)
    result, status = _post_job(args, _single_job(args.source))
    job = result["job"]
    if args.json:
        print(json.dumps({**result, "created": status == 202}, indent=2))
    elif status == 202:
        print(f"submitted job {job['id']} ({job['lane']}, {job['status']})")
        print(f"status: {result.get('statusUrl', '')}")
    else:
        print(f"job {job['id']} already exists under this key ({job['status']})")
        print(f"status: {result.get('statusUrl', '')}")
    return EXIT_OK


def _single_job(source: str) -> Any:
    """The job JSON from a file, standard input, or the argument itself."""
    if source == "-":
        text = sys.stdin.read()
    elif source.lstrip().startswith("{"):
        text = source
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"{source}: no such file (nor a JSON object)", EXIT_USAGE)
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{source if source != '-' else 'stdin'}: not JSON: {exc.msg} at line "
            f"{exc.lineno} column {exc.colno}",
            EXIT_USAGE,
        ) from exc


def submit_bulk(args: argparse.Namespace) -> int:
    """Submit each line; report every failure by line number, then a summary."""
    lines = list(_numbered_lines(args.source))
    progress = Progress(len(lines), "submitting")
    created: list[str] = []
    existing: list[str] = []
    failures: list[dict[str, Any]] = []
    for number, text in lines:
        try:
            job = json.loads(text)
        except json.JSONDecodeError as exc:
            failures.append({"line": number, "reason": f"not JSON: {exc.msg}"})
            progress.step(ok=False)
            continue
        try:
            result, status = _post_job(args, job)
        except CliError as exc:
            if exc.code == EXIT_UNREACHABLE:
                progress.close()
                raise
            failures.append({"line": number, "reason": str(exc)})
            progress.step(ok=False)
            continue
        (created if status == 202 else existing).append(result["job"]["id"])
        progress.step(ok=True)
    progress.close()
    return _bulk_summary(args, len(lines), created, existing, failures)


def _post_job(args: argparse.Namespace, job: Any) -> tuple[dict[str, Any], int]:
    """POST one job; the JSON answer and its status code (202 new, 200 existing)."""
    response = request(args, "POST", "/api/jobs", json=job)
    return checked(response), response.status_code


def _numbered_lines(source: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each job line; blanks and # comments skipped."""
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise CliError(f"{source}: no such file", EXIT_USAGE)
        text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _bulk_summary(
    args: argparse.Namespace,
    total: int,
    created: list[str],
    existing: list[str],
    failures: list[dict[str, Any]],
) -> int:
    """Print what happened to each line that failed, and the totals."""
    if args.json:
        print(
            json.dumps(
                {
                    "total": total,
                    "submitted": len(created) + len(existing),
                    "created": created,
                    "existing": existing,
                    "failed": failures,
                },
                indent=2,
            )
        )
    else:
        for failure in failures:
            print(f"line {failure['line']}: {failure['reason']}")
        print(
            f"submitted {len(created) + len(existing)} of {total} "
            f"({len(created)} new, {len(existing)} existing), "
            f"{len(failures)} failed"
        )
    if not failures:
        return EXIT_OK
    return EXIT_PARTIAL if created or existing else EXIT_FAILED


def jobs_list(args: argparse.Namespace) -> int:
    """Print matching jobs, once or every --interval."""
    while True:
        jobs = _fetch_jobs(args)
        if args.watch and not args.json:
            # Clear the screen and home the cursor, as watch(1) does.
            sys.stdout.write("\x1b[2J\x1b[H")
            print(f"{time.strftime('%H:%M:%S')}  {len(jobs)} jobs")
        if args.json:
            print(json.dumps(jobs if not args.watch else {"items": jobs}))
        elif jobs:
            print_table(JOB_COLUMNS, [_job_row(j) for j in jobs])
        else:
            print("no jobs")
        sys.stdout.flush()
        if not args.watch:
            return EXIT_OK
        time.sleep(args.interval)


def _fetch_jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Up to --limit jobs, following continuation tokens."""
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    params = {
        name: getattr(args, name)
        for name in ("status", "lane", "kind", "tag", "since", "until")
        if getattr(args, name)
    }
    return collect(args, "/api/jobs", params, args.limit)


def collect(
    args: argparse.Namespace, path: str, params: dict[str, str], limit: int
) -> list[dict[str, Any]]:
    """Items from every page of a listing, up to the limit."""
    items: list[dict[str, Any]] = []
    continuation = None
    while len(items) < limit:
        page_params = {**params, "pageSize": str(min(1000, limit - len(items)))}
        if continuation:
            page_params["continuation"] = continuation
        page = call(args, "GET", path, params=page_params)
        items.extend(page["items"])
        continuation = page.get("continuation")
        if not continuation:
            break
    return items[:limit]


def _job_row(job: dict[str, Any]) -> list[str]:
    lag = job.get("startLagMs")
    return [
        cell(job.get("id")),
        cell(job.get("status")),
        cell(job.get("lane")),
        cell(job.get("kind")),
        str(len(job.get("attempts") or [])),
        "-" if lag is None else f"{float(lag):.0f}",
        short_time(job.get("createdAt")),
    ]


def jobs_get(args: argparse.Namespace) -> int:
    """Print one job; with --watch, follow it until it is final."""
    job = call(args, "GET", f"/api/jobs/{args.id}")
    if not args.watch:
        _print_job(args, job)
        return EXIT_OK

    seen = (job["status"], len(job.get("attempts") or []))
    if not args.json:
        print(f"{job['id']}: {job['status']}")
    while job["status"] not in FINAL:
        time.sleep(args.interval)
        job = call(args, "GET", f"/api/jobs/{args.id}")
        now = (job["status"], len(job.get("attempts") or []))
        if now != seen and not args.json:
            print(f"{job['id']}: {job['status']} (attempts {now[1]})")
            sys.stdout.flush()
        seen = now
    _print_job(args, job)
    return EXIT_OK if job["status"] == "succeeded" else EXIT_FAILED


def _print_job(args: argparse.Namespace, job: dict[str, Any]) -> None:
    """The job's fields, then its attempts as a table; or the JSON."""
    if args.json:
        print(json.dumps(job, indent=2))
        return
    lag = job.get("startLagMs")
    fields = [
        ("id", job.get("id")),
        ("status", job.get("status")),
        ("lane", job.get("lane")),
        ("kind", job.get("kind")),
        ("run", job.get("run")),
        ("tags", ", ".join(job.get("tags") or [])),
        ("created", short_time(job.get("createdAt"))),
        ("started", short_time(job.get("startedAt"))),
        ("finished", short_time(job.get("finishedAt"))),
        ("start lag ms", None if lag is None else f"{float(lag):.0f}"),
        ("dead letter reason", job.get("deadLetterReason")),
    ]
    for name, value in fields:
        print(f"{name + ':':<20}{cell(value)}")
    attempts = job.get("attempts") or []
    if attempts:
        print()
        print_table(
            ["attempt", "run", "started", "ended", "outcome", "error"],
            [
                [
                    str(a.get("number")),
                    str(a.get("run")),
                    short_time(a.get("startedAt")),
                    short_time(a.get("endedAt")),
                    cell(a.get("outcome")),
                    cell(a.get("error")),
                ]
                for a in attempts
            ],
        )


def jobs_cancel(args: argparse.Namespace) -> int:
    """Ask a job to stop; a finished job answers 409, exit 1."""
    result = call(args, "DELETE", f"/api/jobs/{args.id}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"cancel requested for job {result['job']['id']}")
    return EXIT_OK
