"""The duralane command: run the embedded runtime and talk to a running one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from duralane.runtime.app import AppLoadError
from duralane.runtime.config import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_FOUND = 4


class CliError(Exception):
    """A failure to report as one line, with the exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the duralane console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        result: int = args.handler(args)
        return result
    except CliError as exc:
        print(f"duralane: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """All commands and their options."""
    parser = argparse.ArgumentParser(
        prog="duralane", description="Duralane job scheduler and embedded runtime."
    )
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser(
        "run", help="serve function_app.py on the embedded runtime"
    )
    run.add_argument("--app", type=Path, default=Path("function_app.py"))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=7071)
    run.add_argument("--data-dir", type=Path, default=Path(".duralane"))
    run.add_argument(
        "--log-level", default=os.environ.get("DURALANE_LOG_LEVEL", "INFO")
    )
    run.set_defaults(handler=run_command)

    queue = commands.add_parser("queue", help="send to and inspect the local queues")
    queue_commands = queue.add_subparsers(title="queue commands")
    send = queue_commands.add_parser("send", help="send one message")
    send.add_argument("queue")
    send.add_argument("body", help="message body; @file reads a file, - reads stdin")
    send.add_argument("--message-id")
    send.add_argument("--content-type", default="application/json")
    send.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
    add_connection_options(send)
    send.set_defaults(handler=queue_send)
    peek = queue_commands.add_parser("peek", help="show messages without locking them")
    peek.add_argument("queue")
    peek.add_argument("--count", type=int, default=10)
    add_connection_options(peek)
    peek.set_defaults(handler=queue_peek)
    dead = queue_commands.add_parser("dead-letters", help="show dead-lettered messages")
    dead.add_argument("queue")
    dead.add_argument("--count", type=int, default=10)
    add_connection_options(dead)
    dead.set_defaults(handler=queue_dead_letters)
    return parser


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Where the runtime or Azure deployment is, and the key for it."""
    parser.add_argument(
        "--url",
        default=os.environ.get("DURALANE_URL", "http://127.0.0.1:7071"),
        help="base URL of the runtime or Function App (env DURALANE_URL)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("DURALANE_API_KEY", ""),
        help="API or function key (env DURALANE_API_KEY)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def run_command(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C."""
    from duralane.runtime.host import Runtime, RuntimeConfigError, RuntimeOptions

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = RuntimeOptions(
        app=args.app, host=args.host, port=args.port, data_dir=args.data_dir
    )
    try:
        runtime = Runtime(options)
    except (AppLoadError, ConfigError, RuntimeConfigError) as exc:
        raise CliError(str(exc)) from exc
    try:
        asyncio.run(runtime.serve_forever())
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from exc
    return EXIT_OK


def request(
    args: argparse.Namespace, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """Call the runtime, turning connection trouble into a one-line error."""
    headers = kwargs.pop("headers", {})
    if args.key:
        headers["x-functions-key"] = args.key
    try:
        return httpx.request(
            method, args.url.rstrip("/") + path, headers=headers, timeout=30, **kwargs
        )
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {args.url}: {exc}", EXIT_UNREACHABLE) from exc


def checked(response: httpx.Response) -> Any:
    """The JSON body of a success, or a CliError carrying the server's reason."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        reason = body.get("error", body) if isinstance(body, dict) else body
        code = EXIT_NOT_FOUND if response.status_code == 404 else EXIT_FAILED
        raise CliError(f"{response.status_code}: {reason}", code)
    return body


def read_body(text: str) -> bytes:
    """A literal body, @file, or - for standard input."""
    if text == "-":
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise CliError(f"body file {path} does not exist", EXIT_USAGE)
        return path.read_bytes()
    return text.encode()


def queue_send(args: argparse.Namespace) -> int:
    """Send one message to a local queue."""
    headers = {"Content-Type": args.content_type}
    if args.message_id:
        headers["x-message-id"] = args.message_id
    if args.property:
        pairs = [p.split("=", 1) for p in args.property]
        if any(len(p) != 2 for p in pairs):
            raise CliError("--property takes KEY=VALUE", EXIT_USAGE)
        headers["x-application-properties"] = json.dumps(dict(pairs))
    body = read_body(args.body)
    result = checked(
        request(
            args,
            "POST",
            f"/runtime/queues/{args.queue}/messages",
            content=body,
            headers=headers,
        )
    )
    if args.json:
        print(json.dumps(result))
    else:
        note = " (duplicate, dropped)" if result["duplicate"] else ""
        print(
            f"sent {result['messageId']} to {args.queue} "
            f"as #{result['sequenceNumber']}{note}"
        )
    return EXIT_OK


def queue_peek(args: argparse.Namespace) -> int:
    """List messages waiting on a local queue."""
    found = checked(
        request(
            args,
            "GET",
            f"/runtime/queues/{args.queue}/messages",
            params={"count": args.count},
        )
    )
    print_messages(args, found, dead=False)
    return EXIT_OK


def queue_dead_letters(args: argparse.Namespace) -> int:
    """List a local queue's dead letters with their reasons."""
    found = checked(
        request(
            args,
            "GET",
            f"/runtime/queues/{args.queue}/deadletters",
            params={"count": args.count},
        )
    )
    print_messages(args, found, dead=True)
    return EXIT_OK


def print_messages(
    args: argparse.Namespace, found: list[dict[str, Any]], dead: bool
) -> None:
    """A table for people, JSON for scripts."""
    if args.json:
        print(json.dumps(found, indent=2))
        return
    if not found:
        print("no messages")
        return
    columns = ["sequence_number", "message_id", "delivery_count", "enqueued_time"]
    if dead:
        columns += ["dead_letter_reason", "dead_letter_description"]
    print_table(columns, [[str(m.get(c, "")) for c in columns] for m in found])


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns sized to their widest cell."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
