"""Random ids for hot paths, made without a system call.

uuid.uuid4() reads os.urandom, and CPython gives up the interpreter lock for
that system call. In a busy runtime, getting the lock back can take
milliseconds, and the event loop paid that on every HTTP invocation, start and
activity. These ids come from a private generator seeded once from os.urandom
(again in a forked child): 128 random bits, unique in practice, but not
secrets. Keys and tokens that guard access use the secrets module instead.
"""

from __future__ import annotations

import os
import random
import uuid

# Private, so an app that seeds the global random module cannot repeat ids.
_generator = random.Random()
os.register_at_fork(after_in_child=_generator.seed)


def random_hex() -> str:
    """32 random hex digits, shaped like uuid.uuid4().hex."""
    return f"{_generator.getrandbits(128):032x}"


def random_uuid() -> uuid.UUID:
    """A random version-4 UUID, for ids that must look like one."""
    return uuid.UUID(int=_generator.getrandbits(128), version=4)
