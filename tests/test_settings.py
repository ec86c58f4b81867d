"""App settings: read once at the app's import, a bad one named in a sentence."""

from __future__ import annotations

import pytest

from duralane.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"DURALANE_LANE": "hgh"}, "DURALANE_LANE names 'hgh', which is not a lane"),
        ({"DURALANE_LANE": "normal, lo"}, "DURALANE_LANE names 'lo'"),
        ({"DURALANE_DEADLINE_HIGH": "1s"}, "DURALANE_DEADLINE_HIGH is '1s'"),
        ({"DURALANE_CLAIM_CHECK_BYTES": "big"}, "DURALANE_CLAIM_CHECK_BYTES is"),
        ({"DURALANE_STRANDED_AFTER_SECONDS": "x"}, "DURALANE_STRANDED_AFTER_SECONDS"),
    ],
)
def test_a_setting_the_app_cannot_use_is_refused_by_name(
    environ: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_environ(environ)


def test_a_process_may_name_several_lanes_and_serves_only_those() -> None:
    settings = Settings.from_environ({"DURALANE_LANE": "normal, low"})

    assert [settings.serves(lane) for lane in ("high", "normal", "low")] == [
        False,
        True,
        True,
    ]
    assert all(Settings.from_environ({}).serves(lane) for lane in ("high", "low"))


def test_numbers_and_deadlines_are_read_from_their_settings() -> None:
    settings = Settings.from_environ(
        {
            "DURALANE_DEADLINE_HIGH": "0.5",
            "DURALANE_CLAIM_CHECK_BYTES": "1024",
            "DURALANE_STRANDED_AFTER_SECONDS": "5",
        }
    )

    assert settings.lane_deadlines == {"high": 0.5, "normal": 60.0, "low": 3600.0}
    assert settings.claim_check_bytes == 1024
    assert settings.stranded_after_seconds == 5.0
