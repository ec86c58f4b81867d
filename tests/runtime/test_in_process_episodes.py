"""Representative orchestrations again, with episodes in the runtime's own process.

The other orchestration tests run with the default episode processes; these
check the single-process mode (the default on a one-core machine) too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.runtime import test_orchestrations as scenarios
from tests.runtime.harness import RuntimeProcess

SCENARIOS: list[Callable[[RuntimeProcess], None]] = [
    scenarios.test_activity_result_becomes_the_output,
    scenarios.test_activity_retry_succeeds_after_two_failures,
    scenarios.test_sub_orchestration_retry_runs_the_child_again,
    scenarios.test_durable_timer_fires_then_the_orchestration_continues,
    scenarios.test_cancelled_timer_never_fires_later,
    scenarios.test_task_all_fans_out_and_gathers_every_result,
    scenarios.test_continue_as_new_restarts_with_the_new_input,
    scenarios.test_event_raised_while_suspended_is_handled_after_resume,
    scenarios.test_replay_that_changes_its_actions_fails_naming_the_mismatch,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__[5:] for s in SCENARIOS])
def test_scenario_passes_with_episodes_in_the_runtime_process(
    orchestrations_in_process: RuntimeProcess,
    scenario: Callable[[RuntimeProcess], None],
) -> None:
    """The same behaviour when no episode process is used."""
    scenario(orchestrations_in_process)
