"""`RedisBudget`: the request budget's schedule in Redis (`REDIS_URL`), shared by every
instance. A module of its own so that a bot without Redis never imports the Redis client."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop.providers.budget import SAFETY, BudgetUnavailable

log = logging.getLogger(__name__)

# KEYS[1]: the schedule (the next free slot, Unix microseconds by Redis's clock);
# ARGV[1]: the spacing in microseconds. Returns how long to wait for the slot just taken
# (<= 0: at once). The same rule as RequestBudget: a slot less than one spacing in the past
# is kept (timer lateness is not lost rate), an older one means the schedule was idle.
_NEXT_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local spacing = tonumber(ARGV[1])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = free
if free <= now - spacing then
    slot = now
end
local keep = math.floor((slot - now + 2 * spacing) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', slot + spacing), 'PX', keep)
return slot - now
"""


class RedisBudget:
    """`RequestBudget`'s schedule kept in Redis, shared by every instance on the same key.

    A Lua script hands out the next slot atomically (Redis's clock, so instances on machines
    whose clocks differ still agree). Each instance holds at most one slot at a time: its
    runner takes a slot, sleeps until it, then gives it to the most urgent request waiting in
    this process, so priorities work as in `RequestBudget` within each instance. If Redis
    cannot be reached, waiting requests fail with `BudgetUnavailable` (nothing was sent).
    """

    def __init__(self, redis: Redis, key: str, per_minute: float, safety: float = SAFETY) -> None:
        self.spacing = 60.0 / (per_minute * safety)
        self._spacing_us = math.ceil(self.spacing * 1_000_000)
        self.key = key
        self._next_slot = redis.register_script(_NEXT_SLOT)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._runner: asyncio.Task[None] | None = None

    async def acquire(self, priority: int) -> None:
        """Wait for this request's turn."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())
        await future

    @property
    def queued(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    async def _run(self) -> None:
        while self.queued:
            try:
                wait_us = int(await self._next_slot(keys=[self.key], args=[self._spacing_us]))
            except (RedisError, OSError) as exc:
                self._fail(BudgetUnavailable(f"request budget unavailable ({exc})"))
                return
            if wait_us > 0:
                await asyncio.sleep(wait_us / 1_000_000)
            while self._waiters:
                *_, future = heapq.heappop(self._waiters)
                if not future.done():
                    future.set_result(None)
                    break

    def _fail(self, error: BudgetUnavailable) -> None:
        log.warning("%s: %s", self.key, error)
        for *_, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for *_, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()
