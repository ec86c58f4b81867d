"""High-lane start lag while the low lane floods: Duralane next to Celery on Redis.

Duralane: the app (function_app.py) on the embedded runtime in a child
process; after an untimed warm-up (three jobs per lane), FLOOD low-lane http
jobs are POSTed to /api/jobs from 8 threads of a process of their own, and
while they pour in, HIGH high-lane jobs are submitted one every 100 ms from
this one. Start lag is the job's own startLagMs (stored at submission to
first attempt start); the runtime's log, written to a file, splits it into
steps (highStagesMs). The jobs' loopback target serves from a process of its
own as well, so only the high sender runs Python in this process while the
high jobs are timed. Duralane runs twice: all lanes in one runtime process
(`make run`), then the high lane in a runtime of its own that shares the
app's store with the one running the other lanes (`make run-lanes`, --peer),
the high jobs sent to its port.
Celery: one Redis server on a free loopback port (Debian's redis-server,
installed with apt-get if missing), one queue with Redis priority steps (high
= priority 0, low = 9), a prefork worker with two processes and prefetch 1,
the same warm-up, flood and task (one GET to a loopback target); start lag is
task start minus submission, noted in Redis by the task. Low throughput is
low jobs finished per second of the window from the flood's start until every
high job has started. Last line: one JSON object.

    python benchmarks/lane_latency.py [--flood 10000] [--high 200] [--skip-celery]
        [--skip-one-process] [--skip-lane-processes]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
TARGET_PATH = "/ok"
LISTENING = re.compile(r"Duralane runtime listening on (http://[^\s]+)")

try:
    import redis as redis_client
    from celery import Celery

    celery_app = Celery("lane_latency")
    # No result backend: its pub/sub consumer is not safe across the flood's
    # threads and gave "Retry limit exceeded" at exit. Tasks note their start
    # lag in Redis instead, which the benchmark reads directly.
    celery_app.conf.update(
        broker_url=os.environ.get("LANE_BENCH_REDIS", "redis://127.0.0.1:6399/0"),
        broker_transport_options={
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_ignore_result=True,
    )
    _marks: Any = None

    @celery_app.task(name="touch")
    def touch(url: str, lane: str, name: str, submitted: float) -> None:
        """The benchmark's job: note its start lag, then one GET, then count it."""
        global _marks
        lag_ms = (time.time() - submitted) * 1000
        if _marks is None:
            _marks = redis_client.Redis.from_url(celery_app.conf.broker_url)
        if lane == "high":
            _marks.hset("lane-bench:lags", name, lag_ms)
        httpx.get(url, timeout=10)
        _marks.incr(f"lane-bench:done:{lane}")

except ImportError:  # celery is optional: --skip-celery runs without it
    celery_app = None


class Ok(BaseHTTPRequestHandler):
    """The loopback target every job calls: 200 at once."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def serve_target(port: int) -> None:
    """The target's process: answer every GET with 200 until killed."""
    ThreadingHTTPServer(("127.0.0.1", port), Ok).serve_forever()


def answers(url: str) -> bool:
    """Whether the target is up yet."""
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 of a sample, rounded to 0.1 ms."""
    if len(values) < 2:
        return {"p50": None, "p95": None, "p99": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {k: round(cuts[i], 1) for k, i in (("p50", 49), ("p95", 94), ("p99", 98))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LowFlood:
    """How to send one engine's low-lane jobs; plain data, for the flood's process."""

    engine: str  # "duralane" (address: the runtime's URL) or "celery" (Redis URL)
    address: str
    target: str
    tag: str

    def sender(self) -> Any:
        """A function sending low job i, built in the process that calls it."""
        if self.engine == "duralane":
            client = httpx.Client(base_url=self.address, timeout=60, trust_env=False)

            def post(i: int) -> None:
                spec: dict[str, Any] = {"id": f"{self.tag}-low-{i}", "lane": "low"}
                spec.update(kind="http", tags=[self.tag], params={"url": self.target})
                client.post("/api/jobs", json=spec).raise_for_status()

            return post
        app = celery_sender(self.address)

        def push(i: int) -> None:
            arguments = (self.target, "low", f"low-{i}", time.time())
            app.send_task("touch", arguments, priority=CELERY_PRIORITY["low"])

        return push


def send_flood(flood: LowFlood, count: int) -> None:
    """The flood's process: send every low job from 8 threads."""
    send = flood.sender()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(count)))


def flood(
    low: LowFlood, submit_high: Any, count: int, high: int
) -> tuple[list[Any], float, float]:
    """Send the low flood from a process of its own and a high job every 100 ms.

    The flood's 8 sending threads must not share this interpreter with the
    high sender: each high job's clock starts here, and waiting for this
    process's GIL behind the flood's threads would count against the engine.
    """
    highs: list[Any] = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as process:
        started = time.monotonic()
        sending = process.submit(send_flood, low, count)
        time.sleep(0.5)
        for i in range(high):
            highs.append(submit_high(i))
            time.sleep(0.1)
        sending.result()
        submitted = time.monotonic() - started
    return highs, started, submitted


@dataclass
class Runner:
    """One `duralane run` child process, logging to a file in its data dir."""

    process: subprocess.Popen[str]
    log_path: Path
    log_file: Any
    base: str = ""

    @classmethod
    def spawn(
        cls, data: Path, port: int, env: dict[str, str], peers: dict[str, int]
    ) -> Runner:
        command = [sys.executable, "-m", "duralane.cli", "run"]
        command += ["--app", "function_app.py", "--port", str(port)]
        command += ["--data-dir", str(data)]
        for hub, peer_port in peers.items():
            command += ["--peer", f"{hub}=http://127.0.0.1:{peer_port}"]
        data.mkdir(parents=True, exist_ok=True)
        # The log goes to a file, read once the high jobs have started: a thread
        # draining a pipe here would compete with the high sender for this GIL.
        log_path = data / "runtime.log"
        log_file = log_path.open("w")
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        return cls(process, log_path, log_file)

    def wait_listening(self) -> str:
        self.base = listening_url(self.log_path, self.process)
        return self.base

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log_file.close()


def bench_duralane(
    target: str, count: int, high: int, lane_processes: bool = False
) -> dict[str, Any]:
    """The flood on the Duralane app running on the embedded runtime.

    With lane_processes, the high lane runs in a runtime process of its own
    (--peer), sharing the app's SQLite store with the one that runs the other
    two lanes, and high jobs are sent to its port: a lane's own app, as in
    Azure, on this one machine.
    """
    data = Path(tempfile.mkdtemp(prefix="lane-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURALANE_")}
    env.update(
        DURALANE_DATA_DIR=str(data),
        DURALANE_SQLITE_PATH=str(data / "state.sqlite3"),
        DURALANE_ALLOWED_TARGETS="127.0.0.0/8",
    )
    runners: list[Runner] = []
    try:
        if lane_processes:
            main_port, high_port = free_port(), free_port()
            low_hubs = {"DuralaneNormal": main_port, "DuralaneLow": main_port}
            main = Runner.spawn(
                data, main_port, {**env, "DURALANE_LANE": "normal,low"},
                {"DuralaneHigh": high_port},
            )  # fmt: skip
            runners.append(main)
            high_runner = Runner.spawn(
                data / "high", high_port, {**env, "DURALANE_LANE": "high"}, low_hubs
            )
            runners.append(high_runner)
        else:
            main = high_runner = Runner.spawn(data, 0, env, {})
            runners.append(main)
        for runner in runners:
            runner.wait_listening()
        lanes = {
            lane: httpx.Client(
                base_url=high_runner.base if lane == "high" else main.base,
                timeout=60,
                trust_env=False,
            )
            for lane in ("high", "normal", "low")
        }
        client = lanes["normal"]
        tag = f"bench{int(time.time())}"

        sent_at: dict[str, float] = {}

        def job(lane: str, name: str) -> str:
            spec: dict[str, Any] = {"id": name, "kind": "http", "lane": lane}
            spec.update(tags=[tag], params={"url": target})
            sent_at[name] = time.time()
            response = lanes[lane].post("/api/jobs", json=spec)
            response.raise_for_status()
            return name

        # Untimed warm-up: the episode processes import the app after the
        # runtime starts listening, and the first jobs would wait for that.
        for lane in ("high", "normal", "low"):
            for i in range(3):
                wait_started(client, job(lane, f"warm{tag}-{lane}-{i}"))
        highs, started, submitted = flood(
            LowFlood("duralane", main.base, target, tag),
            lambda i: job("high", f"{tag}-high-{i}"),
            count,
            high,
        )
        starts = {
            name: start for name in highs if (start := wait_started(client, name))
        }
        lags = [lag for lag, _ in starts.values()]
        # As Celery's figure is taken: from the client's send, so the wait for
        # the runtime to read and parse the request counts too.
        client_lags = [
            (started_at - sent_at[name]) * 1000
            for name, (_, started_at) in starts.items()
        ]
        done = succeeded_low(client, tag)
        elapsed = time.monotonic() - started
        log = high_runner.log_path.read_text().splitlines()
        return {
            "layout": "high lane in its own process" if lane_processes else "one",
            "flood": count,
            "submitSeconds": round(submitted, 1),
            "highStartLagMs": percentiles(lags),
            "highClientLagMs": percentiles(client_lags),
            "highSampled": len(lags),
            "lowSucceeded": done,
            "lowPerSecond": round(done / elapsed, 1),
            "windowSeconds": round(elapsed, 1),
            "highStagesMs": stages(log, f"{tag}-high-"),
        }
    finally:
        for runner in reversed(runners):
            runner.stop()
        shutil.rmtree(data, ignore_errors=True)


def listening_url(log_path: Path, process: subprocess.Popen[str]) -> str:
    """The runtime's base URL from its log, once it says it is listening."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if match := LISTENING.search(log_path.read_text()):
            return match.group(1).replace("0.0.0.0", "127.0.0.1")
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"runtime did not start:\n{log_path.read_text()[-2000:]}")


STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
# The runtime's log lines marking each step of a job's start, in order.
STEPS = {
    "stored": re.compile(STAMP + r".*job\.submitted job (\S+) .* instance (\S+)"),
    "startNew": re.compile(STAMP + r".*started job (\S+) lane \w+ as instance (\S+)"),
    "episode": re.compile(
        STAMP + r".*Executing orchestrator run_job \(invocation \S+, instance (\S+),"
    ),
    "activity": re.compile(
        STAMP + r".*Executing activity run_attempt \(\S+ \S+ instance (\S+),"
    ),
    "started": re.compile(STAMP + r".*job\.started job (\S+) lane"),
}


def stages(log: list[str], prefix: str) -> dict[str, dict[str, float | None]]:
    """p50/p99 of each step of the high jobs' starts, from the runtime's log.

    Steps: job stored (the lag's origin) -> start_new returned (ExecutionStarted
    committed) -> first episode replayed -> run_attempt began -> start recorded.
    Log stamps have 1 ms resolution.
    """
    at: dict[str, dict[str, float]] = {step: {} for step in STEPS}
    instance_job: dict[str, str] = {}
    for line in log:
        for step, pattern in STEPS.items():
            match = pattern.search(line)
            if match is None:
                continue
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            key = match.group(2)
            if len(match.groups()) == 3:
                instance_job[match.group(3)] = key
            key = instance_job.get(key, key)
            if key.startswith(prefix):
                at[step].setdefault(key, stamp.timestamp() * 1000)
            break
    names = list(STEPS)
    out: dict[str, dict[str, float | None]] = {}
    for before, after in itertools.pairwise(names):
        gaps = [
            at[after][job] - at[before][job] for job in at[before] if job in at[after]
        ]
        out[f"{before}->{after}"] = percentiles(gaps)
    return out


def wait_started(client: httpx.Client, name: str) -> tuple[float, float] | None:
    """A started job's start lag (ms) and start (epoch s); None after 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = client.get(f"/api/jobs/{name}").json()
        if found.get("startLagMs") is not None:
            started_at = datetime.fromisoformat(found["startedAt"]).timestamp()
            return float(found["startLagMs"]), started_at
        time.sleep(0.05)
    return None


def succeeded_low(client: httpx.Client, tag: str) -> int:
    """How many low jobs of this run have succeeded so far."""
    total, continuation = 0, None
    while True:
        params = {"tag": tag, "lane": "low", "status": "succeeded", "pageSize": "1000"}
        if continuation:
            params["continuation"] = continuation
        page = client.get("/api/jobs", params=params).json()
        total += len(page["items"])
        continuation = page.get("continuation")
        if not continuation:
            return total


def ensure_redis() -> str:
    """redis-server's path, installing Debian's package if it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    print("redis-server missing; installing Debian's package", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True)
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return found


# Redis priority steps: 0 is served first.
CELERY_PRIORITY = {"high": 0, "low": 9, "warm": 9}


def celery_sender(url: str) -> Any:
    """A client app of its own: the module's app read its broker URL at import."""
    assert celery_app is not None, "celery is not installed"
    sender = Celery("lane_latency_client", broker=url)
    sender.conf.broker_transport_options = celery_app.conf.broker_transport_options
    sender.conf.task_ignore_result = True
    return sender


def bench_celery(target: str, count: int, high: int) -> dict[str, Any]:
    """The same flood on Celery with Redis priorities (0 is served first)."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(
        [ensure_redis(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    env = {**os.environ, "LANE_BENCH_REDIS": url, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benchmarks.lane_latency:celery_app",
         "worker", "-c", "2", "--prefetch-multiplier", "1", "-l", "warning"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert celery_app is not None
        marks = redis_client.Redis.from_url(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                marks.ping()
                break
            except redis_client.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        sender = celery_sender(url)

        def send(lane: str, name: str) -> str:
            arguments = (target, lane, name, time.time())
            sender.send_task("touch", arguments, priority=CELERY_PRIORITY[lane])
            return name

        # Untimed warm-up, as for Duralane: the worker's processes start up.
        for i in range(3):
            send("warm", f"warm-{i}")
        wait_for(lambda: int(marks.get("lane-bench:done:warm") or 0) >= 3, 60)

        highs, started, submitted = flood(
            LowFlood("celery", url, target, ""),
            lambda i: send("high", f"high-{i}"),
            count,
            high,
        )
        wait_for(lambda: marks.hlen("lane-bench:lags") >= len(highs), 120)
        lags = [float(v) for v in marks.hvals("lane-bench:lags")]
        done = int(marks.get("lane-bench:done:low") or 0)
        elapsed = time.monotonic() - started
        return {
            "flood": count,
            "submitSeconds": round(submitted, 1),
            "highStartLagMs": percentiles(lags),
            "highSampled": len(lags),
            "lowSucceeded": done,
            "lowPerSecond": round(done / elapsed, 1),
            "windowSeconds": round(elapsed, 1),
        }
    finally:
        worker.terminate()
        worker.wait(20)
        redis.terminate()
        redis.wait(10)


def wait_for(condition: Any, seconds: float) -> None:
    """Poll until condition() holds; TimeoutError after seconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {seconds} s")
        time.sleep(0.05)


def main() -> None:
    """Run both benchmarks and print the results, JSON last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--high", type=int, default=200)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument(
        "--skip-one-process", action="store_true", help="only the lane processes"
    )
    parser.add_argument(
        "--skip-lane-processes", action="store_true", help="only one process"
    )
    args = parser.parse_args()
    # The jobs' target runs in a process of its own too, for the same reason
    # as the flood (see flood()): its threads would share this GIL.
    port = free_port()
    spawn = multiprocessing.get_context("spawn")
    server = spawn.Process(target=serve_target, args=(port,), daemon=True)
    server.start()
    target = f"http://127.0.0.1:{port}{TARGET_PATH}"
    wait_for(lambda: answers(target), 30)

    results: dict[str, Any] = {"target": "high-lane p99 start lag < 50 ms"}
    if not args.skip_one_process:
        results["duralane"] = bench_duralane(target, args.flood, args.high)
        print("duralane, one process:", json.dumps(results["duralane"]))
    if not args.skip_lane_processes:
        results["duralaneLaneProcesses"] = bench_duralane(
            target, args.flood, args.high, lane_processes=True
        )
        print(
            "duralane, high lane in its own process:",
            json.dumps(results["duralaneLaneProcesses"]),
        )
    if not args.skip_celery:
        results["celery"] = bench_celery(target, args.flood, args.high)
        print("celery+redis:", json.dumps(results["celery"]))
    # Judged on the lag from the client's send, the stricter of the two.
    for layout in ("duralane", "duralaneLaneProcesses"):
        if layout in results:
            p99 = results[layout]["highClientLagMs"]["p99"]
            results[layout]["targetMet"] = p99 is not None and p99 < 50
    server.terminate()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
