"""The scan of logging calls finds each event with the attributes its extra carries."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.bicep import emissions
from tests.bicep.emissions import Emission

EVENTS_PY = """
JOB_SUCCEEDED = "duralane.job.succeeded"
JOB_DEAD_LETTERED = "duralane.job.dead_lettered"
ATTR_JOB_ID = "jobId"
ATTR_ATTEMPT = "attempt"
ATTR_DURATION_MS = "durationMs"
"""


def scan(tmp_path: Path, module: str, name: str = "duralane/jobs/service.py"):
    """Emissions of one module placed in a throwaway tree next to EVENTS_PY."""
    (tmp_path / "duralane").mkdir(exist_ok=True)
    (tmp_path / "duralane" / "events.py").write_text(EVENTS_PY)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(module))
    return emissions.emissions(tmp_path, ["duralane"])


def test_the_repository_emits_every_job_lifecycle_event():
    emitted = emissions.attributes_by_event(emissions.emissions())
    for suffix in ("submitted", "started", "succeeded", "attempt_failed"):
        assert f"duralane.job.{suffix}" in emitted


def test_scan_reads_the_keys_of_a_literal_extra(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane import events
        def finish(logger, job_id):
            logger.info("%s job %s", events.JOB_SUCCEEDED, job_id,
                        extra={events.ATTR_JOB_ID: job_id, "plain": 1})
        """,
    )
    assert found == [
        Emission(
            "duralane.job.succeeded",
            frozenset({"jobId", "plain"}),
            "duralane/jobs/service.py",
            4,
        )
    ]


def test_scan_follows_a_spread_of_a_local_dict(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from typing import Any
        from duralane import events
        def finish(logger, job_id, ms):
            extra: dict[str, Any] = {events.ATTR_JOB_ID: job_id}
            logger.info("%s", events.JOB_SUCCEEDED,
                        extra={**extra, events.ATTR_DURATION_MS: ms})
        """,
    )
    assert found[0].attributes == {"jobId", "durationMs"}


def test_scan_follows_a_local_dict_passed_by_name_and_keys_stored_later(
    tmp_path: Path,
):
    found = scan(
        tmp_path,
        """
        from duralane import events
        def finish(logger, job_id, attempt):
            extra = {events.ATTR_JOB_ID: job_id}
            extra[events.ATTR_ATTEMPT] = attempt
            logger.warning("%s", events.JOB_DEAD_LETTERED, extra=extra)
        """,
    )
    assert found[0].attributes == {"jobId", "attempt"}


def test_scan_does_not_take_a_dict_from_another_function(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane import events
        def other(job_id, ms):
            extra = {events.ATTR_DURATION_MS: ms}
        def finish(logger, job_id):
            extra = {events.ATTR_JOB_ID: job_id}
            logger.info("%s", events.JOB_SUCCEEDED, extra=extra)
        """,
    )
    assert found[0].attributes == {"jobId"}


def test_scan_resolves_imported_names_and_module_aliases(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane.events import JOB_DEAD_LETTERED, ATTR_JOB_ID
        from duralane import events as ev
        SUCCEEDED = ev.JOB_SUCCEEDED
        HOLDER = "holder"
        def finish(logger, job_id):
            logger.info("%s", SUCCEEDED, extra={HOLDER: 1})
            logger.info("%s", JOB_DEAD_LETTERED, extra={ATTR_JOB_ID: job_id})
        """,
    )
    assert [(e.event, e.attributes) for e in found] == [
        ("duralane.job.succeeded", {"holder"}),
        ("duralane.job.dead_lettered", {"jobId"}),
    ]


def test_scan_counts_an_extra_it_cannot_read_as_carrying_nothing(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane import events
        def finish(logger, job_id):
            logger.info("%s", events.JOB_SUCCEEDED, extra=helper(job_id))
            logger.info("%s", events.JOB_DEAD_LETTERED)
        """,
    )
    assert [e.attributes for e in found] == [frozenset(), frozenset()]


def test_scan_ignores_calls_that_are_not_logging(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane import events
        counter = meter.create_counter(events.JOB_SUCCEEDED)
        def finish(job_id):
            record(events.JOB_SUCCEEDED, extra={events.ATTR_JOB_ID: job_id})
        """,
    )
    assert found == []


def test_scan_records_where_the_embedded_runtime_emits(tmp_path: Path):
    found = scan(
        tmp_path,
        """
        from duralane import events
        def fail(logger):
            logger.exception("%s", events.JOB_DEAD_LETTERED)
        """,
        name="duralane/runtime/triggers.py",
    )
    assert found[0].path.startswith(emissions.EMBEDDED_RUNTIME)
