"""Durable clients in the runtime's own process start instances without a socket.

The azure-functions-durable client talks to the host over HTTP: start_new is
a POST to `{rpcBaseUrl}orchestrators/{name}/{id}`. When the caller is an
HTTP trigger of the runtime itself, that round trip goes back through the
runtime's own event loop, behind every other request a flood keeps there:
measured as most of a high-lane job's start lag. This transport answers those
POSTs in process, through the same code as the HTTP route, and hands every
other call to the SDK's own HTTP function unchanged.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from duralane.runtime.http_api import HttpApi

logger = logging.getLogger(__name__)

# The module whose global the client's constructor binds as its POST function.
CLIENT_MODULE = "azure.durable_functions.models.DurableOrchestrationClient"
POST_NAME = "post_async_request"
Post = Callable[..., Awaitable[list[Any]]]


class InProcessStarts:
    """Installed while a runtime runs; removed again when it stops."""

    def __init__(self, api: HttpApi) -> None:
        self.api = api
        self._original: Post | None = None

    def install(self) -> None:
        """Route new clients' POSTs through this transport, if the SDK allows it."""
        module = sys.modules.get(CLIENT_MODULE)
        original = getattr(module, POST_NAME, None)
        if module is None or original is None:
            # Another SDK layout: every call keeps going over loopback HTTP,
            # which is correct, only slower for a start under load.
            logger.warning(
                "durable client starts go over HTTP: %s.%s not found",
                CLIENT_MODULE,
                POST_NAME,
            )
            return
        self._original = original
        setattr(module, POST_NAME, self.post)

    def uninstall(self) -> None:
        """Give the SDK its own POST back."""
        if self._original is not None:
            setattr(sys.modules[CLIENT_MODULE], POST_NAME, self._original)
            self._original = None

    async def post(
        self,
        url: str,
        data: Any = None,
        trace_parent: str | None = None,
        trace_state: str | None = None,
        function_invocation_id: str | None = None,
    ) -> list[Any]:
        """A start of this runtime's instances in process; anything else by HTTP."""
        start = self._start_route(url)
        if start is None:
            assert self._original is not None
            return await self._original(
                url, data, trace_parent, trace_state, function_invocation_id
            )
        hub, name, instance_id = start
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        text = json.dumps(data) if data is not None else ""
        try:
            status, body = await self.api.start_orchestration(
                hub, name, instance_id, text, origin
            )
        except ValueError as exc:
            return [400, {"Message": str(exc), "ExceptionMessage": str(exc)}]
        return [status, body]

    def _start_route(self, url: str) -> tuple[str, str, str | None] | None:
        """(hub, orchestrator, instance id) when a URL is a start at this runtime."""
        runtime = self.api.runtime
        rpc_base = runtime.rpc_base_url
        if urlsplit(url).query or not url.startswith(rpc_base):
            # A version or other query option: leave it to the HTTP route.
            return None
        segments = [unquote(s) for s in url[len(rpc_base) :].split("/") if s]
        hub = runtime.default_hub
        if segments[:1] == ["taskhubs"] and len(segments) > 1:
            hub, segments = segments[1], segments[2:]
        if segments[:1] != ["orchestrators"] or len(segments) not in (2, 3):
            return None
        if hub not in runtime.workers:
            return None
        return hub, segments[1], segments[2] if len(segments) == 3 else None
