"""The runtime's SDK speed-ups change nothing an orchestration can observe.

The fast timestamp parse gives the SDK exactly what dateutil would, and the
executor's reused namedtuple class replays the same actions and output.
"""

from __future__ import annotations

import collections
import functools
import importlib
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil.parser import parse as dateutil_parse

from duralane.runtime import episode
from duralane.runtime.app import AppIndex, load_app
from duralane.runtime.config import load_host_config
from duralane.runtime.episode import (
    Instance,
    Message,
    parse_history_timestamp,
    run_episode,
    started_event,
)
from duralane.runtime.history import EventType, event, utc_text
from tests.runtime.harness import APPS

sdk_history = importlib.import_module(episode.SDK_HISTORY_MODULE)
sdk_executor = importlib.import_module(episode.SDK_EXECUTOR_MODULE)
CLOCK_APP = APPS / "timestamps" / "timestamp_sample_app.py"
START = 1_780_000_000.25


@pytest.mark.parametrize(
    "text",
    [
        utc_text(datetime(2026, 12, 3, 18, 50, 52, 123456, tzinfo=UTC)),
        utc_text(datetime(2026, 1, 1, tzinfo=UTC)),
        "2026-12-03T18:50:52Z",
        "2026-12-03T18:50:52.1234567Z",
        "2026-12-03T18:50:52.123+01:00",
        "2026-13-03T18:50:52.123456Z",
    ],
)
def test_parse_matches_dateutil_value_and_zone(text: str) -> None:
    """The runtime's own format takes the fast path; others fall back."""
    try:
        expected = dateutil_parse(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_history_timestamp(text)
        return
    parsed = parse_history_timestamp(text)
    assert parsed == expected
    assert repr(parsed) == repr(expected)


@functools.cache
def clock_app() -> AppIndex:
    """The app's index, built once: indexing an imported app twice fails."""
    return load_app(CLOCK_APP)


def replay_clock_orchestrator() -> list[str]:
    """Run the clock orchestrator's three episodes; return what each produced."""
    handle = clock_app().orchestrators["clock_orchestrator"].call
    instance = Instance("clock-1", "clock_orchestrator", "e1", input="null")
    started = started_event(instance, datetime.fromtimestamp(START).astimezone())
    history: list[str] = []
    outputs: list[str] = []

    def episode_at(now: float, message: dict[str, object], number: int) -> None:
        pending = [Message("clock-1", message, now, "e1", id=number)]
        result = run_episode(instance, list(history), pending, handle, now)
        history.extend(json.dumps(e) for e in result.new_history)
        outputs.append(json.dumps([result.new_history, instance.output]))

    episode_at(START, started, 1)
    events = [json.loads(text) for text in history]
    fired = next(e for e in events if e["EventType"] == EventType.TIMER_CREATED)
    moment = datetime.fromtimestamp(START + 2).astimezone()
    timer = event(EventType.TIMER_FIRED, moment, TimerId=0, FireAt=fired["FireAt"])
    episode_at(START + 2, timer, 2)
    moment = datetime.fromtimestamp(START + 3).astimezone()
    done = event(EventType.TASK_COMPLETED, moment, TaskScheduledId=1, Result='"x"')
    episode_at(START + 3, done, 3)
    assert instance.status == "Completed", outputs
    return outputs


def test_fast_parse_replays_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same actions, timers and output with and without the fast parse."""
    monkeypatch.setattr(sdk_history, "dt_parse", dateutil_parse)
    with_dateutil = replay_clock_orchestrator()

    monkeypatch.delenv(episode.FAST_TIMESTAMPS_SETTING, raising=False)
    assert episode.install_fast_timestamps()
    assert sdk_history.dt_parse is parse_history_timestamp
    with_fast_parse = replay_clock_orchestrator()

    assert with_fast_parse == with_dateutil


@pytest.mark.parametrize("setting", ["0", "false", "False"])
def test_fast_parse_stays_off_when_turned_off(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """DURALANE_FAST_TIMESTAMPS=0 (or false) keeps the SDK's dateutil."""
    monkeypatch.setattr(sdk_history, "dt_parse", dateutil_parse)
    monkeypatch.setenv(episode.FAST_TIMESTAMPS_SETTING, setting)
    assert not episode.install_fast_timestamps()
    assert sdk_history.dt_parse is not parse_history_timestamp


def test_fast_parse_stays_off_on_an_sdk_it_was_not_checked_against(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another SDK release keeps its own parse, and an explicit ask hears why."""
    monkeypatch.setattr(sdk_history, "dt_parse", dateutil_parse)
    monkeypatch.setattr(episode, "FAST_TIMESTAMPS_SDK", "0.0.")
    monkeypatch.setenv(episode.FAST_TIMESTAMPS_SETTING, "1")

    with caplog.at_level("WARNING", logger=episode.__name__):
        assert not episode.install_fast_timestamps()

    assert sdk_history.dt_parse is not parse_history_timestamp
    assert "slower" in caplog.text


def test_host_json_can_turn_the_fast_parse_off(tmp_path: Path) -> None:
    """fastTimestamps defaults to on; false in host.json turns it off."""
    assert load_host_config(tmp_path).fast_timestamps is True
    document = {"extensions": {"duralane": {"fastTimestamps": False}}}
    (tmp_path / "host.json").write_text(json.dumps(document))

    assert load_host_config(tmp_path).fast_timestamps is False


def payload_class() -> type:
    """The namedtuple class a fresh SDK executor builds for its event table."""
    executor = sdk_executor.TaskOrchestrationExecutor()
    return type(next(iter(executor.event_to_SetTaskValuePayload.values())))


def test_executor_reuse_builds_the_payload_class_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the reuse every executor makes a new class; with it, one class."""
    monkeypatch.setattr(sdk_executor, "namedtuple", collections.namedtuple)
    assert payload_class() is not payload_class()

    assert episode.install_executor_reuse()
    assert payload_class() is payload_class()
    assert payload_class()._fields == ("is_success", "task_id_key")


def test_executor_reuse_replays_identically(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same actions, timers and output with and without the reused class."""
    monkeypatch.setattr(sdk_executor, "namedtuple", collections.namedtuple)
    with_sdk_class = replay_clock_orchestrator()

    assert episode.install_executor_reuse()
    with_reuse = replay_clock_orchestrator()

    assert with_reuse == with_sdk_class


def test_executor_reuse_stays_off_on_an_sdk_without_namedtuple(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SDK release that builds its table another way is left alone."""
    other = object()
    monkeypatch.setattr(sdk_executor, "namedtuple", other)

    assert not episode.install_executor_reuse()
    assert sdk_executor.namedtuple is other


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 3, 18, 50, 52, 123456, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, 0, 5, tzinfo=ZoneInfo("Europe/Berlin")),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Kolkata")),
    ],
)
def test_history_timestamps_are_written_as_strftime_writes_them(
    moment: datetime,
) -> None:
    """The fast formatting gives the text the SDK has always been sent."""
    expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert utc_text(moment) == expected
    assert utc_text(moment) == expected


def test_stored_events_are_replayed_as_played_with_their_fields_intact() -> None:
    """A stored event reaches the SDK with IsPlayed true and nothing else changed,
    on the fast path and on the decoding one for a text event() did not write."""
    moment = datetime(2026, 12, 3, 18, 50, 52, tzinfo=UTC)
    written = event(
        EventType.TASK_COMPLETED,
        moment,
        TaskScheduledId=3,
        Result=json.dumps({"IsPlayed": False, "note": '"IsPlayed": false'}),
    )
    reordered = {"Timestamp": utc_text(moment), **written}

    for stored in (json.dumps(written), json.dumps(reordered)):
        played = json.loads(episode.played_text(stored))
        assert played == {**json.loads(stored), "IsPlayed": True}
