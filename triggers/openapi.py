"""The OpenAPI document of the HTTP API, served anonymously at /api/openapi.json."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func

logger = logging.getLogger(__name__)

bp = func.Blueprint()
DOCUMENT = Path(__file__).with_name("openapi.json")


@cache
def document() -> dict[str, Any]:
    """The document, read once: every route of the app is described there."""
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    """Serve the document, so clients and the dashboard can discover the API."""
    return func.HttpResponse(
        json.dumps(document()),
        status_code=200,
        mimetype="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
