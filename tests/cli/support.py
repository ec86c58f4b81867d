"""Run one duralane command in-process and capture what it printed."""

from __future__ import annotations

import pytest

from duralane.cli import main

Run = tuple[int, str, str]


def run_cli(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> Run:
    """Exit code, stdout and stderr of one duralane command against a base URL."""
    code = main([*argv, "--url", url])
    out, err = capsys.readouterr()
    return code, out, err
