"""The Chaos Studio experiment stops the primary region's apps, to drill failover."""

from __future__ import annotations

from tests.bicep import bicep_checks as checks

TEMPLATES = checks.repo_templates()
MAIN = "bicep/main.bicep"
STAMP_LOCATIONS = "isMultiRegion ? [location, secondaryLocation] : [location]"


def test_the_chaos_experiment_targets_the_primary_region_s_apps():
    assert checks.chaos_target_problems(TEMPLATES) == []


def test_chaos_check_reports_the_secondary_region_s_apps_targeted():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        "siteNames: stamps[0].outputs.appNames",
        "siteNames: stamps[1].outputs.appNames",
    )
    problems = checks.chaos_target_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith("targets stamps[1], not the primary stamp")


def test_chaos_check_reports_the_regions_listed_secondary_first():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        STAMP_LOCATIONS,
        "isMultiRegion ? [secondaryLocation, location] : [location]",
    )
    problems = checks.chaos_target_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith("targets stamps[0], not the primary stamp")


def test_chaos_check_reports_a_stamp_output_that_lists_no_apps():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        "siteNames: stamps[0].outputs.appNames",
        "siteNames: stamps[0].outputs.serviceBusNamespaceId",
    )
    problems = checks.chaos_target_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(
        "targets stamps[0].outputs.serviceBusNamespaceId, which lists no apps"
    )


def test_chaos_check_reports_every_target_scoped_to_the_first_app():
    faulty = checks.edited(
        TEMPLATES,
        "bicep/modules/chaos.bicep",
        "  scope: sites[i]\n",
        "  scope: sites[0]\n",
    )
    problems = checks.chaos_target_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith("targets does not set scope from each item of a param")
