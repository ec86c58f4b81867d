"""The registry of job kinds, and the decorator a user adds a kind with."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from duralane.jobs.errors import (
    AttemptTimeout,
    InvalidJobParams,
    PermanentJobError,
    UnknownJobKind,
)
from duralane.jobs.safety import TargetPolicy

logger = logging.getLogger(__name__)

KIND_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def utc_now() -> datetime:
    """The default clock; tests and orchestrators pass their own."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobContext:
    """What a kind's handler may know about the attempt it runs in."""

    job_id: str
    attempt: int
    idempotency_key: str
    # The allow list comes from settings at the edge; the default refuses every
    # loopback and private target, so a forgotten policy fails safe.
    target_policy: TargetPolicy = field(default_factory=TargetPolicy)
    clock: Callable[[], datetime] = utc_now


ParamsT = TypeVar("ParamsT", bound=BaseModel)
Handler = Callable[..., Any]


@dataclass(frozen=True)
class JobKind:
    """One registered kind: its name, parameter model and handler."""

    name: str
    params_model: type[BaseModel]
    handler: Handler
    # Whether the handler takes the JobContext as its second argument.
    wants_context: bool

    def validate_params(self, params: Mapping[str, Any] | BaseModel) -> BaseModel:
        """The params as the kind's model; raises pydantic's ValidationError."""
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump(by_alias=True)
        return self.params_model.model_validate(params)


_KINDS: dict[str, JobKind] = {}


def job_kind(
    name: str, *, params: type[ParamsT], replace: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of job kind `name`."""
    if not KIND_NAME.match(name):
        raise ValueError(
            f"job kind name {name!r} must be lowercase letters, digits and "
            "hyphens, starting with a letter, at most 63 characters"
        )
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise TypeError(f"params for job kind {name!r} must be a pydantic model")

    def register(handler: Handler) -> Handler:
        if name in _KINDS and not replace and _KINDS[name].handler is not handler:
            raise ValueError(
                f"job kind {name!r} is already registered by "
                f"{_KINDS[name].handler.__module__}; pass replace=True to override"
            )
        _KINDS[name] = JobKind(name, params, handler, _takes_context(handler))
        return handler

    return register


def _takes_context(handler: Handler) -> bool:
    """Whether a handler declares a second positional parameter for the context."""
    positional = [
        p
        for p in inspect.signature(handler).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    if not positional:
        raise TypeError(f"handler {handler.__qualname__} must take the params")
    return (
        len(positional) >= 2 or positional[0].kind == inspect.Parameter.VAR_POSITIONAL
    )


def get_kind(name: str) -> JobKind:
    """The registered kind called `name`; UnknownJobKind when there is none."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownJobKind(name, registered_kinds()) from None


def registered_kinds() -> list[str]:
    """Every registered kind name, sorted, for error messages and the API."""
    return sorted(_KINDS)


def unregister_kind(name: str) -> None:
    """Forget a kind; for tests and for apps that replace a built-in."""
    _KINDS.pop(name, None)


async def run_job(
    kind_name: str,
    params: Mapping[str, Any] | BaseModel,
    context: JobContext,
    timeout_seconds: float | None = None,
) -> Any:
    """Run one attempt of a job: validate params, call the handler, check result."""
    kind = get_kind(kind_name)
    try:
        validated = kind.validate_params(params)
    except ValidationError as exc:
        raise InvalidJobParams(
            f"job {context.job_id} params do not fit kind {kind_name!r}: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()
            )
        ) from exc

    args: tuple[Any, ...] = (validated, context) if kind.wants_context else (validated,)
    if inspect.iscoroutinefunction(kind.handler):
        call: Awaitable[Any] = kind.handler(*args)
    else:
        # A sync handler runs in a thread so it cannot stall the event loop the
        # runtime shares with other activities; a timeout abandons the thread.
        call = asyncio.to_thread(kind.handler, *args)

    try:
        if timeout_seconds is None:
            result = await call
        else:
            result = await asyncio.wait_for(call, timeout_seconds)
    except TimeoutError as exc:
        if timeout_seconds is None:
            raise
        raise AttemptTimeout(
            f"job {context.job_id} attempt {context.attempt} ({kind_name}) ran "
            f"past its timeout of {timeout_seconds}s",
            timeout_seconds=timeout_seconds,
        ) from exc

    return _json_result(result, kind_name, context)


def _json_result(result: Any, kind_name: str, context: JobContext) -> Any:
    """The handler's result as plain JSON data, or a permanent error if it is not."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", by_alias=True)
    try:
        # A round trip both proves the result serializable and detaches it
        # from any object the handler may still mutate.
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        logger.warning(
            "job %s attempt %d: kind %s returned a non-JSON result: %s",
            context.job_id,
            context.attempt,
            kind_name,
            exc,
        )
        raise PermanentJobError(
            f"kind {kind_name!r} returned a result that is not JSON-able: {exc}"
        ) from exc
