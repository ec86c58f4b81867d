"""The OpenAPI document describes exactly the HTTP routes the app registers."""

from __future__ import annotations

import json
import re
from functools import cache

import azure.functions as func

from duralane.runtime.app import AppIndex, load_app
from tests.runtime.harness import REPO, RuntimeProcess
from triggers.openapi import DOCUMENT

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# "{id:int}" and "{*path}" in a Functions route are "{id}" and "{path}" in OpenAPI.
ROUTE_PARAMETER = re.compile(r"\{\*?([A-Za-z0-9_]+)(?::[^}]*)?\??\}")


@cache
def indexed() -> AppIndex:
    """The app's functions, indexed once as the worker does."""
    return load_app(REPO / "function_app.py")


def document() -> dict[str, object]:
    return dict(json.loads(DOCUMENT.read_text(encoding="utf-8")))


def documented() -> set[tuple[str, str]]:
    """Every (path, method) the document describes."""
    paths = document()["paths"]
    assert isinstance(paths, dict)
    return {
        (path, method.upper())
        for path, item in paths.items()
        for method in item
        if method in HTTP_METHODS
    }


def registered() -> dict[tuple[str, str], str]:
    """Every (path, method) an HTTP trigger answers, with the function's name."""
    routes: dict[tuple[str, str], str] = {}
    for entry in indexed().http:
        path = "/" + ROUTE_PARAMETER.sub(r"{\1}", entry.route())
        methods = [str(getattr(m, "value", m)).upper() for m in entry.methods()]
        if not methods:
            # A route open to every method must still be documented under at
            # least one; checking all eight would only force noise into the doc.
            methods = [m for p, m in documented() if p == path] or ["GET"]
        for method in methods:
            routes[(path, method)] = entry.name
    return routes


def test_every_registered_route_is_in_the_document() -> None:
    missing = sorted(
        f"{method} {path} ({name})"
        for (path, method), name in registered().items()
        if (path, method) not in documented()
    )
    assert not missing, f"routes missing from {DOCUMENT.name}: {missing}"


def test_every_documented_route_is_registered() -> None:
    stale = sorted(f"{m} {p}" for p, m in documented() - set(registered()))
    assert not stale, f"{DOCUMENT.name} documents routes the app lacks: {stale}"


def test_document_is_openapi_3_with_resolvable_references() -> None:
    doc = document()
    assert str(doc["openapi"]).startswith("3.")
    text = json.dumps(doc)
    schemas = doc["components"]["schemas"]  # type: ignore[index]
    for name in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert name in schemas, f"$ref to undefined schema {name}"


def test_operation_ids_are_unique() -> None:
    ids = [
        op["operationId"]
        for item in document()["paths"].values()  # type: ignore[attr-defined]
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert len(ids) == len(set(ids))


def test_document_route_is_anonymous() -> None:
    (entry,) = [e for e in indexed().http if e.route() == "openapi.json"]
    assert entry.trigger.auth_level == func.AuthLevel.ANONYMOUS


def test_runtime_serves_the_document(app: RuntimeProcess) -> None:
    response = app.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == document()
