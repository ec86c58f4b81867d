"""Schedules on the state store: create, change, list, and the dispatcher tick.

A schedule document holds the declaration (`schedule`), the dispatcher's
`state`, and the indexed `nextFireAt` (the state's `nextDueAt`, or NEVER), so
the due query `paused = false AND nextFireAt <= now` reads only schedules with
work to do.

One tick, per due schedule:

    read (with etag) -> refresh finished runs -> plan_tick
      -> claim: replace by etag with the new state and the planned starts
         as `pending` (a lost race means another dispatcher has it: skip)
      -> per pending start: create the `runs` record (create-if-absent, so a
         fire starts one run however many dispatchers plan it), submit the job
         under the run id, record the fire lag
      -> clear `pending` by etag

A dispatcher that dies after the claim leaves `pending` on the document with
`nextFireAt` in the past, so the next tick anywhere finishes the starts.

A document whose stored declaration or state no longer parses (written by an
older version, or edited in the store) is set aside instead: `status` becomes
"invalid" with the reason in `error`, and `nextFireAt` NEVER, so it leaves the
due query until a new declaration is stored for it.

With a dispatcher lease (duralane.schedules.lease) a tick first acquires or
renews it and returns at once without it; a holder that loses it mid-tick
stops before the next schedule or start and leaves the rest `pending` for the
new holder. The lease saves work; the run ids above keep each fire to one run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from duralane import events
from duralane.jobs.model import JobSpec, JobState, parse_job_spec
from duralane.jobs.model import field_errors as job_field_errors
from duralane.schedules.lease import DispatcherLease
from duralane.schedules.model import (
    Schedule,
    ScheduleState,
    field_errors,
    parse_schedule,
)
from duralane.schedules.planner import (
    DEFAULT_MISFIRE_GRACE,
    PlannedStart,
    initial_state,
    mark_run_finished,
    plan_tick,
    trigger_now,
)
from duralane.store import (
    ETAG,
    Doc,
    EtagConflict,
    Filter,
    Page,
    PatchOp,
    RecordExists,
    RecordNotFound,
    Store,
    iso_utc,
)

logger = logging.getLogger(__name__)

SCHEDULES = "schedules"
RUNS = "runs"
JOBS = "jobs"
DEAD_LETTERS = "deadletters"

# nextFireAt of a schedule with nothing due (paused, or no fire left): later
# than any real instant, so the due query skips it while listing still sees it.
NEVER = "9999-12-31T23:59:59.999999Z"
# Due schedules one tick handles; the rest, oldest first, wait a tick.
TICK_BATCH = 200
# A buffered fire waits for a run to finish; the schedule is looked at this
# often meanwhile so the buffered fire starts soon after the run ends.
ACTIVE_POLL = timedelta(seconds=2)
# A run record left "starting" this long by a dispatcher that died before
# starting its job is taken over by the next tick that sees it.
STALE_START = timedelta(seconds=30)
# A probe schedule declared with the `healthcheck` shorthand.
HEALTHCHECK_EVERY_SECONDS = 300
DEFAULT_FAILURE_THRESHOLD = 3
SCHEDULE_TAG = "schedule="
# A schedule's `status`: dispatched as usual, or set aside because its stored
# record no longer parses (the reason is in `error`).
STATUS_ACTIVE = "active"
STATUS_INVALID = "invalid"
# TODO: move to duralane.events with the other event names; until then no
# Kusto query under queries/ may use it, since a test checks names there.
SCHEDULE_SET_ASIDE = "duralane.schedule.set_aside"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)


class InvalidSchedule(ValueError):
    """A declaration the API refuses: every field at fault with its reason."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


class JobStarter(Protocol):
    """How the dispatcher starts and cancels jobs (durable clients in the app)."""

    async def start(self, spec: JobSpec) -> None:
        """Store the job and start its orchestration, once per idempotency key."""

    async def cancel(self, job_id: str) -> None:
        """Ask a running job to stop."""


@dataclass(frozen=True)
class Declaration:
    """A validated schedule and its health-check settings, if it is one."""

    schedule: Schedule
    healthcheck: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The declaration as stored and shown: camelCase, defaults filled in."""
        body = self.schedule.model_dump(mode="json", by_alias=True, exclude_none=True)
        return body


@dataclass
class TickReport:
    """What one dispatcher tick did, for its log line and for tests."""

    due: int = 0
    claimed: int = 0
    lost: int = 0
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Schedules whose stored record no longer parses, taken out of the due query.
    set_aside: list[str] = field(default_factory=list)
    # Another dispatcher holds the lease: this tick did nothing.
    standby: bool = False
    # The lease was lost mid-tick: the tick stopped before its next start.
    lease_lost: bool = False


# -- declarations --------------------------------------------------------------


def template_errors(job: Any) -> list[dict[str, str]]:
    """Why a job template is no valid job, field by field under `job.`."""
    if not isinstance(job, dict):
        return [{"field": "job", "reason": "must be a job object"}]
    errors = [
        {"field": f"job.{name}", "reason": "set by each run from its run id"}
        for name in ("id", "idempotencyKey")
        if name in job
    ]
    try:
        parse_job_spec({**job, "id": "sched-template-check"})
    except ValidationError as exc:
        errors += [
            {
                "field": f"job.{e['field']}" if e["field"] else "job",
                "reason": e["reason"],
            }
            for e in job_field_errors(exc)
        ]
    return errors


def expand_healthcheck(data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the `healthcheck` shorthand into a probe schedule declaration.

    {"id": "api-health", "healthcheck": {"endpoints": [...]}} becomes a probe
    job every 5 minutes, skipping overlaps and missed checks; `everySeconds`,
    `lane`, `failureThreshold` and `jitterSeconds` tune it.
    """
    check = data.get("healthcheck")
    if check is None:
        return dict(data)
    if not isinstance(check, dict):
        raise InvalidSchedule([{"field": "healthcheck", "reason": "must be an object"}])
    if "job" in data:
        raise InvalidSchedule(
            [{"field": "job", "reason": "a healthcheck builds its own probe job"}]
        )
    known = {"endpoints", "everySeconds", "lane", "failureThreshold", "jitterSeconds"}
    unknown = sorted(set(check) - known)
    if unknown:
        raise InvalidSchedule(
            [{"field": f"healthcheck.{unknown[0]}", "reason": "unknown field"}]
        )
    threshold = check.get("failureThreshold", DEFAULT_FAILURE_THRESHOLD)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise InvalidSchedule(
            [
                {
                    "field": "healthcheck.failureThreshold",
                    "reason": "must be a whole number of at least 1",
                }
            ]
        )
    expanded: dict[str, Any] = {
        "overlap": "skip",
        "misfire": "skip",
        **{k: v for k, v in data.items() if k != "healthcheck"},
        "job": {
            "kind": "probe",
            "lane": check.get("lane", "high"),
            "params": {"endpoints": check.get("endpoints")},
            "retry": {"maxAttempts": 1},
            "tags": ["healthcheck"],
        },
        "every": {"seconds": check.get("everySeconds", HEALTHCHECK_EVERY_SECONDS)},
        "jitterSeconds": check.get("jitterSeconds", 0),
    }
    return expanded


def parse_declaration(data: Any, now: datetime) -> Declaration:
    """Validate a schedule as the API and the schedules file take it."""
    if not isinstance(data, dict):
        raise InvalidSchedule([{"field": "", "reason": "must be a JSON object"}])
    healthcheck = None
    if "healthcheck" in data:
        check = data["healthcheck"]
        threshold = (
            check.get("failureThreshold", DEFAULT_FAILURE_THRESHOLD)
            if isinstance(check, dict)
            else DEFAULT_FAILURE_THRESHOLD
        )
        healthcheck = {"failureThreshold": threshold}
        data = expand_healthcheck(data)
    errors: list[dict[str, str]] = []
    try:
        schedule = parse_schedule(data, now=now)
    except ValidationError as exc:
        errors = [e.to_json_dict() for e in field_errors(exc)]
        schedule = None
    if "job" in data:
        errors += template_errors(data["job"])
    if errors or schedule is None:
        raise InvalidSchedule(errors)
    return Declaration(schedule, healthcheck)


# -- documents -----------------------------------------------------------------


def _state_of(doc: Doc) -> ScheduleState:
    return ScheduleState.model_validate(doc.get("state"))


def _schedule_of(doc: Doc) -> Schedule:
    return Schedule.model_validate(doc.get("schedule"))


def _unreadable(exc: ValidationError) -> str:
    """Why a stored schedule or state does not parse, field by field."""
    where = "declaration" if exc.title == Schedule.__name__ else "dispatcher state"
    reasons = "; ".join(f"{e.field}: {e.reason}" for e in field_errors(exc))
    return f"stored {where} no longer parses: {reasons}"


def _next_fire_field(state: ScheduleState, now: datetime) -> str:
    """The indexed due time: when the dispatcher next has work, else NEVER."""
    due = state.next_due_at
    if state.buffered_fire_at is not None and state.active_run_ids:
        # Finishing a run makes the buffered fire due; look again soon.
        poll = now + ACTIVE_POLL
        due = poll if due is None else min(due, poll)
    return iso_utc(due) if due is not None else NEVER


def _with_state(doc: Doc, state: ScheduleState, now: datetime) -> Doc:
    pending = bool(doc.get("pending") or doc.get("pendingCancels"))
    doc = {
        **doc,
        "state": state.model_dump(mode="json", by_alias=True),
        "updatedAt": iso_utc(now),
    }
    # Unfinished starts keep the schedule due, so any dispatcher completes them.
    doc["nextFireAt"] = iso_utc(now) if pending else _next_fire_field(state, now)
    return doc


def new_document(declaration: Declaration, now: datetime) -> Doc:
    """The stored document of a newly declared schedule."""
    schedule = declaration.schedule
    doc: Doc = {
        "id": schedule.id,
        "paused": schedule.paused,
        "status": STATUS_ACTIVE,
        "error": None,
        "schedule": declaration.to_json(),
        "healthcheck": declaration.healthcheck,
        "pending": [],
        "pendingCancels": [],
        "lastFire": None,
        "createdAt": iso_utc(now),
    }
    return _with_state(doc, initial_state(schedule, now), now)


def view(doc: Doc) -> dict[str, Any]:
    """A schedule as the API shows it: the declaration, then what it is doing."""
    status = doc.get("status", STATUS_ACTIVE)
    state = doc["state"] if isinstance(doc.get("state"), dict) else {}
    # A set-aside schedule fires nothing, whatever its stored state says.
    upcoming = state if status == STATUS_ACTIVE else {}
    shown = dict(doc["schedule"]) if isinstance(doc.get("schedule"), dict) else {}
    if doc.get("healthcheck"):
        shown["healthcheck"] = doc["healthcheck"]
    return {
        "id": doc["id"],
        "schedule": shown,
        "paused": doc["paused"],
        "status": status,
        "error": doc.get("error"),
        "nextFireAt": upcoming.get("nextFireAt"),
        "nextDueAt": upcoming.get("nextDueAt"),
        "activeRunIds": state.get("activeRunIds", []),
        "bufferedFireAt": state.get("bufferedFireAt"),
        "processedThrough": state.get("processedThrough"),
        "lastFire": doc.get("lastFire"),
        "createdAt": doc.get("createdAt"),
        "updatedAt": doc.get("updatedAt"),
    }


def _recomputed(
    schedule: Schedule, state: ScheduleState, now: datetime
) -> ScheduleState:
    """The state with its next fire recomputed for a changed declaration."""
    # Forgetting a run no schedule has changes nothing but the next-fire fields.
    return mark_run_finished(schedule, state, "", now)


# -- CRUD ----------------------------------------------------------------------


async def create_schedule(store: Store, data: Any, now: datetime) -> Doc:
    """Store a new schedule; RecordExists (409) when the id is taken."""
    declaration = parse_declaration(data, now)
    doc = await store.create(SCHEDULES, new_document(declaration, now))
    logger.info(
        "schedule %s created, next fire %s",
        declaration.schedule.id,
        doc["state"].get("nextFireAt"),
        extra={events.ATTR_SCHEDULE_ID: declaration.schedule.id},
    )
    return doc


async def get_schedule(store: Store, schedule_id: str) -> Doc:
    """One schedule document; RecordNotFound (404) when there is none."""
    return await store.read(SCHEDULES, schedule_id)


async def replace_schedule(
    store: Store, schedule_id: str, data: Any, now: datetime
) -> Doc:
    """Change a schedule's declaration; its cursor and active runs carry over."""
    if isinstance(data, dict):
        data = {"id": schedule_id, **data}
        if data["id"] != schedule_id:
            raise InvalidSchedule(
                [{"field": "id", "reason": f"does not match the path ({schedule_id})"}]
            )
    declaration = parse_declaration(data, now)
    return await _store_declaration(store, declaration, now)


async def _store_declaration(
    store: Store, declaration: Declaration, now: datetime
) -> Doc:
    schedule = declaration.schedule

    def change(doc: Doc) -> Doc:
        doc = {
            **doc,
            "schedule": declaration.to_json(),
            "healthcheck": declaration.healthcheck,
            "paused": schedule.paused,
            "status": STATUS_ACTIVE,
            "error": None,
        }
        try:
            state = _recomputed(schedule, _state_of(doc), now)
        except ValidationError:
            # The stored cursor cannot be read: count fires from now on.
            state = initial_state(schedule, now)
        return _with_state(doc, state, now)

    return await store.update(SCHEDULES, schedule.id, change)


async def delete_schedule(store: Store, schedule_id: str) -> None:
    """Remove a schedule; its runs and their jobs stay for inspection."""
    await store.delete(SCHEDULES, schedule_id)
    logger.info("schedule %s deleted", schedule_id)


async def set_paused(
    store: Store, schedule_id: str, paused: bool, now: datetime
) -> Doc:
    """Pause or resume; on resume, fires missed meanwhile follow the misfire policy."""

    def change(doc: Doc) -> Doc:
        schedule = _schedule_of(doc).model_copy(update={"paused": paused})
        doc = {
            **doc,
            "paused": paused,
            "schedule": {**doc["schedule"], "paused": paused},
        }
        return _with_state(doc, _recomputed(schedule, _state_of(doc), now), now)

    doc = await store.update(SCHEDULES, schedule_id, change)
    logger.info("schedule %s %s", schedule_id, "paused" if paused else "resumed")
    return doc


async def list_schedules(
    store: Store, page_size: int = 50, continuation: str | None = None
) -> Page:
    """Every schedule, soonest due first, paged."""
    return await store.query(
        SCHEDULES,
        Filter(ascending=True),
        page_size=page_size,
        continuation=continuation,
    )


async def list_runs(
    store: Store,
    schedule_id: str,
    page_size: int = 50,
    continuation: str | None = None,
) -> Page:
    """A schedule's runs, newest fire first."""
    return await store.query(
        RUNS,
        Filter(equals={"scheduleId": schedule_id}),
        page_size=page_size,
        continuation=continuation,
    )


async def with_job_status(store: Store, items: list[Doc]) -> list[Doc]:
    """Runs with their job's current status; run records catch up only on ticks."""
    shown = []
    for run in items:
        run = {k: v for k, v in run.items() if k != ETAG}
        if run.get("status") == "started":
            try:
                job = await store.read(JOBS, str(run["jobId"]))
                run["status"] = job["status"]
                if job.get("finishedAt"):
                    run["finishedAt"] = job["finishedAt"]
            except RecordNotFound:
                pass
        shown.append(run)
    return shown


@dataclass
class ApplyReport:
    """What applying a schedules file changed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)


async def apply_declarations(store: Store, items: Any, now: datetime) -> ApplyReport:
    """Make the store hold these schedules; applying twice changes nothing.

    Schedules not in the file are left alone; a declaration that does not
    validate is reported and skipped, so one typo does not block the rest.
    """
    if isinstance(items, dict):
        items = items.get("schedules", [])
    report = ApplyReport()
    if not isinstance(items, list):
        report.invalid.append({"index": None, "reason": "expected a list"})
        return report
    for index, data in enumerate(items):
        try:
            declaration = parse_declaration(data, now)
        except InvalidSchedule as exc:
            report.invalid.append({"index": index, "errors": exc.errors})
            continue
        schedule_id = declaration.schedule.id
        try:
            current = await store.read(SCHEDULES, schedule_id)
        except RecordNotFound:
            try:
                await store.create(SCHEDULES, new_document(declaration, now))
                report.created.append(schedule_id)
            except RecordExists:
                report.unchanged.append(schedule_id)  # another process applied it
            continue
        if (
            current["schedule"] == declaration.to_json()
            and current.get("healthcheck") == declaration.healthcheck
            and current.get("status", STATUS_ACTIVE) == STATUS_ACTIVE
        ):
            report.unchanged.append(schedule_id)
            continue
        await _store_declaration(store, declaration, now)
        report.updated.append(schedule_id)
    logger.info(
        "schedules file applied: %d created, %d updated, %d unchanged, %d invalid",
        len(report.created),
        len(report.updated),
        len(report.unchanged),
        len(report.invalid),
    )
    return report


# -- the dispatcher ------------------------------------------------------------


async def due_schedules(store: Store, now: datetime, limit: int = TICK_BATCH) -> Page:
    """The schedules with work at `now`, oldest due first, read via the index."""
    return await store.query(
        SCHEDULES,
        Filter(equals={"paused": False}, until=iso_utc(now), ascending=True),
        page_size=limit,
    )


async def dispatch_tick(
    store: Store,
    starter: JobStarter,
    clock: Clock = utc_now,
    *,
    limit: int = TICK_BATCH,
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE,
    lease: DispatcherLease | None = None,
) -> TickReport:
    """Fire every due schedule once; one failing schedule does not stop the rest.

    With a lease, only its holder does any of that; the others stand by.
    """
    report = TickReport()
    if lease is not None and not await lease.acquire():
        report.standby = True
        return report
    now = clock()
    page = await due_schedules(store, now, limit)
    report.due = len(page.items)
    for doc in page.items:
        if lease is not None and not await lease.still_held():
            report.lease_lost = True
            break
        try:
            await _dispatch_one(
                store, starter, doc, clock, report, misfire_grace, lease
            )
        except Exception:
            report.failed.append(str(doc["id"]))
            logger.exception(
                "schedule %s: dispatch failed; next tick retries", doc["id"]
            )
    return report


async def _dispatch_one(
    store: Store,
    starter: JobStarter,
    doc: Doc,
    clock: Clock,
    report: TickReport,
    misfire_grace: timedelta,
    lease: DispatcherLease | None = None,
) -> None:
    now = clock()
    try:
        schedule = _schedule_of(doc)
        state = _state_of(doc)
    except ValidationError as exc:
        if await _set_aside(store, doc, _unreadable(exc), now):
            report.set_aside.append(str(doc["id"]))
        return
    finished = await _finished_runs(store, schedule.id, state.active_run_ids, now)
    for run_id in finished:
        state = mark_run_finished(schedule, state, run_id, now)
    report.finished += finished

    plan = plan_tick(schedule, state, now, misfire_grace=misfire_grace)
    for drop in plan.dropped:
        logger.info(
            "schedule %s fire %s dropped (%s)",
            schedule.id,
            iso_utc(drop.scheduled_at),
            drop.reason,
            extra={events.ATTR_SCHEDULE_ID: schedule.id},
        )
    claimed = await _claim(store, doc, plan.state, plan.starts, plan.cancels, now)
    if claimed is None:
        report.lost += 1
        return
    report.claimed += 1
    await _run_pending(store, starter, claimed, clock, report, lease)


async def _set_aside(store: Store, doc: Doc, reason: str, now: datetime) -> bool:
    """Take a schedule that cannot be read out of the due query, saying why.

    Left due, it would fail every tick at the head of the due query, and a
    batch of such schedules would keep every other schedule from firing.
    """
    ops = [
        PatchOp.set("/status", STATUS_INVALID),
        PatchOp.set("/error", reason),
        PatchOp.set("/nextFireAt", NEVER),
        PatchOp.set("/updatedAt", iso_utc(now)),
    ]
    try:
        await store.patch(SCHEDULES, doc["id"], ops, etag=doc[ETAG])
    except (EtagConflict, RecordNotFound):
        return False  # replaced (perhaps repaired) or deleted meanwhile
    logger.warning(
        "%s schedule %s: %s; it fires nothing until its declaration is replaced",
        SCHEDULE_SET_ASIDE,
        doc["id"],
        reason,
        extra={events.ATTR_SCHEDULE_ID: doc["id"], events.ATTR_REASON: reason},
    )
    return True


async def _claim(
    store: Store,
    doc: Doc,
    state: ScheduleState,
    starts: tuple[PlannedStart, ...],
    cancels: tuple[str, ...],
    now: datetime,
) -> Doc | None:
    """Write the new state and the planned work by etag; None if another won."""
    etag = doc[ETAG]
    body = {k: v for k, v in doc.items() if k != ETAG}
    body["pending"] = [*body.get("pending", []), *map(_start_json, starts)]
    body["pendingCancels"] = [*body.get("pendingCancels", []), *cancels]
    try:
        return await store.replace(SCHEDULES, _with_state(body, state, now), etag)
    except EtagConflict:
        logger.info("schedule %s claimed by another dispatcher", doc["id"])
        return None
    except RecordNotFound:
        return None  # deleted meanwhile


def _start_json(start: PlannedStart) -> dict[str, str]:
    return {
        "runId": start.run_id,
        "scheduledAt": iso_utc(start.scheduled_at),
        "startAt": iso_utc(start.start_at),
        "reason": start.reason,
    }


async def _run_pending(
    store: Store,
    starter: JobStarter,
    doc: Doc,
    clock: Clock,
    report: TickReport,
    lease: DispatcherLease | None = None,
) -> Doc:
    """Start and cancel what the claimed document lists, then clear the lists."""
    schedule = _schedule_of(doc)
    last_fire = doc.get("lastFire")
    waiting: list[dict[str, str]] = []
    for run_id in doc.get("pendingCancels", []):
        await starter.cancel(run_id)
        report.cancelled.append(run_id)
    for start in doc.get("pending", []):
        if lease is not None and not await lease.still_held():
            # The lists stay, so the new holder finishes them; runs already
            # started here are skipped there by their run records.
            report.lease_lost = True
            logger.info(
                "schedule %s: lease lost before run %s; left pending",
                schedule.id,
                start["runId"],
                extra={events.ATTR_SCHEDULE_ID: schedule.id},
            )
            return doc
        try:
            fire = await _start_run(store, starter, schedule, start, clock, report)
        except _StillStarting:
            waiting.append(start)
            continue
        except Exception:
            # One start that keeps failing must not hold back the fires after it.
            logger.exception(
                "schedule %s run %s: start failed; kept pending for the next tick",
                schedule.id,
                start["runId"],
                extra={
                    events.ATTR_SCHEDULE_ID: schedule.id,
                    events.ATTR_JOB_ID: start["runId"],
                },
            )
            if schedule.id not in report.failed:
                report.failed.append(schedule.id)
            waiting.append(start)
            continue
        last_fire = fire or last_fire
    now = clock()
    state = _state_of(doc)
    # A start another dispatcher is still making (or died making) stays
    # pending and keeps the schedule due, until its job exists or it is stale.
    next_fire = iso_utc(now) if waiting else _next_fire_field(state, now)
    ops = [
        PatchOp.set("/pending", waiting),
        PatchOp.set("/pendingCancels", []),
        PatchOp.set("/lastFire", last_fire),
        PatchOp.set("/nextFireAt", next_fire),
    ]
    try:
        return await store.patch(SCHEDULES, doc["id"], ops, etag=doc[ETAG])
    except (EtagConflict, RecordNotFound):
        # Someone changed it meanwhile; whoever claims it next sees what is
        # left pending and finishes it, and run records make that idempotent.
        return doc


async def _start_run(
    store: Store,
    starter: JobStarter,
    schedule: Schedule,
    start: dict[str, str],
    clock: Clock,
    report: TickReport,
) -> dict[str, Any] | None:
    """Create the run record and submit its job, exactly once per run id."""
    run_id = start["runId"]
    now = clock()
    run: Doc = {
        "id": run_id,
        "scheduleId": schedule.id,
        "firedAt": start["scheduledAt"],
        "scheduledAt": start["scheduledAt"],
        "startAt": start["startAt"],
        "reason": start["reason"],
        "status": "starting",
        "claimedAt": iso_utc(now),
        "jobId": run_id,
    }
    try:
        await store.create(RUNS, run)
    except RecordExists:
        verdict = await _existing_run(store, schedule.id, run_id, now)
        if verdict == "wait":
            raise _StillStarting(run_id) from None
        if verdict == "done":
            return None
        logger.warning(
            "run %s of schedule %s was left starting; taking it over",
            run_id,
            schedule.id,
            extra={events.ATTR_SCHEDULE_ID: schedule.id, events.ATTR_JOB_ID: run_id},
        )

    data = {**schedule.job, "id": run_id, "idempotencyKey": run_id}
    data["tags"] = [*schedule.job.get("tags", []), f"{SCHEDULE_TAG}{schedule.id}"]
    try:
        spec = parse_job_spec(data)
    except ValidationError as exc:
        reason = "; ".join(
            f"{e['field']}: {e['reason']}" for e in job_field_errors(exc)
        )
        await _dead_letter_run(store, schedule, run, reason, now)
        report.dead_lettered.append(run_id)
        return None

    await starter.start(spec)
    started = clock()
    lag_ms = max((started - _instant(start["startAt"])).total_seconds() * 1000, 0.0)
    fire = {
        "runId": run_id,
        "jobId": run_id,
        "scheduledAt": start["scheduledAt"],
        "startedAt": iso_utc(started),
        "fireLagMs": round(lag_ms, 3),
    }
    await _advance_run(
        store,
        schedule.id,
        run_id,
        "started",
        {"startedAt": fire["startedAt"], "fireLagMs": fire["fireLagMs"]},
    )
    report.started.append(run_id)
    logger.info(
        "%s schedule %s run %s scheduled %s fire lag %.1f ms (%s)",
        events.SCHEDULE_FIRED,
        schedule.id,
        run_id,
        start["scheduledAt"],
        lag_ms,
        start["reason"],
        extra={
            events.ATTR_SCHEDULE_ID: schedule.id,
            events.ATTR_JOB_ID: run_id,
            events.ATTR_LANE: spec.lane,
            events.ATTR_KIND: spec.kind,
            events.ATTR_FIRE_LAG_MS: lag_ms,
        },
    )
    return fire


class _StillStarting(Exception):
    """Another dispatcher created this run's record and has not started its job."""


async def _existing_run(
    store: Store, schedule_id: str, run_id: str, now: datetime
) -> Literal["done", "wait", "take"]:
    """A run record already exists: started (done), being started, or abandoned.

    One left `starting` is being started elsewhere until it is STALE_START
    old; then its dispatcher is taken to have died between the run record and
    the job's start, and it is taken over. Submitting again is safe: the job's
    idempotency key returns the job if it exists, and a queued job whose
    orchestration never began is started. Without this, that fire was lost.
    """
    try:
        run = await store.read(RUNS, run_id, partition_key=schedule_id)
    except RecordNotFound:
        return "done"
    if run.get("status") != "starting":
        return "done"
    if now - _instant(str(run.get("claimedAt"))) < STALE_START:
        return "wait"
    return "take"


async def _dead_letter_run(
    store: Store, schedule: Schedule, run: Doc, reason: str, now: datetime
) -> None:
    """A template that no longer validates: keep the run as a dead letter."""
    job = schedule.job
    full_reason = f"job template of schedule {schedule.id} is not a valid job: {reason}"
    letter = {
        "id": run["id"],
        "jobId": run["id"],
        "lane": str(job.get("lane") or "normal"),
        "kind": str(job.get("kind") or ""),
        "source": "schedule",
        "scheduleId": schedule.id,
        "scheduledAt": run["scheduledAt"],
        "reason": full_reason,
        "deadLetteredAt": iso_utc(now),
        "template": job,
    }
    with contextlib.suppress(RecordExists):
        await store.create(DEAD_LETTERS, letter)
    await _advance_run(
        store,
        schedule.id,
        run["id"],
        "dead_lettered",
        {"reason": full_reason, "finishedAt": iso_utc(now)},
    )
    logger.warning(
        "%s run %s of schedule %s: %s",
        events.JOB_DEAD_LETTERED,
        run["id"],
        schedule.id,
        full_reason,
        extra={
            events.ATTR_SCHEDULE_ID: schedule.id,
            events.ATTR_JOB_ID: run["id"],
            events.ATTR_REASON: full_reason,
        },
    )


async def _finished_runs(
    store: Store, schedule_id: str, run_ids: tuple[str, ...], now: datetime
) -> list[str]:
    """The active runs whose job has ended (or that never became a job)."""
    finished = []
    for run_id in run_ids:
        try:
            job = await store.read(JOBS, run_id)
        except RecordNotFound:
            if await _run_without_job_ended(store, schedule_id, run_id):
                finished.append(run_id)
            continue
        status = JobState(job["status"])
        if not status.is_final:
            continue
        finished.append(run_id)
        # The run record is gone only if someone deleted it; nothing to update.
        with contextlib.suppress(RecordNotFound):
            await _advance_run(
                store,
                schedule_id,
                run_id,
                status.value,
                {"finishedAt": job.get("finishedAt") or iso_utc(now)},
            )
    return finished


# How far along a run is; every status not listed is final.
_RUN_PROGRESS = {"starting": 0, "started": 1}
_FINAL_PROGRESS = 2


async def _advance_run(
    store: Store,
    schedule_id: str,
    run_id: str,
    status: str,
    fields: dict[str, Any],
) -> None:
    """Write a run's new status by etag, never moving it back.

    Two dispatchers can write one run at once: one that stalled (a throttled
    write, a long pause) between starting the job and recording it, while
    another already saw the job finish; or a takeover of a run left starting.
    A blind patch would let the late "started" overwrite the final status.
    """

    def change(run: Doc) -> Doc:
        current = _RUN_PROGRESS.get(str(run.get("status")), _FINAL_PROGRESS)
        if _RUN_PROGRESS.get(status, _FINAL_PROGRESS) < current:
            # Late news keeps the status but fills what the run still lacks.
            return {**fields, **run}
        return {**run, **fields, "status": status}

    await store.update(RUNS, run_id, change, partition_key=schedule_id)


async def _run_without_job_ended(store: Store, schedule_id: str, run_id: str) -> bool:
    try:
        run = await store.read(RUNS, run_id, partition_key=schedule_id)
    except RecordNotFound:
        return True
    return run.get("status") == "dead_lettered"


async def trigger_schedule(
    store: Store, starter: JobStarter, schedule_id: str, clock: Clock = utc_now
) -> str:
    """Start a run now, even while paused; returns its run id."""
    now = clock()
    planned: list[str] = []

    def change(doc: Doc) -> Doc:
        plan = trigger_now(_schedule_of(doc), _state_of(doc), now)
        planned[:] = [plan.starts[0].run_id]
        body = {
            **doc,
            "pending": [*doc.get("pending", []), *map(_start_json, plan.starts)],
            "pendingCancels": [*doc.get("pendingCancels", []), *plan.cancels],
        }
        return _with_state(body, plan.state, now)

    doc = await store.update(SCHEDULES, schedule_id, change)
    await _run_pending(store, starter, doc, clock, TickReport())
    return planned[0]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
