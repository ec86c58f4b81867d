"""With secondaryLocation set, the second region is deployed, fronted and replicated."""

from __future__ import annotations

from tests.bicep import bicep_checks as checks
from tests.bicep.bicep_checks import Template

TEMPLATES = checks.repo_templates()
MAIN = "bicep/main.bicep"
STAMP_LOOP = "[for (stampLocation, i) in stampLocations:"


def test_main_deploys_a_stamp_in_each_region():
    main = checks.load(checks.BICEP_DIR / "main.bicep")
    assert [(s.ref, s.regions) for s in checks.stamps(main)] == [
        ("stamps[0]", {"location"}),
        ("stamps[1]", {"secondaryLocation"}),
    ]


def test_the_second_region_has_a_stamp_an_origin_and_a_cosmos_replica():
    assert checks.multi_region_problems(TEMPLATES) == []


def test_region_check_reports_stamps_deployed_in_the_primary_region_only():
    faulty = checks.edited(
        TEMPLATES, MAIN, STAMP_LOOP, "[for (stampLocation, i) in [location]:"
    )
    problems = checks.multi_region_problems(faulty)
    assert "bicep/main.bicep: no stamp is deployed in secondaryLocation" in problems


def test_region_check_reports_a_stamp_loop_that_ignores_its_region():
    faulty = checks.edited(
        TEMPLATES, MAIN, "    location: stampLocation\n", "    location: location\n"
    )
    problems = checks.multi_region_problems(faulty)
    assert len(problems) == 1
    assert "its location is not the loop's stampLocation" in problems[0]


def test_region_check_reports_front_door_without_the_secondary_origin():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        "[for i in range(0, length(stampLocations)): stamps[i].outputs.apiHostName]",
        "[stamps[0].outputs.apiHostName]",
    )
    problems = checks.multi_region_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(
        "module 'frontDoor' gives Front Door no origin for stamps[1] "
        "(secondaryLocation)"
    )


def test_region_check_reports_front_door_declaring_a_single_origin():
    faulty = checks.edited(
        TEMPLATES,
        "bicep/modules/frontdoor.bicep",
        "= [for (hostName, i) in originHostNames: {",
        "= {",
    )
    problems = checks.multi_region_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(": origins is not declared once per item of a param")


def test_region_check_reports_cosmos_left_in_the_primary_region():
    faulty = checks.edited(
        TEMPLATES,
        MAIN,
        "    locations: stampLocations\n",
        "    locations: [location]\n",
    )
    problems = checks.multi_region_problems(faulty)
    assert len(problems) == 1
    assert problems[0].endswith(
        "module 'cosmos' leaves secondaryLocation out of the Cosmos DB account's "
        "locations"
    )


def test_region_check_reports_cosmos_writing_one_region_per_item():
    faulty = checks.edited(
        TEMPLATES,
        "bicep/modules/cosmos.bicep",
        "locationName: region",
        "locationName: locations[0]",
    )
    problems = checks.multi_region_problems(faulty)
    assert len(problems) == 1
    assert "account does not set locationName from each item of a param" in problems[0]


def test_region_check_accepts_one_stamp_declaration_per_region():
    main = Template.from_text(
        "param location string\nparam secondaryLocation string\n"
        "module primary 'modules/stamp.bicep' = {\n  name: 'p'\n"
        "  params: {\n    location: location\n  }\n}\n"
        "module secondary 'modules/stamp.bicep' = {\n  name: 's'\n"
        "  params: {\n    location: secondaryLocation\n  }\n}\n"
        "module cosmos 'modules/cosmos.bicep' = {\n  name: 'c'\n"
        "  params: {\n    locations: [location, secondaryLocation]\n  }\n}\n"
        "module frontDoor 'modules/frontdoor.bicep' = {\n  name: 'f'\n  params: {\n"
        "    originHostNames: [primary.outputs.apiHostName, "
        "secondary.outputs.apiHostName]\n  }\n}\n",
        checks.BICEP_DIR / "main.bicep",
    )
    templates = [main if t.name == MAIN else t for t in TEMPLATES]
    assert checks.multi_region_problems(templates) == []
