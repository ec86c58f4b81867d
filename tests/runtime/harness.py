"""Run the embedded runtime as a real subprocess and talk to it over loopback HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
WEBHOOK = "/runtime/webhooks/durabletask"
LISTENING = re.compile(r"Duralane runtime listening on (http://[^\s]+:(\d+))")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 20.0


# One client for the whole session: building one per request costs more than the
# request itself. Plain HTTP on loopback only, so no proxies from the environment.
HTTP = httpx.Client(timeout=30, trust_env=False)


class RuntimeExited(AssertionError):
    """The runtime process ended while a test still needed it."""


def unique(prefix: str) -> str:
    """An instance id no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class RuntimeProcess:
    """One `duralane run` subprocess and the log lines it has written."""

    app: Path
    data_dir: Path
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    # More `duralane run` options, such as --peer HUB=URL.
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    base_url: str = ""
    _reader: threading.Thread | None = None
    _seen: threading.Condition = field(default_factory=threading.Condition)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "duralane.cli",
            "run",
            "--app",
            str(self.app),
            "--host",
            self.host,
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]

    def spawn(self) -> None:
        """Start the process without waiting for it to listen."""
        environment = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DURALANE_") and k != "PYTHONPATH"
        }
        environment.update(self.env)
        self.lines = []
        self.base_url = ""
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def start(self) -> RuntimeProcess:
        """Start the process and return once it answers HTTP."""
        self.spawn()
        match = self.wait_for_log(LISTENING, STARTUP_SECONDS)
        self.base_url = match.group(1).replace("0.0.0.0", "127.0.0.1")
        wait_until(
            lambda: self._answers(),
            timeout=STARTUP_SECONDS,
            what=f"runtime at {self.base_url} to answer",
        )
        return self

    def _answers(self) -> bool:
        try:
            return HTTP.get(self.base_url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_for_log(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first log line matching a pattern, waiting for it with a bound."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._seen:
            while True:
                for line in self.lines[checked:]:
                    match = pattern.search(line)
                    if match:
                        return match
                checked = len(self.lines)
                if self._finished():
                    raise RuntimeExited(
                        f"runtime exited before logging /{pattern.pattern}/:\n"
                        f"{self.log()}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no log line matched /{pattern.pattern}/ within "
                        f"{timeout}s:\n{self.log()}"
                    )
                self._seen.wait(min(left, 0.2))

    def _finished(self) -> bool:
        """The process ended and every line it wrote has been read."""
        return (
            self.process is not None
            and self.process.poll() is not None
            and self._reader is not None
            and not self._reader.is_alive()
        )

    def log(self) -> str:
        """Everything the runtime printed so far (for assertion messages)."""
        with self._seen:
            return "\n".join(self.lines[-200:])

    def stop(self) -> int:
        """SIGTERM, wait with a bound, SIGKILL if it hangs; return the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        self._join()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up, like a power cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_SECONDS)
        self._join()

    def wait_exit(self, timeout: float = STARTUP_SECONDS) -> int:
        """Wait for a process expected to exit by itself; return its code."""
        assert self.process is not None
        code = self.process.wait(timeout)
        self._join()
        return code

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(STOP_SECONDS)

    # HTTP

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return HTTP.get(self.url(path), **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return HTTP.post(self.url(path), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return HTTP.delete(self.url(path), **kwargs)

    # The Durable management API

    def start_orchestration(
        self, name: str, instance_id: str, payload: Any = None
    ) -> httpx.Response:
        """Start an instance as the durable client does: input JSON-encoded twice."""
        content = json.dumps(json.dumps(payload)) if payload is not None else ""
        response = self.post(
            f"{WEBHOOK}/orchestrators/{name}/{instance_id}", content=content
        )
        assert response.status_code == 202, response.text
        return response

    def status(self, instance_id: str, **params: str) -> dict[str, Any]:
        response = self.get(f"{WEBHOOK}/instances/{instance_id}", params=params)
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.status(instance_id, showHistory="true")[
            "historyEvents"
        ]
        return events

    def raise_event(self, instance_id: str, name: str, payload: Any) -> None:
        response = self.post(
            f"{WEBHOOK}/instances/{instance_id}/raiseEvent/{name}",
            content=json.dumps(payload),
        )
        assert response.status_code == 202, response.text

    def control(self, instance_id: str, operation: str, reason: str = "") -> None:
        response = self.post(
            f"{WEBHOOK}/instances/{instance_id}/{operation}", params={"reason": reason}
        )
        assert response.status_code == 202, response.text

    def wait_status(
        self,
        instance_id: str,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        what: str = "",
    ) -> dict[str, Any]:
        """Poll an instance's status until a condition holds, with a bound."""
        latest: dict[str, Any] = {}

        def check() -> bool:
            nonlocal latest
            self._ensure_alive()
            latest = self.status(instance_id, showHistory="true")
            return condition(latest)

        wait_until(
            check,
            timeout=timeout,
            what=what or f"instance {instance_id}",
            detail=lambda: f"last status: {latest}\nlog:\n{self.log()}",
        )
        return latest

    def wait_done(self, instance_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until the instance reaches a terminal status."""
        return self.wait_status(
            instance_id,
            lambda s: s["runtimeStatus"] in ("Completed", "Failed", "Terminated"),
            timeout,
            f"instance {instance_id} to finish",
        )

    def _ensure_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeExited(
                f"runtime exited with {self.process.returncode}:\n{self.log()}"
            )


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> None:
    """Poll a condition until it holds; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}{extra}"
            )
        time.sleep(interval)


def holds_throughout(
    condition: Callable[[], bool], *, seconds: float, what: str
) -> None:
    """Check a condition stays true for a bounded observation window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), what
        time.sleep(0.05)


def event_types(history: list[dict[str, Any]]) -> list[int]:
    """The EventType of each history event, oldest first."""
    return [int(e["EventType"]) for e in history]
