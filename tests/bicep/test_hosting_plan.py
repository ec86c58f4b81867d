"""Flex Consumption is the default hosting plan, from main.bicep down to each app."""

from __future__ import annotations

from tests.bicep import bicep_checks as checks

TEMPLATES = checks.repo_templates()
MAIN = "bicep/main.bicep"
STAMP = "bicep/modules/stamp.bicep"
APP = "bicep/modules/functionapp.bicep"


def test_flex_consumption_is_the_default_plan_everywhere():
    assert checks.hosting_plan_problems(TEMPLATES) == []


def test_plan_check_reports_main_defaulting_to_dedicated():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        "param hostingPlan string = 'FlexConsumption'",
        "param hostingPlan string = 'Dedicated'",
    )
    assert checks.hosting_plan_problems(faulty) == [
        "bicep/main.bicep: hostingPlan defaults to 'Dedicated', not 'FlexConsumption'"
    ]


def test_plan_check_reports_a_module_defaulting_to_dedicated():
    faulty = checks.edited(
        TEMPLATES,
        APP,
        "param hostingPlan string = 'FlexConsumption'",
        "param hostingPlan string = 'Dedicated'",
    )
    assert checks.hosting_plan_problems(faulty) == [
        "bicep/modules/functionapp.bicep: hostingPlan defaults to 'Dedicated', "
        "not 'FlexConsumption'"
    ]


def test_plan_check_reports_a_stamp_pinning_the_apps_to_dedicated():
    faulty = checks.edited(
        TEMPLATES, STAMP, "hostingPlan: hostingPlan\n", "hostingPlan: 'Dedicated'\n"
    )
    problems = checks.hosting_plan_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(
        "module 'apps' passes hostingPlan as 'Dedicated', not its own hostingPlan param"
    )


def test_plan_check_reports_main_s_choice_not_passed_to_the_stamps():
    faulty = checks.edited(TEMPLATES, MAIN, "    hostingPlan: hostingPlan\n", "")
    problems = checks.hosting_plan_problems(faulty)
    assert len(problems) == 1
    assert "module 'stamps' passes hostingPlan as nothing" in problems[0]


def test_plan_check_reports_a_plan_that_is_not_fc1_on_flex_consumption():
    faulty = checks.edited(TEMPLATES, APP, "name: 'FC1'", "name: 'Y1'")
    problems = checks.hosting_plan_problems(faulty)
    assert len(problems) == 1
    assert ": plan is not FC1 (FlexConsumption)" in problems[0]


def test_plan_check_reports_the_flex_sku_chosen_for_dedicated():
    faulty = checks.edited(
        TEMPLATES,
        APP,
        "var isFlex = hostingPlan == 'FlexConsumption'",
        "var isFlex = hostingPlan == 'Dedicated'",
    )
    assert len(checks.hosting_plan_problems(faulty)) == 1
