"""Helpers shared by the job domain tests: a loopback target and contexts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from duralane.jobs.kinds import JobContext
from duralane.jobs.safety import TargetPolicy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FIXED_NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Target:
    """A loopback HTTP server whose routes each test sets, recording requests."""

    base: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def unique_path(self) -> str:
        return f"/{uuid.uuid4().hex}"

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        self.bodies.append(await request.read())
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such route")
        return await handler(request)


LOOPBACK_ALLOWED = TargetPolicy.from_allowed(["127.0.0.0/8", "::1", "localhost"])
NOTHING_ALLOWED = TargetPolicy()


def context(
    policy: TargetPolicy = LOOPBACK_ALLOWED, key: str | None = None
) -> JobContext:
    """A context for one attempt of a job with a unique id."""
    job_id = f"job-test-{uuid.uuid4().hex[:12]}"
    return JobContext(
        job_id=job_id,
        attempt=1,
        idempotency_key=key or f"key-{uuid.uuid4().hex}",
        target_policy=policy,
        clock=lambda: FIXED_NOW,
    )
