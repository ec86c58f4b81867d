"""Dispatchers that run one task hub's orchestrator episodes and activities.

Each hub gets its own bounded pools, so a flood in one hub never takes the
slots reserved for another. Which instances have work is kept in memory (see
ReadySet); dispatchers are threads that sleep until a commit makes work ready
or the next timer is due. Episodes run in batches, each loaded, replayed and
committed by an episode process (see EpisodeProcess and
duralane.runtime.batches) or, with none configured, on the hub's pool;
activities run on the pool, async ones on the runtime's one long-lived event
loop, or a hub's own loop above priority 0. Every other write goes through the
store's writer thread. The writer and the episode processes serve hubs by
priority; while more urgent work is starting, a hub's episodes and activities
wait briefly (duralane.urgency). docs/runtime.md has the whole picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from duralane.ids import random_hex
from duralane.lending import PriorityLender
from duralane.runtime.app import AppIndex, FunctionEntry, load_app
from duralane.runtime.batches import EpisodeBatch, EpisodeReport, run_batch
from duralane.runtime.config import log_format
from duralane.runtime.episode import (
    ActivityWork,
    Instance,
    Message,
    install_executor_reuse,
    install_fast_timestamps,
    started_event,
)
from duralane.runtime.history import EventType, event
from duralane.runtime.hubstore import HubStore, MessageRow, OwnerGone
from duralane.urgency import Urgency, urgent_work

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
IDLE_POLL_SECONDS = 1.0
PARENT_POLL_SECONDS = 1.0
# What an episode process sends once it has imported the app.
READY = "ready"
# An episode that crashes inside the runtime is retried after 0.5, 1, 2 and 4 s
# and the instance fails on the fifth crash; the cap bounds the wait when even
# failing it crashes (a broken store), so a bad instance never spins a core.
CRASH_ATTEMPTS = 5
CRASH_BACKOFF_SECONDS = 0.5
CRASH_BACKOFF_MAX = 30.0
# Episodes sent to a process at once: enough to amortise the pipe round trip,
# few enough that one batch does not hold many instances for long.
MAX_BATCH = 32


class Signal:
    """A wake-up flag a dispatcher can wait on with a deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._set = False

    def set(self) -> None:
        # Unlocked fast path: a raised flag was raised and notified under the
        # lock, and wait() clears it under the lock, so the waiter will see it.
        if self._set:
            return
        with self._condition:
            self._set = True
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        with self._condition:
            if not self._set:
                self._condition.wait(timeout)
            self._set = False


class ReadySet:
    """Which instances of a hub have due messages, kept in memory.

    One process owns a hub's store, so every message it stores passes through
    here once committed: starts, control operations, episode results and
    activity completions. Future messages wait in a due-time heap. The store
    is scanned only at startup. An instance is handed out to one episode at a
    time; messages that arrive meanwhile make it ready again when it is
    released.
    """

    def __init__(self, signal: Signal) -> None:
        self._signal = signal
        self._lock = threading.Lock()
        self._ready: dict[str, None] = {}
        self._timers: list[tuple[float, str]] = []
        self._taken: set[str] = set()
        self._again: set[str] = set()

    def add(
        self, instance_id: str, visible_at: float, now: float, *, wake: bool = True
    ) -> None:
        """An instance has a message that becomes visible at visible_at.

        The store's writer passes wake=False and wakes the dispatcher once
        per committed batch instead.
        """
        with self._lock:
            if visible_at <= now:
                self._mark_ready(instance_id)
            else:
                heapq.heappush(self._timers, (visible_at, instance_id))
        if wake:
            self._signal.set()

    def take(self, limit: int, now: float, parts: int = 1) -> list[str]:
        """Up to limit ready instances, oldest first, now held by the caller.

        With parts, at most that share of the ready ones, so that as many
        takers as there are parts each get some.
        """
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                self._mark_ready(heapq.heappop(self._timers)[1])
            share = -(-len(self._ready) // parts)
            taken = list(itertools.islice(self._ready, min(limit, share)))
            for instance_id in taken:
                del self._ready[instance_id]
            self._taken.update(taken)
            return taken

    def release(
        self, instance_id: str, *, again: bool = False, wake: bool = True
    ) -> None:
        """An episode's results are committed; the instance may be taken again."""
        with self._lock:
            self._taken.discard(instance_id)
            if again or instance_id in self._again:
                self._again.discard(instance_id)
                self._ready[instance_id] = None
        if wake:
            self._signal.set()

    def defer(self, instance_id: str, until: float) -> None:
        """Release a held instance but keep it from running again before until.

        Messages that arrived while it was held wait too: a crashing instance
        must back off however busy it is.
        """
        with self._lock:
            self._taken.discard(instance_id)
            self._again.discard(instance_id)
            self._ready.pop(instance_id, None)
            heapq.heappush(self._timers, (until, instance_id))
        self._signal.set()

    def held(self) -> int:
        """How many instances are in an episode right now."""
        with self._lock:
            return len(self._taken)

    def next_due(self) -> float | None:
        """When the earliest future message becomes visible."""
        with self._lock:
            return self._timers[0][0] if self._timers else None

    def _mark_ready(self, instance_id: str) -> None:
        if instance_id in self._taken:
            self._again.add(instance_id)
        else:
            self._ready[instance_id] = None


class EpisodeProcess:
    """One worker process that replays orchestrators for the runtime.

    It imports the app once, as an Azure worker does, then runs batches of
    episodes sent over a pipe, each from its load to its commit (see
    duralane.runtime.batches). An orchestrator module must therefore be
    importable in a fresh process, and import-time side effects run once per
    process.
    """

    def __init__(self, app_path: Path) -> None:
        self.app_path = app_path
        self._start()

    def _start(self) -> None:
        # A fresh interpreter, not fork: the runtime's threads hold locks and
        # SQLite handles a forked child would inherit in an undefined state.
        # Not multiprocessing's spawn either: it re-imports the parent's
        # __main__, which an embedding script may not guard.
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            "PYTHONPATH": package_root + (os.pathsep + path if path else ""),
        }
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from duralane.runtime.engine import serve_episodes; serve_episodes()",
                str(theirs.fileno()),
                str(self.app_path),
                str(logging.getLogger().getEffectiveLevel()),
                str(os.getpid()),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._ready = False

    def wait_ready(self, timeout: float | None) -> None:
        """Wait until the process has imported the app; raise if it cannot."""
        if self._ready:
            return
        if timeout is not None and not self._conn.poll(timeout):
            raise RuntimeError(
                f"episode process {self._process.pid} did not import "
                f"{self.app_path.name} within {timeout:.0f}s"
            )
        try:
            signal = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise RuntimeError(
                f"episode process {self._process.pid} exited while importing "
                f"{self.app_path.name} (exit code {self._process.poll()})"
            ) from exc
        if signal != READY:
            raise RuntimeError(f"episode process sent {signal!r} before {READY!r}")
        self._ready = True

    @property
    def pid(self) -> int:
        return self._process.pid

    def run(self, batch: EpisodeBatch) -> list[EpisodeReport]:
        """Run a batch of episodes; a dead process is replaced, and the batch fails."""
        try:
            self.wait_ready(None)
            self._conn.send(batch)
            reports: list[EpisodeReport] = self._conn.recv()
            return reports
        except (EOFError, OSError) as exc:
            logger.error(
                "episode process %s of %s died (exit code %s); starting another",
                self._process.pid,
                self.app_path.name,
                self._process.poll(),
            )
            self.stop()
            self._start()
            raise RuntimeError(f"the episode process died: {exc!r}") from exc

    def stop(self) -> None:
        """End the process once it has finished its current batch."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()


class EpisodeProcesses:
    """A fixed set of episode processes, lent out one batch at a time.

    Every hub shares them, so an idle process goes to the waiting batch of the
    highest-priority hub (arrival order within a priority): a high-priority
    batch waits for at most the batches already running, never for a lower
    hub's queue. The processes start on start() or the first episode,
    whichever comes first; they import the app while the runtime goes on
    starting.
    """

    def __init__(self, app_path: Path, processes: int) -> None:
        self.app_path = app_path
        self.processes = processes
        self._all: list[EpisodeProcess] = []
        self._start_lock = threading.Lock()
        self._lender: PriorityLender[EpisodeProcess] = PriorityLender()

    def start(self) -> None:
        """Launch the processes without waiting for them to import the app."""
        with self._start_lock:
            if not self._all:
                for _ in range(self.processes):
                    process = EpisodeProcess(self.app_path)
                    self._all.append(process)
                    self._lender.add(process)

    def wait_ready(self, timeout: float) -> None:
        """Wait until every process has imported the app, within the timeout."""
        deadline = time.monotonic() + timeout
        for process in list(self._all):
            process.wait_ready(max(deadline - time.monotonic(), 0.0))

    def pids(self) -> list[int]:
        """The process ids, for CPU accounting."""
        return [process.pid for process in self._all]

    def run(self, batch: EpisodeBatch) -> list[EpisodeReport]:
        """Run a batch on the next idle process, higher priorities served first."""
        if not self._all:
            self.start()
        with self._lender.lent(batch.priority) as process:
            return process.run(batch)

    def stop(self) -> None:
        """End every process; call once the hub workers have stopped."""
        for process in self._all:
            process.stop()


def serve_episodes() -> None:
    """An episode process's main loop: import the app, then run batches.

    Arguments (argv): the socket fd to the runtime, the app path, the log
    level and the runtime's pid.
    """
    fd, app_path, log_level, parent = sys.argv[1:5]
    conn = Connection(int(fd))
    logging.basicConfig(level=int(log_level), format=log_format())
    threading.Thread(
        target=_exit_with_parent, args=(int(parent),), name="parent", daemon=True
    ).start()
    index = load_app(Path(app_path))
    install_fast_timestamps()
    install_executor_reuse()
    stores: dict[str, HubStore] = {}

    def still_owner() -> bool:
        # A runtime killed with SIGKILL leaves this process running for up to
        # PARENT_POLL_SECONDS; its successor may already be running the same
        # instances, so a batch it handed out must not be committed.
        return os.getppid() == int(parent)

    conn.send(READY)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        store = stores.get(batch.store_path)
        if store is None:
            store = stores[batch.store_path] = HubStore(Path(batch.store_path))
        try:
            conn.send(run_batch(index, store, batch, still_owner))
        except OwnerGone:
            os._exit(0)


def _exit_with_parent(parent: int) -> None:
    """A killed runtime must not leave episode processes behind."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _formatted(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)).strip()


def default_episode_processes() -> int:
    """One episode process per core; none (run in this process) on one core."""
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


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
        processes: EpisodeProcesses | None = None,
        priority: int = 0,
        urgency: Urgency = urgent_work,
    ) -> None:
        self.hub = hub
        # Shared resources (the store's writer, the episode processes) serve
        # higher-priority hubs first.
        self.priority = priority
        store.priorities[hub] = priority
        # While more urgent work is starting, this hub's episodes and
        # activities wait briefly before they begin (see duralane.urgency).
        self.urgency = urgency
        self.store = store
        self.index = index
        self.loop = loop
        self.clock = clock
        self.client_factory = client_factory
        self.max_orchestrations = max_orchestrations
        self.max_activities = max_activities
        self.processes = processes
        self._orchestration_pool = ThreadPoolExecutor(
            max_orchestrations, thread_name_prefix=f"{hub}-orchestrator"
        )
        self._activity_pool = ThreadPoolExecutor(
            max_activities, thread_name_prefix=f"{hub}-activity"
        )
        self._episode_signal = Signal()
        self._activity_signal = Signal()
        self._ready = ReadySet(self._episode_signal)
        self._activity_slots = threading.BoundedSemaphore(max_activities)
        # Crashes per instance since its last good episode; read and written
        # only under _crash_lock because episode threads share it.
        self._crashes: dict[str, int] = {}
        self._crash_lock = threading.Lock()
        # Set by commit callbacks and read by _batch_committed, both on the
        # store's writer thread: a batch wakes only the dispatchers of hubs it
        # gave work to, not every hub's on every commit.
        self._new_episodes = False
        # Episode batches handed out and not yet settled (see _episodes).
        self._batches_running = 0
        self._batches_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # A hub above the lowest priority runs its async activities on a loop
        # of its own, so they never queue behind the HTTP requests and other
        # hubs' activities on the runtime's loop.
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._own_loop_thread: threading.Thread | None = None
        if priority > 0:
            self._own_loop = asyncio.new_event_loop()
            self._own_loop_thread = threading.Thread(
                target=self._own_loop.run_forever,
                name=f"{hub}-activity-loop",
                daemon=True,
            )
        # Counts for the benchmarks, raised from several threads at once.
        self.episodes = 0
        self.activities_run = 0
        self._counts_lock = threading.Lock()

    # Lifecycle

    def start(self) -> None:
        """Rebuild the ready set from the store, then start the dispatchers."""
        if self.processes is None:
            install_executor_reuse()
            if install_fast_timestamps():
                logger.info("hub %s replays with the fast timestamp parse", self.hub)
        now = self.clock()
        for instance_id, visible_at in self.store.due_instances(self.hub):
            self._ready.add(instance_id, visible_at, now)
        self.store.listeners.append(self._batch_committed)
        if self._own_loop_thread is not None:
            self._own_loop_thread.start()
        for target, name in (
            (self._dispatch_episodes, "episodes"),
            (self._dispatch_activities, "activities"),
        ):
            thread = threading.Thread(
                target=target, name=f"{self.hub}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop dispatching and let running work finish and commit."""
        self._stopping.set()
        self._episode_signal.set()
        self._activity_signal.set()
        # Dispatchers first: a pool that is shut down refuses their submits.
        for thread in self._threads:
            thread.join(timeout=10)
        self._orchestration_pool.shutdown(wait=True)
        self._activity_pool.shutdown(wait=True)
        if self._own_loop is not None and self._own_loop_thread is not None:
            # Async activities still running are dropped; their work rows
            # stay, so they run again after a restart (at least once).
            self._own_loop.call_soon_threadsafe(self._own_loop.stop)
            self._own_loop_thread.join(timeout=10)

    def _batch_committed(self) -> None:
        """The writer committed a batch: let the dispatchers see what it made ready."""
        if self._new_episodes:
            self._new_episodes = False
            self._episode_signal.set()

    def wake(self) -> None:
        """Let the dispatchers look for work now."""
        self._episode_signal.set()

    # Client operations

    def start_instance(
        self, name: str, instance_id: str | None, input_text: str | None
    ) -> Instance:
        """Create an instance and queue its ExecutionStarted message.

        Raises InstanceExists when the id is taken by a running instance.
        """
        instance, started = self._new_instance(name, instance_id, input_text)
        self.store.submit_instance(
            self.hub, instance, started, lambda: self._arrived([started])
        ).result()
        return instance

    async def start_on_loop(
        self, name: str, instance_id: str | None, input_text: str | None
    ) -> Instance:
        """start_instance for the event loop: it waits without tying up a thread."""
        instance, started = self._new_instance(name, instance_id, input_text)
        await self.store.submit_instance_on_loop(
            self.hub, instance, started, lambda: self._arrived([started])
        )
        return instance

    def _new_instance(
        self, name: str, instance_id: str | None, input_text: str | None
    ) -> tuple[Instance, Message]:
        """A new instance and its ExecutionStarted message, not yet stored."""
        now = self.clock()
        instance = Instance(
            instance_id=instance_id or random_hex(),
            name=name,
            execution_id=random_hex(),
            input=input_text,
            created_at=now,
            updated_at=now,
        )
        moment = datetime.fromtimestamp(now, UTC)
        started = Message(
            instance_id=instance.instance_id,
            execution_id=instance.execution_id,
            event=started_event(instance, moment),
            visible_at=now,
        )
        return instance, started

    def send_control(self, instance_id: str, kind: EventType, **fields: Any) -> None:
        """Queue a control event (raise, terminate, suspend, resume) for an instance."""
        now = self.clock()
        moment = datetime.fromtimestamp(now, UTC)
        message = Message(
            instance_id=instance_id,
            event=event(kind, moment, **fields),
            visible_at=now,
        )
        self.store.enqueue(self.hub, [message], lambda: self._arrived([message]))

    def _arrived(self, messages: list[Message] | list[MessageRow]) -> None:
        """Messages are committed: their instances become ready when they are due.

        Runs on the store's writer thread, which wakes the dispatchers once
        per batch (see start()).
        """
        now = self.clock()
        for message in messages:
            self._ready.add(message.instance_id, message.visible_at, now, wake=False)
        self._new_episodes = True

    # Orchestrator episodes

    def _dispatch_episodes(self) -> None:
        """Cut a batch whenever an episode process can take one.

        At most one batch per process is out at a time (one in all without
        processes), so the instances that become ready while the processes
        are busy go out together, not as a batch of one each.
        """
        lanes = self.processes.processes if self.processes is not None else 1
        while not self._stopping.is_set():
            idle = lanes - self._batches_running
            free = self.max_orchestrations - self._ready.held()
            if idle > 0 and free > 0:
                limit = min(free, MAX_BATCH)
                ready = self._ready.take(limit, self.clock(), parts=idle)
                if ready:
                    with self._batches_lock:
                        self._batches_running += 1
                    self._orchestration_pool.submit(self._episodes, ready)
                    continue
            # A settled batch wakes this thread, so only an idle process
            # needs to wait for the next timer.
            due = self._ready.next_due() if idle > 0 else None
            timeout = IDLE_POLL_SECONDS if due is None else due - self.clock()
            self._episode_signal.wait(min(max(timeout, 0.001), IDLE_POLL_SECONDS))

    def _episodes(self, instance_ids: list[str]) -> None:
        """Run a batch of episodes and settle what each one came to.

        Each instance stays held from take() until its report is settled, so
        no two episodes of one instance ever overlap.
        """
        try:
            self.urgency.hold_off(self.priority)
            with self._crash_lock:
                give_up = {
                    instance_id: self._crashes[instance_id]
                    for instance_id in instance_ids
                    if self._crashes.get(instance_id, 0) >= CRASH_ATTEMPTS
                }
            batch = EpisodeBatch(
                str(self.store.path),
                self.hub,
                instance_ids,
                self.clock(),
                self.priority,
                give_up,
            )
            try:
                if self.processes is not None:
                    reports = self.processes.run(batch)
                else:
                    reports = run_batch(self.index, self.store, batch)
            except Exception as exc:
                # The process died, perhaps after its commit: find the messages
                # it stored but could not report, then retry the whole batch.
                self._rescan()
                for instance_id in instance_ids:
                    self._crashed(instance_id, _formatted(exc))
                return
            now = self.clock()
            for report in reports:
                self._settle(report, now)
        finally:
            with self._batches_lock:
                self._batches_running -= 1
            self._episode_signal.set()

    def _settle(self, report: EpisodeReport, now: float) -> None:
        """Act on one instance's report, then release it."""
        instance_id = report.instance_id
        if report.crash is not None:
            self._crashed(instance_id, report.crash)
            return
        if report.dropped:
            logger.warning(
                "dropped %d messages for unknown instance %s in hub %s",
                report.dropped,
                instance_id,
                self.hub,
            )
        if report.ran:
            with self._crash_lock:
                self._crashes.pop(instance_id, None)
            with self._counts_lock:
                self.episodes += report.ran_orchestrator
            self._log_episode(report)
            for target, visible_at in report.arrived:
                self._ready.add(target, visible_at, now, wake=False)
            if report.activities:
                self._activity_signal.set()
        if report.next_due is not None:
            self._ready.add(instance_id, report.next_due, now, wake=False)
        self._ready.release(instance_id, again=report.more, wake=False)

    def _rescan(self) -> None:
        """Rebuild the ready set from the store, as at startup."""
        now = self.clock()
        try:
            due = self.store.due_instances(self.hub)
        except Exception:
            # The batch's own retries will find their instances' messages;
            # only what it sent to other instances waits for the next rescan.
            logger.exception("could not rescan hub %s for ready instances", self.hub)
            return
        for instance_id, visible_at in due:
            self._ready.add(instance_id, visible_at, now, wake=False)
        self._activity_signal.set()

    def _crashed(self, instance_id: str, error: str) -> None:
        """Retry a crashed episode later, then fail the instance (see run_batch)."""
        with self._crash_lock:
            crashes = self._crashes.get(instance_id, 0) + 1
            self._crashes[instance_id] = crashes
        delay = min(CRASH_BACKOFF_SECONDS * 2 ** (crashes - 1), CRASH_BACKOFF_MAX)
        logger.error(
            "episode of instance %s in hub %s crashed (crash %d; the instance "
            "fails after %d), retrying in %.1f s: %s",
            instance_id,
            self.hub,
            crashes,
            CRASH_ATTEMPTS,
            delay,
            error,
        )
        self._ready.defer(instance_id, self.clock() + delay)

    def _log_episode(self, report: EpisodeReport) -> None:
        if report.gave_up_after:
            logger.warning(
                "failed instance %s in hub %s after %d crashed episodes",
                report.instance_id,
                self.hub,
                report.gave_up_after,
            )
        if report.first_episode and report.ran_orchestrator:
            # The execution id is the invocation id: it names this run of the
            # instance, and continue-as-new starts a new one.
            logger.info(
                "Executing orchestrator %s (invocation %s, instance %s, hub %s)",
                report.name,
                report.execution_id,
                report.instance_id,
                self.hub,
            )
        if report.finished or report.status == "ContinuedAsNew":
            level = logging.WARNING if report.status == "Failed" else logging.INFO
            logger.log(
                level,
                "Executed orchestrator %s (invocation %s, instance %s, hub %s): "
                "%s in %.1f ms%s",
                report.name,
                report.execution_id,
                report.instance_id,
                self.hub,
                report.status,
                (report.updated_at - report.created_at) * 1000,
                f": {report.error}" if report.error else "",
            )
        logger.debug(
            "episode of %s in hub %s replayed in %.1f ms",
            report.instance_id,
            self.hub,
            report.replay_ms,
        )

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
                self.urgency.hold_off(self.priority)
                self._launch_activity(work)

    def _launch_activity(self, work: ActivityWork) -> None:
        entry = self.index.activities.get(work.name)
        if entry is not None and entry.is_async:
            coroutine = self._run_async_activity(entry, work)
            asyncio.run_coroutine_threadsafe(coroutine, self._activity_loop(entry))
        else:
            self._activity_pool.submit(self._run_sync_activity, entry, work)

    def _activity_loop(self, entry: FunctionEntry) -> asyncio.AbstractEventLoop:
        """The hub's own loop, unless the activity takes a durable client."""
        # Hazard: the Durable SDK keeps one aiohttp session for the process,
        # bound to the runtime's loop; a client used from another loop fails.
        if self._own_loop is None or any(
            binding.type == "durableClient" for binding in entry.bindings
        ):
            return self.loop
        return self._own_loop

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
        invocation_id = random_hex()
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
        moment = datetime.fromtimestamp(self.clock(), UTC)
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
        with self._counts_lock:
            self.activities_run += 1
        message = Message(
            instance_id=work.instance_id,
            execution_id=work.execution_id,
            event=reply,
            visible_at=moment.timestamp(),
            meta=work.meta if "retry" in work.meta else {},
        )
        self.store.submit_completions(
            self.hub, [(work, message)], lambda: self._arrived([message])
        )
