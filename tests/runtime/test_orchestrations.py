"""Each orchestrator action, run by the real SDK on the embedded runtime."""

from __future__ import annotations

import pytest

from tests.runtime.harness import (
    RuntimeProcess,
    event_types,
    holds_throughout,
    unique,
)

EXECUTION_STARTED = 0
TASK_SCHEDULED = 4
TASK_FAILED = 6
SUB_ORCHESTRATION_CREATED = 7
SUB_ORCHESTRATION_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15
SUSPENDED = 19
RESUMED = 20


def test_activity_result_becomes_the_output(orchestrations: RuntimeProcess) -> None:
    """The simplest round trip: one activity, its result returned."""
    instance = unique("hello")
    orchestrations.start_orchestration("hello_orchestrator", instance, "Tokyo")

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == "Hello Tokyo"
    assert status["input"] == "Tokyo"


def test_activity_retry_succeeds_after_two_failures(
    orchestrations: RuntimeProcess,
) -> None:
    """The host reschedules a failed activity after a durable retry timer."""
    instance = unique("retry-ok")
    request = {"key": instance, "failures": 2, "attempts": 4}
    orchestrations.start_orchestration("retry_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == 3
    kinds = event_types(status["historyEvents"])
    assert kinds.count(TASK_FAILED) == 2
    assert kinds.count(TASK_SCHEDULED) == 3


def test_activity_retry_timers_are_in_the_history(
    orchestrations: RuntimeProcess,
) -> None:
    """Each retry waits on a durable timer, visible with showHistory=true."""
    instance = unique("retry-timers")
    request = {"key": instance, "failures": 2, "attempts": 4}
    orchestrations.start_orchestration("retry_orchestrator", instance, request)

    history = orchestrations.wait_done(instance)["historyEvents"]

    kinds = event_types(history)
    assert kinds.count(TIMER_CREATED) == 2
    assert kinds.count(TIMER_FIRED) == 2
    failures = [i for i, k in enumerate(kinds) if k == TASK_FAILED]
    timers = [i for i, k in enumerate(kinds) if k == TIMER_CREATED]
    assert all(f < t for f, t in zip(failures, timers, strict=True))


def test_exhausted_activity_retries_fail_with_the_activity_message(
    orchestrations: RuntimeProcess,
) -> None:
    """After the last attempt the orchestration fails with the activity's error."""
    instance = unique("retry-exhausted")
    request = {"key": instance, "failures": 10, "attempts": 3}
    orchestrations.start_orchestration("retry_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Failed"
    assert f"flaky attempt 3 for {instance} failed" in str(status["output"])
    assert event_types(status["historyEvents"]).count(TASK_FAILED) == 3


def test_sub_orchestration_result_reaches_the_parent(
    orchestrations: RuntimeProcess,
) -> None:
    """A child runs as its own instance, under the id the parent chose."""
    instance = unique("parent")
    child = unique("child")
    request = {"mode": "plain", "name": "Oslo", "child_id": child}
    orchestrations.start_orchestration("parent_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["output"] == {"child": "Hello Oslo"}
    assert orchestrations.status(child)["runtimeStatus"] == "Completed"
    assert SUB_ORCHESTRATION_CREATED in event_types(status["historyEvents"])


def test_sub_orchestration_retry_runs_the_child_again(
    orchestrations: RuntimeProcess,
) -> None:
    """A failed child is retried after a timer until an attempt succeeds."""
    instance = unique("parent-retry")
    request = {"mode": "retry", "key": instance, "failures": 1, "attempts": 3}
    orchestrations.start_orchestration("parent_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"child": f"Hello {instance}"}
    kinds = event_types(status["historyEvents"])
    assert kinds.count(SUB_ORCHESTRATION_CREATED) == 2
    assert kinds.count(SUB_ORCHESTRATION_FAILED) == 1
    assert TIMER_FIRED in kinds


def test_sub_orchestration_retry_reuses_the_chosen_child_id(
    orchestrations: RuntimeProcess,
) -> None:
    """A child started under a fixed id is retried under that same id."""
    instance = unique("parent-retry-id")
    child = unique("fixed-child")
    request = {
        "mode": "retry",
        "key": instance,
        "failures": 1,
        "attempts": 3,
        "child_id": child,
    }
    orchestrations.start_orchestration("parent_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"child": f"Hello {instance}"}
    assert orchestrations.status(child)["runtimeStatus"] == "Completed"


def test_durable_timer_fires_then_the_orchestration_continues(
    orchestrations: RuntimeProcess,
) -> None:
    """A timer is a history event pair, and the code after it runs once."""
    instance = unique("timer")
    request = {"seconds": 1, "marker": instance}
    orchestrations.start_orchestration("timer_orchestrator", instance, request)

    status = orchestrations.wait_done(instance)

    assert status["output"] == instance
    kinds = event_types(status["historyEvents"])
    assert kinds.count(TIMER_CREATED) == 1
    assert kinds.count(TIMER_FIRED) == 1


def test_event_beating_a_timer_completes_promptly(
    orchestrations: RuntimeProcess,
) -> None:
    """task_any returns on the event; an hour-long timer does not hold it open."""
    instance = unique("race")
    request = {"seconds": 3600}
    orchestrations.start_orchestration("race_orchestrator", instance, request)
    orchestrations.wait_status(instance, lambda s: s["runtimeStatus"] == "Running")

    orchestrations.raise_event(instance, "approve", {"by": "ana"})

    status = orchestrations.wait_done(instance, timeout=15)
    assert status["output"] == {"approved": {"by": "ana"}}
    assert TIMER_FIRED not in event_types(status["historyEvents"])


def test_cancelled_timer_never_fires_later(orchestrations: RuntimeProcess) -> None:
    """A timer cancelled after task_any stays silent past its fire time."""
    instance = unique("race-linger")
    request = {"seconds": 1, "linger": True}
    orchestrations.start_orchestration("race_orchestrator", instance, request)
    orchestrations.wait_status(
        instance,
        lambda s: ORCHESTRATOR_COMPLETED in event_types(s.get("historyEvents", [])),
    )
    orchestrations.raise_event(instance, "approve", "yes")
    orchestrations.wait_status(
        instance,
        lambda s: event_types(s["historyEvents"]).count(ORCHESTRATOR_COMPLETED) >= 2,
    )

    holds_throughout(
        lambda: TIMER_FIRED not in event_types(orchestrations.history(instance)),
        seconds=2.5,
        what="the cancelled timer fired",
    )
    orchestrations.raise_event(instance, "finish", None)
    status = orchestrations.wait_done(instance)
    assert status["output"] == {"approved": "yes"}
    assert TIMER_FIRED not in event_types(status["historyEvents"])


def test_event_raised_after_the_orchestrator_waits(
    orchestrations: RuntimeProcess,
) -> None:
    """An event delivered to a waiting orchestrator resumes it with the payload."""
    instance = unique("events-after")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})
    orchestrations.wait_status(
        instance,
        lambda s: ORCHESTRATOR_COMPLETED in event_types(s.get("historyEvents", [])),
    )

    orchestrations.raise_event(instance, "first", 1)
    orchestrations.raise_event(instance, "second", {"n": 2})

    assert orchestrations.wait_done(instance)["output"] == [1, {"n": 2}]


def test_event_raised_before_the_orchestrator_waits_is_kept(
    orchestrations: RuntimeProcess,
) -> None:
    """An event that arrives early is buffered until its wait comes up."""
    instance = unique("events-before")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})
    orchestrations.raise_event(instance, "second", "b")
    orchestrations.wait_status(
        instance, lambda s: EVENT_RAISED in event_types(s.get("historyEvents", []))
    )
    assert orchestrations.status(instance)["runtimeStatus"] == "Running"

    orchestrations.raise_event(instance, "first", "a")

    assert orchestrations.wait_done(instance)["output"] == ["a", "b"]


@pytest.mark.xfail(
    strict=True,
    reason="SDK 1.7 keeps one deferred event per name, so the later early event "
    "overwrites the earlier (azure-functions-durable-python#507); Azure does the same",
)
def test_buffered_events_of_one_name_are_delivered_once_each(
    orchestrations: RuntimeProcess,
) -> None:
    """Two early events with the same name satisfy two waits, in order."""
    instance = unique("repeated")
    orchestrations.start_orchestration("repeated_event_orchestrator", instance, {})
    orchestrations.raise_event(instance, "item", "a")
    orchestrations.raise_event(instance, "item", "b")
    orchestrations.wait_status(
        instance,
        lambda s: event_types(s.get("historyEvents", [])).count(EVENT_RAISED) == 2,
    )

    orchestrations.raise_event(instance, "go", None)

    assert orchestrations.wait_done(instance)["output"] == ["a", "b"]


def test_task_all_fans_out_and_gathers_every_result(
    orchestrations: RuntimeProcess,
) -> None:
    """Fifty activities in parallel, their results summed in order."""
    instance = unique("fan-out")
    orchestrations.start_orchestration("fan_out_orchestrator", instance, 50)

    status = orchestrations.wait_done(instance)

    assert status["output"] == sum(n * n for n in range(50))
    assert event_types(status["historyEvents"]).count(TASK_SCHEDULED) == 50


def test_task_any_returns_the_first_finished_task(
    orchestrations: RuntimeProcess,
) -> None:
    """The activity wins over an event that never comes."""
    instance = unique("any")
    orchestrations.start_orchestration("any_orchestrator", instance, {})

    assert orchestrations.wait_done(instance)["output"] == "Hello first"


def test_continue_as_new_restarts_with_the_new_input(
    orchestrations: RuntimeProcess,
) -> None:
    """A counter loop continues as new until done, keeping only the last history."""
    instance = unique("counter")
    orchestrations.start_orchestration(
        "counter_orchestrator", instance, {"count": 0, "target": 5}
    )

    status = orchestrations.wait_done(instance)

    assert status["output"] == {"count": 5, "target": 5}
    assert status["input"] == {"count": 5, "target": 5}
    assert event_types(status["historyEvents"]).count(EXECUTION_STARTED) == 1


def test_custom_status_is_visible_while_running(
    orchestrations: RuntimeProcess,
) -> None:
    """set_custom_status shows in the status query before and after completion."""
    instance = unique("custom")
    orchestrations.start_orchestration("status_orchestrator", instance, {})

    running = orchestrations.wait_status(
        instance, lambda s: s["customStatus"] is not None
    )
    assert running["customStatus"] == {"stage": "waiting", "progress": 50}
    orchestrations.raise_event(instance, "go", "ok")
    done = orchestrations.wait_done(instance)
    assert done["customStatus"] == {"stage": "done", "progress": 100}


def test_event_raised_while_suspended_is_handled_after_resume(
    orchestrations: RuntimeProcess,
) -> None:
    """A suspended instance holds its events until it is resumed."""
    instance = unique("suspend")
    orchestrations.start_orchestration("status_orchestrator", instance, {})
    orchestrations.wait_status(instance, lambda s: s["customStatus"] is not None)
    orchestrations.control(instance, "suspend", "maintenance")
    orchestrations.wait_status(instance, lambda s: s["runtimeStatus"] == "Suspended")

    orchestrations.raise_event(instance, "go", "late")
    holds_throughout(
        lambda: orchestrations.status(instance)["runtimeStatus"] == "Suspended",
        seconds=1.0,
        what="a suspended instance handled an event",
    )
    orchestrations.control(instance, "resume", "done")

    status = orchestrations.wait_done(instance)
    assert status["output"] == "late"
    kinds = event_types(status["historyEvents"])
    assert kinds.index(SUSPENDED) < kinds.index(RESUMED) < kinds.index(EVENT_RAISED)


def test_terminate_ends_a_waiting_instance_with_the_reason(
    orchestrations: RuntimeProcess,
) -> None:
    """Terminate stops an instance at once; the reason becomes its output."""
    instance = unique("terminate")
    orchestrations.start_orchestration("two_events_orchestrator", instance, {})
    orchestrations.wait_status(instance, lambda s: s["runtimeStatus"] == "Running")

    orchestrations.control(instance, "terminate", "operator stopped it")

    status = orchestrations.wait_done(instance)
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "operator stopped it"


def test_replay_that_changes_its_actions_fails_naming_the_mismatch(
    orchestrations: RuntimeProcess,
) -> None:
    """Non-deterministic code is caught on replay, not silently diverged."""
    instance = unique("nondeterministic")
    orchestrations.start_orchestration("nondeterministic_orchestrator", instance, {})

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Failed"
    message = status["output"]["message"]
    assert "Non-deterministic" in message
    assert "say_hello" in message and "square" in message


def test_orchestrator_exception_fails_the_instance_with_its_message(
    orchestrations: RuntimeProcess,
) -> None:
    """The user's exception message and details end up in the status."""
    instance = unique("failing")
    orchestrations.start_orchestration("failing_orchestrator", instance, "A-17")

    status = orchestrations.wait_done(instance)

    assert status["runtimeStatus"] == "Failed"
    assert status["output"]["message"] == (
        "cannot process order A-17: stock is negative"
    )
    assert "ValueError" in status["output"]["details"]
