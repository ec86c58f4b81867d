"""Hot-path ids: uuid-shaped, distinct, and not repeated by seeding or forking."""

from __future__ import annotations

import os
import random
import re
import uuid

from duralane.ids import random_hex, random_uuid


def test_random_hex_has_the_shape_of_a_uuid4_hex() -> None:
    ids = [random_hex() for _ in range(10_000)]

    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_random_uuid_is_a_version_4_uuid() -> None:
    value = random_uuid()

    assert value.version == 4 and value.variant == uuid.RFC_4122
    assert uuid.UUID(str(value)) == value


def test_seeding_the_global_random_module_does_not_repeat_ids() -> None:
    """An app that seeds random for its own reasons must not replay our ids."""
    random.seed(1234)
    first = random_hex()
    random.seed(1234)
    second = random_hex()

    assert first != second


def test_a_forked_child_draws_different_ids_from_its_parent() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(writer, random_hex().encode())
        os._exit(0)
    os.close(writer)
    child = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(pid, 0)

    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != random_hex()
