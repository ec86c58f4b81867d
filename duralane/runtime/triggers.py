"""Timer and Service Bus triggers: the runtime's two non-HTTP ways into the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from azure.functions.timer import TimerRequest

from duralane import events
from duralane.ids import random_hex
from duralane.runtime.app import FunctionEntry
from duralane.runtime.config import parse_timespan, resolve_setting_reference
from duralane.runtime.servicebus import (
    MessageLockLost,
    ReceivedMessage,
    to_function_message,
)
from duralane.schedules.cron import CronExpression

if TYPE_CHECKING:
    from duralane.runtime.host import Runtime

logger = logging.getLogger(__name__)

# A fire that starts this much after its scheduled instant counts as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=2)
IDLE_POLL_SECONDS = 1.0
# Azure's path of a queue's dead-letter sub-queue; a trigger on it reads there.
DEAD_LETTER_SUFFIX = "/$deadletterqueue"


# A trigger loop that fails is started again after this, doubling to the cap.
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0


async def supervise(
    name: str,
    loop: Callable[[asyncio.Event], Awaitable[None]],
    stopping: asyncio.Event,
    first_delay: float = RESTART_FIRST_SECONDS,
) -> None:
    """Keep a trigger's loop running until stop: log what broke it, then restart.

    Without this, one error in a receive or a store read ended the loop
    silently, and the trigger did nothing more until the runtime restarted.
    """
    delay = first_delay
    while not stopping.is_set():
        try:
            await loop(stopping)
            return
        except Exception:
            logger.exception(
                "%s: trigger %s stopped on an error; restarting in %.1f s",
                events.FUNCTION_FAILED,
                name,
                delay,
                extra={events.ATTR_FUNCTION: name},
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        delay = min(delay * 2, RESTART_MAX_SECONDS)


@dataclass(frozen=True)
class TimerSchedule:
    """A timer trigger's schedule: NCRONTAB (seconds first) or a TimeSpan interval."""

    text: str
    cron: CronExpression | None
    interval: timedelta | None
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> TimerSchedule:
        """Resolve %SETTING% references and parse either form."""
        resolved = resolve_setting_reference(text)
        zone = ZoneInfo(os.environ.get("WEBSITE_TIME_ZONE") or "UTC")
        if ":" in resolved and len(resolved.split()) == 1:
            interval = parse_timespan(resolved, "schedule")
            if interval <= timedelta(0):
                raise ValueError(f"schedule '{text}': the interval must be positive")
            return cls(resolved, None, interval, zone)
        return cls(resolved, CronExpression.parse(resolved, ncrontab=True), None, zone)

    def next_after(self, instant: datetime) -> datetime:
        """The first occurrence strictly after an instant."""
        if self.interval is not None:
            return instant + self.interval
        assert self.cron is not None
        upcoming = self.cron.next_after(instant, self.zone)
        if upcoming is None:
            raise ValueError(f"schedule '{self.text}' never fires again")
        return upcoming


class TimerTrigger:
    """Fires one timer function on its schedule, catching up after downtime."""

    def __init__(self, runtime: Runtime, entry: FunctionEntry) -> None:
        self.runtime = runtime
        self.entry = entry
        self.schedule = TimerSchedule.parse(str(entry.trigger.schedule))
        # run_on_startup fires once per runtime start, not once per loop restart.
        self._started = False

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire on startup if asked, once for a missed occurrence, then on schedule."""
        store = self.runtime.hub_store
        now = datetime.now(UTC)
        last = store.timer_last_fire(self.entry.name)
        starting, self._started = not self._started, True
        if starting and getattr(self.entry.trigger, "run_on_startup", False):
            await self.fire(past_due=False, scheduled=now)
        elif (
            last is not None
            and self.schedule.next_after(last) < now - PAST_DUE_TOLERANCE
        ):
            await self.fire(past_due=True, scheduled=self.schedule.next_after(last))
        upcoming = self.schedule.next_after(datetime.now(UTC))
        while not stopping.is_set():
            delay = (upcoming - datetime.now(UTC)).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            past_due = datetime.now(UTC) - upcoming > PAST_DUE_TOLERANCE
            await self.fire(past_due=past_due, scheduled=upcoming)
            upcoming = self.schedule.next_after(max(upcoming, datetime.now(UTC)))

    async def fire(self, *, past_due: bool, scheduled: datetime) -> None:
        """Invoke the function once and remember the occurrence."""
        request = TimerRequest(
            past_due=past_due,
            schedule_status={"Last": scheduled.isoformat()},
            schedule={"AdjustForDST": True},
        )
        arguments: dict[str, Any] = {self.entry.trigger_param: request}
        arguments.update(self.runtime.client_arguments(self.entry))
        invocation_id = random_hex()
        started = time.perf_counter()
        logger.info(
            "Executing %s (invocation %s, timer, past_due=%s)",
            self.entry.name,
            invocation_id,
            past_due,
        )
        try:
            await self.runtime.invoke(self.entry, arguments)
            outcome = "Succeeded"
        except Exception:
            outcome = "Failed"
            logger.exception(
                "%s: timer function %s (invocation %s) raised",
                events.FUNCTION_FAILED,
                self.entry.name,
                invocation_id,
                extra={events.ATTR_FUNCTION: self.entry.name},
            )
        self.runtime.hub_store.set_timer_last_fire(self.entry.name, scheduled)
        logger.info(
            "Executed %s (invocation %s): %s in %.1f ms",
            self.entry.name,
            invocation_id,
            outcome,
            (time.perf_counter() - started) * 1000,
        )


class ServiceBusTrigger:
    """Feeds one queue-triggered function from an embedded queue, peek-lock style."""

    def __init__(self, runtime: Runtime, entry: FunctionEntry) -> None:
        self.runtime = runtime
        self.entry = entry
        self.queue, self.dead_letters = self.entity_path(entry)
        settings = runtime.host_config.queue(self.queue)
        self.max_concurrent = settings.max_concurrent_calls
        self.lock_duration = settings.lock_duration
        self.wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    @staticmethod
    def entity_path(entry: FunctionEntry) -> tuple[str, bool]:
        """The queue a trigger reads, and whether it reads its dead-letter sub-queue."""
        path = resolve_setting_reference(str(entry.trigger.queue_name))
        if path.lower().endswith(DEAD_LETTER_SUFFIX):
            return path[: -len(DEAD_LETTER_SUFFIX)], True
        return path, False

    @staticmethod
    def queue_name(entry: FunctionEntry) -> str:
        """The queue entity a trigger needs: a dead-letter path needs its parent."""
        return ServiceBusTrigger.entity_path(entry)[0]

    async def run(self, stopping: asyncio.Event) -> None:
        """Receive while there are free slots; sleep until the next message is due."""
        queues = self.runtime.queues
        while not stopping.is_set():
            free = self.max_concurrent - len(self._running)
            received: list[ReceivedMessage] = []
            if free > 0:
                receive = (
                    queues.receive_dead_letters if self.dead_letters else queues.receive
                )
                received = await asyncio.to_thread(receive, self.queue, free)
            for message in received:
                task = asyncio.create_task(self._handle(message))
                self._running.add(task)
                task.add_done_callback(self._finished)
            if received:
                continue
            # Dead letters arrive without a send to wake on: poll for them.
            due = None
            if not self.dead_letters:
                due = await asyncio.to_thread(queues.next_due, self.queue)
            timeout = IDLE_POLL_SECONDS
            if due is not None:
                timeout = min(
                    timeout, max((due - datetime.now(UTC)).total_seconds(), 0.01)
                )
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self.wake.set()

    async def _handle(self, message: ReceivedMessage) -> None:
        queues = self.runtime.queues
        arguments: dict[str, Any] = {
            self.entry.trigger_param: to_function_message(message)
        }
        arguments.update(self.runtime.client_arguments(self.entry))
        invocation_id = random_hex()
        logger.info(
            "Executing %s (invocation %s, queue %s, message %s, delivery %d)",
            self.entry.name,
            invocation_id,
            self.queue + (DEAD_LETTER_SUFFIX if self.dead_letters else ""),
            message.message_id,
            message.delivery_count,
        )
        renewer = asyncio.create_task(self._keep_lock(message))
        started = time.perf_counter()
        try:
            await self.runtime.invoke(self.entry, arguments)
        except Exception as exc:
            logger.warning(
                "Executed %s (invocation %s, message %s): Failed on delivery %d: %s",
                self.entry.name,
                invocation_id,
                message.message_id,
                message.delivery_count,
                exc,
                exc_info=True,
            )
            await self._settle(queues.abandon, message)
        else:
            logger.info(
                "Executed %s (invocation %s, message %s): Succeeded in %.1f ms",
                self.entry.name,
                invocation_id,
                message.message_id,
                (time.perf_counter() - started) * 1000,
            )
            await self._settle(queues.complete, message)
        finally:
            renewer.cancel()

    async def _settle(self, settle: Any, message: ReceivedMessage) -> None:
        try:
            await asyncio.to_thread(settle, message.lock_token)
        except MessageLockLost as exc:
            logger.warning(
                "message %s on queue %s lost its lock before settling: %s",
                message.message_id,
                self.queue,
                exc,
            )

    async def _keep_lock(self, message: ReceivedMessage) -> None:
        """Renew the lock while a slow handler runs, as the host's auto-renewal does."""
        interval = max(self.lock_duration.total_seconds() / 2, 0.05)
        with contextlib.suppress(asyncio.CancelledError, MessageLockLost):
            while True:
                await asyncio.sleep(interval)
                await asyncio.to_thread(
                    self.runtime.queues.renew_lock, message.lock_token
                )
