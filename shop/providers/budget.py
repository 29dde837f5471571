"""A per-key request budget: requests are spaced evenly, and the most urgent go first.

`RequestBudget` keeps the schedule in this process. `RedisBudget` (`budget_redis`, imported
only with `REDIS_URL`) keeps it in Redis, so every instance of the bot takes its slots from
one schedule per upstream key (the documented limits are per key, not per process); the
composition root picks one. Both hand out slots to the
most urgent waiter of their own process first.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import time
from typing import Protocol

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
