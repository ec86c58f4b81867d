"""The store's one exception tree, so callers and the HTTP API map failures by type.

    StoreError                  anything the store reports          (500)
    ├── RecordNotFound          no record with that id              (404)
    ├── RecordExists            create of an id already taken       (409)
    ├── EtagConflict            someone wrote the record since read (409)
    ├── RecordTooLarge          too big even with a claim check     (413)
    ├── InvalidContinuation     a paging token this store never gave (400)
    └── StoreUnavailable        backend unreachable or overloaded   (503)

StoreUnavailable is the only transient one: an activity that sees it fails and
its retry policy applies. The others are answers about the record itself.
"""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; carries the container, record id and reason."""

    http_status = 500

    def __init__(self, container: str, record_id: str, reason: str) -> None:
        self.container = container
        self.record_id = record_id
        self.reason = reason
        super().__init__(f"{container}/{record_id}: {reason}")


class RecordNotFound(StoreError):
    """The record does not exist (or its TTL has expired)."""

    http_status = 404


class RecordExists(StoreError):
    """A create found the id taken: the idempotency signal, not a fault."""

    http_status = 409


class EtagConflict(StoreError):
    """A conditional write lost a race: re-read and retry, never overwrite."""

    http_status = 409


class RecordTooLarge(StoreError):
    """The record exceeds what the store keeps, even after a claim check."""

    http_status = 413


class InvalidContinuation(StoreError):
    """A continuation token that is malformed or from another query: the caller's."""

    http_status = 400


class StoreUnavailable(StoreError):
    """The backend could not be reached or refused for load; worth a retry."""

    http_status = 503
