"""The JSON conventions every job record shares: camelCase, no unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A record read from and written as camelCase JSON; unknown fields are 400s."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        # NaN and infinity pass float bounds checks in surprising ways.
        allow_inf_nan=False,
    )

    def to_json_dict(self) -> dict[str, object]:
        """The camelCase JSON-ready dict the API and orchestrator exchange."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class RecordModel(CamelModel):
    """A stored or exchanged record: unknown fields are kept out, not refused."""

    # Orchestrators in flight and older readers must accept documents written
    # by newer code, so records ignore fields they do not know.
    model_config = ConfigDict(extra="ignore")
