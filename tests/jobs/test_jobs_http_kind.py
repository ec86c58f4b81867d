"""The http kind against real servers on loopback."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from jobs_support import FIXED_NOW, NOTHING_ALLOWED, Target, context

from duralane.jobs.errors import (
    InvalidJobParams,
    PermanentJobError,
    TargetRefused,
    TransientJobError,
    decode_failure,
    encode_failure,
)
from duralane.jobs.kinds import run_job
from duralane.jobs.kinds.http import RESULT_BODY_BYTES
from duralane.jobs.safety import MAX_BODY_BYTES

pytestmark = pytest.mark.anyio


def respond(status: int, text: str = "", headers: dict[str, str] | None = None):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, headers=headers)

    return handler


async def test_2xx_succeeds_and_the_target_sees_the_idempotency_key(
    target: Target,
) -> None:
    url = target.route("/ok", respond(201, "created"))
    ctx = context(key="order-42-charge")

    result = await run_job(
        "http",
        {"method": "post", "url": url, "body": {"amount": 5}, "headers": {"X-A": "1"}},
        ctx,
    )

    assert result["statusCode"] == 201
    assert result["body"] == "created"
    request = target.seen[-1]
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "order-42-charge"
    assert request.headers["X-A"] == "1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(target.bodies[-1]) == {"amount": 5}


async def test_the_job_key_overrides_a_user_supplied_idempotency_key(
    target: Target,
) -> None:
    url = target.route("/ok", respond(200))
    ctx = context(key="the-job-key")

    await run_job("http", {"url": url, "headers": {"idempotency-key": "x"}}, ctx)

    assert target.seen[-1].headers.getall("Idempotency-Key") == ["the-job-key"]


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_5xx_408_and_429_are_transient(target: Target, status: int) -> None:
    url = target.route("/flaky", respond(status, "busy"))

    with pytest.raises(TransientJobError) as caught:
        await run_job("http", {"url": url}, context())

    assert caught.value.status_code == status
    assert caught.value.retry_after is None
    assert str(status) in caught.value.message


async def test_retry_after_in_seconds_is_carried_to_the_orchestrator(
    target: Target,
) -> None:
    url = target.route("/slow-down", respond(429, headers={"Retry-After": "17"}))

    with pytest.raises(TransientJobError) as caught:
        await run_job("http", {"url": url}, context())

    info = decode_failure(encode_failure(caught.value))
    assert info.kind == "transient"
    assert info.retry_after == 17
    assert info.status_code == 429


async def test_retry_after_as_http_date_is_measured_from_the_server_date(
    target: Target,
) -> None:
    server_now = FIXED_NOW - timedelta(days=400)
    headers = {
        "Date": format_datetime(server_now, usegmt=True),
        "Retry-After": format_datetime(server_now + timedelta(seconds=90), usegmt=True),
    }
    url = target.route("/maintenance", respond(503, headers=headers))

    with pytest.raises(TransientJobError) as caught:
        await run_job("http", {"url": url}, context())

    assert caught.value.retry_after == 90


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_are_permanent(target: Target, status: int) -> None:
    url = target.route("/nope", respond(status, "bad request body"))

    with pytest.raises(PermanentJobError) as caught:
        await run_job("http", {"url": url}, context())

    assert caught.value.status_code == status
    assert "bad request body" in caught.value.message
    assert decode_failure(encode_failure(caught.value)).kind == "permanent"


async def test_a_slow_target_times_out_as_transient(target: Target) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        # Bounded so a broken client timeout cannot hang the suite.
        await asyncio.wait_for(release.wait(), 10)
        return web.Response()

    url = target.route("/stall", stall)
    try:
        with pytest.raises(TransientJobError) as caught:
            await run_job("http", {"url": url, "timeoutSeconds": 0.2}, context())
    finally:
        release.set()

    assert "timed out after 0.2s" in caught.value.message


async def test_connection_refused_is_transient(refused_port: int) -> None:
    with pytest.raises(TransientJobError) as caught:
        await run_job("http", {"url": f"http://127.0.0.1:{refused_port}/"}, context())

    assert "failed to connect" in caught.value.message


async def test_redirects_are_followed_and_counted(target: Target) -> None:
    final = target.route("/final", respond(200, "landed"))
    target.route("/hop2", respond(302, headers={"Location": "/final"}))
    start = target.route(
        "/hop1", respond(301, headers={"Location": target.url("/hop2")})
    )

    result = await run_job("http", {"url": start}, context())

    assert result["statusCode"] == 200
    assert result["url"] == final
    assert result["redirects"] == 2
    assert all(r.headers.get("Idempotency-Key") for r in target.seen)


async def test_303_after_post_continues_as_get_without_body(target: Target) -> None:
    target.route("/done", respond(200))
    start = target.route("/submit", respond(303, headers={"Location": "/done"}))

    await run_job(
        "http", {"method": "POST", "url": start, "body": "payload"}, context()
    )

    assert [r.method for r in target.seen] == ["POST", "GET"]
    assert target.bodies == [b"payload", b""]


async def test_too_many_redirects_are_permanent(target: Target) -> None:
    loop = target.route("/loop", respond(302, headers={"Location": "/loop"}))

    with pytest.raises(PermanentJobError, match="more than 2 times"):
        await run_job("http", {"url": loop, "maxRedirects": 2}, context())

    assert len(target.seen) == 3


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/",
        "http://[::ffff:192.168.1.1]/",
        "http://2130706433/",
        "http://metadata.google.internal/",
        "file:///etc/passwd",
    ],
)
async def test_a_redirect_to_a_refused_address_is_refused(
    target: Target, location: str
) -> None:
    start = target.route("/bounce", respond(302, headers={"Location": location}))

    with pytest.raises(TargetRefused):
        await run_job("http", {"url": start}, context())

    assert [r.path for r in target.seen] == ["/bounce"]


async def test_loopback_is_refused_when_not_allow_listed(target: Target) -> None:
    url = target.route("/ok", respond(200))

    with pytest.raises(TargetRefused, match="loopback"):
        await run_job("http", {"url": url}, context(NOTHING_ALLOWED))

    assert target.seen == []


async def test_a_name_resolving_to_loopback_is_refused_after_dns(
    target: Target,
) -> None:
    url = target.route("/ok", respond(200)).replace("127.0.0.1", "localhost")

    with pytest.raises(TargetRefused, match="loopback"):
        await run_job("http", {"url": url}, context(NOTHING_ALLOWED))

    assert target.seen == []


async def test_a_large_response_body_is_kept_truncated(target: Target) -> None:
    url = target.route("/big", respond(200, "x" * (RESULT_BODY_BYTES * 3)))

    result = await run_job("http", {"url": url}, context())

    assert len(result["body"]) == RESULT_BODY_BYTES
    assert result["bodyTruncated"] is True


async def test_an_oversized_request_body_is_refused_before_sending(
    target: Target,
) -> None:
    url = target.route("/ok", respond(200))

    with pytest.raises(InvalidJobParams, match="body"):
        await run_job(
            "http", {"url": url, "body": "x" * (MAX_BODY_BYTES + 1)}, context()
        )

    assert target.seen == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: 1"},
        {"Bad Name": "v"},
        {"X-Null": "a\x00b"},
        {"Host": "internal.example"},
        {"Transfer-Encoding": "chunked"},
    ],
)
async def test_bad_headers_are_refused_before_sending(
    target: Target, headers: dict[str, str]
) -> None:
    url = target.route("/ok", respond(200))

    with pytest.raises(InvalidJobParams, match="header"):
        await run_job("http", {"url": url, "headers": headers}, context())

    assert target.seen == []


async def test_the_timeout_covers_the_whole_redirect_chain(target: Target) -> None:
    def slow(response: web.Response):
        async def handler(request: web.Request) -> web.Response:
            # Each hop alone fits the timeout; the two together do not.
            await asyncio.sleep(0.3)
            return response

        return handler

    target.route("/b", slow(web.Response(status=200)))
    start = target.route(
        "/a", slow(web.Response(status=302, headers={"Location": "/b"}))
    )

    with pytest.raises(TransientJobError, match="timed out"):
        await run_job("http", {"url": start, "timeoutSeconds": 0.5}, context())
