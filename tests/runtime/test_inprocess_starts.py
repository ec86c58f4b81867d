"""The runtime's own durable clients start instances in process, not over HTTP."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df

from duralane.runtime.inprocess import InProcessStarts

RPC = "http://127.0.0.1:7071/runtime/webhooks/durabletask/rpc/secret/"


@dataclass
class FakeRuntime:
    """What the transport reads of a runtime: its rpc URL, hubs and workers."""

    rpc_base_url: str = RPC
    default_hub: str = "DuralaneNormal"
    workers: dict[str, object] = field(
        default_factory=lambda: {"DuralaneNormal": object(), "DuralaneHigh": object()}
    )


@dataclass
class RecordingApi:
    """Stands in for HttpApi.start_orchestration and notes each start."""

    runtime: FakeRuntime = field(default_factory=FakeRuntime)
    starts: list[tuple[str, str, str | None, str, str]] = field(default_factory=list)

    async def start_orchestration(
        self, hub: str, name: str, instance_id: str | None, text: str, origin: str
    ) -> tuple[int, dict[str, Any]]:
        self.starts.append((hub, name, instance_id, text, origin))
        return 202, {"id": instance_id or "generated"}


def _client(hub: str) -> df.DurableOrchestrationClient:
    """The SDK's own client, built from a starter like the runtime hands out."""
    rpc = RPC if hub == "DuralaneNormal" else f"{RPC}taskhubs/{hub}/"
    starter = {
        "taskHubName": hub,
        "creationUrls": {},
        "managementUrls": {},
        "rpcBaseUrl": rpc,
        "requiredQueryStringParameters": "",
    }
    return df.DurableOrchestrationClient(json.dumps(starter))


def test_the_sdk_client_starts_in_process_on_the_default_and_another_hub() -> None:
    """start_new from an HTTP trigger must not queue behind the flood's requests."""
    api = RecordingApi()
    transport = InProcessStarts(api)  # type: ignore[arg-type]
    transport.install()
    try:
        normal = _client("DuralaneNormal")
        high = _client("DuralaneHigh")

        async def start_both() -> tuple[str, str]:
            first = await normal.start_new("run_job", "job-1", {"jobId": "job-1"})
            second = await high.start_new("run_job", "job-2", None)
            return first, second

        assert asyncio.run(start_both()) == ("job-1", "job-2")
    finally:
        transport.uninstall()

    assert api.starts == [
        (
            "DuralaneNormal",
            "run_job",
            "job-1",
            json.dumps(json.dumps({"jobId": "job-1"})),
            "http://127.0.0.1:7071",
        ),
        ("DuralaneHigh", "run_job", "job-2", "", "http://127.0.0.1:7071"),
    ]


def test_calls_that_are_not_starts_here_go_to_the_sdk_over_http() -> None:
    """Events, a versioned start, another hub or host keep the SDK's own path."""
    api = RecordingApi()
    transport = InProcessStarts(api)  # type: ignore[arg-type]
    sent: list[str] = []

    async def over_http(url: str, *args: Any) -> list[Any]:
        sent.append(url)
        return [202, {}]

    transport._original = over_http
    others = [
        f"{RPC}instances/job-1/raiseEvent/cancel",
        f"{RPC}orchestrators/run_job/job-1?version=2",
        f"{RPC}taskhubs/Elsewhere/orchestrators/run_job/job-1",
        "http://127.0.0.2:7071/runtime/webhooks/durabletask/rpc/secret/orchestrators/x",
    ]

    async def post_all() -> None:
        for url in others:
            await transport.post(url, None)

    asyncio.run(post_all())

    assert sent == others
    assert api.starts == []


def test_an_sdk_without_the_post_function_keeps_starting_over_http(
    monkeypatch: Any, caplog: Any
) -> None:
    """A changed SDK layout must cost only the shortcut, never the start."""
    import sys
    import types

    from duralane.runtime import inprocess

    bare = types.ModuleType(inprocess.CLIENT_MODULE)
    monkeypatch.setitem(sys.modules, inprocess.CLIENT_MODULE, bare)
    transport = InProcessStarts(RecordingApi())  # type: ignore[arg-type]

    transport.install()
    transport.uninstall()

    assert not hasattr(bare, inprocess.POST_NAME)
    assert "durable client starts go over HTTP" in caplog.text
