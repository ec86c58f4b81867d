"""The embedded runtime: loads the app, serves HTTP, runs hubs, timers and queues."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from azure.durable_functions.models.utils.http_utils import (
    _close_session as close_durable_client_session,
)

from duralane.runtime.app import AppIndex, FunctionEntry, load_app
from duralane.runtime.config import (
    ConfigError,
    HostConfig,
    HubSettings,
    load_host_config,
    load_local_settings,
    process_count,
    resolve_setting_reference,
)
from duralane.runtime.datadir import DataDirInUse, DataDirLock
from duralane.runtime.engine import (
    EpisodeProcesses,
    HubWorker,
    default_episode_processes,
)
from duralane.runtime.episode import FAST_TIMESTAMPS_SETTING
from duralane.runtime.http_api import (
    RPC_SEGMENT,
    WEBHOOK_PREFIX,
    HttpApi,
    is_loopback,
    management_payload,
    peer_token,
)
from duralane.runtime.hubstore import HubStore
from duralane.runtime.inprocess import InProcessStarts
from duralane.runtime.servicebus import QueueProperties, ServiceBusQueueStore
from duralane.runtime.triggers import ServiceBusTrigger, TimerTrigger, supervise
from duralane.urgency import urgent_work

logger = logging.getLogger(__name__)

# Threads for blocking calls made from the event loop, starts above all: enough
# that every HTTP request in flight can wait on its commit at once.
START_THREADS = 64


EPISODE_IMPORT_TIMEOUT_SECONDS = 120.0


TriggerT = TypeVar("TriggerT", TimerTrigger, ServiceBusTrigger)


class RuntimeConfigError(Exception):
    """The runtime cannot start as configured; the message says why in one line."""


@dataclass(frozen=True)
class RuntimeOptions:
    """How to run: which app, where to listen, where to keep state."""

    app: Path = Path("function_app.py")
    host: str = "127.0.0.1"
    port: int = 7071
    data_dir: Path = Path(".duralane")
    # Task hubs another runtime on this machine runs, by name, at its base URL:
    # this one runs none of their work, and its durable clients call that one.
    peers: Mapping[str, str] = field(default_factory=dict)


def episodeprocess_count(config: HostConfig) -> int:
    """How many processes replay orchestrators; 0 runs episodes in this process.

    DURALANE_ORCHESTRATION_PROCESSES wins over host.json's
    extensions.duralane.orchestrationProcesses; the default is one per core.
    """
    text = os.environ.get("DURALANE_ORCHESTRATION_PROCESSES")
    if text is not None:
        try:
            count = process_count(text, "DURALANE_ORCHESTRATION_PROCESSES")
        except ConfigError as exc:
            raise RuntimeConfigError(str(exc)) from exc
        return count if count is not None else default_episode_processes()
    if config.orchestration_processes is not None:
        return config.orchestration_processes
    return default_episode_processes()


def peer_base_url(url: str) -> str:
    """A peer runtime's base URL, checked: http(s), a host, no path or query."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        raise RuntimeConfigError(
            f"peer URL {url!r} is not a runtime's base URL such as "
            "http://127.0.0.1:7072"
        )
    return f"{parts.scheme}://{parts.netloc}"


class Runtime:
    """One running instance of the embedded runtime."""

    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.host = options.host
        self.port = options.port
        app_dir = options.app.resolve().parent
        load_local_settings(app_dir)
        # --data-dir decides where everything lives, the app's own store included.
        os.environ["DURALANE_DATA_DIR"] = str(options.data_dir)
        self.api_key = os.environ.get("DURALANE_API_KEY", "")
        # The durable client cannot send a key, so its calls carry this secret path.
        self.rpc_token = secrets.token_urlsafe(18)
        # What peers' clients carry instead, the same in every runtime sharing
        # the key; empty without one.
        self.peer_token = peer_token(self.api_key)
        if not is_loopback(self.host) and not self.api_key:
            raise RuntimeConfigError(
                f"binding to {self.host} exposes the API beyond this machine; set "
                "DURALANE_API_KEY so function- and admin-level routes need a key"
            )
        self.host_config: HostConfig = load_host_config(app_dir)
        self.index: AppIndex = load_app(options.app)
        self.default_hub = self.host_config.hub_name
        self.peers = self._checked_peers(options.peers)
        options.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._data_dir_lock = DataDirLock.take(options.data_dir)
        except DataDirInUse as exc:
            raise RuntimeConfigError(str(exc)) from exc
        self.hub_store = HubStore(options.data_dir / "runtime.sqlite3")
        self.queues = ServiceBusQueueStore(options.data_dir / "queues.sqlite3")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.workers: dict[str, HubWorker] = {}
        processes = episodeprocess_count(self.host_config)
        if not self.host_config.fast_timestamps:
            # Episode processes inherit the environment, so they opt out too.
            os.environ[FAST_TIMESTAMPS_SETTING] = "0"
        self.episode_processes = (
            EpisodeProcesses(options.app.resolve(), processes) if processes else None
        )
        self._function_pool = ThreadPoolExecutor(
            max(self.host_config.max_concurrent_activities, 8),
            thread_name_prefix="function",
        )
        self._runner: web.AppRunner | None = None
        self._api: HttpApi | None = None
        self._in_process: InProcessStarts | None = None
        self._stopping = asyncio.Event()
        # Set once every hub runs: the port is bound before that (the hubs'
        # durable clients need it), and requests that come early wait for it.
        self.started = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._queue_triggers: dict[str, list[ServiceBusTrigger]] = {}

    # Lifecycle

    async def start(self) -> None:
        """Start serving; returns once the port is bound and the workers run."""
        self.loop = asyncio.get_running_loop()
        # Control operations wait for their commit on the loop's default
        # executor (asyncio.to_thread); its stock size, cores + 4, let a flood
        # of one lane's calls make another lane's call queue. Starts await
        # their commit on the loop itself.
        self.loop.set_default_executor(
            ThreadPoolExecutor(START_THREADS, thread_name_prefix="start")
        )
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        timers, queue_triggers = self._build_triggers()
        self._ensure_queues()
        await self._serve_http()
        if self.episode_processes is not None and self.index.orchestrators:
            self.episode_processes.start()
            # "Listening" must mean ready: the first episodes should not wait
            # for the processes to import the app.
            try:
                await asyncio.to_thread(
                    self.episode_processes.wait_ready, EPISODE_IMPORT_TIMEOUT_SECONDS
                )
            except RuntimeError as exc:
                raise RuntimeConfigError(str(exc)) from exc
        for hub in self._hub_settings():
            worker = HubWorker(
                hub.name,
                self.hub_store,
                self.index,
                self.loop,
                max_orchestrations=hub.max_orchestrations,
                max_activities=hub.max_activities,
                client_factory=self.client_arguments,
                processes=self.episode_processes,
                priority=hub.priority,
            )
            self.workers[hub.name] = worker
            worker.start()
        for trigger in queue_triggers:
            self._queue_triggers.setdefault(trigger.queue, []).append(trigger)
        loops = [(t.entry.name, t.run) for t in timers]
        loops += [(t.entry.name, t.run) for t in queue_triggers]
        for name, loop in loops:
            running = supervise(name, loop, self._stopping)
            self._background.append(asyncio.create_task(running))
        self.started.set()
        self._log_functions()

    def _build_triggers(self) -> tuple[list[TimerTrigger], list[ServiceBusTrigger]]:
        """Read every timer schedule and queue name before serving anything.

        A bad NCRONTAB or an unset %SETTING% stops the start with the function's
        name and the reason, as the host refuses to index such a function.
        """
        return (
            [self._trigger(TimerTrigger, entry) for entry in self.index.timers],
            [
                self._trigger(ServiceBusTrigger, entry)
                for entry in self.index.service_bus
            ],
        )

    def _trigger(
        self, kind: Callable[[Runtime, FunctionEntry], TriggerT], entry: FunctionEntry
    ) -> TriggerT:
        """One trigger, or a RuntimeConfigError naming its function."""
        try:
            return kind(self, entry)
        except (ConfigError, ValueError) as exc:
            raise RuntimeConfigError(
                f"function '{entry.name}' cannot start: {exc}"
            ) from exc

    async def stop(self) -> None:
        """Stop triggers, drain the workers and close the stores."""
        self._stopping.set()
        # Draining work must not wait for urgent starts that will not come.
        urgent_work.clear()
        for trigger_list in self._queue_triggers.values():
            for trigger in trigger_list:
                trigger.wake.set()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for worker in self.workers.values():
            await asyncio.to_thread(worker.stop)
        if self.episode_processes is not None:
            await asyncio.to_thread(self.episode_processes.stop)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._api is not None:
            await self._api.close()
        if self._in_process is not None:
            self._in_process.uninstall()
        self._function_pool.shutdown(wait=False)
        await close_durable_client_session()
        self.queues.close()
        await asyncio.to_thread(self.hub_store.stop_writer)
        self.hub_store.close()
        self._data_dir_lock.release()

    async def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM, then stop cleanly."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        logger.info("stopping the runtime")
        await self.stop()

    @property
    def base_url(self) -> str:
        """The URL clients on this machine reach the runtime at."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    # Invocation

    async def invoke(self, entry: FunctionEntry, arguments: dict[str, Any]) -> Any:
        """Call a user function: async ones on this loop, sync ones on the pool."""
        if entry.is_async:
            return await entry.call(**arguments)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._function_pool, lambda: entry.call(**arguments)
        )

    @property
    def rpc_base_url(self) -> str:
        """Where this process's durable clients send their calls."""
        return f"{self.base_url}{WEBHOOK_PREFIX}/{RPC_SEGMENT}/{self.rpc_token}/"

    def client_starter(self, hub: str, request: Any = None) -> str:
        """The JSON a durableClient binding receives: where its hub runs."""
        base = self.peers.get(hub, self.base_url)
        payload = management_payload(base, hub, "INSTANCEID", self.api_key)
        payload["id"] = "INSTANCEID"
        if hub in self.peers:
            rpc = self._peer_rpc_base_url(hub)
        else:
            rpc = self.rpc_base_url
            if hub != self.default_hub:
                rpc += f"taskhubs/{hub}/"
        return json.dumps(
            {
                "taskHubName": hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{rpc}orchestrators/{{functionName}}",
                    "createAndWaitOnNewInstancePostUri": f"{rpc}orchestrators/"
                    "{functionName}?timeout={timeoutInSeconds}",
                },
                "managementUrls": payload,
                "rpcBaseUrl": rpc,
                "requiredQueryStringParameters": "",
            }
        )

    def _peer_rpc_base_url(self, hub: str) -> str:
        """Where a durable client calls a hub that a peer runtime runs.

        The client cannot send a key: with one set, the path carries a token
        derived from it, as the rpc token does for this runtime's own clients.
        """
        rpc = f"{self.peers[hub]}{WEBHOOK_PREFIX}/"
        if self.api_key:
            rpc += f"{RPC_SEGMENT}/{self.peer_token}/"
        return rpc + f"taskhubs/{quote(hub, safe='')}/"

    def client_arguments(self, entry: FunctionEntry) -> dict[str, str]:
        """A starter for each durableClient binding, for the task hub it names."""
        arguments = {}
        for binding in entry.bindings:
            if binding.type == "durableClient":
                arguments[binding.name] = self.client_starter(self.binding_hub(binding))
        return arguments

    def binding_hub(self, binding: Any) -> str:
        """The task hub a durableClient binding names, %SETTING% resolved."""
        name = getattr(binding, "task_hub", None)
        return resolve_setting_reference(str(name)) if name else self.default_hub

    def wake_queue(self, queue: str) -> None:
        """A message was sent: let the queue's triggers receive it now."""
        for trigger in self._queue_triggers.get(queue, []):
            trigger.wake.set()

    # Setup

    def _checked_peers(self, peers: Mapping[str, str]) -> dict[str, str]:
        """Peer hubs by name with their base URLs, each hub one the app names."""
        known = {hub.name for hub in self._declared_hubs()}
        checked = {}
        for hub, url in peers.items():
            if hub not in known:
                raise RuntimeConfigError(
                    f"peer task hub '{hub}' is not one this app uses (it uses "
                    f"{', '.join(sorted(known))})"
                )
            checked[hub] = peer_base_url(url)
        return checked

    def _hub_settings(self) -> list[HubSettings]:
        """The task hubs this runtime runs: every one the app uses but its peers'."""
        return [hub for hub in self._declared_hubs() if hub.name not in self.peers]

    def _declared_hubs(self) -> list[HubSettings]:
        """Every task hub host.json or a durableClient binding names."""
        config = self.host_config
        hubs = {
            config.hub_name: HubSettings(
                config.hub_name,
                config.max_concurrent_activities,
                config.max_concurrent_orchestrations,
            )
        }
        for hub in config.hubs:
            hubs[hub.name] = hub
        for entry in self.index.functions:
            for binding in entry.bindings:
                if binding.type == "durableClient":
                    name = self.binding_hub(binding)
                    hubs.setdefault(name, HubSettings(name, 8, 8))
        return list(hubs.values())

    def _ensure_queues(self) -> None:
        """Create the embedded queue behind every Service Bus trigger."""
        for entry in self.index.service_bus:
            name = ServiceBusTrigger.queue_name(entry)
            settings = self.host_config.queue(name)
            self.queues.ensure_queue(
                name,
                QueueProperties(
                    max_delivery_count=settings.max_delivery_count,
                    lock_duration=settings.lock_duration,
                    duplicate_detection_window=settings.duplicate_detection_window,
                ),
            )

    async def _serve_http(self) -> None:
        api = self._api = HttpApi(self)
        self._in_process = InProcessStarts(api)
        self._in_process.install()
        self._runner = web.AppRunner(api.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    def _log_functions(self) -> None:
        logger.info("Functions in %s:", self.index.module_name)
        for entry in self.index.functions:
            logger.info("    %s", entry.describe())
        for hub, url in self.peers.items():
            logger.info("    task hub %s runs in the runtime at %s", hub, url)
        logger.info(
            "Duralane runtime listening on %s (task hubs: %s; data in %s)",
            self.base_url,
            ", ".join(self.workers) or "none, all run by peers",
            self.options.data_dir,
        )
