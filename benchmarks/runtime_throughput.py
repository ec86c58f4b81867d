"""How many durable work items a second the embedded runtime runs, next to DBOS.

Two workloads on each engine, both durable on SQLite on this machine:

  (a) many single-activity orchestrations (DBOS: workflows of one step),
  (b) one orchestration fanning out to N activities (DBOS: one workflow that
      enqueues N steps on a queue and waits for them).

Duralane runs in this process: the Runtime loads benchmarks/apps/
throughput_bench_app.py (with the host.json beside it, which raises both
concurrency limits from the default 16 to 64) on port 0 with a temporary data
directory; instances are started as the HTTP API's start route starts them
(HubWorker.start_on_loop, its commit awaited on the runtime's event loop),
STARTERS at a time, as that many concurrent HTTP clients would, and
completion is seen by polling the hub's SQLite file. DBOS runs in a child
process of this script so its logging, threads and SQLAlchemy engines cannot
touch the runtime's; its workflows are started from STARTERS threads, through
its own synchronous start_workflow. Last line: one JSON object.

    python benchmarks/runtime_throughput.py [--orchestrations 2000] [--width 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from duralane.runtime.engine import HubWorker  # noqa: E402
from duralane.runtime.host import Runtime, RuntimeOptions  # noqa: E402

logger = logging.getLogger("benchmarks.runtime_throughput")

APP = Path(__file__).resolve().parent / "apps" / "throughput_bench_app.py"
POLL_SECONDS = 0.02
# At most 2 s of polls for the counts to settle after the last instance ends.
SETTLE_POLLS = 100
WARM_UP = 50
# Each start waits for its commit, so the concurrent starts cap how much work
# is in flight. With 8, starts could not keep Duralane busy (its CPU idled at
# 70%); DBOS too ran faster with more. Both level off by 64, the app's limits.
STARTERS = 64
TERMINAL = ("Completed", "Failed", "Terminated")
# DBOS on SQLite defaults to a rollback journal with synchronous=FULL; the hub
# store runs WAL with synchronous=NORMAL. "wal" gives DBOS the same durability
# level, which is also its faster mode, so the comparison favours the peer.
DBOS_JOURNALS = ("wal", "default")


@dataclass
class Workload:
    """One workload's outcome: what was finished, what it counted, how long."""

    engine: str
    name: str
    instances: int
    episodes: int
    activities: int
    seconds: float
    # CPU over the workload of the whole process and, for Duralane, of its
    # episode processes: steadier than wall time when others share the machine.
    cpu_seconds: float

    @property
    def items(self) -> int:
        """Work items: orchestrator episodes (or workflows) plus activities (steps)."""
        return self.episodes + self.activities

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds

    @property
    def instances_per_second(self) -> float:
        return self.instances / self.seconds

    def line(self) -> str:
        """The human-readable figures of this workload, on one line."""
        ours = self.engine == "duralane"
        return (
            f"{self.engine:<8} {self.name:<14} {self.instances:>5} instances "
            f"{self.episodes:>6} {'episodes' if ours else 'workflows'} "
            f"{self.activities:>6} {'activities' if ours else 'steps'} "
            f"in {self.seconds:7.2f} s = {self.items_per_second:8.0f} items/s, "
            f"{self.instances_per_second:7.0f} instances/s, "
            f"{self.cpu_seconds:6.2f} s CPU"
        )


# Duralane


class HubWatcher:
    """Counts finished instances in the hub store from a connection of its own."""

    def __init__(self, path: Path, hub: str) -> None:
        # Only one poll runs at a time, each on a pool thread of its own choosing.
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._hub = hub

    def finished(self, prefix: str) -> tuple[int, int]:
        """Terminal instances whose id starts with prefix: (all, not Completed)."""
        rows = self._db.execute(
            f"SELECT status, COUNT(*) FROM instances WHERE hub=? AND instance_id>=? "
            f"AND instance_id<? AND status IN ({','.join('?' * len(TERMINAL))}) "
            "GROUP BY status",
            (self._hub, prefix, prefix + "\uffff", *TERMINAL),
        ).fetchall()
        counts = dict(rows)
        done = sum(counts.values())
        return done, done - counts.get("Completed", 0)

    def first_failure(self, prefix: str) -> str:
        """The output of one instance that did not complete, to name the cause."""
        row = self._db.execute(
            "SELECT instance_id, status, output FROM instances WHERE hub=? AND "
            "instance_id>=? AND instance_id<? AND status!='Completed' LIMIT 1",
            (self._hub, prefix, prefix + "\uffff"),
        ).fetchone()
        return f"{row[0]} is {row[1]}: {str(row[2])[:300]}" if row else "none"

    def close(self) -> None:
        self._db.close()


async def wait_finished(
    watcher: HubWatcher, prefix: str, expected: int, deadline: float
) -> None:
    """Poll the store until every instance of a workload is terminal, or give up."""
    while True:
        done, failed = await asyncio.to_thread(watcher.finished, prefix)
        if failed:
            raise RuntimeError(
                f"{failed} of {expected} '{prefix}' instances did not complete; "
                f"first: {watcher.first_failure(prefix)}"
            )
        if done >= expected:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {done} of {expected} '{prefix}' instances finished in time"
            )
        await asyncio.sleep(POLL_SECONDS)


def runtime_cpu_seconds(runtime: Runtime) -> float:
    """CPU of this process plus the runtime's episode processes (Linux /proc)."""
    total = time.process_time()
    pids = runtime.episode_processes.pids() if runtime.episode_processes else []
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def duralane_workload(
    runtime: Runtime,
    worker: HubWorker,
    watcher: HubWatcher,
    name: str,
    orchestrator: str,
    inputs: list[str],
    timeout: float,
) -> Workload:
    """Start one instance per input, wait for all, and read the worker's counters."""
    prefix = f"{name}-"
    episodes, activities = worker.episodes, worker.activities_run
    started, cpu = time.perf_counter(), runtime_cpu_seconds(runtime)

    in_flight = asyncio.Semaphore(STARTERS)

    async def start(number: int, input_text: str) -> None:
        # What the HTTP API's start route does once it has parsed a request.
        async with in_flight:
            await worker.start_on_loop(
                orchestrator, f"{prefix}{number:06d}", input_text
            )

    await asyncio.gather(*(start(n, text) for n, text in enumerate(inputs)))
    await wait_finished(watcher, prefix, len(inputs), time.monotonic() + timeout)
    seconds = time.perf_counter() - started
    cpu_seconds = runtime_cpu_seconds(runtime) - cpu
    episodes_now, activities_now = await settled_counts(worker)
    return Workload(
        "duralane",
        name,
        len(inputs),
        episodes_now - episodes,
        activities_now - activities,
        seconds,
        cpu_seconds,
    )


async def settled_counts(worker: HubWorker) -> tuple[int, int]:
    """The worker's episode and activity counts once the last reports are in.

    The store shows an instance finished as soon as its episode process has
    committed, a moment before the process reports back and the episode is
    counted: read at once, the counts missed the last batch now and then.
    """
    counts = (worker.episodes, worker.activities_run)
    unchanged = 0
    for _ in range(SETTLE_POLLS):
        await asyncio.sleep(POLL_SECONDS)
        latest = (worker.episodes, worker.activities_run)
        unchanged = unchanged + 1 if latest == counts else 0
        if unchanged == 3:
            break
        counts = latest
    return counts


async def run_duralane(count: int, width: int, timeout: float) -> list[Workload]:
    """Both workloads on one in-process runtime with a throwaway data directory."""
    with tempfile.TemporaryDirectory(prefix="duralane-bench-") as tmp:
        data_dir = Path(tmp)
        runtime = Runtime(RuntimeOptions(app=APP, port=0, data_dir=data_dir))
        await runtime.start()
        watcher = HubWatcher(data_dir / "runtime.sqlite3", runtime.default_hub)
        try:
            worker = runtime.workers[runtime.default_hub]
            # The app's host.json raises both limits from their default of 16,
            # as a user tuning for throughput would; say so with the figures.
            print(
                f"duralane host.json: maxConcurrentOrchestratorFunctions "
                f"{worker.max_orchestrations}, maxConcurrentActivityFunctions "
                f"{worker.max_activities}"
            )
            # Untimed, as DBOS.launch() is: episode processes import the app.
            await duralane_workload(
                runtime,
                worker,
                watcher,
                "warm-up",
                "single_step",
                [json.dumps(i) for i in range(WARM_UP)],
                timeout,
            )
            single = await duralane_workload(
                runtime,
                worker,
                watcher,
                "single",
                "single_step",
                [json.dumps(i) for i in range(count)],
                timeout,
            )
            fan = await duralane_workload(
                runtime,
                worker,
                watcher,
                f"fan-out-{width}",
                "fan_out",
                [str(width)],
                timeout,
            )
        finally:
            watcher.close()
            await runtime.stop()
    return [single, fan]


# DBOS


def run_dbos(count: int, width: int, journal: str) -> list[Workload]:
    """Both workloads on DBOS over SQLite; call only in a child process."""
    import sqlalchemy as sa
    from dbos import DBOS

    if journal == "wal":

        @sa.event.listens_for(sa.engine.Engine, "connect")
        def same_durability(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    tmp = tempfile.TemporaryDirectory(prefix="dbos-bench-")
    DBOS(
        config={
            "name": "duralane-bench",
            "system_database_url": f"sqlite:///{tmp.name}/dbos.sqlite3",
            "log_level": "WARNING",
            # Without LISTEN/NOTIFY on SQLite, result waits poll at this interval.
            "notification_listener_polling_interval_sec": 0.01,
        }
    )

    @DBOS.step()
    def echo(value: Any) -> Any:
        return value

    @DBOS.workflow()
    def single_step(value: Any) -> Any:
        return echo(value)

    @DBOS.workflow()
    def fan_out(n: int) -> int:
        handles = [steps.enqueue(echo, i) for i in range(n)]
        return sum(handle.get_result() for handle in handles)

    DBOS.launch()
    steps = DBOS.register_queue("bench-steps", polling_interval_sec=0.05)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(STARTERS) as starters:
            handles = list(
                starters.map(
                    lambda i: DBOS.start_workflow(single_step, i), range(count)
                )
            )
        results = [handle.get_result() for handle in handles]
        single_seconds = time.perf_counter() - started
        single_cpu = time.process_time() - cpu
        if results != list(range(count)):
            raise RuntimeError("DBOS single-step workflows returned wrong results")

        started, cpu = time.perf_counter(), time.process_time()
        total = DBOS.start_workflow(fan_out, width).get_result()
        fan_seconds = time.perf_counter() - started
        fan_cpu = time.process_time() - cpu
        if total != width * (width - 1) // 2:
            raise RuntimeError(f"DBOS fan-out summed to {total}")
    finally:
        DBOS.destroy()
        tmp.cleanup()
    return [
        Workload("dbos", "single", count, count, count, single_seconds, single_cpu),
        Workload("dbos", f"fan-out-{width}", 1, 1, width, fan_seconds, fan_cpu),
    ]


def dbos_in_child(args: argparse.Namespace) -> list[Workload]:
    """Run the DBOS half in a fresh interpreter and read its JSON line back."""
    command = [
        sys.executable,
        __file__,
        "--dbos-child",
        "--orchestrations",
        str(args.orchestrations),
        "--width",
        str(args.width),
        "--dbos-journal",
        args.dbos_journal,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.timeout * 2
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the DBOS child exited with {done.returncode}: {done.stderr[-2000:]}"
        )
    lines = done.stdout.strip().splitlines()
    return [Workload(**fields) for fields in json.loads(lines[-1])]


# Report


def summary(ours: list[Workload], peer: list[Workload], journal: str) -> dict[str, Any]:
    """The figures the last line carries, named so a script can read them."""
    (single, fan), (peer_single, peer_fan) = ours, peer

    def ratio(a: float, b: float) -> float:
        return round(a / b, 2) if b else float("inf")

    return {
        "orchestrations": single.instances,
        "fan_out_width": fan.activities,
        "duralane_items_per_s": round(single.items_per_second, 1),
        "duralane_orchestrations_per_s": round(single.instances_per_second, 1),
        "duralane_fan_out_s": round(fan.seconds, 3),
        "duralane_fan_out_items_per_s": round(fan.items_per_second, 1),
        "duralane_fan_out_episodes": fan.episodes,
        "duralane_cpu_ms_per_orchestration": round(
            1000 * single.cpu_seconds / single.instances, 2
        ),
        "dbos_journal": journal,
        "dbos_items_per_s": round(peer_single.items_per_second, 1),
        "dbos_workflows_per_s": round(peer_single.instances_per_second, 1),
        "dbos_fan_out_s": round(peer_fan.seconds, 3),
        "dbos_fan_out_items_per_s": round(peer_fan.items_per_second, 1),
        "dbos_cpu_ms_per_workflow": round(
            1000 * peer_single.cpu_seconds / peer_single.instances, 2
        ),
        "ratio_items_per_s": ratio(
            single.items_per_second, peer_single.items_per_second
        ),
        "ratio_orchestrations_per_s": ratio(
            single.instances_per_second, peer_single.instances_per_second
        ),
        "ratio_fan_out_speed": ratio(peer_fan.seconds, fan.seconds),
        "target_items_per_s_met": single.items_per_second >= 3000,
        "target_10x_dbos_met": ratio(
            single.items_per_second, peer_single.items_per_second
        )
        >= 10,
        # Others share this machine's cores; a high load depresses both engines.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orchestrations", type=int, default=2000)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--dbos-journal", choices=DBOS_JOURNALS, default="wal")
    parser.add_argument(
        "--skip-dbos", action="store_true", help="run Duralane only (for profiling)"
    )
    parser.add_argument("--dbos-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s %(message)s"
    )

    if args.dbos_child:
        workloads = run_dbos(args.orchestrations, args.width, args.dbos_journal)
        print(json.dumps([vars(w) for w in workloads]))
        return

    print(
        "work item = one orchestrator episode or one activity execution (Duralane); "
        "one workflow execution or one step execution (DBOS). A single-activity "
        "orchestration is 3 items on Duralane (2 episodes + 1 activity) and 2 on "
        "DBOS (1 workflow + 1 step), so instances/s is printed too."
    )
    ours = asyncio.run(run_duralane(args.orchestrations, args.width, args.timeout))
    for workload in ours:
        print(workload.line())
    if args.skip_dbos:
        return
    peer = dbos_in_child(args)
    for workload in peer:
        print(workload.line())
    figures = summary(ours, peer, args.dbos_journal)
    print(
        f"ratio Duralane/DBOS ({args.dbos_journal} journal): "
        f"items/s {figures['ratio_items_per_s']}x, "
        f"orchestrations/s {figures['ratio_orchestrations_per_s']}x, "
        f"fan-out speed {figures['ratio_fan_out_speed']}x; "
        f"1-minute load average {figures['load_average_1m']} on {os.cpu_count()} cores"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
