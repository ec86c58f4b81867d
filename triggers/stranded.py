"""A safety net: start queued jobs whose start never reached their lane.

A submission stores the job, then starts its orchestration. If the start is
lost (the lane's runtime was down and nobody submitted the job again, or the
process died between the two steps), the job would stay queued for good.
Each minute, and once at startup, every process checks the lanes it runs for
jobs still queued past their lane's start deadline (30 s at the least) and
starts those with no orchestration.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import azure.durable_functions as df
import azure.functions as func

from duralane.jobs import service
from duralane.jobs.lanes import start_deadline_seconds
from duralane.settings import LANES, Settings
from duralane.store import Filter, Store, iso_utc
from triggers.submission import LaneUnavailable, lane_clients_of, start_if_stranded

logger = logging.getLogger(__name__)

bp = df.Blueprint()

# Jobs checked per lane and tick, oldest first, so a long queue of jobs that
# are waiting for a slot (their orchestration exists) costs a bounded sweep.
SWEEP_PAGE = 100
SWEEP_PAGES = 5

# Per lane, the createdAt the last sweep stopped at when it checked its limit:
# the next one goes on from there, so a backlog longer than one sweep's limit
# is walked over several, not checked from its head every time.
_resume_from: dict[str, str] = {}


@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *", run_on_startup=True)
@lane_clients_of(bp)
async def start_stranded_jobs(
    timer: func.TimerRequest,
    high: df.DurableOrchestrationClient,
    normal: df.DurableOrchestrationClient,
    low: df.DurableOrchestrationClient,
) -> None:
    """Start the stranded jobs of every lane this process runs."""
    store = await service.get_store()
    settings = Settings.from_environ()
    clients = {"high": high, "normal": normal, "low": low}
    now = service.utc_now()
    for lane in LANES:
        if settings.serves(lane):
            started = await start_stranded(store, lane, clients[lane], settings, now)
            if started:
                # Each job's own line (triggers.submission) names it.
                logger.info(
                    "stranded-job sweep lane %s: started %d", lane, len(started)
                )


async def start_stranded(
    store: Store,
    lane: str,
    client: df.DurableOrchestrationClient,
    settings: Settings,
    now: datetime,
) -> list[str]:
    """The ids of the lane's stranded jobs this sweep started."""
    wait = timedelta(
        seconds=max(
            settings.stranded_after_seconds, start_deadline_seconds(lane, settings)
        )
    )
    query = Filter(
        {"status": "queued", "lane": lane},
        since=_resume_from.pop(lane, None),
        until=iso_utc(now - wait),
        ascending=True,
    )
    started: list[str] = []
    last_seen: str | None = None
    continuation = None
    for _ in range(SWEEP_PAGES):
        page = await store.query(
            "jobs", query, page_size=SWEEP_PAGE, continuation=continuation
        )
        for doc in page.items:
            record = service.from_doc(doc)
            last_seen = str(doc["createdAt"])
            if record.ready_at + wait > now:
                # Not late: a later runAt, or a replay, which counts from then.
                continue
            try:
                if await start_if_stranded(record, client):
                    started.append(record.job_id)
            except LaneUnavailable:
                # Logged with its cause; the lane is down, so stop for now and
                # look from the start again next time.
                return started
        continuation = page.continuation
        if continuation is None:
            return started
    # The limit, not the end: the next sweep goes on from the last job seen.
    if last_seen is not None:
        _resume_from[lane] = last_seen
    return started
