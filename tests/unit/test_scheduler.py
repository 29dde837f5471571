"""The order scheduler's due-queues: one poll per order at a time, a cap on polls in flight,
per-route intervals, deadlines, retries, the sweeper and shutdown (with a stand-in service)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest

from shop import jobs as scheduler
from shop.jobs import DueQueue, OrderJobs
from shop.models import OrderStatus
from shop.services.orders import OrderService


async def until(condition: Callable[[], bool]) -> None:
    """Wait for a condition (never a fixed sleep); a generous bound catches a hang."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.005)


class FakeRepo:
    def __init__(self) -> None:
        self.live: list[tuple[int, OrderStatus, int | None, str]] = []

    async def live_brief(self) -> AsyncIterator[tuple[int, OrderStatus, int | None, str]]:
        for row in self.live:
            yield row


class FakeOrders:
    """Records what the jobs call; a poll can be held open with `gate`."""

    def __init__(self) -> None:
        self.orders = FakeRepo()
        self.polls: Counter[int] = Counter()
        self.running: Counter[int] = Counter()
        self.most_at_once = 0
        self.overlapped: list[int] = []
        self.gate: asyncio.Event | None = None
        self.keep = True
        self.expired: list[int] = []
        self.on_expire: Callable[[int], None] | None = None
        self.expire_gate: asyncio.Event | None = None
        self.swept = 0

    async def poll(self, order_id: int) -> bool:
        if self.running[order_id]:
            self.overlapped.append(order_id)
        self.running[order_id] += 1
        self.polls[order_id] += 1
        self.most_at_once = max(self.most_at_once, sum(self.running.values()))
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running[order_id] -= 1
        return self.keep

    async def expire(self, order_id: int) -> None:
        self.expired.append(order_id)
        if self.on_expire is not None:
            self.on_expire(order_id)
        if self.expire_gate is not None:
            await self.expire_gate.wait()

    async def sweep_codes(self) -> None:
        self.swept += 1

    async def settle_stuck_purchases(self) -> None:
        return None


@pytest.fixture
async def setup() -> AsyncIterator[tuple[OrderJobs, FakeOrders]]:
    jobs = OrderJobs(poll_interval=0.01, route_intervals={"slow": 3600.0})
    fake = FakeOrders()
    jobs.bind(cast(OrderService, fake))
    jobs.start()
    yield jobs, fake
    await jobs.aclose()


async def test_polls_repeat_and_never_overlap(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    fake.gate = asyncio.Event()
    jobs.watch(1, int(time.time()) + 3600, "palm")
    await until(lambda: fake.running[1] == 1)
    jobs.watch(1, int(time.time()) + 3600, "palm")  # the sweeper re-watching a running order
    jobs.watch(1, int(time.time()) + 3600, "palm")
    await asyncio.sleep(0.05)  # give a second poll every chance to start (it must not)
    assert fake.polls[1] == 1 and jobs.is_watched(1)
    fake.gate.set()
    await until(lambda: fake.polls[1] >= 5)
    assert fake.overlapped == []


async def test_polls_in_flight_are_capped_and_taken_in_due_order(
    monkeypatch: pytest.MonkeyPatch, setup: tuple[OrderJobs, FakeOrders]
) -> None:
    jobs, fake = setup
    monkeypatch.setattr(scheduler, "POLLS_IN_FLIGHT", 3)
    fake.gate = asyncio.Event()
    for order_id in range(1, 11):
        jobs.watch(order_id, int(time.time()) + 3600, "pool")
    await until(lambda: sum(fake.running.values()) == 3)
    await asyncio.sleep(0.05)
    assert sorted(fake.polls) == [1, 2, 3]  # the earliest due first; the rest wait in the heap
    fake.gate.set()
    await until(lambda: all(fake.polls[i] >= 2 for i in range(1, 11)))
    assert fake.most_at_once == 3
    assert jobs.counts()["watched"] == 10


async def test_each_route_polls_at_its_own_interval(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    jobs.watch(1, int(time.time()) + 3600, "slow")  # e.g. PapSMS with its webhook
    jobs.watch(2, int(time.time()) + 3600, "palm")
    await until(lambda: fake.polls[2] >= 10)
    assert fake.polls[1] == 1


async def test_a_finished_poll_stops_polling(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    fake.keep = False
    jobs.watch(1, int(time.time()) + 3600, "palm")
    await until(lambda: not jobs.is_watched(1))
    assert fake.polls[1] == 1


async def test_deadline_expires_once_and_unwatch_cancels(
    setup: tuple[OrderJobs, FakeOrders],
) -> None:
    jobs, fake = setup
    past = int(time.time()) - 1
    jobs.watch(1, past, "slow")
    jobs.unwatch(1)  # before the queue ran: neither its poll nor its deadline may run
    jobs.watch(2, past, "palm")
    await until(lambda: fake.expired == [2])
    await until(lambda: fake.polls[2] >= 1)
    assert 1 not in fake.expired and fake.polls[1] == 0 and not jobs.is_watched(1)


async def test_no_poll_while_the_order_expires(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    fake.expire_gate = asyncio.Event()
    jobs.watch(1, int(time.time()) + 3600, "palm")
    await until(lambda: fake.polls[1] >= 2)
    jobs.retry_close(1, 0.0)  # the deadline comes
    await until(lambda: fake.expired == [1])
    polled = fake.polls[1]
    jobs.watch(2, int(time.time()) + 3600, "palm")
    await until(lambda: fake.polls[2] >= 5)  # the poller keeps going for other orders
    assert fake.polls[1] <= polled + 1  # at most the poll that was already in flight
    fake.expire_gate.set()
    await until(lambda: fake.polls[1] >= polled + 3)  # still live after it: polled again


async def test_retry_close_during_expire_runs_again(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    fake.on_expire = lambda order_id: (
        jobs.retry_close(order_id, 0.0) if len(fake.expired) < 3 else None
    )
    jobs.watch(7, int(time.time()) - 1, "slow")
    await until(lambda: len(fake.expired) == 3)
    assert fake.expired == [7, 7, 7]


async def test_sweep_rewatches_missing_orders_and_closes_overdue_ones(
    setup: tuple[OrderJobs, FakeOrders],
) -> None:
    jobs, fake = setup
    now = int(time.time())
    jobs.watch(1, now + 3600, "slow")
    fake.orders.live = [
        (1, OrderStatus.NUMBER_ISSUED, now + 3600, "slow"),  # watched: left alone
        (2, OrderStatus.NUMBER_ISSUED, now + 3600, "slow"),  # lost: watched again
        (3, OrderStatus.CREATED, None, "slow"),  # mid-purchase: not the sweeper's
    ]
    await until(lambda: fake.polls[1] == 1)
    await jobs.sweep()
    assert jobs.is_watched(2) and not jobs.is_watched(3) and fake.swept == 1
    await until(lambda: fake.polls[2] == 1)
    assert fake.polls[1] == 1


async def test_shutdown_cancels_running_polls(setup: tuple[OrderJobs, FakeOrders]) -> None:
    jobs, fake = setup
    fake.gate = asyncio.Event()  # never set: the poll hangs until cancelled
    jobs.watch(1, int(time.time()) + 3600, "palm")
    await until(lambda: fake.running[1] == 1)
    await asyncio.wait_for(jobs.aclose(), 5)
    assert fake.running[1] == 0


async def test_due_queue_drops_stale_entries() -> None:
    ran: list[int] = []

    async def run(order_id: int) -> None:
        ran.append(order_id)

    clock: list[float] = [0.0]
    queue = DueQueue("test", run, limit=10, clock=lambda: clock[0])
    for _ in range(200):
        queue.schedule(1, 5.0)  # rescheduled again and again: the heap must not grow
    queue.schedule(2, 1.0)
    assert len(queue._heap) <= 64 + 2
    queue.start()
    clock[0] = 10.0
    queue._wake.set()
    await until(lambda: len(ran) == 2)
    assert ran == [2, 1] and len(queue) == 0
    queue.stop()


async def test_due_queue_runs_by_due_time_then_id_and_never_early() -> None:
    ran: list[int] = []

    async def run(order_id: int) -> None:
        ran.append(order_id)

    clock: list[float] = [0.0]
    queue = DueQueue("test", run, limit=10, clock=lambda: clock[0])
    queue.schedule(3, 2.0)
    queue.schedule(1, 2.0)
    queue.schedule(2, 1.0005)
    queue.schedule(2**40 - 1, 1_800_000_000.0)  # the largest id, an epoch-seconds deadline
    queue.start()
    clock[0] = 1.0
    queue._wake.set()
    await asyncio.sleep(0.01)
    assert ran == []  # 2 is due half a millisecond later
    clock[0] = 1.001
    queue._wake.set()
    await until(lambda: ran == [2])
    clock[0] = 2.0
    queue._wake.set()
    await until(lambda: len(ran) == 3)
    assert ran == [2, 1, 3] and queue.has(2**40 - 1)
    with pytest.raises(ValueError):
        queue.schedule(2**40, 1.0)
    queue.stop()
