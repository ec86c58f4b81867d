"""Each invocation logs one start and one end line with its ids, duration, outcome."""

from __future__ import annotations

import re

from tests.runtime.harness import RuntimeProcess, unique


def test_an_orchestration_and_its_activity_log_start_and_end_once_each(
    orchestrations: RuntimeProcess,
) -> None:
    instance = unique("logged")
    orchestrations.start_orchestration("hello_orchestrator", instance, "Lima")
    orchestrations.wait_done(instance)

    ended = orchestrations.wait_for_log(
        re.compile(
            r"Executed orchestrator hello_orchestrator \(invocation (\w+), "
            rf"instance {instance}, hub \w+\): Completed in [\d.]+ ms"
        ),
        timeout=10,
    )
    lines = [line for line in orchestrations.log().splitlines() if instance in line]
    starts = [line for line in lines if "Executing orchestrator" in line]
    activity_ends = [line for line in lines if "Executed activity" in line]
    assert len(starts) == 1 and f"invocation {ended.group(1)}" in starts[0]
    assert len([line for line in lines if "Executed orchestrator" in line]) == 1
    assert len(activity_ends) == 1
    assert re.search(
        r"invocation \w+, instance .*: Succeeded in [\d.]+ ms", activity_ends[0]
    )
