"""What every duralane command shares: the connection, auth, errors, output.

Exit codes of every command that talks to a runtime or a deployment:

  0  ok
  1  failed: the server refused or the job did not succeed
  2  usage: bad arguments or an unreadable input file
  3  unreachable: no answer from --url (or no Entra ID token)
  4  not found: no job, dead letter or schedule with that id
  5  partly failed: a bulk action where some items failed (each is listed)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TextIO

import httpx

# The object add_subparsers() returns; each command module adds its parsers to it.
Commands = argparse._SubParsersAction

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_FOUND = 4
EXIT_PARTIAL = 5
EXIT_CODES = (__doc__ or "").rsplit("\n\n", 1)[-1].rstrip()
Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A failure to report as one line, with the exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Where the runtime or Azure deployment is, how to sign in, how to print."""
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
    parser.add_argument(
        "--aad-scope",
        default=os.environ.get("DURALANE_AAD_SCOPE", ""),
        metavar="SCOPE",
        help="get an Entra ID token for SCOPE (e.g. api://<app-id>/.default) with "
        "DefaultAzureCredential and send it as a bearer token "
        "(env DURALANE_AAD_SCOPE)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request (default 30)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit codes:\n" + EXIT_CODES


def request(
    args: argparse.Namespace, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """Send one request, turning connection trouble into a one-line error."""
    headers = {**kwargs.pop("headers", {}), **auth_headers(args)}
    try:
        return client(args).request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach {args.url}: {exc or type(exc).__name__}", EXIT_UNREACHABLE
        ) from exc


def call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request and return the JSON of a 2xx answer."""
    return checked(request(args, method, path, **kwargs))


def checked(response: httpx.Response) -> Any:
    """The JSON body of a success, or a CliError carrying the server's reason."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()
    if response.status_code < 400:
        return body
    code = EXIT_NOT_FOUND if response.status_code == 404 else EXIT_FAILED
    raise CliError(f"{response.status_code}: {reason(body)}", code)


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


_clients: dict[str, httpx.Client] = {}
_tokens: dict[str, tuple[str, float]] = {}


def guarded(handler: Handler) -> Handler:
    """Any failure becomes one line and an exit code; never a stack trace."""

    @wraps(handler)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (CliError, KeyboardInterrupt):
            raise
        except OSError as exc:
            raise CliError(
                f"{exc.strerror or exc}: {exc.filename}", EXIT_USAGE
            ) from exc
        except Exception as exc:
            raise CliError(f"{type(exc).__name__}: {exc}", EXIT_FAILED) from exc

    return wrapper


def reason(body: Any) -> str:
    """The server's error in one line, field errors included."""
    if not isinstance(body, dict):
        text = str(body) or "no reason given"
        return " ".join(text.split())[:300]
    message = str(body.get("error", body))
    fields = [
        f"{e.get('field') or 'body'}: {e.get('reason')}"
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return f"{message} ({'; '.join(fields)})" if fields else message


def client(args: argparse.Namespace) -> httpx.Client:
    """One connection pool per base URL, so bulk work reuses connections."""
    base = args.url.rstrip("/")
    if base not in _clients:
        _clients[base] = httpx.Client(base_url=base, timeout=args.timeout)
    return _clients[base]


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """The function key and, with --aad-scope, an Entra ID bearer token."""
    headers = {}
    if args.key:
        headers["x-functions-key"] = args.key
    if args.aad_scope:
        headers["Authorization"] = f"Bearer {token(args.aad_scope)}"
    return headers


def token(scope: str) -> str:
    """A cached Entra ID token for the scope, from DefaultAzureCredential."""
    cached = _tokens.get(scope)
    if cached and cached[1] - 60 > time.time():
        return cached[0]
    try:
        from azure.identity import DefaultAzureCredential

        access = DefaultAzureCredential().get_token(scope)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CliError(
            f"no Entra ID token for {scope}: {type(exc).__name__}: {first_line}",
            EXIT_UNREACHABLE,
        ) from exc
    _tokens[scope] = (access.token, float(access.expires_on))
    return access.token


class Progress:
    """A one-line progress bar on stderr, so stdout stays clean for --json."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.done = 0
        self.failed = 0
        self._last = 0.0
        self._drawn = -1

    def step(self, ok: bool) -> None:
        """Count one item and redraw at most ten times a second."""
        self.done += 1
        self.failed += 0 if ok else 1
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done == self.total:
            self._last = now
            self.draw()

    def draw(self) -> None:
        """Redraw the bar in place."""
        width = 30
        filled = width * self.done // self.total if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {self.done}/{self.total} failed {self.failed}"
        )
        self.stream.flush()
        self._drawn = self.done

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn != self.done:
            self.draw()
        self.stream.write("\n")
        self.stream.flush()


def short_time(value: Any) -> str:
    """An ISO timestamp to the second, for table cells."""
    text = str(value or "")
    return text[:19].replace("T", " ") if text else "-"


def cell(value: Any) -> str:
    """A table cell: '-' for missing, one line, at most 60 characters."""
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
