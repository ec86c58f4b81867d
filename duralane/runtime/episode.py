"""One orchestrator episode: replay the history, then turn new actions into work.

This is the host's half of the Durable Functions protocol. The SDK replays the
orchestrator over the history and returns every action since the start; the
host compares the replayed prefix with what it recorded, numbers the new
actions, and decides what to schedule. Everything here is a pure function of
the instance's stored state, its new messages and the current time, so the
caller can commit the result in one transaction.
"""

from __future__ import annotations

import collections
import functools
import importlib
import importlib.metadata
import json
import logging
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from dateutil.parser import parse as _dateutil_parse

from duralane.ids import random_hex
from duralane.runtime.history import (
    ActionType,
    Event,
    EventType,
    event,
    flatten_actions,
    signature,
    takes_sequence_id,
    utc_text,
)

OrchestratorHandle = Callable[[str], str]

FAST_TIMESTAMPS_SETTING = "DURALANE_FAST_TIMESTAMPS"
# The SDK release whose HistoryEvent parses Timestamp with dateutil and was
# checked to replay identically with parse_history_timestamp.
FAST_TIMESTAMPS_SDK = "1.7."
SDK_HISTORY_MODULE = "azure.durable_functions.models.history.HistoryEvent"
SDK_EXECUTOR_MODULE = "azure.durable_functions.models.TaskOrchestrationExecutor"

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Terminated"})
OUT_OF_PROC_MARKER = "$OutOfProcData$:"
# event() writes these three keys first, so a stored event is marked as played
# without decoding it (see played_text).
UNPLAYED_PREFIX = re.compile(
    r'\{"EventType": -?\d+, "EventId": -?\d+, "IsPlayed": false'
)
UNSUPPORTED_ACTIONS = {
    ActionType.CALL_ENTITY: "durable entities",
    ActionType.SIGNAL_ENTITY: "durable entities",
    ActionType.CALL_HTTP: "call_http",
}


@dataclass
class Instance:
    """An orchestration instance as the hub store keeps it."""

    instance_id: str
    name: str
    execution_id: str
    status: str = "Pending"
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    parent_instance_id: str | None = None
    parent_task_id: int | None = None
    parent_meta: dict[str, Any] | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    # The next sequence id the SDK will hand out, and every id-bearing or
    # event-waiting action recorded so far, to check determinism on replay.
    next_event_id: int = 0
    recorded: list[list[Any]] = field(default_factory=list)
    # History events stored for this execution when it was loaded; an
    # episode's new events are appended after them.
    history_length: int = 0


@dataclass
class Message:
    """An event on its way into an instance's history, with host-only metadata."""

    instance_id: str
    event: Event
    visible_at: float
    execution_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass
class ActivityWork:
    """An activity invocation waiting for a worker."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass
class EpisodeResult:
    """Everything one episode changes, for the store to commit atomically."""

    instance: Instance
    consumed: list[int]
    new_history: list[Event]
    reset_history: bool = False
    messages: list[Message] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    children: list[Instance] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    finished: bool = False
    ran_orchestrator: bool = False
    error: str | None = None
    # The execution the episode loaded (continue-as-new changes the
    # instance's): its commit must not land on a run started since.
    loaded_execution_id: str | None = None


def parse_history_timestamp(text: str) -> datetime:
    """Parse a history Timestamp like dateutil does, fast for the runtime's format.

    utc_text writes "YYYY-MM-DDTHH:MM:SS.ffffffZ"; anything else goes to
    dateutil, so the result is always what the SDK would have computed.
    """
    if (
        len(text) == 27
        and text[26] == "Z"
        and text[10] == "T"
        and text[19] == "."
        and text[:4].isdigit()
    ):
        try:
            return datetime.fromisoformat(text[:26]).replace(tzinfo=_utc_zone())
        except ValueError:
            pass
    return _dateutil_parse(text)


@functools.cache
def _utc_zone() -> tzinfo:
    """The zone dateutil gives a "Z" time: tzlocal() where the local zone is
    named UTC, tzutc() elsewhere; both are zero offsets."""
    zone = _dateutil_parse("2000-01-01T00:00:00.000000Z").tzinfo
    assert zone is not None
    return zone


def install_fast_timestamps() -> bool:
    """Swap the SDK's dateutil timestamp parse for parse_history_timestamp.

    On unless DURALANE_FAST_TIMESTAMPS is 0 or false, and only on the SDK
    release it was checked against, where dateutil costs half of an episode.
    """
    setting = os.environ.get(FAST_TIMESTAMPS_SETTING, "").lower()
    if setting in ("0", "false"):
        return False
    module: Any = importlib.import_module(SDK_HISTORY_MODULE)
    sdk = importlib.metadata.version("azure-functions-durable")
    if not sdk.startswith(FAST_TIMESTAMPS_SDK) or module.dt_parse not in (
        _dateutil_parse,
        parse_history_timestamp,
    ):
        # Only a user who asked for the fast parse needs to hear it is off.
        logger.log(
            logging.WARNING if setting in ("1", "true") else logging.INFO,
            "azure-functions-durable %s is not the %sx the fast timestamp parse "
            "was checked against; keeping its own (slower) timestamp parsing",
            sdk,
            FAST_TIMESTAMPS_SDK,
        )
        return False
    module.dt_parse = parse_history_timestamp
    return True


@functools.cache
def _shared_namedtuple(typename: str, field_names: tuple[str, ...]) -> Any:
    return collections.namedtuple(typename, field_names)


def _namedtuple_once(typename: str, field_names: Any, **options: Any) -> Any:
    """collections.namedtuple, but one class per name and plain field tuple."""
    if options or not isinstance(field_names, tuple):
        return collections.namedtuple(typename, field_names, **options)
    return _shared_namedtuple(typename, field_names)


def install_executor_reuse() -> bool:
    """Stop the SDK from building a namedtuple class in every episode.

    Its TaskOrchestrationExecutor, made anew per episode, defines a two-field
    namedtuple class in __init__: about 45 µs, a fifth of a short episode.
    Handing it the same class every time changes nothing it can observe.
    """
    try:
        module: Any = importlib.import_module(SDK_EXECUTOR_MODULE)
    except ImportError:
        module = None
    builder = getattr(module, "namedtuple", None)
    if builder is _namedtuple_once:
        return True
    if builder is not collections.namedtuple:
        logger.info("%s no longer uses namedtuple; left as it is", SDK_EXECUTOR_MODULE)
        return False
    module.namedtuple = _namedtuple_once
    return True


def is_retry_event(message: Message) -> bool:
    """Whether the host must number a retry task while this event is replayed."""
    kind = message.event["EventType"]
    if "retry" not in message.meta:
        return False
    return kind in (
        EventType.TASK_FAILED,
        EventType.SUB_ORCHESTRATION_FAILED,
        EventType.TIMER_FIRED,
    )


def retry_delay(options: dict[str, Any], attempt: int) -> float:
    """Seconds before the next attempt, computed as the Durable Task Framework does."""
    first = float(options.get("firstRetryIntervalInMilliseconds", 1000)) / 1000
    coefficient = float(options.get("backoffCoefficient", 1.0))
    delay = first * coefficient ** (attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    if cap:
        delay = min(delay, float(cap) / 1000)
    return delay


def choose_messages(instance: Instance, pending: list[Message]) -> list[Message]:
    """Pick the messages this episode consumes, in the order it replays them.

    Retry events go first and one at a time: the SDK numbers the retry's timer
    or re-run while it replays that event, so nothing else may number a task
    before it in the same episode.
    """
    if instance.status == "Suspended":
        return [
            m
            for m in pending
            if m.event["EventType"]
            in (EventType.EXECUTION_RESUMED, EventType.EXECUTION_TERMINATED)
        ][:1]
    retry_events = [m for m in pending if is_retry_event(m)]
    others = [m for m in pending if not is_retry_event(m)]
    return retry_events[:1] + others


def run_episode(
    instance: Instance,
    history: list[str],
    pending: list[Message],
    handle: OrchestratorHandle | None,
    now: float,
) -> EpisodeResult:
    """Apply the pending messages to one instance and return what changed.

    The history is the execution's events as stored, one JSON text each: the
    replay passes them on to the SDK without decoding them.
    """
    moment = datetime.fromtimestamp(now, UTC)
    chosen = choose_messages(instance, pending)
    stale = [
        m
        for m in pending
        if m.execution_id not in (None, instance.execution_id) and m not in chosen
    ]
    result = EpisodeResult(
        instance=instance,
        consumed=[m.id for m in chosen + stale if m.id is not None],
        new_history=[],
        loaded_execution_id=instance.execution_id,
    )
    chosen = [m for m in chosen if m.execution_id in (None, instance.execution_id)]
    if not chosen:
        return result

    for message in chosen:
        kind = message.event["EventType"]
        if kind == EventType.EXECUTION_TERMINATED:
            return _terminate(result, message, moment)
    if instance.status in TERMINAL_STATUSES:
        # Late completions of a finished instance are dropped, as the real host does.
        return result

    new_events: list[Event] = [event(EventType.ORCHESTRATOR_STARTED, moment)]
    for message in chosen:
        new_events.extend(_replayable_events(result, message, moment, now))
    if result.finished:
        return result
    if instance.status == "Suspended":
        result.new_history = new_events[1:]
        instance.updated_at = now
        return result
    if handle is None:
        return _fail(
            result,
            new_events,
            moment,
            f"Orchestrator function '{instance.name}' does not exist in this app.",
            "",
        )

    if instance.status in ("Pending", "ContinuedAsNew"):
        instance.status = "Running"
    return _replay(result, history, new_events, handle, moment, now)


def fail_instance(
    instance: Instance, pending: list[Message], now: float, reason: str, details: str
) -> EpisodeResult:
    """Fail an instance the runtime could not run, consuming all its messages."""
    moment = datetime.fromtimestamp(now, UTC)
    result = EpisodeResult(
        instance=instance,
        consumed=[m.id for m in pending if m.id is not None],
        new_history=[],
        loaded_execution_id=instance.execution_id,
    )
    if instance.status in TERMINAL_STATUSES:
        return result
    started = [event(EventType.ORCHESTRATOR_STARTED, moment)]
    return _fail(result, started, moment, reason, details)


def _terminate(
    result: EpisodeResult, message: Message, moment: datetime
) -> EpisodeResult:
    """End the instance at once with the reason it was given."""
    instance = result.instance
    if instance.status in TERMINAL_STATUSES:
        return result
    reason = message.event.get("Input")
    result.new_history = [
        event(EventType.EXECUTION_TERMINATED, moment, Input=reason),
    ]
    instance.status = "Terminated"
    instance.output = reason
    instance.updated_at = moment.timestamp()
    result.finished = True
    _notify_parent(result, moment, failed=True, reason="Terminated", details=reason)
    return result


def _replayable_events(
    result: EpisodeResult, message: Message, moment: datetime, now: float
) -> list[Event]:
    """Turn one message into the history events the SDK will see."""
    instance = result.instance
    kind = message.event["EventType"]
    if kind == EventType.EXECUTION_SUSPENDED:
        if instance.status in ("Running", "Pending"):
            instance.status = "Suspended"
        return [message.event]
    if kind == EventType.EXECUTION_RESUMED:
        if instance.status == "Suspended":
            instance.status = "Running"
        return [message.event]

    events = [message.event]
    retry = message.meta.get("retry")
    if retry is None:
        return events

    attempt = int(message.meta.get("attempt", 1))
    if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_FAILED):
        timer_id = _take_id(instance)
        fire_at = now + retry_delay(retry, attempt)
        fire_text = utc_text(datetime.fromtimestamp(fire_at, UTC))
        events.append(
            event(EventType.TIMER_CREATED, moment, timer_id, FireAt=fire_text)
        )
        result.messages.append(
            Message(
                instance_id=instance.instance_id,
                execution_id=instance.execution_id,
                event=event(
                    EventType.TIMER_FIRED,
                    moment,
                    TimerId=timer_id,
                    FireAt=fire_text,
                ),
                visible_at=fire_at,
                meta={
                    **message.meta,
                    "final": attempt >= int(retry["maxNumberOfAttempts"]),
                },
            )
        )
    elif kind == EventType.TIMER_FIRED and not message.meta.get("final"):
        rerun_id = _take_id(instance)
        meta = {**message.meta, "attempt": attempt + 1}
        meta.pop("final", None)
        events.append(_schedule(result, meta, rerun_id, moment))
    return events


def _schedule(
    result: EpisodeResult, meta: dict[str, Any], task_id: int, moment: datetime
) -> Event:
    """Schedule an activity or a sub-orchestration and return its history event."""
    instance = result.instance
    name = str(meta["name"])
    payload = meta.get("input")
    if meta.get("kind") == "orchestration":
        child_id = meta.get("childId") or f"{instance.instance_id}:{task_id:04d}"
        if meta.get("attempt", 1) > 1 and not meta.get("fixedChildId"):
            child_id = f"{child_id}:{meta['attempt']}"
        child = Instance(
            instance_id=child_id,
            name=name,
            execution_id=random_hex(),
            input=payload,
            parent_instance_id=instance.instance_id,
            parent_task_id=task_id,
            parent_meta=meta if "retry" in meta else None,
            created_at=moment.timestamp(),
            updated_at=moment.timestamp(),
        )
        result.children.append(child)
        result.messages.append(
            Message(
                instance_id=child_id,
                execution_id=child.execution_id,
                event=started_event(child, moment),
                visible_at=moment.timestamp(),
            )
        )
        return event(
            EventType.SUB_ORCHESTRATION_CREATED,
            moment,
            task_id,
            Name=name,
            InstanceId=child_id,
            Input=payload,
        )
    result.activities.append(
        ActivityWork(
            instance_id=instance.instance_id,
            execution_id=instance.execution_id,
            task_id=task_id,
            name=name,
            input=payload,
            meta=meta,
        )
    )
    return event(EventType.TASK_SCHEDULED, moment, task_id, Name=name, Input=payload)


def started_event(instance: Instance, moment: datetime) -> Event:
    """The ExecutionStarted event that opens an execution's history."""
    parent = None
    if instance.parent_instance_id:
        parent = {"OrchestrationInstance": {"InstanceId": instance.parent_instance_id}}
    return event(
        EventType.EXECUTION_STARTED,
        moment,
        Name=instance.name,
        Input=instance.input,
        Version="",
        OrchestrationInstance={
            "InstanceId": instance.instance_id,
            "ExecutionId": instance.execution_id,
        },
        ParentInstance=parent,
    )


def _take_id(instance: Instance) -> int:
    """Hand out the next sequence id, as the SDK does on its side."""
    task_id = instance.next_event_id
    instance.next_event_id += 1
    return task_id


def _replay(
    result: EpisodeResult,
    history: list[str],
    new_events: list[Event],
    handle: OrchestratorHandle,
    moment: datetime,
    now: float,
) -> EpisodeResult:
    """Run the orchestrator over old and new events and act on what it returns."""
    instance = result.instance
    result.ran_orchestrator = True
    try:
        state = json.loads(handle(_context_text(instance, history, new_events)))
    except Exception as exc:
        cause = exc.__cause__ or exc
        message = str(cause) or type(cause).__name__
        details = "".join(traceback.format_exception(cause)).strip()
        return _fail(result, new_events, moment, message, details)

    if "customStatus" in state:
        instance.custom_status = json.dumps(state["customStatus"])
    actions = flatten_actions(state.get("actions") or [])
    mismatch = _check_determinism(instance, actions)
    if mismatch:
        return _fail(result, new_events, moment, mismatch, "")

    continue_as_new: dict[str, Any] | None = None
    for index, action in enumerate(actions):
        kind = ActionType(action["actionType"])
        if kind == ActionType.CREATE_TIMER and action.get("isCanceled"):
            recorded = (
                instance.recorded[index] if index < len(instance.recorded) else None
            )
            if recorded and recorded[1] is not None:
                result.cancelled_timers.append(int(recorded[1]))
        if index < len(instance.recorded):
            continue
        if kind in UNSUPPORTED_ACTIONS:
            return _fail(
                result,
                new_events,
                moment,
                f"The embedded runtime does not support {UNSUPPORTED_ACTIONS[kind]} "
                f"yet (action {kind.name}); run this orchestration on Azure.",
                "",
            )
        if kind == ActionType.CONTINUE_AS_NEW:
            continue_as_new = action
            continue
        task_id = _take_id(instance) if takes_sequence_id(action) else None
        instance.recorded.append([signature(action), task_id])
        if task_id is None:
            continue
        new_events.append(_start_action(result, action, kind, task_id, moment))

    instance.updated_at = now
    if continue_as_new is not None:
        return _continue_as_new(result, continue_as_new, moment)
    if state.get("isDone"):
        new_events.append(event(EventType.ORCHESTRATOR_COMPLETED, moment))
        output = state.get("output")
        new_events.append(
            event(
                EventType.EXECUTION_COMPLETED,
                moment,
                OrchestrationStatus=1,
                Result=json.dumps(output),
            )
        )
        result.new_history = new_events
        instance.status = "Completed"
        instance.output = json.dumps(output)
        result.finished = True
        _notify_parent(result, moment, failed=False, output=instance.output)
        return result
    new_events.append(event(EventType.ORCHESTRATOR_COMPLETED, moment))
    result.new_history = new_events
    return result


def _context_text(
    instance: Instance, history: list[str], new_events: list[Event]
) -> str:
    """The orchestration context the SDK replays, as the host sends it, in JSON."""
    events = [played_text(text) for text in history]
    events.extend(json.dumps(new) for new in new_events)
    fields = json.dumps(
        {
            "input": instance.input,
            "instanceId": instance.instance_id,
            "isReplaying": bool(history),
            "parentInstanceId": instance.parent_instance_id,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
        }
    )
    return '{"history": [' + ", ".join(events) + "], " + fields[1:]


def played_text(stored: str) -> str:
    """A stored event's JSON text with IsPlayed true, as a replay shows it."""
    prefix = UNPLAYED_PREFIX.match(stored)
    if prefix is not None:
        return prefix.group()[: -len("false")] + "true" + stored[prefix.end() :]
    played = json.loads(stored)
    played["IsPlayed"] = True
    return json.dumps(played)


def _start_action(
    result: EpisodeResult,
    action: dict[str, Any],
    kind: ActionType,
    task_id: int,
    moment: datetime,
) -> Event:
    """Record one new action and create the work or timer it asks for."""
    instance = result.instance
    if kind == ActionType.CREATE_TIMER:
        fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
        fire_text = utc_text(fire_at)
        result.messages.append(
            Message(
                instance_id=instance.instance_id,
                execution_id=instance.execution_id,
                event=event(
                    EventType.TIMER_FIRED, moment, TimerId=task_id, FireAt=fire_text
                ),
                visible_at=fire_at.timestamp(),
            )
        )
        return event(EventType.TIMER_CREATED, moment, task_id, FireAt=fire_text)

    meta: dict[str, Any] = {
        "name": action["functionName"],
        "input": action.get("input"),
        "kind": "activity",
    }
    if kind in (
        ActionType.CALL_SUB_ORCHESTRATOR,
        ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    ):
        meta["kind"] = "orchestration"
        if action.get("instanceId"):
            meta["childId"] = action["instanceId"]
            meta["fixedChildId"] = True
    if kind in (
        ActionType.CALL_ACTIVITY_WITH_RETRY,
        ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
    ):
        meta["retry"] = action.get("retryOptions") or {}
        meta["attempt"] = 1
    return _schedule(result, meta, task_id, moment)


def _check_determinism(instance: Instance, actions: list[dict[str, Any]]) -> str | None:
    """Name the first replayed action that differs from the recorded one."""
    replayed = [a for a in actions if a["actionType"] != ActionType.CONTINUE_AS_NEW]
    for index, (recorded, action) in enumerate(
        zip(instance.recorded, replayed, strict=False)
    ):
        if recorded[0] != signature(action):
            return (
                "Non-deterministic orchestrator: replay produced "
                f"{signature(action)} as action #{index + 1}, where the history "
                f"recorded {recorded[0]}. Orchestrator code changed, or it "
                "branched on something other than its input and task results."
            )
    if len(replayed) < len(instance.recorded):
        missing = instance.recorded[len(replayed)][0]
        return (
            "Non-deterministic orchestrator: replay stopped before action "
            f"#{len(replayed) + 1} ({missing}) that the history recorded."
        )
    return None


def _continue_as_new(
    result: EpisodeResult, action: dict[str, Any], moment: datetime
) -> EpisodeResult:
    """Start a fresh execution with a new input, dropping the old history."""
    instance = result.instance
    instance.execution_id = random_hex()
    instance.input = action.get("input")
    instance.status = "ContinuedAsNew"
    instance.next_event_id = 0
    instance.recorded = []
    instance.output = None
    result.reset_history = True
    result.new_history = []
    result.messages.append(
        Message(
            instance_id=instance.instance_id,
            execution_id=instance.execution_id,
            event=started_event(instance, moment),
            visible_at=moment.timestamp(),
        )
    )
    return result


def _fail(
    result: EpisodeResult,
    new_events: list[Event],
    moment: datetime,
    message: str,
    details: str,
) -> EpisodeResult:
    """End the instance as Failed with the orchestrator's message and details."""
    instance = result.instance
    new_events.append(
        event(
            EventType.EXECUTION_FAILED,
            moment,
            Reason=message,
            Details=details,
            OrchestrationStatus=3,
        )
    )
    result.new_history = new_events
    instance.status = "Failed"
    instance.output = json.dumps({"message": message, "details": details})
    instance.updated_at = moment.timestamp()
    result.finished = True
    result.error = message
    _notify_parent(result, moment, failed=True, reason=message, details=details)
    return result


def _notify_parent(
    result: EpisodeResult,
    moment: datetime,
    *,
    failed: bool,
    output: str | None = None,
    reason: str | None = None,
    details: str | None = None,
) -> None:
    """Tell the parent orchestration that this sub-orchestration ended."""
    instance = result.instance
    if not instance.parent_instance_id or instance.parent_task_id is None:
        return
    if failed:
        reply = event(
            EventType.SUB_ORCHESTRATION_FAILED,
            moment,
            TaskScheduledId=instance.parent_task_id,
            Reason=reason,
            Details=details,
        )
    else:
        reply = event(
            EventType.SUB_ORCHESTRATION_COMPLETED,
            moment,
            TaskScheduledId=instance.parent_task_id,
            Result=output,
        )
    result.messages.append(
        Message(
            instance_id=instance.parent_instance_id,
            event=reply,
            visible_at=moment.timestamp(),
            meta=instance.parent_meta or {},
        )
    )
