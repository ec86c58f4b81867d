"""The alerts an operator needs exist, and each notifies the action group."""

from __future__ import annotations

from tests.bicep import bicep_checks as checks

TEMPLATES = checks.repo_templates()
ALERTS = "bicep/modules/alerts.bicep"
MAIN = "bicep/main.bicep"


def test_every_alert_kind_is_declared_and_notifies_the_action_group():
    assert checks.alert_problems(TEMPLATES) == []


def test_alert_check_reads_each_rule_of_the_rule_list():
    labels = [r.label for t in TEMPLATES for r in checks.alert_rules(t)]
    assert "logAlerts 'health-failing'" in labels
    assert "logAlerts 'function-failures'" in labels


def test_alert_check_reports_a_missing_health_check_alert():
    faulty = checks.edited(
        TEMPLATES, ALERTS, '"duralane.healthcheck.failing"', '"duralane.job.cancelled"'
    )
    assert checks.alert_problems(faulty) == [
        "bicep/modules/alerts.bicep: no alert on API health check failing"
    ]


def test_alert_check_reports_a_missing_store_dead_letter_alert():
    faulty = checks.edited(
        TEMPLATES, ALERTS, '"duralane.job.dead_lettered"', '"duralane.job.cancelled"'
    )
    assert checks.alert_problems(faulty) == [
        "bicep/modules/alerts.bicep: no alert on jobs dead-lettered in the store"
    ]


def test_alert_check_reports_a_metric_alert_on_another_metric():
    faulty = checks.edited(
        TEMPLATES, ALERTS, "'DeadletteredMessages'", "'ActiveMessages'"
    )
    assert checks.alert_problems(faulty) == [
        "bicep/modules/alerts.bicep: no alert on Service Bus dead letters"
    ]


def test_alert_check_reports_a_start_lag_alert_for_one_lane_only():
    faulty = checks.edited(
        TEMPLATES,
        ALERTS,
        'customDimensions.lane) == "${lane}"',
        'customDimensions.lane) == "high"',
    )
    assert checks.alert_problems(faulty) == [
        "bicep/modules/alerts.bicep: no alert on start lag per lane"
    ]


def test_alert_check_reports_function_failures_read_only_from_the_embedded_runtime():
    faulty = checks.edited(
        TEMPLATES,
        ALERTS,
        "'union (requests | where success == false), (traces | where message "
        'startswith "duralane.function.failed")\'',
        "'traces | where message startswith \"duralane.function.failed\"'",
    )
    assert checks.alert_problems(faulty) == [
        "bicep/modules/alerts.bicep: no alert on function failures"
    ]


def test_alert_check_reports_log_rules_whose_action_list_is_always_empty():
    faulty = checks.edited(
        TEMPLATES,
        ALERTS,
        "actionGroups: empty(actionGroupId) ? [] : [actionGroupId]",
        "actionGroups: empty(actionGroupId) ? [] : []",
    )
    problems = checks.alert_problems(faulty)
    assert len(problems) == 4
    assert all(p.endswith("notifies no action group") for p in problems)
    assert any("logAlerts 'function-failures'" in p for p in problems)
    assert any("startLagAlerts" in p for p in problems)


def test_alert_check_reports_a_metric_rule_without_actions():
    faulty = checks.edited(
        TEMPLATES, ALERTS, "    actions: metricActions\n", "    actions: []\n"
    )
    problems = checks.alert_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(": deadLetterAlerts notifies no action group")


def test_alert_check_reports_main_not_passing_the_action_group_on():
    faulty = checks.edited(TEMPLATES, MAIN, "    actionGroupId: actionGroupId\n", "")
    problems = checks.alert_problems(faulty)
    assert len(problems) == 1
    assert problems[0].startswith("bicep/main.bicep:")
    assert problems[0].endswith("does not pass its action group on as actionGroupId")
