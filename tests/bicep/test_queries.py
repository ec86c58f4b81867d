"""The Kusto queries, workbook and alert rules read only the names the code emits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.bicep import bicep_checks as checks

QUERIES = checks.REPO / "queries"
KQL_FILES = sorted(QUERIES.glob("*.kql"))


def load_builder():
    """queries/build_workbook.py as a module (queries/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "build_workbook", QUERIES / "build_workbook.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_issue_s_queries_all_exist():
    names = {p.stem for p in KQL_FILES}
    assert {
        "start_lag",
        "throughput",
        "failure_rates",
        "dead_letters",
        "slowest_kinds",
        "job_trace",
    } <= names


@pytest.mark.parametrize("path", KQL_FILES, ids=lambda p: p.name)
def test_query_reads_only_emitted_events_and_attributes(path: Path):
    assert checks.log_name_problems(path.name, path.read_text()) == []


@pytest.mark.parametrize("path", KQL_FILES, ids=lambda p: p.name)
def test_query_reads_at_least_one_duralane_event(path: Path):
    assert "duralane." in path.read_text()


@pytest.mark.parametrize(
    "path", sorted(checks.BICEP_DIR.rglob("*.bicep")), ids=lambda p: p.name
)
def test_alert_queries_in_templates_read_only_emitted_names(path: Path):
    assert checks.log_name_problems(path.name, path.read_text()) == []


def test_name_check_reports_an_event_the_code_does_not_emit():
    query = 'traces | where message startswith "duralane.job.exploded"'
    assert checks.log_name_problems("q", query) == [
        "q: event 'duralane.job.exploded' is not defined in duralane/events.py"
    ]


def test_name_check_reports_an_unknown_attribute_in_dot_form():
    query = "traces | extend x = customDimensions.startLagSeconds"
    problems = checks.log_name_problems("q", query)
    assert problems == [
        "q: attribute customDimensions.startLagSeconds is not defined in "
        "duralane/events.py"
    ]


def test_name_check_reports_an_unknown_attribute_in_bracket_form():
    query = "traces | extend x = customDimensions['job_id']"
    assert len(checks.log_name_problems("q", query)) == 1


def test_name_check_accepts_defined_names():
    query = (
        'traces | where message startswith "duralane.job.started" '
        '| extend l = customDimensions["lane"], s = customDimensions.startLagMs'
    )
    assert checks.log_name_problems("q", query) == []


def test_workbook_is_what_the_builder_writes():
    committed = (QUERIES / "duralane.workbook.json").read_text()
    assert committed == load_builder().render(), (
        "run `python queries/build_workbook.py` and commit the result"
    )


def test_workbook_charts_every_query():
    builder = load_builder()
    workbook = json.loads((QUERIES / "duralane.workbook.json").read_text())
    queries = [i["content"]["query"] for i in workbook["items"] if i["type"] == 3]
    for path in KQL_FILES:
        assert builder.query_text(path.name) in queries, path.name


def test_workbook_binds_the_job_id_parameter():
    workbook = (QUERIES / "duralane.workbook.json").read_text()
    assert "{JobId}" in workbook
    assert "<job id>" not in workbook
