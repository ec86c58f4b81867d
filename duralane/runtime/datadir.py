"""One runtime per data directory, held by an advisory lock on a file in it.

A data directory holds task hubs, local queues and timer state that a runtime
treats as its own: it keeps the hubs' ready instances in memory, claims their
activity work without a lease and fires their timers. A second runtime on the
same directory would run every one of those again. The lock is the kernel's,
so a runtime that is killed, even with SIGKILL, leaves no stale lock behind.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import TextIO

logger = logging.getLogger(__name__)

LOCK_FILE = "runtime.lock"


class DataDirInUse(Exception):
    """Another live runtime holds the data directory."""


class DataDirLock:
    """The lock on a data directory, held until release() or the process ends."""

    def __init__(self, data_dir: Path, file: TextIO) -> None:
        self.data_dir = data_dir
        self._file: TextIO | None = file

    @classmethod
    def take(cls, data_dir: Path) -> DataDirLock:
        """Lock data_dir for this process, or raise DataDirInUse naming the holder."""
        # Python opens it non-inheritable, so episode processes and other
        # children never hold the lock past this process.
        file = (data_dir / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise DataDirInUse(
                f"data directory {data_dir} is in use by another runtime (pid "
                f"{holder}): a second one would run its task hubs, queues and "
                "timers again; stop that one, or give this one its own --data-dir"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        logger.debug("holding data directory %s (pid %d)", data_dir, os.getpid())
        return cls(data_dir, file)

    def release(self) -> None:
        """Let another runtime have the directory; calling it again does nothing."""
        if self._file is not None:
            self._file.close()
            self._file = None
