"""The schedule domain's one exception tree.

    ScheduleError                anything the schedule engine refuses
    └── CronSyntaxError          a cron expression that cannot be parsed, or
                                 that can never fire; names the field and why

Both derive from ValueError, so pydantic validators can let them through and
the API turns them into a 400 with the field and the reason.
"""

from __future__ import annotations


class ScheduleError(ValueError):
    """Base of every refusal from the schedule engine."""


class CronSyntaxError(ScheduleError):
    """A cron expression the engine cannot accept, with the field at fault."""

    def __init__(self, field: str, text: str, reason: str) -> None:
        where = "expression" if field == "expression" else f"{field} field"
        super().__init__(f"{where} '{text}': {reason}")
        self.field = field
        self.text = text
        self.reason = reason
