"""duralane deadletters: list, inspect, replay and purge, one or all matching.

Exit codes: 0 ok, 1 failed, 2 usage, 3 unreachable, 4 not found, 5 partly failed
(see duralane.cli.common).
"""

from __future__ import annotations

import argparse
import json
import logging
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
    print_table,
    short_time,
)
from duralane.cli.jobs import LANES, collect

logger = logging.getLogger(__name__)

COLUMNS = ["id", "source", "lane", "kind", "attempts", "dead_lettered", "reason"]


def register(commands: Commands) -> None:
    """Add the deadletters command group."""
    group = commands.add_parser(
        "deadletters", help="inspect, replay and purge dead letters"
    )
    sub = group.add_subparsers(title="deadletters commands")

    listing = sub.add_parser("list", help="dead letters newest first, filtered")
    _add_filters(listing, source=True)
    listing.add_argument(
        "--limit", type=int, default=50, help="at most this many (default 50)"
    )
    add_connection_options(listing)
    listing.set_defaults(handler=deadletters_list)

    get = sub.add_parser("get", help="one dead letter: reason, attempts, spec")
    get.add_argument("id")
    add_connection_options(get)
    get.set_defaults(handler=deadletters_get)

    replay = sub.add_parser("replay", help="run one dead-lettered job again")
    replay.add_argument("id")
    add_connection_options(replay)
    replay.set_defaults(handler=deadletters_replay)

    replay_all = sub.add_parser(
        "replay-all",
        help="replay every job dead letter matching the filters, with progress",
    )
    _add_filters(replay_all, source=False)
    replay_all.add_argument(
        "--limit", type=int, default=10_000, help="at most this many (default 10000)"
    )
    add_connection_options(replay_all)
    replay_all.set_defaults(handler=deadletters_replay_all)

    purge_all = sub.add_parser(
        "purge-all",
        help="delete every dead letter matching the filters for good, with "
        "progress; needs --yes",
    )
    _add_filters(purge_all, source=True)
    purge_all.add_argument(
        "--limit", type=int, default=10_000, help="at most this many (default 10000)"
    )
    purge_all.add_argument(
        "--yes",
        action="store_true",
        help="really delete them; without it, only say how many would go",
    )
    add_connection_options(purge_all)
    purge_all.set_defaults(handler=deadletters_purge_all)

    purge = sub.add_parser("purge", help="delete one dead letter for good")
    purge.add_argument("id")
    add_connection_options(purge)
    purge.set_defaults(handler=deadletters_purge)


def _add_filters(parser: argparse.ArgumentParser, source: bool) -> None:
    parser.add_argument("--lane", choices=LANES)
    parser.add_argument("--kind")
    if source:
        parser.add_argument(
            "--source",
            choices=["job", "queue"],
            help="job: attempts ran out; queue: a message that never became a job",
        )
    parser.add_argument("--since", help="dead-lettered at or after (ISO 8601)")
    parser.add_argument("--until", help="dead-lettered before (ISO 8601)")


def _filters(args: argparse.Namespace) -> dict[str, str]:
    names = ("lane", "kind", "source", "since", "until")
    return {n: getattr(args, n) for n in names if getattr(args, n, None)}


def _letters(args: argparse.Namespace, extra: dict[str, str]) -> list[dict[str, Any]]:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    return collect(args, "/api/deadletters", {**_filters(args), **extra}, args.limit)


def deadletters_list(args: argparse.Namespace) -> int:
    """Print matching dead letters."""
    letters = _letters(args, {})
    if args.json:
        print(json.dumps(letters, indent=2))
    elif letters:
        print_table(COLUMNS, [_row(letter) for letter in letters])
    else:
        print("no dead letters")
    return EXIT_OK


def _row(letter: dict[str, Any]) -> list[str]:
    return [
        cell(letter.get("id")),
        cell(letter.get("source")),
        cell(letter.get("lane")),
        cell(letter.get("kind")),
        str(len(letter.get("attempts") or [])),
        short_time(letter.get("deadLetteredAt")),
        cell(letter.get("reason")),
    ]


def deadletters_get(args: argparse.Namespace) -> int:
    """Print one dead letter with each attempt's error."""
    letter = call(args, "GET", f"/api/deadletters/{args.id}")
    if args.json:
        print(json.dumps(letter, indent=2))
        return EXIT_OK
    fields = [
        ("id", letter.get("id")),
        ("source", letter.get("source")),
        ("lane", letter.get("lane")),
        ("kind", letter.get("kind")),
        ("dead lettered", short_time(letter.get("deadLetteredAt"))),
        ("reason", letter.get("reason")),
        ("description", letter.get("description")),
        ("queue", letter.get("queue")),
        ("message id", letter.get("messageId")),
    ]
    for name, value in fields:
        if value not in (None, ""):
            print(f"{name + ':':<16}{value}")
    attempts = letter.get("attempts") or []
    if attempts:
        print()
        print_table(
            ["attempt", "run", "started", "outcome", "error"],
            [
                [
                    str(a.get("number")),
                    str(a.get("run")),
                    short_time(a.get("startedAt")),
                    cell(a.get("outcome")),
                    cell(a.get("error")),
                ]
                for a in attempts
            ],
        )
    original = letter.get("spec") or letter.get("body")
    if original:
        print()
        print("original:")
        text = original if isinstance(original, str) else json.dumps(original, indent=2)
        print(text)
    return EXIT_OK


def deadletters_replay(args: argparse.Namespace) -> int:
    """Start a dead-lettered job again under a new run."""
    result = call(args, "POST", f"/api/deadletters/{args.id}/replay")
    job = result["job"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"replaying job {job['id']} as run {job.get('run')} ({job['status']})")
    return EXIT_OK


def deadletters_replay_all(args: argparse.Namespace) -> int:
    """Replay each matching job dead letter one by one, so each failure is named."""
    # Queue dead letters hold a message that never became a job: nothing to replay.
    letters = _letters(args, {"source": "job"})
    replayed, failed = _one_by_one(args, letters, "replaying", "POST", "/replay")
    return _report(args, "replayed", len(letters), replayed, failed)


def deadletters_purge_all(args: argparse.Namespace) -> int:
    """Delete each matching dead letter one by one, but only when told --yes."""
    letters = _letters(args, {})
    if not args.yes:
        noun = "dead letter" if len(letters) == 1 else "dead letters"
        capped = " (--limit stops it there; more may match)"
        raise CliError(
            f"purge-all would delete {len(letters)} {noun} for good"
            f"{capped if len(letters) == args.limit else ''}; add --yes to do it",
            EXIT_USAGE,
        )
    purged, failed = _one_by_one(args, letters, "purging", "DELETE", "")
    return _report(args, "purged", len(letters), purged, failed)


def _one_by_one(
    args: argparse.Namespace,
    letters: list[dict[str, Any]],
    label: str,
    method: str,
    suffix: str,
) -> tuple[list[str], list[dict[str, str]]]:
    """One request per dead letter with progress: the ids done and each failure."""
    progress = Progress(len(letters), label)
    done: list[str] = []
    failed: list[dict[str, str]] = []
    for letter in letters:
        letter_id = str(letter["id"])
        try:
            call(args, method, f"/api/deadletters/{letter_id}{suffix}")
        except CliError as exc:
            if exc.code == EXIT_UNREACHABLE:
                progress.close()
                raise
            failed.append({"id": letter_id, "reason": str(exc)})
            progress.step(ok=False)
            continue
        done.append(letter_id)
        progress.step(ok=True)
    if letters:
        progress.close()
    return done, failed


def _report(
    args: argparse.Namespace,
    verb: str,
    matched: int,
    done: list[str],
    failed: list[dict[str, str]],
) -> int:
    """Each failure and the totals; 0 if none failed, 5 if some, 1 if all."""
    if args.json:
        print(json.dumps({"matched": matched, verb: done, "failed": failed}))
    else:
        for failure in failed:
            print(f"{failure['id']}: {failure['reason']}")
        print(f"{verb} {len(done)} of {matched}, {len(failed)} failed")
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if done else EXIT_FAILED


def deadletters_purge(args: argparse.Namespace) -> int:
    """Delete one dead letter."""
    result = call(args, "DELETE", f"/api/deadletters/{args.id}")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"purged dead letter {args.id}")
    return EXIT_OK
