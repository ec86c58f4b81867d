"""Fixtures: the app behind an API key, a loopback target, and headless Chromium."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.jobs_e2e.support import TargetServer
from tests.runtime.harness import RuntimeProcess

CHROMIUM = Path(os.environ.get("DURALANE_CHROMIUM", "/usr/bin/chromium"))
# The committed pictures change only with `make screenshots`; a plain test run
# writes its own to a temporary folder, so it leaves the tree as it found it.
SCREENSHOTS = Path(
    os.environ.get("DURALANE_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "duralane-screenshots"
)
API_KEY = "dashboard-test-key"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Debian's Chromium as root in a sandbox with a closed network: no sandbox, no GPU,
# and none of the background connections that would only be refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class KeyedRuntime(RuntimeProcess):
    """The runtime bound beyond loopback, so every API call needs the key."""

    def _keyed(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {
            **kwargs,
            "headers": {"x-functions-key": API_KEY, **kwargs.get("headers", {})},
        }

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return super().get(path, **self._keyed(kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return super().post(path, **self._keyed(kwargs))

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return super().delete(path, **self._keyed(kwargs))


@pytest.fixture(scope="package")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedRuntime]:
    """The app on all interfaces with an API key, loopback targets allowed."""
    data_dir = tmp_path_factory.mktemp("dashboard")
    settings = {
        "DURALANE_DATA_DIR": str(data_dir),
        "DURALANE_SQLITE_PATH": str(data_dir / "state.sqlite3"),
        "DURALANE_ALLOWED_TARGETS": "127.0.0.0/8",
        "DURALANE_API_KEY": API_KEY,
    }
    runtime = KeyedRuntime(
        Path("function_app.py"), data_dir, host="0.0.0.0", env=settings
    )
    runtime.start()
    yield runtime
    runtime.stop()


@pytest.fixture(scope="package")
def target() -> Iterator[TargetServer]:
    server = TargetServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; never a downloaded browser.

    Package scope: Playwright's sync API holds an event loop on the main thread
    while it lives, so it must be gone before other packages run async tests.
    """
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, app: KeyedRuntime) -> Iterator[Any]:
    """A fresh tab at desktop size whose session already holds the API key."""
    context = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    context.add_init_script(f"sessionStorage.setItem('duralane.apiKey', {API_KEY!r});")
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"the page threw: {errors}"


def dashboard_url(app: RuntimeProcess, route: str = "overview") -> str:
    return f"{app.base_url}/api/dashboard/#/{route}"


def screenshot(page: Any, name: str) -> None:
    """The view as it stands, at desktop then phone width, into SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"))
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
