"""duralane run: serve an app on the embedded runtime."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import queue
import traceback
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path

from duralane.cli.common import EXIT_OK, CliError, Commands
from duralane.runtime.app import AppLoadError
from duralane.runtime.config import ConfigError, log_format

CRASH_LOG = "crash.log"


def register(commands: Commands) -> None:
    """Add the run command."""
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
    run.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="HUB=URL",
        help="a task hub another runtime runs, at its base URL (repeatable)",
    )
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C."""
    log_writer = _log_from_a_thread(args.log_level.upper())
    try:
        return _serve(args)
    finally:
        if log_writer is not None:
            log_writer.stop()


def _log_from_a_thread(level: str) -> QueueListener | None:
    """Log as basicConfig would, but write the lines from a thread of their own.

    Each write to stderr gives up the interpreter lock for its system call, and
    on the runtime's busy event loop getting it back took milliseconds per
    line. Now the loop only queues the formatted record. Lines still queued
    when the process is killed with SIGKILL are lost; any other exit writes
    them all. Like basicConfig, it adds nothing where logging is set up
    already (an embedding process), and then returns None.
    """
    if not isinstance(logging.getLevelName(level), int):
        raise CliError(
            f"--log-level {level.lower()!r} is not a level; use DEBUG, INFO, "
            "WARNING, ERROR or CRITICAL"
        )
    root = logging.getLogger()
    if root.handlers:
        return None
    root.setLevel(level)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter(log_format()))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.addHandler(QueueHandler(records))
    writer = QueueListener(records, console, respect_handler_level=True)
    writer.start()
    return writer


def _peers(pairs: list[str]) -> dict[str, str]:
    """--peer HUB=URL options as a mapping; a malformed one is a CliError."""
    peers: dict[str, str] = {}
    for pair in pairs:
        hub, sep, url = pair.partition("=")
        if not sep or not hub.strip() or not url.strip():
            raise CliError(
                f"--peer {pair!r} is not HUB=URL, such as "
                "DuralaneHigh=http://127.0.0.1:7072"
            )
        if hub.strip() in peers:
            raise CliError(f"--peer names task hub {hub.strip()!r} twice")
        peers[hub.strip()] = url.strip()
    return peers


def _serve(args: argparse.Namespace) -> int:
    """Build the runtime and serve it; a bad app or setting becomes a CliError."""
    from duralane.runtime.host import Runtime, RuntimeConfigError, RuntimeOptions

    if logging.getLogger().level > logging.DEBUG:
        # The Azure SDKs log every HTTP request and response at INFO.
        logging.getLogger("azure").setLevel(logging.WARNING)
    options = RuntimeOptions(
        app=args.app,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        peers=_peers(args.peer),
    )
    try:
        runtime = Runtime(options)
    except (AppLoadError, ConfigError, RuntimeConfigError) as exc:
        raise CliError(str(exc)) from exc
    try:
        asyncio.run(runtime.serve_forever())
    except RuntimeConfigError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}"
        ) from exc
    except Exception as exc:
        # A bug, not a setting: one line here, the whole trace where a
        # maintainer can read it.
        crash_log = args.data_dir / CRASH_LOG
        crash_log.write_text("".join(traceback.format_exception(exc)))
        raise CliError(
            f"the runtime stopped on an unexpected {type(exc).__name__}: {exc} "
            f"(traceback in {crash_log})"
        ) from exc
    return EXIT_OK
