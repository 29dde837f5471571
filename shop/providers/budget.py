"""A per-key request budget: requests are spaced evenly, and the most urgent go first.

`RequestBudget` keeps the schedule in this process. `RedisBudget` keeps it in Redis, so every
instance of the bot takes its slots from one schedule per upstream key (the documented limits
are per key, not per process); the composition root picks one. Both hand out slots to the
most urgent waiter of their own process first.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SAFETY = 0.95  # the margin under the documented limit


class Budget(Protocol):
    """What an upstream client needs from its budget."""

    async def acquire(self, priority: int) -> None:
        """Wait for this request's turn (lower `priority` values go first)."""
        ...

    def close(self) -> None:
        """Stop handing out turns; waiters are cancelled."""
        ...


class BudgetUnavailable(Exception):
    """No turn could be had (the shared schedule is unreachable): nothing was sent."""


class RequestBudget:
    """At most `per_minute × safety` requests a minute, spaced evenly, by priority.

    Spacing (rather than a bucket that allows bursts) keeps any 60-second window under the
    upstream's limit whatever the window's alignment. Lower priority values go first.
    The budget lives in this process; several instances share a `RedisBudget` instead.
    """

    def __init__(self, per_minute: float, safety: float = SAFETY) -> None:
        self.spacing = 60.0 / (per_minute * safety)
        self._next_free = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._runner: asyncio.Task[None] | None = None

    async def acquire(self, priority: int) -> None:
        """Wait for this request's turn."""
        now = time.monotonic()
        if not self._waiters and now >= self._next_free:
            self._next_free = now + self.spacing
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), future))
        self._ensure_runner()
        await future

    @property
    def queued(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    def _ensure_runner(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._waiters:
            delay = self._next_free - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._waiters:
                *_, future = heapq.heappop(self._waiters)
                if not future.done():
                    future.set_result(None)
                    now = time.monotonic()
                    # Timer lateness under one spacing is not lost rate: keep to the schedule.
                    base = self._next_free if now - self._next_free < self.spacing else now
                    self._next_free = base + self.spacing
                    break

    def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for *_, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()


def budget_key(prefix: str, upstream: str, *secrets: str) -> str:
    """The Redis key of one upstream account's schedule: named by a digest of its
    credentials (two shops' keys never share a schedule; the key itself never shows)."""
    digest = hashlib.sha256("\0".join((upstream, *secrets)).encode()).hexdigest()[:16]
    return f"{prefix}:budget:{upstream}:{digest}"


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
