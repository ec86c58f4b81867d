"""The built-in `http` kind: one request, classified into success or failure."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from yarl import URL

from duralane.jobs.errors import PermanentJobError, TargetRefused, TransientJobError
from duralane.jobs.kinds.registry import JobContext, job_kind
from duralane.jobs.retry import parse_retry_after
from duralane.jobs.safety import (
    MAX_BODY_BYTES,
    MAX_HEADERS,
    MAX_URL_CHARS,
    TargetPolicy,
    check_body_size,
    check_headers,
    header_problem,
    safe_connector,
)
from duralane.jobs.schema import CamelModel

logger = logging.getLogger(__name__)

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# Kept in the job's result; the rest of a response body is read no further, so
# a huge response cannot exhaust memory.
RESULT_BODY_BYTES = 4096
# How much of a failing response's body an error message quotes.
ERROR_BODY_CHARS = 200
MAX_REDIRECTS = 10
TRANSIENT_STATUSES = frozenset({408, 429})
# Headers that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")

JsonValue = dict[str, Any] | list[Any] | str | int | float | bool | None


def check_url_shape(url: str) -> str:
    """Refuse URLs no request could use, at submission time, before any DNS."""
    if len(url) > MAX_URL_CHARS:
        raise PydanticCustomError(
            "url_too_long",
            "URL has {length} characters, the limit is {limit}",
            {"length": len(url), "limit": MAX_URL_CHARS},
        )
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise PydanticCustomError(
            "url_parsing", "URL is unparsable: {error}", {"error": str(exc)}
        ) from exc
    if parsed.scheme.lower() not in ("http", "https"):
        raise PydanticCustomError(
            "url_scheme", f"URL scheme {parsed.scheme!r} is not http or https"
        )
    if not parsed.raw_host:
        raise PydanticCustomError("url_no_host", "URL has no host")
    return url


def check_header_map(headers: dict[str, str]) -> dict[str, str]:
    """Refuse header maps with bad names, CR/LF in values, or too many entries."""
    if len(headers) > MAX_HEADERS:
        raise PydanticCustomError(
            "too_many_headers",
            "{count} headers given, the limit is {limit}",
            {"count": len(headers), "limit": MAX_HEADERS},
        )
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise PydanticCustomError("invalid_header", problem)
    return headers


class HttpParams(CamelModel):
    """Parameters of the `http` kind."""

    method: HttpMethod = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    # A string is sent as is; any other JSON value is sent as application/json.
    body: JsonValue = None
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_redirects: int = Field(default=5, ge=0, le=MAX_REDIRECTS)

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        return check_url_shape(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_header_map(value)

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: JsonValue) -> JsonValue:
        size = len(encode_body(value))
        if size > MAX_BODY_BYTES:
            raise PydanticCustomError(
                "body_too_large",
                "body is {size} bytes, the limit is {limit}",
                {"size": size, "limit": MAX_BODY_BYTES},
            )
        return value

    def body_bytes(self) -> bytes:
        """The request body as sent on the wire."""
        return encode_body(self.body)


def encode_body(body: JsonValue) -> bytes:
    """A body's wire form: strings as UTF-8 text, anything else as JSON."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class HttpResponse:
    """The parts of a response the kinds keep, read within the size limit."""

    status: int
    url: str
    redirects: int
    headers: CIMultiDict[str]
    body: bytes
    body_truncated: bool
    elapsed_ms: float


async def send_request(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout_seconds: float,
    max_redirects: int,
    policy: TargetPolicy,
    job_id: str = "-",
    keep_body_bytes: int = RESULT_BODY_BYTES,
) -> HttpResponse:
    """Send one request, following redirects by hand through the SSRF checks."""
    check_headers(headers)
    check_body_size(len(body))
    current = policy.check_url(url)
    sent_headers = CIMultiDict(headers)
    redirects = 0
    started = time.perf_counter()
    # aiohttp's timeout covers one request, so each hop gets what is left of
    # the whole budget; a chain of slow redirects cannot stretch it.
    give_up_at = started + timeout_seconds

    # A fresh session per request keeps one job's cookies and pooled
    # connections away from every other job's.
    async with aiohttp.ClientSession(
        connector=safe_connector(policy, job_id),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=True,
    ) as session:
        while True:
            remaining = give_up_at - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"{timeout_seconds}s spent before hop {redirects}")
            async with session.request(
                method,
                current,
                headers=sent_headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as response:
                location = response.headers.get("Location")
                if 300 <= response.status < 400 and location and max_redirects > 0:
                    if redirects >= max_redirects:
                        raise PermanentJobError(
                            f"{method} {url} redirected more than {max_redirects} "
                            "times",
                            status_code=response.status,
                        )
                    target = current.join(URL(location))
                    next_url = policy.check_url(target)
                    method, body = _redirected_method(method, body, response.status)
                    if next_url.origin() != current.origin():
                        for name in _CREDENTIAL_HEADERS:
                            sent_headers.popall(name, None)
                    if not body:
                        sent_headers.popall("Content-Type", None)
                    current = next_url
                    redirects += 1
                    continue

                data = await response.content.read(keep_body_bytes + 1)
                return HttpResponse(
                    status=response.status,
                    url=str(current),
                    redirects=redirects,
                    headers=CIMultiDict(response.headers),
                    body=data[:keep_body_bytes],
                    body_truncated=len(data) > keep_body_bytes,
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                )


def _redirected_method(method: str, body: bytes, status: int) -> tuple[str, bytes]:
    """The method and body the next hop uses, as browsers and RFC 9110 do."""
    if status == 303 and method != "HEAD":
        return "GET", b""
    if status in (301, 302) and method == "POST":
        return "GET", b""
    return method, body


def response_date(headers: CIMultiDict[str], fallback: datetime) -> datetime:
    """The server's own clock from its Date header, for reading Retry-After."""
    # An HTTP-date Retry-After is written on the server's clock, so measuring
    # it against the server's Date cancels any skew between the two machines.
    value = headers.get("Date")
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return fallback
        if when.tzinfo is not None:
            return when
    return fallback


def classify_response(
    response: HttpResponse, method: str, url: str, now: datetime
) -> None:
    """Raise the failure a non-2xx response means; return quietly on 2xx."""
    status = response.status
    if 200 <= status < 300:
        return
    excerpt = response.body[:ERROR_BODY_CHARS].decode("utf-8", "replace")
    what = f"{method} {url} answered {status}"
    if excerpt:
        what = f"{what}: {excerpt!r}"
    if status >= 500 or status in TRANSIENT_STATUSES:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), response_date(response.headers, now)
        )
        if retry_after is not None:
            what = f"{what} (Retry-After {retry_after:g}s)"
        raise TransientJobError(what, retry_after=retry_after, status_code=status)
    raise PermanentJobError(what, status_code=status)


@job_kind("http", params=HttpParams)
async def run_http(params: HttpParams, context: JobContext) -> dict[str, Any]:
    """Send the job's request with its idempotency key; 2xx is success."""
    headers = {
        k: v for k, v in params.headers.items() if k.lower() != "idempotency-key"
    }
    # The job's key wins over any the user set, so every attempt and replay of
    # the job is recognisably the same operation to the target.
    headers["Idempotency-Key"] = context.idempotency_key
    body = params.body_bytes()
    if params.body is not None and not any(
        k.lower() == "content-type" for k in headers
    ):
        headers["Content-Type"] = (
            "text/plain; charset=utf-8"
            if isinstance(params.body, str)
            else "application/json"
        )

    try:
        response = await send_request(
            method=params.method,
            url=params.url,
            headers=headers,
            body=body,
            timeout_seconds=params.timeout_seconds,
            max_redirects=params.max_redirects,
            policy=context.target_policy,
            job_id=context.job_id,
        )
    except TargetRefused:
        logger.warning(
            "job %s attempt %d: %s %s refused by the safety rules",
            context.job_id,
            context.attempt,
            params.method,
            params.url,
        )
        raise
    except TimeoutError as exc:
        raise TransientJobError(
            f"{params.method} {params.url} timed out after {params.timeout_seconds}s"
        ) from exc
    except (aiohttp.InvalidURL, ValueError) as exc:
        raise PermanentJobError(
            f"{params.method} {params.url} is not a usable URL: {exc}"
        ) from exc
    except aiohttp.ClientError as exc:
        raise TransientJobError(
            f"{params.method} {params.url} failed to connect or read: "
            f"{type(exc).__name__}: {exc}"
        ) from exc

    logger.info(
        "job %s attempt %d: %s %s answered %d in %.1f ms after %d redirects",
        context.job_id,
        context.attempt,
        params.method,
        params.url,
        response.status,
        response.elapsed_ms,
        response.redirects,
    )
    classify_response(response, params.method, params.url, context.clock())
    return {
        "statusCode": response.status,
        "url": response.url,
        "redirects": response.redirects,
        "contentType": response.headers.get("Content-Type"),
        "body": response.body.decode("utf-8", "replace"),
        "bodyTruncated": response.body_truncated,
        "elapsedMs": round(response.elapsed_ms, 3),
    }
