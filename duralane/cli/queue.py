"""duralane queue: send to, peek at and read dead letters of the local queues."""

from __future__ import annotations

import argparse
import json
from typing import Any

from duralane.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Commands,
    add_connection_options,
    checked,
    print_table,
    read_body,
    request,
)


def register(commands: Commands) -> None:
    """Add the queue command group."""
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
