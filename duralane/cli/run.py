"""duralane run: serve an app on the embedded runtime."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import traceback
from pathlib import Path

from duralane.cli.common import EXIT_OK, CliError, Commands
from duralane.runtime.app import AppLoadError
from duralane.runtime.config import ConfigError

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
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Serve the app until Ctrl-C."""
    from duralane.runtime.host import Runtime, RuntimeConfigError, RuntimeOptions

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        # The Azure SDKs log every HTTP request and response at INFO.
        logging.getLogger("azure").setLevel(logging.WARNING)
    options = RuntimeOptions(
        app=args.app, host=args.host, port=args.port, data_dir=args.data_dir
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
