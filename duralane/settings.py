"""The one settings object, read from app settings (environment) at the edge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LANES = ("high", "normal", "low")

# Start deadlines per lane, in seconds: how long a submitted job may wait before
# its first attempt starts. Overridable per lane by DURALANE_DEADLINE_<LANE>.
DEFAULT_LANE_DEADLINES = {"high": 1.0, "normal": 60.0, "low": 3600.0}


class SettingsError(ValueError):
    """An app setting Duralane cannot use; the message names it and says why."""


def _lanes_setting(text: str) -> str:
    """DURALANE_LANE as given, once every name in it is checked to be a lane."""
    for name in (part.strip() for part in text.split(",")):
        if name and name not in LANES:
            raise SettingsError(
                f"DURALANE_LANE names {name!r}, which is not a lane; use "
                f"{', '.join(LANES)}, or several joined by commas"
            )
    return text


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    """A numeric app setting; one that is not a number is a SettingsError."""
    text = env.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise SettingsError(f"{name} is {text!r}, which is not a number") from None


@dataclass(frozen=True)
class Settings:
    """Every knob Duralane reads, with the app-setting name it comes from."""

    # DURALANE_LANE: the lane this process serves; empty means all three, as on
    # one machine. In Azure each lane's Function App sets its own. A runtime
    # that leaves a lane to a peer process names the rest: "normal,low".
    lane: str = ""
    # DURALANE_DATA_DIR: where the SQLite files live when no Cosmos DB is set.
    data_dir: Path = Path(".duralane")
    # DURALANE_SQLITE_PATH: the state store's file; defaults under data_dir.
    sqlite_path: Path | None = None
    # DURALANE_COSMOS_ENDPOINT / DURALANE_COSMOS_DATABASE: use Cosmos DB instead.
    cosmos_endpoint: str = ""
    cosmos_database: str = "duralane"
    # DURALANE_COSMOS_KEY: only for the local stand-in; Azure uses identity.
    cosmos_key: str = ""
    # DURALANE_COSMOS_VERIFY_TLS: "false" only for the local stand-in, whose
    # certificate is self-signed. Always true in Azure.
    cosmos_verify_tls: bool = True
    # DURALANE_BLOB_ENDPOINT / DURALANE_BLOB_CONTAINER: claim-check storage.
    blob_endpoint: str = ""
    blob_container: str = "duralane-payloads"
    # DURALANE_BLOB_CONNECTION_STRING: only for Azurite; Azure uses identity.
    blob_connection_string: str = ""
    # DURALANE_CLAIM_CHECK_BYTES: payloads larger than this go to Blob Storage.
    claim_check_bytes: int = 192 * 1024
    # DURALANE_FINISHED_JOB_TTL_SECONDS: how long finished jobs are kept.
    finished_job_ttl_seconds: int = 30 * 24 * 3600
    # DURALANE_DEADLINE_HIGH / _NORMAL / _LOW: start deadlines, in seconds.
    lane_deadlines: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_LANE_DEADLINES)
    )
    # DURALANE_ALLOWED_TARGETS: comma-separated hosts or CIDRs that http and
    # probe jobs may reach although they are loopback or private.
    allowed_targets: tuple[str, ...] = ()
    # DURALANE_API_KEY: required on function- and admin-level routes when the
    # embedded runtime binds beyond loopback.
    api_key: str = ""
    # DURALANE_STRANDED_AFTER_SECONDS: how long past its submission a queued
    # job with no orchestration waits before the sweep starts it (never less
    # than its lane's start deadline).
    stranded_after_seconds: float = 30.0
    # APPLICATIONINSIGHTS_CONNECTION_STRING: turns on telemetry export.
    appinsights_connection_string: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from app settings, the way Azure Functions exposes them."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DURALANE_DATA_DIR", ".duralane"))
        sqlite_path = env.get("DURALANE_SQLITE_PATH")
        deadlines = {
            lane: _number(env, f"DURALANE_DEADLINE_{lane.upper()}", default)
            for lane, default in DEFAULT_LANE_DEADLINES.items()
        }
        allowed = env.get("DURALANE_ALLOWED_TARGETS", "")
        return cls(
            lane=_lanes_setting(env.get("DURALANE_LANE", "")),
            data_dir=data_dir,
            sqlite_path=Path(sqlite_path) if sqlite_path else None,
            cosmos_endpoint=env.get("DURALANE_COSMOS_ENDPOINT", ""),
            cosmos_database=env.get("DURALANE_COSMOS_DATABASE", "duralane"),
            cosmos_key=env.get("DURALANE_COSMOS_KEY", ""),
            cosmos_verify_tls=env.get("DURALANE_COSMOS_VERIFY_TLS", "true").lower()
            not in ("false", "0", "no"),
            blob_endpoint=env.get("DURALANE_BLOB_ENDPOINT", ""),
            blob_container=env.get("DURALANE_BLOB_CONTAINER", "duralane-payloads"),
            blob_connection_string=env.get("DURALANE_BLOB_CONNECTION_STRING", ""),
            claim_check_bytes=int(
                _number(env, "DURALANE_CLAIM_CHECK_BYTES", 192 * 1024)
            ),
            finished_job_ttl_seconds=int(
                _number(env, "DURALANE_FINISHED_JOB_TTL_SECONDS", 30 * 24 * 3600)
            ),
            lane_deadlines=deadlines,
            allowed_targets=tuple(t.strip() for t in allowed.split(",") if t.strip()),
            api_key=env.get("DURALANE_API_KEY", ""),
            stranded_after_seconds=_number(
                env, "DURALANE_STRANDED_AFTER_SECONDS", 30.0
            ),
            appinsights_connection_string=env.get(
                "APPLICATIONINSIGHTS_CONNECTION_STRING", ""
            ),
        )

    def serves(self, lane: str) -> bool:
        """Whether this process runs the lane's jobs (every lane when unset)."""
        served = [name.strip() for name in self.lane.split(",") if name.strip()]
        return not served or lane in served

    @property
    def store_path(self) -> Path:
        """The SQLite state store's file."""
        return self.sqlite_path or self.data_dir / "state.sqlite3"
