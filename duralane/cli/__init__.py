"""The duralane command: run the embedded runtime and talk to a running one.

Every module in this package that defines register(commands) adds its own
command group, so a new group is one new module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from duralane.cli.common import EXIT_USAGE, CliError, guarded


def build_parser() -> argparse.ArgumentParser:
    """All commands and their options, gathered from the package's modules."""
    parser = argparse.ArgumentParser(
        prog="duralane", description="Duralane job scheduler and embedded runtime."
    )
    commands = parser.add_subparsers(title="commands")
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name == "__main__":
            # Importing it runs the command line, which made main(argv) in-process
            # parse sys.argv instead, and `python -m` run each command nested.
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the duralane console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    # Guarded here rather than per handler, so no command can forget it.
    handler = guarded(args.handler)
    try:
        return handler(args)
    except CliError as exc:
        print(f"duralane: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
