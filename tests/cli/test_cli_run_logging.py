"""duralane run logs from a thread of its own, and refuses a level it cannot use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from logging.handlers import QueueHandler
from pathlib import Path

import pytest

from duralane.cli import main
from duralane.cli.run import _log_from_a_thread
from duralane.runtime.config import LOG_TAG_SETTING, log_format
from tests.runtime.conftest import ORCHESTRATION_APP
from tests.runtime.harness import LISTENING, RuntimeProcess


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_are_written_by_the_writer_thread_and_all_flushed_on_stop(
    capsys: pytest.CaptureFixture[str], root_logging: logging.Logger
) -> None:
    writers: set[str] = set()

    def note_writer(record: logging.LogRecord) -> bool:
        writers.add(threading.current_thread().name)
        return True

    root_logging.handlers[:] = []
    writer = _log_from_a_thread("INFO")
    assert writer is not None
    (console,) = writer.handlers
    console.addFilter(note_writer)
    logger = logging.getLogger("tests.cli.run_logging")

    for number in range(500):
        logger.info("line %d of the run", number)
    logger.debug("below the level")
    writer.stop()

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 500
    assert lines[0].endswith("INFO tests.cli.run_logging: line 0 of the run")
    assert lines[-1].endswith("INFO tests.cli.run_logging: line 499 of the run")
    assert [type(h) for h in root_logging.handlers] == [QueueHandler]
    assert threading.current_thread().name not in writers


def test_a_log_level_that_is_not_one_is_a_sentence_and_exit_1(
    capsys: pytest.CaptureFixture[str], root_logging: logging.Logger
) -> None:
    code = main(["run", "--log-level", "chatty", "--port", "0"])

    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0
    assert "--log-level 'chatty' is not a level" in err


def test_a_log_tag_marks_every_line_of_a_runtime_and_its_episode_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both use log_format, so runtimes sharing a terminal can be told apart."""
    record = logging.LogRecord("duralane.x", logging.INFO, "", 0, "hello", None, None)

    monkeypatch.delenv(LOG_TAG_SETTING, raising=False)
    plain = logging.Formatter(log_format()).format(record)
    monkeypatch.setenv(LOG_TAG_SETTING, "normal,low")
    tagged = logging.Formatter(log_format()).format(record)

    assert plain.endswith(" INFO duralane.x: hello")
    assert tagged.endswith(" INFO [normal,low] duralane.x: hello")


def test_a_tagged_runtime_says_so_in_its_lines(tmp_path: Path) -> None:
    runtime = RuntimeProcess(
        ORCHESTRATION_APP, tmp_path / "data", env={LOG_TAG_SETTING: "tag-7"}
    ).start()
    try:
        listening = runtime.wait_for_log(LISTENING, 10)
    finally:
        runtime.stop()

    line = next(line for line in runtime.lines if listening.group(0) in line)
    assert " INFO [tag-7] duralane.runtime.host: " in line
