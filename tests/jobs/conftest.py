"""Fixtures for the job domain: a real HTTP target on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from jobs_support import Target


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", t.dispatch)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    t.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    try:
        yield t
    finally:
        await runner.cleanup()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but never listening, so connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
