"""The HTTP API: submit, inspect, cancel jobs; inspect, replay, purge dead letters."""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import ValidationError

from duralane.jobs import service
from duralane.jobs.model import (
    JobState,
    field_errors,
    http_status_for,
    parse_job_spec,
)
from duralane.jobs.order import JobOrder
from duralane.settings import LANES, Settings
from duralane.store import Filter, StoreError, iso_utc
from triggers.submission import (
    ORCHESTRATOR,
    LaneUnavailable,
    job_json,
    lane_call,
    lane_clients_of,
    submit_and_start,
    urgent_start,
)

logger = logging.getLogger(__name__)

bp = df.Blueprint()
Handler = Callable[..., Awaitable[func.HttpResponse]]
MAX_BULK = 1000


def reply(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON response."""
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        mimetype="application/json",
        headers=headers,
    )


def problem(status: int, message: str, **fields: Any) -> func.HttpResponse:
    """An error response: what went wrong and, where known, which field."""
    return reply(status, {"error": message, **fields})


class BadRequest(Exception):
    """A request the API refuses, with the field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def guarded(handler: Handler) -> Handler:
    """Turn store errors and bad input into 4xx/5xx answers; never a stack trace."""

    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return await handler(*args, **kwargs)
        except BadRequest as exc:
            return problem(
                400,
                "invalid request",
                errors=[{"field": exc.field, "reason": exc.reason}],
            )
        except StoreError as exc:
            return problem(exc.http_status, str(exc))
        except LaneUnavailable as exc:
            return problem(503, str(exc))
        except ValueError as exc:
            return problem(400, str(exc))

    return wrapper


# One durable client per lane's task hub, each argument named by its lane.
lane_clients = lane_clients_of(bp)


def origin(req: func.HttpRequest) -> str:
    """Scheme and host the caller used, for links in responses."""
    scheme, _, rest = req.url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


@bp.route(route="jobs", methods=["POST"])
@lane_clients
@guarded
async def submit_job(
    req: func.HttpRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> func.HttpResponse:
    """Submit a job: 202 when new, 200 with the existing job for a known key."""
    try:
        spec = parse_job_spec(req.get_body() or b"")
    except ValidationError as exc:
        return problem(http_status_for(exc), "invalid job", errors=field_errors(exc))
    client = {"high": high, "normal": normal, "low": low}[spec.lane]
    store = await service.get_store()
    submission = await submit_and_start(store, spec, client)
    record = submission.record
    status_url = f"{origin(req)}/api/jobs/{record.job_id}"
    body = {"job": job_json(record), "statusUrl": status_url}
    return reply(202 if submission.created else 200, body, {"Location": status_url})


@bp.route(route="jobs/{id}", methods=["GET"])
@guarded
async def get_job(req: func.HttpRequest) -> func.HttpResponse:
    """One job with every attempt."""
    store = await service.get_store()
    return reply(200, job_json(await service.get_job(store, req.route_params["id"])))


@bp.route(route="jobs", methods=["GET"])
@guarded
async def list_jobs(req: func.HttpRequest) -> func.HttpResponse:
    """Jobs newest first, filtered by status, lane, kind, tag and time range."""
    query = _filter(req, ("status", "lane", "kind"), tag=True)
    return await _page("jobs", req, query)


@bp.route(route="jobs/{id}", methods=["DELETE"])
@lane_clients
@guarded
async def cancel_job(
    req: func.HttpRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> func.HttpResponse:
    """Cancel a job that has not finished."""
    store = await service.get_store()
    record = await service.get_job(store, req.route_params["id"])
    if record.state.is_final:
        return problem(409, f"job {record.job_id} is already {record.state.value}")
    client = {"high": high, "normal": normal, "low": low}[record.spec.lane]
    not_cancelled = f"job {record.job_id} was not cancelled; try again"
    with lane_call(record.spec.lane, record.job_id, not_cancelled):
        await client.raise_event(record.instance_id, "cancel", None)
    return reply(202, {"job": job_json(record), "cancelRequested": True})


@bp.route(route="deadletters", methods=["GET"])
@guarded
async def list_dead_letters(req: func.HttpRequest) -> func.HttpResponse:
    """Dead letters newest first, filtered by lane, kind, source and time range."""
    return await _page("deadletters", req, _filter(req, ("lane", "kind", "source")))


@bp.route(route="deadletters/{id}", methods=["GET"])
@guarded
async def get_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    """One dead letter: the spec, every attempt's error and the reason."""
    store = await service.get_store()
    letter = await store.read("deadletters", req.route_params["id"])
    letter.pop("_etag", None)
    return reply(200, letter)


@bp.route(route="deadletters/{id}/replay", methods=["POST"])
@lane_clients
@guarded
async def replay_dead_letter(
    req: func.HttpRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> func.HttpResponse:
    """Run a dead-lettered job again under a new attempt series, same key."""
    clients = {"high": high, "normal": normal, "low": low}
    record = await _replay(req.route_params["id"], clients)
    return reply(202, {"job": job_json(record)})


@bp.route(route="deadletters/replay", methods=["POST"])
@lane_clients
@guarded
async def replay_dead_letters(
    req: func.HttpRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> func.HttpResponse:
    """Replay every job dead letter matching a filter; report each that failed."""
    clients = {"high": high, "normal": normal, "low": low}
    store = await service.get_store()
    query = _filter(req, ("lane", "kind"))
    query = Filter({**query.equals, "source": "job"}, None, query.since, query.until)
    replayed: list[str] = []
    failed: list[dict[str, str]] = []
    continuation = None
    while len(replayed) + len(failed) < MAX_BULK:
        page = await store.query(
            "deadletters", query, page_size=100, continuation=continuation
        )
        for letter in page.items:
            try:
                await _replay(str(letter["id"]), clients)
                replayed.append(str(letter["id"]))
            except (StoreError, ValueError, LaneUnavailable) as exc:
                failed.append({"id": str(letter["id"]), "reason": str(exc)})
        continuation = page.continuation
        if not continuation:
            break
    return reply(200, {"replayed": len(replayed), "ids": replayed, "failed": failed})


@bp.route(route="deadletters/{id}", methods=["DELETE"])
@guarded
async def purge_dead_letter(req: func.HttpRequest) -> func.HttpResponse:
    """Delete one dead letter for good."""
    store = await service.get_store()
    await store.delete("deadletters", req.route_params["id"])
    return reply(200, {"deleted": 1})


@bp.route(route="lanes", methods=["GET"])
@guarded
async def lane_stats(req: func.HttpRequest) -> func.HttpResponse:
    """Start lag percentiles of each lane's recent jobs against its deadline."""
    store = await service.get_store()
    settings = Settings.from_environ()
    lanes = []
    for lane in LANES:
        page = await store.query("jobs", Filter({"lane": lane}), page_size=500)
        lags = [
            float(j["startLagMs"])
            for j in page.items
            if j.get("startLagMs") is not None
        ]
        lanes.append(
            {
                "lane": lane,
                "deadlineMs": settings.lane_deadlines[lane] * 1000,
                "sampled": len(lags),
                "startLagMs": _percentiles(lags),
            }
        )
    return reply(200, {"lanes": lanes})


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for Front Door and smoke tests: the store answers."""
    try:
        store = await service.get_store()
        await service.job_exists(store, "health-probe")
    except StoreError as exc:
        return problem(503, f"state store unavailable: {exc}")
    return reply(200, {"status": "ok"})


async def _replay(
    job_id: str, clients: dict[str, df.DurableOrchestrationClient]
) -> Any:
    store = await service.get_store()
    record = await service.prepare_replay(store, job_id)
    client = clients[record.spec.lane]
    # A replay's start lag counts from now, against its lane's deadline.
    not_started = (
        f"job {job_id} is queued again but not started; submit its spec (as GET "
        f"/api/jobs/{job_id} shows it) again with the same idempotency key to start it"
    )
    order = JobOrder.for_record(record).to_json()
    with urgent_start(record.spec) as started:
        with lane_call(record.spec.lane, job_id, not_started):
            await client.start_new(ORCHESTRATOR, record.instance_id, order)
        started()
    return record


# The filters with a fixed set of values; anything else would silently match nothing.
CHOICES: dict[str, tuple[str, ...]] = {
    "status": tuple(state.value for state in JobState),
    "lane": LANES,
    "source": ("job", "queue"),
}


def _filter(
    req: func.HttpRequest, fields: tuple[str, ...], tag: bool = False
) -> Filter:
    """The query's filters, each checked: a typo is a 400, never an empty list."""
    params = req.params
    unknown = set(params) - {
        *fields,
        "tag",
        "since",
        "until",
        "pageSize",
        "continuation",
    }
    if unknown:
        raise BadRequest(sorted(unknown)[0], "unknown filter")
    if not tag and "tag" in params:
        raise BadRequest("tag", "not a filter here")
    equals = {name: params[name] for name in fields if params.get(name)}
    for name, value in equals.items():
        allowed = CHOICES.get(name)
        if allowed is not None and value not in allowed:
            raise BadRequest(name, f"'{value}' is not one of {', '.join(allowed)}")
    since = _instant(params, "since")
    until = _instant(params, "until")
    if since is not None and until is not None and until < since:
        raise BadRequest("until", "is before since")
    return Filter(equals, params.get("tag") or None, since, until)


def _instant(params: Any, name: str) -> str | None:
    """An ISO 8601 query parameter in the store's UTC form; no offset means UTC."""
    text = params.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(name, f"'{text}' is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment)


async def _page(
    container: str,
    req: func.HttpRequest,
    query: Filter,
) -> func.HttpResponse:
    try:
        size = int(req.params.get("pageSize", "50"))
    except ValueError as exc:
        raise BadRequest("pageSize", "must be a whole number") from exc
    if not 1 <= size <= 1000:
        raise BadRequest("pageSize", "must be between 1 and 1000")
    store = await service.get_store()
    page = await store.query(
        container, query, page_size=size, continuation=req.params.get("continuation")
    )
    for item in page.items:
        item.pop("_etag", None)
    return reply(200, {"items": page.items, "continuation": page.continuation})


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        only = values[0] if values else None
        return {"p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
