"""HTTP triggers: routes, methods, auth levels and how the runtime refuses to start."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.runtime.conftest import ORCHESTRATION_APP
from tests.runtime.harness import APPS, RuntimeProcess

API_KEY = "test-key-7f3a"


def test_route_parameters_reach_the_function(orchestrations: RuntimeProcess) -> None:
    """Route template values and the query string arrive on the HttpRequest."""
    response = orchestrations.get("/api/items/books/42", params={"colour": "red"})

    assert response.status_code == 200
    assert response.json() == {"category": "books", "item_id": "42", "colour": "red"}


def test_optional_route_parameter_may_be_left_out(
    orchestrations: RuntimeProcess,
) -> None:
    """{item_id?} matches with and without its segment."""
    response = orchestrations.get("/api/items/books")

    assert response.status_code == 200
    assert response.json()["item_id"] is None


def test_methods_limit_a_route_and_others_get_405(
    orchestrations: RuntimeProcess,
) -> None:
    """A route declared for POST and PUT answers 405 to GET, naming what it allows."""
    assert orchestrations.post("/api/echo", content=b"hi").text == "POST:hi"

    response = orchestrations.get("/api/echo")

    assert response.status_code == 405
    assert response.json()["allowed"] == ["POST", "PUT"]


def test_unknown_route_is_404(orchestrations: RuntimeProcess) -> None:
    """No function serves the path: a 404 that says so."""
    response = orchestrations.get("/api/nothing/here")

    assert response.status_code == 404
    assert "nothing/here" in response.json()["error"]


def test_function_level_route_is_open_on_loopback(
    orchestrations: RuntimeProcess,
) -> None:
    """On 127.0.0.1 keys are not checked, as with func start."""
    assert orchestrations.get("/api/secure").text == "secret"


def test_function_level_route_needs_the_key_off_loopback(tmp_path: Path) -> None:
    """Bound to 0.0.0.0, function-level routes want the key; anonymous ones do not."""
    runtime = RuntimeProcess(
        ORCHESTRATION_APP,
        tmp_path / "data",
        host="0.0.0.0",
        env={"DURALANE_API_KEY": API_KEY},
    ).start()
    try:
        assert runtime.get("/api/secure").status_code == 401
        wrong = runtime.get("/api/secure", headers={"x-functions-key": "nope"})
        assert wrong.status_code == 401
        by_header = runtime.get("/api/secure", headers={"x-functions-key": API_KEY})
        assert by_header.text == "secret"
        assert runtime.get("/api/secure", params={"code": API_KEY}).text == "secret"
        assert runtime.get("/api/public").text == "open"
        management = runtime.get("/runtime/webhooks/durabletask/instances")
        assert management.status_code == 401
    finally:
        runtime.stop()


def test_check_status_urls_carry_the_key_off_loopback(tmp_path: Path) -> None:
    """Off loopback the management URLs the client hands out include code=."""
    runtime = RuntimeProcess(
        ORCHESTRATION_APP,
        tmp_path / "data",
        host="0.0.0.0",
        env={"DURALANE_API_KEY": API_KEY},
    ).start()
    try:
        started = runtime.post(
            "/api/client/start/hello_orchestrator", json="Lima", params={"id": "k1"}
        )
        assert started.status_code == 202, started.text
        status_url = started.json()["statusQueryGetUri"]
        assert f"code={API_KEY}" in status_url
        assert httpx.get(status_url, timeout=10).status_code in (200, 202)
    finally:
        runtime.stop()


def test_binding_beyond_loopback_without_a_key_exits_with_one_line(
    tmp_path: Path,
) -> None:
    """0.0.0.0 without DURALANE_API_KEY refuses to start, saying why in one line."""
    runtime = RuntimeProcess(ORCHESTRATION_APP, tmp_path / "data", host="0.0.0.0")
    runtime.spawn()

    code = runtime.wait_exit()

    assert code != 0
    assert len(runtime.lines) == 1, runtime.lines
    assert "DURALANE_API_KEY" in runtime.lines[0]


def test_app_that_fails_to_import_exits_with_one_line_cause(tmp_path: Path) -> None:
    """An import error is one line naming the cause, not a traceback."""
    app = APPS / "broken" / "broken_sample_app.py"
    runtime = RuntimeProcess(app, tmp_path / "data")
    runtime.spawn()

    code = runtime.wait_exit()

    assert code != 0
    assert len(runtime.lines) == 1, runtime.lines
    assert "the database URL setting is missing" in runtime.lines[0]
    assert "Traceback" not in runtime.log()
