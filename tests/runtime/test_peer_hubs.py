"""A task hub left to a peer runtime: its work runs there, clients here reach it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.harness import APPS, WEBHOOK, RuntimeProcess, unique, wait_until
from tests.services import free_port

PEER_APP = APPS / "peers" / "peer_app.py"
REMOTE_HUB = "PeerRemote"
# A "/" would split a path segment: the clients' token must not carry the key.
API_KEY = "peer/test=key+5d1c"


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RuntimeProcess]:
    """The runtime that runs every hub, PeerRemote included."""
    runtime = RuntimeProcess(PEER_APP, tmp_path / "runner").start()
    yield runtime
    runtime.stop()


def _front(tmp_path: Path, runner: RuntimeProcess, **kwargs: object) -> RuntimeProcess:
    """A runtime that leaves PeerRemote to the runner."""
    return RuntimeProcess(
        PEER_APP,
        tmp_path / "front",
        args=["--peer", f"{REMOTE_HUB}={runner.base_url}"],
        **kwargs,  # type: ignore[arg-type]
    )


def _wait_completed(
    front: RuntimeProcess, runner: RuntimeProcess, instance: str
) -> None:
    """Wait, with a bound, for the client in front to see the instance complete."""

    def completed() -> bool:
        status = front.get(f"/api/remote/status/{instance}")
        return bool(status.json()["runtimeStatus"] == "Completed")

    wait_until(completed, timeout=30, what=f"{instance} to complete", detail=runner.log)


def test_a_peer_hubs_instance_runs_in_the_peer_and_answers_the_client_here(
    tmp_path: Path, runner: RuntimeProcess
) -> None:
    """start_new, raise_event and get_status of a client here all reach the peer."""
    front = _front(tmp_path, runner).start()
    try:
        instance = unique("peer-start")

        started = front.post(f"/api/remote/start/{instance}")
        assert started.status_code == 202, started.text
        in_runner = runner.get(
            f"{WEBHOOK}/instances/{instance}", params={"taskHub": REMOTE_HUB}
        )
        assert in_runner.status_code == 202, in_runner.text
        assert in_runner.json()["runtimeStatus"] in ("Pending", "Running")

        raised = front.post(f"/api/remote/raise/{instance}", json="Oslo")
        assert raised.status_code == 202, raised.text
        _wait_completed(front, runner, instance)
        output = front.get(f"/api/remote/status/{instance}").json()["output"]
        # The SDK client JSON-encodes event data once more than it decodes it
        # (see test_durable_client), so the name arrives as JSON text.
        assert output["greeting"] == 'hello "Oslo"'
        assert output["pid"] == int(runner.get("/api/pid").text)
        assert output["pid"] != int(front.get("/api/pid").text)
    finally:
        front.stop()


def test_check_status_urls_from_here_reach_the_instance_through_this_runtime(
    tmp_path: Path, runner: RuntimeProcess
) -> None:
    """The SDK gives them this request's origin; calls there are passed on."""
    front = _front(tmp_path, runner).start()
    try:
        instance = unique("peer-urls")
        urls = front.post(f"/api/remote/start/{instance}").json()
        assert urls["statusQueryGetUri"].startswith(front.base_url)

        sent = httpx.post(
            urls["sendEventPostUri"].replace("{eventName}", "go"),
            json="Lima",
            timeout=10,
        )
        assert sent.status_code == 202, sent.text
        _wait_completed(front, runner, instance)
        status = httpx.get(urls["statusQueryGetUri"], timeout=10)
        assert status.status_code == 200, status.text
        assert status.json()["output"]["greeting"] == "hello Lima"
        purged = httpx.delete(urls["purgeHistoryDeleteUri"], timeout=10)
        assert purged.status_code == 200, purged.text
        gone = runner.get(
            f"{WEBHOOK}/instances/{instance}", params={"taskHub": REMOTE_HUB}
        )
        assert gone.status_code == 404
    finally:
        front.stop()


def test_a_call_for_a_peer_hub_whose_runtime_is_down_gets_a_502_naming_it(
    tmp_path: Path, runner: RuntimeProcess
) -> None:
    front = _front(tmp_path, runner).start()
    try:
        assert f"task hub {REMOTE_HUB} runs in the runtime at {runner.base_url}" in (
            front.log()
        )
        runner.stop()

        answer = front.get(f"{WEBHOOK}/instances", params={"taskHub": REMOTE_HUB})

        assert answer.status_code == 502
        assert runner.base_url in answer.json()["error"]
        assert "Traceback" not in front.log()
    finally:
        front.stop()


def test_a_peer_bound_beyond_loopback_takes_the_shared_key_from_clients(
    tmp_path: Path,
) -> None:
    """With an API key, a peer's client calls carry it in their path and pass."""
    env = {"DURALANE_API_KEY": API_KEY}
    runner = RuntimeProcess(
        PEER_APP, tmp_path / "runner", host="0.0.0.0", env=env
    ).start()
    front = _front(tmp_path, runner, env=env).start()
    try:
        instance = unique("peer-key")
        key = {"code": API_KEY}
        unkeyed = httpx.get(
            runner.url(f"{WEBHOOK}/instances"), params={"taskHub": REMOTE_HUB}
        )
        assert unkeyed.status_code == 401

        assert front.post(f"/api/remote/start/{instance}").status_code == 202
        raised = front.post(f"/api/remote/raise/{instance}", json="Kyiv")
        assert raised.status_code == 202, raised.text
        _wait_completed(front, runner, instance)
        status = runner.get(
            f"{WEBHOOK}/instances/{instance}",
            params={"taskHub": REMOTE_HUB, **key},
        )
        assert status.json()["output"]["greeting"] == 'hello "Kyiv"'
    finally:
        front.stop()
        runner.stop()


def test_two_runtimes_naming_each_other_for_a_hub_answer_404_not_a_loop(
    tmp_path: Path,
) -> None:
    """Neither runs the hub; the second does not pass on a passed-on call."""
    ports = [free_port(), free_port()]
    pair = [
        RuntimeProcess(
            PEER_APP,
            tmp_path / f"runtime-{n}",
            args=[
                *("--port", str(ports[n])),
                *("--peer", f"{REMOTE_HUB}=http://127.0.0.1:{ports[1 - n]}"),
            ],
        )
        for n in (0, 1)
    ]
    for runtime in pair:
        runtime.start()
    try:
        answer = pair[0].get(f"{WEBHOOK}/instances", params={"taskHub": REMOTE_HUB})

        assert answer.status_code == 404
        assert "each names the other as its peer" in answer.json()["error"]
    finally:
        for runtime in pair:
            runtime.stop()


@pytest.mark.parametrize(
    ("peer", "says"),
    [
        ("PeerRemote", "is not HUB=URL"),
        ("Elsewhere=http://127.0.0.1:7072", "peer task hub 'Elsewhere' is not one"),
        ("PeerRemote=ftp://127.0.0.1:7072", "is not a runtime's base URL"),
        ("PeerRemote=http://127.0.0.1:7072/api", "is not a runtime's base URL"),
    ],
)
def test_a_bad_peer_option_stops_the_start_with_one_line(
    tmp_path: Path, peer: str, says: str
) -> None:
    runtime = RuntimeProcess(PEER_APP, tmp_path / "data", args=["--peer", peer])
    runtime.spawn()

    code = runtime.wait_exit()

    assert code != 0
    assert len(runtime.lines) == 1, runtime.lines
    assert says in runtime.lines[0]
