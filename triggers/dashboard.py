"""The operator dashboard: its static page, and the numbers its overview draws."""

from __future__ import annotations

import html
import logging
import statistics
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import azure.functions as func

from duralane.jobs import service
from duralane.settings import LANES, Settings
from duralane.store import Doc, Filter, Store, iso_utc
from triggers.api import guarded, problem, reply

logger = logging.getLogger(__name__)

bp = func.Blueprint()

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
# Only these are served, each with the type a browser needs (modules must be JS).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
# The page talks only to its own origin and loads nothing from the network.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate each load, so a deploy never mixes old and new modules.
    "Cache-Control": "no-cache",
}
BASE_MARKER = '<base href="/api/dashboard/">'

WINDOW = timedelta(hours=1)
BUCKET = timedelta(minutes=1)
# Finishes are found through jobs submitted this far back (createdAt is the index).
LOOKBACK = timedelta(hours=2)
# The most rows one count reads before it reports "at least" instead.
COUNT_CAP = 10_000
PAGE = 1000


@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard_index(req: func.HttpRequest) -> func.HttpResponse:
    """The page itself; anonymous, since every API call it makes carries the key."""
    return _serve("index.html", req)


@bp.route(
    route="dashboard/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS
)
def dashboard_file(req: func.HttpRequest) -> func.HttpResponse:
    """One static file of the page, from dashboard/ and nowhere else."""
    return _serve(req.route_params.get("path") or "index.html", req)


def resolve_asset(path: str, root: Path = DASHBOARD_DIR) -> Path | None:
    """The file a request path names inside root, or None for anything else."""
    if not path or "\\" in path or "\x00" in path:
        return None
    parts = PurePosixPath(path).parts
    if any(part in ("..", ".", "/") or part.startswith(".") for part in parts):
        return None
    candidate = root.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        return None
    if resolved.suffix not in CONTENT_TYPES:
        return None
    return resolved


def _serve(path: str, req: func.HttpRequest) -> func.HttpResponse:
    asset = resolve_asset(path)
    if asset is None:
        return func.HttpResponse(
            f"no dashboard file {path!r}\n",
            status_code=404,
            mimetype="text/plain",
            headers=SECURITY_HEADERS,
        )
    body = asset.read_bytes()
    if asset.name == "index.html":
        body = _with_base(body, req)
    headers = {**SECURITY_HEADERS, "Content-Type": CONTENT_TYPES[asset.suffix]}
    return func.HttpResponse(body, status_code=200, headers=headers)


def _with_base(body: bytes, req: func.HttpRequest) -> bytes:
    """Point relative URLs at the folder the page was reached under.

    /api/dashboard and /api/dashboard/ both serve the page; the base makes its
    modules resolve the same either way, whatever route prefix the host uses.
    """
    path = "/" + req.url.partition("://")[2].partition("/")[2].partition("?")[0]
    at = path.rfind("/dashboard")
    if at < 0:
        return body
    base = path[:at] + "/dashboard/"
    tag = f'<base href="{html.escape(base, quote=True)}">'
    return body.replace(BASE_MARKER.encode(), tag.encode(), 1)


@bp.route(route="overview", methods=["GET"])
@guarded
async def overview(req: func.HttpRequest) -> func.HttpResponse:
    """Per lane: queued, running and retrying counts, the last hour in buckets.

    Every read goes through an index; nothing scans a container. Per lane it costs:
    three (status, lane) queries reading one row per queued, running and
    retrying job; one (lane, createdAt) query reading the jobs submitted in the
    last two hours, whose finishes and start lags fill the buckets; and one
    (lane, deadLetteredAt) query reading the dead letters. Each count stops
    after COUNT_CAP rows and says so with "capped", so a flood of 100,000 queued
    jobs costs at most 10 pages of 1,000 per count. A job submitted more than two
    hours before it finished is left out of throughput; a replay counts again.
    """
    if req.params:
        return problem(400, "the overview takes no parameters")
    store = await service.get_store()
    settings = Settings.from_environ()
    now = service.utc_now()
    start = now - WINDOW
    lanes = [
        await _lane_overview(store, lane, settings.lane_deadlines[lane], start, now)
        for lane in LANES
    ]
    return reply(
        200,
        {
            "generatedAt": iso_utc(now),
            "windowStart": iso_utc(start),
            "bucketSeconds": int(BUCKET.total_seconds()),
            "lanes": lanes,
        },
    )


async def _lane_overview(
    store: Store, lane: str, deadline_s: float, start: datetime, now: datetime
) -> dict[str, Any]:
    counts: dict[str, Any] = {}
    capped = False
    for status in ("queued", "running", "failed"):
        n, hit_cap = await _count(
            store, "jobs", Filter({"status": status, "lane": lane})
        )
        counts["retrying" if status == "failed" else status] = n
        capped = capped or hit_cap

    buckets = _empty_buckets(start)
    lags: list[float] = []
    succeeded = dead = submitted = 0
    recent = Filter({"lane": lane}, since=iso_utc(now - LOOKBACK))
    read = 0
    async for job in _rows(store, "jobs", recent):
        read += 1
        created = _instant(job.get("createdAt"))
        started = _instant(job.get("startedAt"))
        finished = _instant(job.get("finishedAt"))
        if created and created >= start:
            submitted += 1
            _bucket(buckets, start, created)["submitted"] += 1
        if started and started >= start and job.get("startLagMs") is not None:
            lag = float(job["startLagMs"])
            lags.append(lag)
            _bucket(buckets, start, started)["lags"].append(lag)
        if finished and finished >= start:
            if job.get("status") == "succeeded":
                succeeded += 1
                _bucket(buckets, start, finished)["succeeded"] += 1
            elif job.get("status") == "dead_lettered":
                dead += 1
                _bucket(buckets, start, finished)["deadLettered"] += 1

    # Buckets filled from a capped read undercount; say so like the counts do.
    capped = capped or read >= COUNT_CAP
    letters, letters_capped = await _count(store, "deadletters", Filter({"lane": lane}))
    if capped or letters_capped:
        logger.info("overview of lane %s stopped counting at %d rows", lane, COUNT_CAP)
    return {
        "lane": lane,
        "deadlineMs": deadline_s * 1000,
        **counts,
        "deadLetters": letters,
        "capped": capped or letters_capped,
        "lastHour": {
            "submitted": submitted,
            "succeeded": succeeded,
            "deadLettered": dead,
            "throughputPerMinute": round(
                succeeded / (WINDOW / timedelta(minutes=1)), 2
            ),
            "started": len(lags),
            "startLagMs": percentiles(lags),
            "overDeadline": sum(1 for lag in lags if lag > deadline_s * 1000),
        },
        "buckets": [
            {
                "at": bucket["at"],
                "submitted": bucket["submitted"],
                "succeeded": bucket["succeeded"],
                "deadLettered": bucket["deadLettered"],
                "startLagMs": percentiles(bucket["lags"]),
            }
            for bucket in buckets
        ],
    }


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 the way GET /api/lanes computes them, so the two agree."""
    if len(values) < 2:
        only = values[0] if values else None
        return {"p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


async def _rows(store: Store, container: str, query: Filter) -> AsyncIterator[Doc]:
    """Every row a query matches, page by page, up to COUNT_CAP."""
    seen = 0
    continuation = None
    while seen < COUNT_CAP:
        page = await store.query(
            container, query, page_size=PAGE, continuation=continuation
        )
        for item in page.items:
            seen += 1
            yield item
        continuation = page.continuation
        if not continuation:
            return


async def _count(store: Store, container: str, query: Filter) -> tuple[int, bool]:
    """How many rows match, and whether counting stopped at COUNT_CAP."""
    n = 0
    continuation = None
    while n < COUNT_CAP:
        page = await store.query(
            container, query, page_size=PAGE, continuation=continuation
        )
        n += len(page.items)
        continuation = page.continuation
        if not continuation:
            return n, False
    return n, True


def _empty_buckets(start: datetime) -> list[dict[str, Any]]:
    count = int(WINDOW / BUCKET)
    return [
        {
            "at": iso_utc(start + BUCKET * i),
            "submitted": 0,
            "succeeded": 0,
            "deadLettered": 0,
            "lags": [],
        }
        for i in range(count)
    ]


def _bucket(
    buckets: list[dict[str, Any]], start: datetime, moment: datetime
) -> dict[str, Any]:
    index = min(int((moment - start) / BUCKET), len(buckets) - 1)
    return buckets[index]


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
