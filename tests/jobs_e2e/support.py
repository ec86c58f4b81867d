"""Helpers for driving the Duralane app over HTTP: targets, jobs and bounded waits."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.runtime.harness import RuntimeProcess, wait_until

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FINAL = ("succeeded", "dead_lettered", "cancelled")


@dataclass
class Seen:
    """One request a target received."""

    path: str
    method: str
    headers: dict[str, str]
    at: float


@dataclass
class TargetServer:
    """A real aiohttp server on loopback, in its own thread, scripted per path."""

    base: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> TargetServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "target server did not start"
        return self

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append(
            Seen(request.path, request.method, dict(request.headers), time.time())
        )
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such route")
        return await handler(request)

    def route(self, handler: Handler, path: str = "") -> str:
        """Serve a handler at a fresh path (or the given one); return its URL."""
        path = path or f"/{uuid.uuid4().hex}"
        self.routes[path] = handler
        return self.base + path

    def hits(self, url: str) -> list[Seen]:
        path = url.removeprefix(self.base)
        return [s for s in list(self.seen) if s.path == path]


def respond(*statuses: int, headers: dict[str, str] | None = None) -> Handler:
    """A handler answering the given statuses in turn, then the last one forever."""
    calls = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        status = statuses[min(calls[0], len(statuses) - 1)]
        calls[0] += 1
        extra = headers if status >= 300 else None
        return web.Response(status=status, text=f"status {status}", headers=extra)

    return handler


def held_until(release: threading.Event, bound: float = 30.0) -> Handler:
    """A handler that answers 200 only once the test releases it (or the bound ends)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        deadline = time.monotonic() + bound
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return web.Response(status=200, text="released")

    return handler


def unique(prefix: str) -> str:
    """A job id no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def http_job(job_id: str, url: str, **fields: Any) -> dict[str, Any]:
    """An http job spec with fast retries unless a test says otherwise."""
    params = {"url": url, **fields.pop("params", {})}
    retry = {"maxAttempts": 3, "initialDelaySeconds": 0, "jitter": 0}
    retry.update(fields.pop("retry", {}))
    return {"id": job_id, "kind": "http", "params": params, "retry": retry, **fields}


def submit(runtime: RuntimeProcess, spec: dict[str, Any]) -> dict[str, Any]:
    """POST a job and insist it was accepted as new."""
    response = runtime.post("/api/jobs", json=spec)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def send_message(
    runtime: RuntimeProcess, queue: str, body: bytes, message_id: str
) -> None:
    """Send to one of the runtime's local Service Bus queues, and insist it took it."""
    response = runtime.post(
        f"/runtime/queues/{queue}/messages",
        content=body,
        headers={"x-message-id": message_id, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def get_job(runtime: RuntimeProcess, job_id: str) -> dict[str, Any]:
    response = runtime.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_job(
    runtime: RuntimeProcess,
    job_id: str,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll GET /api/jobs/{id} until a condition holds, with a bound."""
    latest: dict[str, Any] = {}

    def check() -> bool:
        nonlocal latest
        runtime._ensure_alive()
        response = runtime.get(f"/api/jobs/{job_id}")
        if response.status_code != 200:
            return False
        latest = response.json()
        return condition(latest)

    wait_until(
        check,
        timeout=timeout,
        what=f"job {job_id} {what}",
        interval=0.05,
        detail=lambda: f"last job: {latest}\nlog:\n{runtime.log()}",
    )
    return latest


def wait_state(
    runtime: RuntimeProcess, job_id: str, state: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Wait until a job reaches a state; fail early if it ends in another."""
    job = wait_job(
        runtime,
        job_id,
        lambda j: j["status"] == state or j["status"] in FINAL,
        f"to be {state}",
        timeout,
    )
    assert job["status"] == state, job
    return job


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
