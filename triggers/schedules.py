"""Schedules: the dispatcher timer, the schedules file, and the HTTP API."""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from duralane.jobs import service as jobs
from duralane.jobs.model import JobSpec
from duralane.schedules import service
from duralane.schedules.lease import (
    LEASE_SECONDS_SETTING,
    DispatcherLease,
    Holder,
    LeaseSettings,
)
from duralane.schedules.model import Schedule
from duralane.schedules.planner import MAX_PREVIEW_COUNT, preview
from duralane.store import RecordNotFound, Store
from triggers.api import BadRequest, guarded, problem, reply
from triggers.submission import lane_clients_of, submit_and_start

logger = logging.getLogger(__name__)

bp = df.Blueprint()

# App setting naming the schedules file; relative paths are read from the
# app's folder. Unset, schedules.json next to function_app.py is used if present.
SCHEDULES_FILE_SETTING = "DURALANE_SCHEDULES_FILE"
APP_DIR = Path(__file__).resolve().parents[1]
DEFAULT_SCHEDULES_FILE = "schedules.json"

_file_applied = False
# This process's dispatcher lease, kept across ticks so the holder renews
# with the etag it last wrote instead of reading first.
_lease: DispatcherLease | None = None
_lease_settings: LeaseSettings | None = None


# One durable client per lane's task hub, each argument named by its lane.
lane_clients = lane_clients_of(bp)


class LaneStarter:
    """Starts and cancels scheduled jobs through each lane's durable client."""

    def __init__(
        self, store: Store, clients: dict[str, df.DurableOrchestrationClient]
    ) -> None:
        self.store = store
        self.clients = clients

    async def start(self, spec: JobSpec) -> None:
        """Submit the job under its run id and start its orchestration."""
        await submit_and_start(self.store, spec, self.clients[spec.lane])

    async def cancel(self, job_id: str) -> None:
        """Ask a still-running job to stop, as DELETE /api/jobs/{id} does."""
        try:
            record = await jobs.get_job(self.store, job_id)
        except RecordNotFound:
            return
        if record.state.is_final:
            return
        client = self.clients[record.spec.lane]
        await client.raise_event(record.instance_id, "cancel", None)
        logger.info("schedule cancelled run %s (cancel_previous)", job_id)


def dispatcher_lease(store: Store) -> DispatcherLease | None:
    """The process's lease from the app settings; None when turned off (0 s)."""
    global _lease, _lease_settings
    if _lease is not None and _lease.store is store:
        return _lease
    if _lease_settings is None:
        _lease_settings = LeaseSettings.from_environ()
        if not _lease_settings.enabled:
            logger.info(
                "dispatcher lease off (%s=0): every dispatcher dispatches",
                LEASE_SECONDS_SETTING,
            )
    settings = _lease_settings
    if not settings.enabled:
        return None
    # A new store (a new event loop) keeps the holder, so the lease stays ours.
    holder = _lease.holder if _lease is not None else None
    _lease = DispatcherLease(
        store,
        holder or Holder.this_process(settings.region),
        ttl=timedelta(seconds=settings.seconds),
        preferred_region=settings.preferred_region,
    )
    logger.info(
        "dispatcher %s: lease %s, %g s, preferred region %s",
        _lease.holder.id,
        _lease.lease_id,
        settings.seconds,
        settings.preferred_region or "none",
    )
    return _lease


def schedules_file() -> Path | None:
    """The schedules file the app settings name, or the default if it exists."""
    name = os.environ.get(SCHEDULES_FILE_SETTING, "")
    if name:
        path = Path(name)
        return path if path.is_absolute() else APP_DIR / path
    default = APP_DIR / DEFAULT_SCHEDULES_FILE
    return default if default.is_file() else None


async def apply_schedules_file(store: Store) -> service.ApplyReport | None:
    """Apply the schedules file, if there is one; a bad file is logged, not fatal."""
    path = schedules_file()
    if path is None:
        return None
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.error("schedules file %s not applied: %s", path, exc)
        return None
    report = await service.apply_declarations(store, items, service.utc_now())
    for invalid in report.invalid:
        logger.error("schedules file %s: entry refused: %s", path, invalid)
    return report


@bp.timer_trigger(arg_name="timer", schedule="*/2 * * * * *", run_on_startup=True)
@lane_clients
async def dispatch_schedules(
    timer: func.TimerRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> None:
    """Fire the due schedules if this dispatcher holds the lease.

    The first tick in each process applies the schedules file, lease or not.
    """
    global _file_applied
    store = await jobs.get_store()
    if not _file_applied:
        await apply_schedules_file(store)
        _file_applied = True
    starter = LaneStarter(store, {"high": high, "normal": normal, "low": low})
    report = await service.dispatch_tick(store, starter, lease=dispatcher_lease(store))
    if report.due:
        logger.info(
            "dispatcher tick: %d due, %d claimed, %d lost to another dispatcher, "
            "%d started, %d finished, %d dead-lettered, %d failed, %d set aside%s",
            report.due,
            report.claimed,
            report.lost,
            len(report.started),
            len(report.finished),
            len(report.dead_lettered),
            len(report.failed),
            len(report.set_aside),
            "; stopped early, lease lost" if report.lease_lost else "",
        )


def _body(req: func.HttpRequest) -> Any:
    try:
        return json.loads(req.get_body() or b"null")
    except ValueError as exc:
        raise BadRequest("body", f"not JSON: {exc}") from exc


def _invalid(exc: service.InvalidSchedule) -> func.HttpResponse:
    return problem(400, "invalid schedule", errors=exc.errors)


def _page_size(req: func.HttpRequest) -> int:
    try:
        size = int(req.params.get("pageSize", "50"))
    except ValueError as exc:
        raise BadRequest("pageSize", "must be a whole number") from exc
    if not 1 <= size <= 1000:
        raise BadRequest("pageSize", "must be between 1 and 1000")
    return size


@bp.route(route="schedules", methods=["POST"])
@guarded
async def create_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Create a schedule: 201, 400 with each field and reason, 409 if the id exists."""
    store = await jobs.get_store()
    try:
        doc = await service.create_schedule(store, _body(req), service.utc_now())
    except service.InvalidSchedule as exc:
        return _invalid(exc)
    return reply(201, service.view(doc))


@bp.route(route="schedules", methods=["GET"])
@guarded
async def list_schedules(req: func.HttpRequest) -> func.HttpResponse:
    """Every schedule, soonest due first, paged."""
    store = await jobs.get_store()
    page = await service.list_schedules(
        store, _page_size(req), req.params.get("continuation")
    )
    items = [service.view(doc) for doc in page.items]
    return reply(200, {"items": items, "continuation": page.continuation})


@bp.route(route="schedules/{id}", methods=["GET"])
@guarded
async def get_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """One schedule with its next fire, active runs and last fire."""
    store = await jobs.get_store()
    doc = await service.get_schedule(store, req.route_params["id"])
    return reply(200, service.view(doc))


@bp.route(route="schedules/{id}", methods=["PUT"])
@guarded
async def replace_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Change a schedule's declaration; 404 if there is none."""
    store = await jobs.get_store()
    schedule_id = req.route_params["id"]
    await service.get_schedule(store, schedule_id)
    try:
        doc = await service.replace_schedule(
            store, schedule_id, _body(req), service.utc_now()
        )
    except service.InvalidSchedule as exc:
        return _invalid(exc)
    return reply(200, service.view(doc))


@bp.route(route="schedules/{id}", methods=["DELETE"])
@guarded
async def delete_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Delete a schedule; its runs and jobs stay."""
    store = await jobs.get_store()
    await service.delete_schedule(store, req.route_params["id"])
    return reply(200, {"deleted": 1})


@bp.route(route="schedules/{id}/pause", methods=["POST"])
@guarded
async def pause_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Stop firing until resumed."""
    store = await jobs.get_store()
    doc = await service.set_paused(
        store, req.route_params["id"], True, service.utc_now()
    )
    return reply(200, service.view(doc))


@bp.route(route="schedules/{id}/resume", methods=["POST"])
@guarded
async def resume_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """Fire again; fires missed while paused follow the misfire policy."""
    store = await jobs.get_store()
    doc = await service.set_paused(
        store, req.route_params["id"], False, service.utc_now()
    )
    return reply(200, service.view(doc))


@bp.route(route="schedules/{id}/trigger", methods=["POST"])
@lane_clients
@guarded
async def trigger_schedule(
    req: func.HttpRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> func.HttpResponse:
    """Start a run now, even while paused: 202 with the run."""
    store = await jobs.get_store()
    schedule_id = req.route_params["id"]
    starter = LaneStarter(store, {"high": high, "normal": normal, "low": low})
    run_id = await service.trigger_schedule(store, starter, schedule_id)
    run = await store.read(service.RUNS, run_id, partition_key=schedule_id)
    run.pop("_etag", None)
    return reply(202, {"run": run, "jobUrl": f"/api/jobs/{run_id}"})


@bp.route(route="schedules/{id}/preview", methods=["GET"])
@guarded
async def preview_schedule(req: func.HttpRequest) -> func.HttpResponse:
    """The next N fire instants, in UTC and on the schedule's wall clock."""
    text = req.params.get("count", "10")
    try:
        count = int(text)
    except ValueError as exc:
        raise BadRequest("count", f"'{text}' is not a whole number") from exc
    if not 1 <= count <= MAX_PREVIEW_COUNT:
        raise BadRequest("count", f"must be between 1 and {MAX_PREVIEW_COUNT}")
    store = await jobs.get_store()
    doc = await service.get_schedule(store, req.route_params["id"])
    now = service.utc_now()
    schedule = Schedule.model_validate(doc["schedule"])
    fires = [fire.to_json_dict() for fire in preview(schedule, now, count)]
    zone = schedule.cron.time_zone if schedule.cron is not None else "UTC"
    return reply(200, {"id": schedule.id, "timeZone": zone, "fires": fires})


@bp.route(route="schedules/{id}/runs", methods=["GET"])
@guarded
async def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    """A schedule's runs, newest fire first, with fire lag and status."""
    store = await jobs.get_store()
    schedule_id = req.route_params["id"]
    await service.get_schedule(store, schedule_id)
    page = await service.list_runs(
        store, schedule_id, _page_size(req), req.params.get("continuation")
    )
    items = await service.with_job_status(store, page.items)
    return reply(200, {"items": items, "continuation": page.continuation})
