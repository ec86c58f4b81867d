"""The Kusto queries, workbook and alert rules read only the names the code emits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.bicep import bicep_checks as checks
from tests.bicep import emissions
from tests.bicep.emissions import Emission

QUERIES = checks.REPO / "queries"
KQL_FILES = sorted(QUERIES.glob("*.kql"))
FOUND = emissions.emissions()
DEFINED = emissions.defined_events()
ALERT_QUERIES = [q for t in checks.repo_templates() for q in checks.alert_queries(t)]


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


@pytest.mark.parametrize("path", KQL_FILES, ids=lambda p: p.name)
def test_query_reads_each_attribute_from_an_event_that_carries_it(path: Path):
    problems = emissions.query_attribute_problems(
        path.name, path.read_text(), FOUND, DEFINED
    )
    assert problems == []


@pytest.mark.parametrize(("where", "query"), ALERT_QUERIES, ids=lambda q: q[:40])
def test_alert_query_reads_each_attribute_from_an_event_that_carries_it(
    where: str, query: str
):
    assert emissions.query_attribute_problems(where, query, FOUND, DEFINED) == []


@pytest.mark.parametrize(("where", "query"), ALERT_QUERIES, ids=lambda q: q[:40])
def test_alert_query_reads_what_azure_records(where: str, query: str):
    assert emissions.embedded_only_problems(where, query, FOUND, DEFINED) == []


def test_the_alert_rules_have_queries_to_check():
    assert len(ALERT_QUERIES) >= 4


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


# Seeded faults of the attribute check: emissions stated outright, so the tests
# hold whatever the code logs today.
SUCCEEDED_WITHOUT_DURATION = Emission(
    "duralane.job.succeeded", frozenset({"jobId", "lane", "kind"}), "service.py", 1
)
DEAD_LETTERED = Emission(
    "duralane.job.dead_lettered", frozenset({"jobId", "reason"}), "service.py", 2
)
QUEUE_DEAD_LETTERED = Emission(
    "duralane.queue.dead_lettered", frozenset({"queue", "reason"}), "service.py", 3
)


def attribute_problems(query: str, *found: Emission) -> list[str]:
    return emissions.query_attribute_problems("q", query, found, DEFINED)


def test_attribute_check_reports_the_slowest_kinds_query_without_a_duration():
    query = (QUERIES / "slowest_kinds.kql").read_text()
    assert attribute_problems(query, SUCCEEDED_WITHOUT_DURATION) == [
        "q: customDimensions.durationMs is emitted with none of duralane.job.succeeded"
    ]


def test_attribute_check_reports_an_attempt_read_from_dead_letter_events():
    query = (
        'traces | where message startswith "duralane.job.dead_lettered" '
        'or message startswith "duralane.queue.dead_lettered" '
        "| project a = toint(customDimensions.attempt)"
    )
    assert attribute_problems(query, DEAD_LETTERED, QUEUE_DEAD_LETTERED) == [
        "q: customDimensions.attempt is emitted with none of "
        "duralane.job.dead_lettered, duralane.queue.dead_lettered"
    ]


def test_attribute_check_accepts_an_attribute_one_of_the_events_carries():
    query = (
        'traces | where message in ("duralane.job.dead_lettered", '
        '"duralane.queue.dead_lettered") | project customDimensions.queue'
    )
    assert attribute_problems(query, DEAD_LETTERED, QUEUE_DEAD_LETTERED) == []


def test_attribute_check_reads_a_quoted_prefix_as_every_event_under_it():
    query = (
        'traces | where message startswith "duralane." | project customDimensions.queue'
    )
    assert attribute_problems(query, DEAD_LETTERED, QUEUE_DEAD_LETTERED) == []
    faulty = query.replace('"duralane."', '"duralane.job."')
    assert attribute_problems(faulty, DEAD_LETTERED, QUEUE_DEAD_LETTERED) != []


def test_attribute_check_reports_an_attribute_read_without_any_event():
    query = "requests | where success == false | project customDimensions.jobId"
    assert attribute_problems(query, DEAD_LETTERED) == [
        "q: reads customDimensions.jobId but no duralane event to read it from"
    ]


def test_attribute_check_reports_an_event_no_logging_call_emits():
    query = 'traces | where message startswith "duralane.job.cancelled"'
    assert attribute_problems(query, DEAD_LETTERED) == [
        "q: event 'duralane.job.cancelled' is defined but no logging call emits it"
    ]


FUNCTION_FAILED_IN_RUNTIME = Emission(
    "duralane.function.failed",
    frozenset({"function"}),
    "duralane/runtime/triggers.py",
    1,
)


def test_azure_check_reports_an_alert_on_an_event_only_the_embedded_runtime_emits():
    query = 'traces | where message startswith "duralane.function.failed"'
    found = [FUNCTION_FAILED_IN_RUNTIME]
    assert emissions.embedded_only_problems("q", query, found, DEFINED) == [
        "q: reads only duralane.function.failed, which only the embedded runtime "
        "(duralane/runtime/) emits; in Azure it never fires"
    ]


def test_azure_check_accepts_the_embedded_event_next_to_failed_requests():
    query = (
        "union (requests | where success == false), "
        '(traces | where message startswith "duralane.function.failed")'
    )
    found = [FUNCTION_FAILED_IN_RUNTIME]
    assert emissions.embedded_only_problems("q", query, found, DEFINED) == []


def test_azure_check_accepts_an_event_the_app_also_emits_outside_the_runtime():
    query = 'traces | where message startswith "duralane.queue.dead_lettered"'
    found = [
        Emission(
            "duralane.queue.dead_lettered", frozenset(), "duralane/runtime/x.py", 1
        ),
        QUEUE_DEAD_LETTERED,
    ]
    assert emissions.embedded_only_problems("q", query, found, DEFINED) == []
