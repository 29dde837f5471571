"""This instance's leases (issue 14): several instances share one database, and each live
order, each SMS send being followed and each singleton job belongs to one of them at a time.

An instance holds what it watches for `seconds` (ORDER_LEASE_SECONDS) and renews it every
third of that, so a lease outlives two missed renewals before it is free. When an instance
dies, the others claim its orders within one lease (at once when its registry row is gone:
it stopped, or a restart on the same machine found its process ended). Every claim is a
conditional UPDATE (`storage/leases.py`), and everything done to an order is still a
conditional transition, so two instances that both believe they hold an order for a moment
(one stalled past its lease) still cannot deliver a code twice or refund twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shop import metrics
from shop.ports import JobLeaseRepository, LeaseRepository, Tx
from shop.services.instances import INSTANCE_TTL_SECONDS

CLAIM_BATCH = 200  # orders claimed per UPDATE; a takeover of many runs in several batches
CODE_SEND_SECONDS = 120  # one send of a code, flood waits included, ends well within this


def job_lease_seconds(period: float) -> int:
    """How long a singleton job's lease lasts: one period plus a margin (the period itself up
    to 30 s), so the holder's next run renews it before it runs out, and a dead holder's job
    moves to another instance within about two periods. The lease is also renewed while a
    run lasts, so a run longer than that never overlaps one on another instance."""
    return max(math.ceil(period + min(period, 30.0)), 2)


class Leases:
    """What this instance (`owner`, its registry id) holds, for how long, and the claims."""

    def __init__(
        self,
        owner: str,
        seconds: int,
        repo: LeaseRepository,
        jobs: JobLeaseRepository,
        clock: Callable[[], float] = time.time,
        instance_ttl: int = INSTANCE_TTL_SECONDS,
    ) -> None:
        self.owner = owner
        self.seconds = seconds
        self.repo = repo
        self.jobs = jobs
        self.clock = clock
        self.instance_ttl = instance_ttl

    @property
    def renew_every(self) -> float:
        return self.seconds / 3

    def _times(self, seconds: float | None = None) -> tuple[int, int, int]:
        """(now, fresh, until): the time, the oldest heartbeat of a live instance, and the end
        of a lease taken now. Whole seconds: a lease ends at `until` rounded down, so it lasts
        up to a second less than asked (never more: a dead instance's orders are free within
        one lease of its last renewal)."""
        now = self.clock()
        held = self.seconds if seconds is None else seconds
        return int(now), int(now) - self.instance_ttl, int(now + held)

    # -- orders -------------------------------------------------------------------------------

    async def hold(self, tx: Tx, order_id: int) -> None:
        """A new order: held by this instance from the transaction that creates it."""
        await self.repo.hold(tx, order_id, self.owner, self._times()[2])

    async def renew(self) -> list[tuple[int, str, int | None, str]]:
        """Extend this instance's order leases: (id, status, deadline, route) of each order it
        still holds."""
        return await self.repo.renew(self.owner, self._times()[2])

    async def claim(self, limit: int = CLAIM_BATCH) -> list[tuple[int, str, int | None, str]]:
        """Up to `limit` watched orders nobody holds, now held by this instance."""
        now, fresh, until = self._times()
        claimed = await self.repo.claim(self.owner, now, fresh, until, limit)
        if claimed:
            metrics.leases_claimed("order", len(claimed))
        return claimed

    async def interrupted(self) -> list[tuple[int, str]]:
        """Orders still `created` that no live instance holds (a purchase cut off)."""
        now, fresh, _ = self._times()
        return await self.repo.interrupted(now, fresh)

    async def release(self) -> int:
        """A graceful stop: free every order and SMS send lease and every job lease."""
        released = await self.repo.release(self.owner)
        released += await self.repo.release_sms(self.owner)
        await self.jobs.release(self.owner)
        return released

    # -- codes --------------------------------------------------------------------------------

    async def claim_code(self, code_id: int) -> bool:
        """Take the sending of a stored code (False: delivered, or being sent elsewhere)."""
        now, fresh, until = self._times(CODE_SEND_SECONDS)
        return await self.repo.claim_code(code_id, self.owner, now, fresh, until)

    async def unclaim_code(self, code_id: int) -> None:
        await self.repo.unclaim_code(code_id, self.owner)

    # -- SMS sends ----------------------------------------------------------------------------

    async def hold_sms(self, tx: Tx, send_id: int) -> None:
        await self.repo.hold_sms(tx, send_id, self.owner, self._times()[2])

    async def renew_sms(self) -> set[int]:
        return await self.repo.renew_sms(self.owner, self._times()[2])

    async def claim_sms(self, limit: int = CLAIM_BATCH) -> list[tuple[int, str]]:
        now, fresh, until = self._times()
        claimed = await self.repo.claim_sms(self.owner, now, fresh, until, limit)
        if claimed:
            metrics.leases_claimed("sms", len(claimed))
        return claimed

    # -- singleton jobs -----------------------------------------------------------------------

    async def acquire_job(self, name: str, seconds: int) -> bool:
        """Take or renew job `name` for `seconds`; False while another instance holds it."""
        now, fresh, _ = self._times(seconds)
        until = math.ceil(self.clock() + seconds)  # a job lease errs on the long side
        return await self.jobs.acquire(name, self.owner, now, fresh, until)
