"""Every parameter file names main.bicep and sets only, and all, of its params."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bicep import bicep_checks as checks

PARAM_FILES = sorted(checks.BICEP_DIR.glob("*.bicepparam"))
MAIN = checks.load(checks.BICEP_DIR / "main.bicep")


def test_dev_and_prod_parameter_files_exist():
    assert {"dev", "prod"} <= {p.stem for p in PARAM_FILES}


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_file_matches_main(path: Path):
    assert checks.bicepparam_problems(path) == []


def test_azd_parameters_match_main():
    path = checks.BICEP_DIR / "main.parameters.json"
    assert checks.parameters_json_problems(path, MAIN) == []


def test_prod_is_multi_region():
    source = (checks.BICEP_DIR / "prod.bicepparam").read_text()
    assert "param secondaryLocation = 'northeurope'" in source


def test_parameter_check_reports_a_param_main_does_not_declare():
    source = "using 'main.bicep'\nparam environmentName = 'x'\nparam colour = 'b'\n"
    problems = checks.bicepparam_problems(checks.BICEP_DIR / "x.bicepparam", source)
    assert problems == ["x.bicepparam: sets 'colour', not a param of bicep/main.bicep"]


def test_parameter_check_reports_a_missing_required_param():
    source = "using 'main.bicep'\nparam location = 'westeurope'\n"
    problems = checks.bicepparam_problems(checks.BICEP_DIR / "x.bicepparam", source)
    assert problems == ["x.bicepparam: does not set required param 'environmentName'"]


def test_parameter_check_reports_a_using_target_that_does_not_exist():
    source = "using 'mian.bicep'\nparam environmentName = 'x'\n"
    problems = checks.bicepparam_problems(checks.BICEP_DIR / "x.bicepparam", source)
    assert problems == ["x.bicepparam: using 'mian.bicep', which does not exist"]


def test_azd_parameter_check_reports_an_unknown_param(tmp_path: Path):
    path = tmp_path / "main.parameters.json"
    path.write_text('{"parameters": {"environmentName": {}, "region": {}}}')
    problems = checks.parameters_json_problems(path, MAIN)
    assert problems == [
        "main.parameters.json: sets 'region', not a param of bicep/main.bicep"
    ]
