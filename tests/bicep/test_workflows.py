"""The CI and deploy workflows and azure.yaml say what docs/deploy.md promises."""

from __future__ import annotations

from typing import Any

import yaml

from tests.bicep import bicep_checks as checks

WORKFLOWS = checks.REPO / ".github" / "workflows"


def load(path: str) -> dict[Any, Any]:
    """A YAML file as a dict; fails the test on a syntax error."""
    document = yaml.safe_load((checks.REPO / path).read_text())
    assert isinstance(document, dict)
    return document


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    """Every step of every job, in order."""
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_ci_runs_make_test():
    ci = load(".github/workflows/ci.yml")
    assert any(s.get("run") == "make test" for s in steps(ci))


def test_deploy_logs_in_with_oidc_and_no_secret():
    deploy = load(".github/workflows/deploy.yml")
    assert deploy["permissions"]["id-token"] == "write"
    login = next(
        s for s in steps(deploy) if s.get("uses", "").startswith("azure/login")
    )
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    assert "secrets." not in (WORKFLOWS / "deploy.yml").read_text()


def test_deploy_builds_and_runs_what_if_before_deploying_then_smoke_tests():
    runs = [s.get("run", "") for s in steps(load(".github/workflows/deploy.yml"))]
    order = [
        next(i for i, r in enumerate(runs) if needle in r)
        for needle in (
            "make test",
            "az bicep build ",
            "az deployment group what-if",
            "az deployment group create",
            "/api/health",
        )
    ]
    assert order == sorted(order)


def test_azd_deploys_one_service_per_lane_from_the_same_package():
    azure = load("azure.yaml")
    assert azure["infra"] == {"provider": "bicep", "path": "bicep", "module": "main"}
    services = azure["services"]
    assert set(services) == {f"lane-{lane}" for lane in checks.LANES}
    assert {s["project"] for s in services.values()} == {"."}
    assert {s["host"] for s in services.values()} == {"function"}


def test_azd_service_names_match_the_tags_on_the_apps():
    source = (checks.BICEP_DIR / "modules" / "functionapp.bicep").read_text()
    assert "'azd-service-name': 'lane-${lane}'" in source
