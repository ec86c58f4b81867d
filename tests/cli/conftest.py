"""The CLI runs in-process against the real app on the embedded runtime."""

from __future__ import annotations

from tests.jobs_e2e.conftest import app, target

__all__ = ["app", "target"]
