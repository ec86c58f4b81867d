"""Starts and stops the local stand-ins (Azurite, the Cosmos DB server) on loopback."""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
COSMOS_LAUNCHER = Path(__file__).resolve().parent / "cosmos_standin.js"

# Azurite's and the Cosmos DB emulator's published development keys: they guard
# nothing, and the stand-ins accept exactly these.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)
COSMOS_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/"
    "Jw=="
)

READY_TIMEOUT_SECONDS = 30.0


class ServiceFailedToStart(RuntimeError):
    """A stand-in did not come up within its bound; its output says why."""


def free_port() -> int:
    """Ask the kernel for a loopback port nobody holds right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_for_ports(
    process: subprocess.Popen[bytes], ports: list[int], name: str
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceFailedToStart(f"{name} exited with {process.returncode}")
        if all(_port_accepts(port) for port in ports):
            return
        # Bounded poll on the condition; connect attempts themselves pace it.
        threading.Event().wait(0.05)
    raise ServiceFailedToStart(
        f"{name} did not accept connections on {ports} within {READY_TIMEOUT_SECONDS}s"
    )


def _require_node_bin(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        raise ServiceFailedToStart(f"{path} is missing: run `npm ci` in {REPO_ROOT}")
    return path


@dataclass
class Azurite:
    """A running Azurite with blob, queue and table on loopback, in memory."""

    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int
    workdir: str = field(repr=False)

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{AZURITE_ACCOUNT};"
        )

    def stop(self) -> None:
        _stop(self.process, "azurite")
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_azurite() -> Azurite:
    """Start Azurite on three free loopback ports and wait until all accept."""
    executable = _require_node_bin("azurite")
    blob_port, queue_port, table_port = free_port(), free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="duralane-azurite-")
    process = subprocess.Popen(
        [
            str(executable),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(table_port),
        ],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_ports(process, [blob_port, queue_port, table_port], "azurite")
    except BaseException:
        _stop(process, "azurite")
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    logger.info("azurite ready pid=%s blob_port=%s", process.pid, blob_port)
    return Azurite(process, blob_port, queue_port, table_port, workdir)


@dataclass
class CosmosStandIn:
    """A running @vercel/cosmosdb-server behind tests/cosmos_standin.js."""

    process: subprocess.Popen[bytes]
    port: int
    key: str = COSMOS_KEY

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        _stop(self.process, "cosmos stand-in")


def start_cosmos_standin(
    advertised_port: int | None = None,
    *,
    bulk: bool = False,
    linear_queries: bool = False,
) -> CosmosStandIn:
    """Start the Cosmos DB stand-in on a free port and wait until it accepts.

    advertised_port makes the account's endpoints name another port, for a
    proxy in front of the stand-in that clients must keep going through.
    bulk turns on the launcher's stand-in-only bulk-create route (see
    tests/cosmos_standin.js), for benchmarks that fill it with many documents;
    linear_queries removes the quadratic step of its query engine (it still
    scans every document), so queries over 100,000 documents finish.
    """
    node = shutil.which("node")
    if node is None:
        raise ServiceFailedToStart("node is not on PATH")
    _require_node_bin("cosmosdb-server")
    process = subprocess.Popen(
        [node, str(COSMOS_LAUNCHER)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "NODE_PATH": str(REPO_ROOT / "node_modules"),
            **(
                {"COSMOS_ADVERTISED_PORT": str(advertised_port)}
                if advertised_port
                else {}
            ),
            **({"COSMOS_STANDIN_BULK": "1"} if bulk else {}),
            **({"COSMOS_STANDIN_LINEAR_QUERIES": "1"} if linear_queries else {}),
        },
    )
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first_line = lines.get(timeout=READY_TIMEOUT_SECONDS)
        if not first_line:
            raise ServiceFailedToStart(
                f"cosmos stand-in exited with {process.wait(timeout=5)}"
            )
        port = int(json.loads(first_line)["port"])
        _wait_for_ports(process, [port], "cosmos stand-in")
    except queue.Empty:
        _stop(process, "cosmos stand-in")
        raise ServiceFailedToStart(
            f"cosmos stand-in printed no port within {READY_TIMEOUT_SECONDS}s"
        ) from None
    except BaseException:
        _stop(process, "cosmos stand-in")
        raise
    logger.info("cosmos stand-in ready pid=%s port=%s", process.pid, port)
    return CosmosStandIn(process, port)


def _stop(process: subprocess.Popen[bytes], name: str) -> None:
    if process.poll() is not None:
        return
    if process.stdin is not None:
        process.stdin.close()
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("%s pid=%s ignored SIGTERM; killing it", name, process.pid)
        process.kill()
        process.wait(timeout=10)
