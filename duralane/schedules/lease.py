"""The dispatcher lease: one dispatcher fires schedules while the others stand by.

Up to six dispatchers tick (three lane apps in each of two regions). Each tick
first calls `acquire`: the holder renews the lease document by etag, everyone
else reads it once and returns unless it has expired. A holder that stops
renewing (killed, region down) is replaced after `expiresAt`.

The lease saves cost (one dispatcher reads and claims due schedules, not six)
and keeps fires in one dispatcher's order; it is not what makes a fire start
once. Deterministic run ids and create-if-absent run records do that, so two
dispatchers that both believe they hold the lease (clock skew, a stalled
holder that wakes up) still start each fire once.

The document, in `leases` under id `schedule-dispatcher`:

    {"id", "holder", "region", "token", "acquiredAt", "renewedAt",
     "expiresAt", "ttlSeconds", "previousHolder"}
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from duralane import events
from duralane.ids import random_hex
from duralane.store import (
    ETAG,
    Doc,
    EtagConflict,
    RecordExists,
    RecordNotFound,
    Store,
    StoreUnavailable,
    iso_utc,
)

logger = logging.getLogger(__name__)

LEASES = "leases"
LEASE_ID = "schedule-dispatcher"

# App settings. Azure App Service sets REGION_NAME on every app.
LEASE_SECONDS_SETTING = "DURALANE_DISPATCHER_LEASE_SECONDS"
PREFERRED_REGION_SETTING = "DURALANE_DISPATCHER_PREFERRED_REGION"
REGION_SETTING = "REGION_NAME"

# The dispatcher timer's period; a lease must outlive several ticks, or a
# healthy holder loses it between two renewals.
TICK_SECONDS = 2.0
# Seven ticks: a holder survives a few slow or failed ticks, and a dead one
# is replaced within about 15 s.
DEFAULT_LEASE_SECONDS = 15.0
MIN_LEASE_SECONDS = 3 * TICK_SECONDS

LEASE_ACQUIRED = events.DISPATCHER_LEASE_ACQUIRED
LEASE_TAKEN_OVER = events.DISPATCHER_LEASE_TAKEN_OVER
LEASE_LOST = events.DISPATCHER_LEASE_LOST
ATTR_HOLDER = "holder"
ATTR_PREVIOUS_HOLDER = "previousHolder"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseSettings:
    """How long a lease lasts and which region prefers it, from app settings."""

    # 0 turns the lease off: every dispatcher dispatches, as before the lease.
    seconds: float = DEFAULT_LEASE_SECONDS
    region: str = ""
    preferred_region: str = ""

    @property
    def enabled(self) -> bool:
        """Whether dispatchers take turns at all."""
        return self.seconds > 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LeaseSettings:
        """Read the lease settings; a TTL too short to survive a tick is refused."""
        env = os.environ if environ is None else environ
        text = env.get(LEASE_SECONDS_SETTING, "").strip()
        try:
            seconds = float(text) if text else DEFAULT_LEASE_SECONDS
        except ValueError:
            raise ValueError(
                f"{LEASE_SECONDS_SETTING}={text!r} is not a number of seconds"
            ) from None
        if seconds < 0 or 0 < seconds < MIN_LEASE_SECONDS:
            raise ValueError(
                f"{LEASE_SECONDS_SETTING}={text}: the lease must last at least "
                f"{MIN_LEASE_SECONDS:g} s (three {TICK_SECONDS:g} s ticks) so its "
                "holder can renew it, or be 0 to turn it off"
            )
        return cls(
            seconds=seconds,
            region=env.get(REGION_SETTING, "").strip(),
            preferred_region=env.get(PREFERRED_REGION_SETTING, "").strip(),
        )


@dataclass(frozen=True)
class Holder:
    """Who holds the lease: a readable id for logs and a token only it knows."""

    id: str
    region: str = ""
    # Two processes can share a host name and pid (containers); the token
    # tells them apart so neither mistakes the other's lease for its own.
    token: str = ""

    @classmethod
    def this_process(cls, region: str = "") -> Holder:
        """This process: host name, pid and region, e.g. `web-1:412@WestEurope`."""
        base = f"{socket.gethostname()}:{os.getpid()}"
        # No spaces ("West Europe"), so the id stays one word in a grep.
        return cls(
            id=f"{base}@{region.replace(' ', '')}" if region else base,
            region=region,
            token=random_hex(),
        )


class DispatcherLease:
    """Acquire, renew and give up the dispatcher lease by etag."""

    def __init__(
        self,
        store: Store,
        holder: Holder,
        *,
        ttl: timedelta = timedelta(seconds=DEFAULT_LEASE_SECONDS),
        preferred_region: str = "",
        clock: Clock = utc_now,
        lease_id: str = LEASE_ID,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.preferred_region = preferred_region
        self.clock = clock
        self.lease_id = lease_id
        # The lease as this process last wrote it, etag included; None when
        # another dispatcher holds it.
        self._doc: Doc | None = None

    @property
    def held(self) -> bool:
        """Whether this dispatcher held the lease at its last write."""
        return self._doc is not None

    @property
    def renew_every(self) -> timedelta:
        """How often a long tick renews: a third of the TTL leaves two spares."""
        return self.ttl / 3

    async def acquire(self) -> bool:
        """Renew the lease, or take it if it is free, expired or ours to reclaim.

        A holder pays one write; a dispatcher standing by pays one point read.
        """
        now = self.clock()
        if self._doc is not None and await self._renew(now):
            return True

        try:
            current = await self.store.read(LEASES, self.lease_id)
        except RecordNotFound:
            return await self._create(now)
        if self._mine(current):
            # Our own write whose answer we missed; carry on from what is stored.
            self._doc = current
            return await self._renew(now)
        if _instant(current["expiresAt"]) > now and not self._reclaims(current):
            return False
        return await self._take(current, now)

    async def still_held(self) -> bool:
        """Whether to go on with this tick; renews once a third of the TTL passed.

        Called before each schedule and each start, so a holder that lost the
        lease stops before it starts more runs.
        """
        if self._doc is None:
            return False
        now = self.clock()
        if now < _instant(self._doc["renewedAt"]) + self.renew_every:
            return True
        try:
            return await self._renew(now)
        except StoreUnavailable:
            # Nobody can take it before it expires, so finish what fits.
            return self._doc is not None and now < _instant(self._doc["expiresAt"])

    async def _renew(self, now: datetime, *, retry: bool = True) -> bool:
        """Extend the lease by etag; a conflict means someone else wrote it."""
        assert self._doc is not None
        body = {k: v for k, v in self._doc.items() if k != ETAG}
        body.update(renewedAt=iso_utc(now), expiresAt=iso_utc(now + self.ttl))
        body["ttlSeconds"] = self.ttl.total_seconds()
        try:
            self._doc = await self.store.replace(LEASES, body, self._doc[ETAG])
            return True
        except (EtagConflict, RecordNotFound):
            pass

        try:
            current: Doc | None = await self.store.read(LEASES, self.lease_id)
        except RecordNotFound:
            current = None
        if retry and current is not None and self._mine(current):
            self._doc = current
            return await self._renew(now, retry=False)
        self._doc = None
        winner = current.get("holder") if current is not None else None
        logger.warning(
            "%s dispatcher lease %s lost by %s to %s; it stops dispatching",
            LEASE_LOST,
            self.lease_id,
            self.holder.id,
            winner or "nobody (the lease was deleted)",
            extra={ATTR_HOLDER: self.holder.id, ATTR_PREVIOUS_HOLDER: winner},
        )
        return False

    async def _create(self, now: datetime) -> bool:
        """Take a lease nobody ever held; losing the create means another did."""
        try:
            self._doc = await self.store.create(LEASES, self._body(now, None))
        except RecordExists:
            return False
        logger.info(
            "%s dispatcher lease %s acquired by %s, expires %s",
            LEASE_ACQUIRED,
            self.lease_id,
            self.holder.id,
            self._doc["expiresAt"],
            extra={ATTR_HOLDER: self.holder.id},
        )
        return True

    async def _take(self, current: Doc, now: datetime) -> bool:
        """Replace an expired (or reclaimable) lease by etag; one racer wins."""
        previous = current.get("holder")
        try:
            self._doc = await self.store.replace(
                LEASES, self._body(now, previous), current[ETAG]
            )
        except (EtagConflict, RecordNotFound):
            return False
        if previous is None:
            logger.info(
                "%s dispatcher lease %s acquired by %s, expires %s",
                LEASE_ACQUIRED,
                self.lease_id,
                self.holder.id,
                self._doc["expiresAt"],
                extra={ATTR_HOLDER: self.holder.id},
            )
            return True
        why = (
            f"back for preferred region {self.preferred_region}"
            if _instant(current["expiresAt"]) > now
            else f"after it expired at {current['expiresAt']}"
        )
        logger.warning(
            "%s dispatcher lease %s taken over by %s from %s (last renewed %s), %s",
            LEASE_TAKEN_OVER,
            self.lease_id,
            self.holder.id,
            previous,
            current.get("renewedAt"),
            why,
            extra={ATTR_HOLDER: self.holder.id, ATTR_PREVIOUS_HOLDER: previous},
        )
        return True

    def _body(self, now: datetime, previous: str | None) -> Doc:
        return {
            "id": self.lease_id,
            "holder": self.holder.id,
            "region": self.holder.region,
            "token": self.holder.token,
            "acquiredAt": iso_utc(now),
            "renewedAt": iso_utc(now),
            "expiresAt": iso_utc(now + self.ttl),
            "ttlSeconds": self.ttl.total_seconds(),
            "previousHolder": previous,
        }

    def _mine(self, doc: Doc) -> bool:
        return bool(doc.get("token")) and doc.get("token") == self.holder.token

    def _reclaims(self, current: Doc) -> bool:
        """A preferred-region dispatcher takes a live lease from another region."""
        preferred = region_key(self.preferred_region)
        return (
            bool(preferred)
            and region_key(self.holder.region) == preferred
            and region_key(str(current.get("region") or "")) != preferred
        )


def region_key(name: str) -> str:
    """A region as Bicep (`westeurope`) and App Service (`West Europe`) both name it."""
    return name.replace(" ", "").lower()


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
