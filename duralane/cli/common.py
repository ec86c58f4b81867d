"""What every duralane command shares: the connection, errors, exit codes, tables."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx

# The object add_subparsers() returns; each command module adds its parsers to it.
Commands = argparse._SubParsersAction

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


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns sized to their widest cell."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
