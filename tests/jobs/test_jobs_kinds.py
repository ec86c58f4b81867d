"""Adding a kind with the decorator, and how its outcomes are classified."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
from jobs_support import context
from pydantic import BaseModel

from duralane.jobs.errors import (
    AttemptTimeout,
    InvalidJobParams,
    PermanentJobError,
    TransientJobError,
    UnknownJobKind,
    decode_failure,
    encode_failure,
)
from duralane.jobs.kinds import (
    JobContext,
    get_kind,
    job_kind,
    registered_kinds,
    run_job,
    unregister_kind,
)
from duralane.jobs.model import parse_job_spec
from duralane.jobs.schema import CamelModel

pytestmark = pytest.mark.anyio


class ResizeParams(CamelModel):
    width: int
    height: int = 100


@pytest.fixture
def kind_name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        unregister_kind(name)


async def test_a_user_adds_an_async_kind_in_a_few_lines(kind_name: str) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams, ctx: JobContext) -> dict[str, object]:
        return {"area": params.width * params.height, "job": ctx.job_id}

    ctx = context()
    result = await run_job(kind_name, {"width": 3}, ctx)

    assert result == {"area": 300, "job": ctx.job_id}
    assert kind_name in registered_kinds()


async def test_a_sync_kind_without_context_runs_off_the_event_loop(
    kind_name: str,
) -> None:
    loop_thread = threading.get_ident()

    @job_kind(kind_name, params=ResizeParams)
    def resize(params: ResizeParams) -> dict[str, object]:
        return {"width": params.width, "offLoop": threading.get_ident() != loop_thread}

    assert await run_job(kind_name, {"width": 5}, context()) == {
        "width": 5,
        "offLoop": True,
    }


async def test_submissions_of_a_user_kind_are_validated_by_its_model(
    kind_name: str,
) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams) -> None:
        return None

    spec = parse_job_spec({"kind": kind_name, "params": {"width": "12"}})
    assert spec.params == {"width": 12, "height": 100}

    with pytest.raises(ValueError, match=r"params\.width"):
        parse_job_spec({"kind": kind_name, "params": {}})


async def test_bad_params_at_run_time_are_permanent(kind_name: str) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams) -> None:
        return None

    with pytest.raises(InvalidJobParams, match="width"):
        await run_job(kind_name, {"width": "wide"}, context())


async def test_an_unknown_kind_at_run_time_is_permanent() -> None:
    with pytest.raises(UnknownJobKind):
        await run_job(f"gone-{uuid.uuid4().hex[:8]}", {}, context())


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (PermanentJobError("image is corrupt"), "permanent"),
        (TransientJobError("disk busy", retry_after=3), "transient"),
        (OSError("disk unplugged"), "transient"),
        (ZeroDivisionError("bug"), "transient"),
    ],
)
async def test_handler_exceptions_are_classified(
    kind_name: str, raised: Exception, kind: str
) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams) -> None:
        raise raised

    with pytest.raises(type(raised)) as caught:
        await run_job(kind_name, {"width": 1}, context())

    assert decode_failure(encode_failure(caught.value)).kind == kind


async def test_a_handler_running_past_its_timeout_is_an_attempt_timeout(
    kind_name: str,
) -> None:
    never = asyncio.Event()

    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams) -> None:
        await never.wait()

    with pytest.raises(AttemptTimeout, match=r"0\.05s") as caught:
        await run_job(kind_name, {"width": 1}, context(), timeout_seconds=0.05)

    assert decode_failure(encode_failure(caught.value)).kind == "timeout"


async def test_a_result_that_is_not_json_is_permanent(kind_name: str) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def resize(params: ResizeParams) -> object:
        return {"when": object()}

    with pytest.raises(PermanentJobError, match="not JSON-able"):
        await run_job(kind_name, {"width": 1}, context())


async def test_registering_a_name_twice_needs_replace(kind_name: str) -> None:
    @job_kind(kind_name, params=ResizeParams)
    async def first(params: ResizeParams) -> int:
        return 1

    with pytest.raises(ValueError, match="already registered"):

        @job_kind(kind_name, params=ResizeParams)
        async def second(params: ResizeParams) -> int:
            return 2

    @job_kind(kind_name, params=ResizeParams, replace=True)
    async def third(params: ResizeParams) -> int:
        return 3

    assert get_kind(kind_name).handler is third


@pytest.mark.parametrize("name", ["Resize", "1st", "with space", "", "x" * 64])
def test_kind_names_are_constrained(name: str) -> None:
    with pytest.raises(ValueError, match="job kind name"):
        job_kind(name, params=ResizeParams)


def test_params_must_be_a_pydantic_model() -> None:
    with pytest.raises(TypeError):
        job_kind("needs-model", params=dict)  # type: ignore[type-var]


def test_built_in_kinds_are_registered() -> None:
    assert {"http", "probe"} <= set(registered_kinds())
    assert issubclass(get_kind("http").params_model, BaseModel)
