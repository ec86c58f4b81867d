"""The page's files: served anonymously, typed correctly, nothing outside dashboard/."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import KeyedRuntime
from tests.runtime.harness import HTTP
from triggers.dashboard import resolve_asset


@pytest.mark.parametrize("path", ["/api/dashboard", "/api/dashboard/"])
def test_the_page_is_served_without_a_key_with_its_folder_as_base(
    app: KeyedRuntime, path: str
) -> None:
    response = HTTP.get(app.url(path))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<base href="/api/dashboard/">' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("views/jobs.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_carry_the_type_a_browser_needs(
    app: KeyedRuntime, path: str, content_type: str
) -> None:
    response = HTTP.get(app.url(f"/api/dashboard/{path}"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/api/dashboard/../triggers/api.py",
        "/api/dashboard/%2e%2e/function_app.py",
        "/api/dashboard/views/%2e%2e/%2e%2e/host.json",
        "/api/dashboard/..%2ffunction_app.py",
        "/api/dashboard/%2Fetc%2Fpasswd",
        "/api/dashboard/nothing-here.js",
    ],
)
def test_nothing_outside_the_dashboard_folder_is_served(
    app: KeyedRuntime, path: str
) -> None:
    response = HTTP.get(app.url(path))
    assert response.status_code == 404, response.text
    assert "import" not in response.text


@pytest.mark.parametrize(
    "path",
    ["../function_app.py", "/etc/passwd", "views/../../host.json", ".hidden", "a\\b"],
)
def test_resolve_asset_refuses_paths_that_leave_the_folder(path: str) -> None:
    assert resolve_asset(path) is None


def test_the_api_still_needs_the_key_the_page_sends(app: KeyedRuntime) -> None:
    assert HTTP.get(app.url("/api/overview")).status_code == 401
    assert app.get("/api/overview").status_code == 200


def test_the_overview_takes_no_parameters(app: KeyedRuntime) -> None:
    response = app.get("/api/overview", params={"lane": "high"})
    assert response.status_code == 400
    assert response.json() == {"error": "the overview takes no parameters"}
