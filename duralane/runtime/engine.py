"""Dispatchers that run one task hub's orchestrator episodes and activities.

Each hub gets its own bounded pools, so a flood in one hub never takes the
slots reserved for another. Dispatchers are threads that sleep on a condition
until new work is stored or the next timer is due; sync user code runs on the
pools, async user code on the runtime's one long-lived event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from duralane.runtime.app import AppIndex, FunctionEntry
from duralane.runtime.episode import (
    ActivityWork,
    EpisodeResult,
    Instance,
    Message,
    run_episode,
    started_event,
)
from duralane.runtime.history import EventType, event
from duralane.runtime.hubstore import HubStore

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
IDLE_POLL_SECONDS = 1.0
COMPLETION_BATCH = 500


class Signal:
    """A wake-up flag a dispatcher can wait on with a deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._set = False

    def set(self) -> None:
        with self._condition:
            self._set = True
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        with self._condition:
            if not self._set:
                self._condition.wait(timeout)
            self._set = False


class HubWorker:
    """Runs one task hub: its orchestrator episodes and its activity work."""

    def __init__(
        self,
        hub: str,
        store: HubStore,
        index: AppIndex,
        loop: asyncio.AbstractEventLoop,
        *,
        max_orchestrations: int,
        max_activities: int,
        client_factory: Callable[[FunctionEntry], dict[str, str]],
        clock: Clock = time.time,
    ) -> None:
        self.hub = hub
        self.store = store
        self.index = index
        self.loop = loop
        self.clock = clock
        self.client_factory = client_factory
        self.max_orchestrations = max_orchestrations
        self.max_activities = max_activities
        self._orchestration_pool = ThreadPoolExecutor(
            max_orchestrations, thread_name_prefix=f"{hub}-orchestrator"
        )
        self._activity_pool = ThreadPoolExecutor(
            max_activities, thread_name_prefix=f"{hub}-activity"
        )
        self._episode_signal = Signal()
        self._activity_signal = Signal()
        self._busy_instances: set[str] = set()
        self._busy_lock = threading.Lock()
        self._activity_slots = threading.BoundedSemaphore(max_activities)
        self._completions: queue.SimpleQueue[tuple[ActivityWork, Message] | None] = (
            queue.SimpleQueue()
        )
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.episodes = 0
        self.activities_run = 0

    # Lifecycle

    def start(self) -> None:
        """Start the dispatcher threads."""
        for target, name in (
            (self._dispatch_episodes, "episodes"),
            (self._dispatch_activities, "activities"),
            (self._write_completions, "completions"),
        ):
            thread = threading.Thread(
                target=target, name=f"{self.hub}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop dispatching, let running work finish and flush completions."""
        self._stopping.set()
        self._episode_signal.set()
        self._activity_signal.set()
        self._orchestration_pool.shutdown(wait=True)
        self._activity_pool.shutdown(wait=True)
        self._completions.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def wake(self) -> None:
        """New messages were stored for this hub: look for ready instances now."""
        self._episode_signal.set()

    # Client operations

    def start_instance(
        self, name: str, instance_id: str | None, input_text: str | None
    ) -> Instance:
        """Create an instance and queue its ExecutionStarted message."""
        now = self.clock()
        instance = Instance(
            instance_id=instance_id or uuid.uuid4().hex,
            name=name,
            execution_id=uuid.uuid4().hex,
            input=input_text,
            created_at=now,
            updated_at=now,
        )
        moment = datetime.fromtimestamp(now).astimezone()
        started = Message(
            instance_id=instance.instance_id,
            execution_id=instance.execution_id,
            event=started_event(instance, moment),
            visible_at=now,
        )
        self.store.submit_instance(self.hub, instance, started, self.wake).result()
        return instance

    def send_control(self, instance_id: str, kind: EventType, **fields: Any) -> None:
        """Queue a control event (raise, terminate, suspend, resume) for an instance."""
        now = self.clock()
        moment = datetime.fromtimestamp(now).astimezone()
        message = Message(
            instance_id=instance_id,
            event=event(kind, moment, **fields),
            visible_at=now,
        )
        self.store.enqueue(self.hub, [message])
        self.wake()

    # Orchestrator episodes

    def _dispatch_episodes(self) -> None:
        while not self._stopping.is_set():
            now = self.clock()
            with self._busy_lock:
                free = self.max_orchestrations - len(self._busy_instances)
                busy = set(self._busy_instances)
            ready = (
                self.store.ready_instances(self.hub, now, free, busy) if free else []
            )
            for instance_id in ready:
                with self._busy_lock:
                    self._busy_instances.add(instance_id)
                future = self._orchestration_pool.submit(self._episode, instance_id)
                future.add_done_callback(self._episode_done(instance_id))
            if ready:
                continue
            due = self.store.next_due(self.hub)
            timeout = IDLE_POLL_SECONDS if due is None else due - self.clock()
            if free == 0 or timeout > 0:
                self._episode_signal.wait(min(max(timeout, 0.001), IDLE_POLL_SECONDS))

    def _episode_done(self, instance_id: str) -> Callable[[Future[None]], None]:
        def done(future: Future[None]) -> None:
            with self._busy_lock:
                self._busy_instances.discard(instance_id)
            self._episode_signal.set()
            error = future.exception()
            if error is not None:
                logger.error(
                    "episode of instance %s in hub %s crashed: %s",
                    instance_id,
                    self.hub,
                    "".join(traceback.format_exception(error)),
                )

        return done

    def _episode(self, instance_id: str) -> None:
        now = self.clock()
        loaded = self.store.load(self.hub, instance_id, now)
        if not loaded.pending:
            return
        instance = loaded.instance
        if instance is None:
            self._drop_orphans(instance_id, loaded.pending)
            return
        entry = self.index.orchestrators.get(instance.name)
        started = time.perf_counter()
        was_new = not loaded.history
        result = run_episode(
            instance,
            loaded.history,
            loaded.pending,
            entry.call if entry else None,
            now,
        )
        self.store.commit_episode(self.hub, result)
        self.episodes += result.ran_orchestrator
        self._log_episode(result, was_new, time.perf_counter() - started)
        if result.activities:
            self._activity_signal.set()
        if result.messages:
            self._episode_signal.set()

    def _drop_orphans(self, instance_id: str, pending: list[Message]) -> None:
        """Messages for an instance that no longer exists have nowhere to go."""
        ids = [m.id for m in pending if m.id is not None]
        logger.warning(
            "dropping %d messages for unknown instance %s in hub %s",
            len(ids),
            instance_id,
            self.hub,
        )
        self.store.delete_messages(ids)

    def _log_episode(
        self, result: EpisodeResult, was_new: bool, seconds: float
    ) -> None:
        instance = result.instance
        if was_new and result.ran_orchestrator:
            logger.info(
                "Executing orchestrator %s (instance %s, hub %s)",
                instance.name,
                instance.instance_id,
                self.hub,
            )
        if result.finished or instance.status == "ContinuedAsNew":
            level = logging.WARNING if instance.status == "Failed" else logging.INFO
            logger.log(
                level,
                "Executed orchestrator %s (instance %s, hub %s): %s%s",
                instance.name,
                instance.instance_id,
                self.hub,
                instance.status,
                f": {result.error}" if result.error else "",
            )
        logger.debug("episode of %s took %.1f ms", instance.instance_id, seconds * 1000)

    # Activities

    def _dispatch_activities(self) -> None:
        high_water = 0
        while not self._stopping.is_set():
            batch = self.store.claim_activities(
                self.hub, high_water, self.max_activities
            )
            if not batch:
                self._activity_signal.wait(IDLE_POLL_SECONDS)
                continue
            for work in batch:
                assert work.id is not None
                high_water = max(high_water, work.id)
                while not self._activity_slots.acquire(timeout=IDLE_POLL_SECONDS):
                    if self._stopping.is_set():
                        return
                self._launch_activity(work)

    def _launch_activity(self, work: ActivityWork) -> None:
        entry = self.index.activities.get(work.name)
        if entry is not None and entry.is_async:
            coroutine = self._run_async_activity(entry, work)
            asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        else:
            self._activity_pool.submit(self._run_sync_activity, entry, work)

    def _run_sync_activity(
        self, entry: FunctionEntry | None, work: ActivityWork
    ) -> None:
        started = time.perf_counter()
        invocation_id = self._log_activity_start(work)
        try:
            if entry is None:
                raise LookupError(f"Activity function '{work.name}' does not exist")
            output = entry.call(**self._activity_arguments(entry, work))
            self._finish_activity(work, invocation_id, started, output=output)
        except Exception as exc:
            self._finish_activity(work, invocation_id, started, error=exc)
        finally:
            self._activity_slots.release()

    async def _run_async_activity(
        self, entry: FunctionEntry, work: ActivityWork
    ) -> None:
        started = time.perf_counter()
        invocation_id = self._log_activity_start(work)
        try:
            output = await entry.call(**self._activity_arguments(entry, work))
            self._finish_activity(work, invocation_id, started, output=output)
        except Exception as exc:
            self._finish_activity(work, invocation_id, started, error=exc)
        finally:
            self._activity_slots.release()

    def _activity_arguments(
        self, entry: FunctionEntry, work: ActivityWork
    ) -> dict[str, Any]:
        datum = meta.Datum(type="json", value=work.input if work.input else "null")
        arguments: dict[str, Any] = {
            entry.trigger_param: ActivityTriggerConverter.decode(
                datum, trigger_metadata=None
            )
        }
        arguments.update(self.client_factory(entry))
        return arguments

    def _log_activity_start(self, work: ActivityWork) -> str:
        invocation_id = uuid.uuid4().hex
        logger.info(
            "Executing activity %s (invocation %s, instance %s, task %d)",
            work.name,
            invocation_id,
            work.instance_id,
            work.task_id,
        )
        return invocation_id

    def _finish_activity(
        self,
        work: ActivityWork,
        invocation_id: str,
        started: float,
        *,
        output: Any = None,
        error: Exception | None = None,
    ) -> None:
        moment = datetime.fromtimestamp(self.clock()).astimezone()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if error is None:
            try:
                result = ActivityTriggerConverter.encode(
                    output, expected_type=None
                ).value
                reply = event(
                    EventType.TASK_COMPLETED,
                    moment,
                    TaskScheduledId=work.task_id,
                    Result=result,
                )
            except ValueError as exc:
                error = exc
        if error is not None:
            reply = event(
                EventType.TASK_FAILED,
                moment,
                TaskScheduledId=work.task_id,
                Reason=str(error) or type(error).__name__,
                Details="".join(traceback.format_exception(error)).strip(),
            )
        logger.log(
            logging.INFO if error is None else logging.WARNING,
            "Executed activity %s (invocation %s, instance %s, task %d): "
            "%s in %.1f ms%s",
            work.name,
            invocation_id,
            work.instance_id,
            work.task_id,
            "Succeeded" if error is None else "Failed",
            elapsed_ms,
            f": {error}" if error is not None else "",
        )
        self.activities_run += 1
        message = Message(
            instance_id=work.instance_id,
            execution_id=work.execution_id,
            event=reply,
            visible_at=moment.timestamp(),
            meta=work.meta if "retry" in work.meta else {},
        )
        self._completions.put((work, message))

    def _write_completions(self) -> None:
        """Commit activity results in batches, so a fan-out costs few transactions."""
        while True:
            first = self._completions.get()
            if first is None:
                return
            batch = [first]
            for _ in itertools.repeat(None, COMPLETION_BATCH - 1):
                try:
                    item = self._completions.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.store.complete_activities(self.hub, batch)
                    self.wake()
                    return
                batch.append(item)
            self.store.complete_activities(self.hub, batch)
            self.wake()
