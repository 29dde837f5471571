"""Order polling and deadlines on due-queues; APScheduler 3 for periodic jobs and SMS sends.

A live order costs a few primitive entries, not scheduler jobs: each route has one poller that
takes due orders from a heap of (due time, order id) and runs at most `POLLS_IN_FLIGHT` polls at
once (the rest wait in the heap, not as tasks queued in the request budget), and one deadline
queue expires orders when their deadline passes. Both are caches of the orders table: they live in
process memory and are rebuilt from it at start (`OrderService.recover()`), and the sweeper job
re-watches any live order that is missing. A poll is due again one poll interval after it
*started*, so when the request budget is the bottleneck the next poll follows at once and the
cycle is max(interval, budget wait). No order is polled (or expired) twice at the same time.

With several instances on one database (issue 14) each watches only the orders it holds a
lease on (`shop.services.leases`): those it bought, and those it claimed because nobody held
them. `keep_leases` runs every third of ORDER_LEASE_SECONDS: it renews this instance's leases
in one UPDATE, drops from the queues any order another instance took, and claims the free
ones. Periodic jobs that must run once for the whole shop (`every(..., singleton=True)`) run
only on the instance holding the job's lease in `job_leases`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from shop import metrics
from shop.models import Rental
from shop.services.leases import Leases, job_lease_seconds
from shop.services.orders import WATCHED, OrderService
from shop.services.rentals import RentalService
from shop.services.sms import SmsService

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60
POLLS_IN_FLIGHT = 50  # per route; far more than any budget serves in one poll round trip
EXPIRES_IN_FLIGHT = 20
DEADLINE_RETRY_SECONDS = 60.0


def _at(seconds_from_now: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(seconds_from_now, 0.0))


def _observe_lag(event: JobSubmissionEvent) -> None:
    """How late a scheduler job started; `sms:12` and `smsview:12` count as `sms`, `smsview`."""
    if event.scheduled_run_times:
        lag = (datetime.now(UTC) - min(event.scheduled_run_times)).total_seconds()
        metrics.job_started(str(event.job_id).split(":", 1)[0], lag)


# A scheduled run is one int, (due time in ms, rounded up) << 40 | order id, rather than a
# (float, int) tuple: the heap and `_due` share one object per order, about 70 bytes less for
# each order in each queue (10,000 live orders are in two queues). Ints order as the tuples did.
_ID_BITS = 40
_ID_MASK = (1 << _ID_BITS) - 1


def _due_key(at: float, order_id: int) -> int:
    if not 0 <= order_id <= _ID_MASK:
        raise ValueError(f"order id {order_id} out of range")
    return (max(math.ceil(at * 1000), 0) << _ID_BITS) | order_id


def _due_at(key: int) -> float:
    return (key >> _ID_BITS) / 1000


class DueQueue:
    """Order ids by due time, run by one task: at most `limit` at once, never one id twice.

    A heap of due keys (`_due_key`: the due time and the order id in one int) with lazy
    deletion: `_due` holds each id's current key and a heap entry that disagrees with it is
    stale. An id that comes due while it is still running waits until that run ends (due
    times are kept to the millisecond, rounded up: never early). `run(order_id)` must not raise.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[int], Awaitable[None]],
        limit: int,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.job = name.split(" ", 1)[0]  # the metrics' job label: "poll" or "deadline"
        self._run = run
        self.limit = limit
        self.clock = clock
        self._due: dict[int, int] = {}  # order id -> its key in the heap
        self._heap: list[int] = []
        self._running: set[int] = set()
        self._after_run: dict[int, float] = {}  # came due while running
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._loop_task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._due) + len(self._running)

    @property
    def running(self) -> int:
        return len(self._running)

    def schedule(self, order_id: int, at: float) -> None:
        """Run `order_id` at `at` (on this queue's clock); replaces an earlier schedule."""
        if order_id in self._running:
            self._after_run[order_id] = at
            return
        key = _due_key(at, order_id)
        self._due[order_id] = key
        heapq.heappush(self._heap, key)
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
            self._heap = list(self._due.values())  # drop stale entries
            heapq.heapify(self._heap)
        self._wake.set()

    def cancel(self, order_id: int) -> None:
        """Forget a scheduled run (a running one finishes)."""
        self._due.pop(order_id, None)
        self._after_run.pop(order_id, None)

    def has(self, order_id: int) -> bool:
        return order_id in self._due or order_id in self._running

    def ids(self) -> set[int]:
        """Every id scheduled or running."""
        return set(self._due) | self._running

    def is_running(self, order_id: int) -> bool:
        return order_id in self._running

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        """Stop taking due ids and cancel the running ones (their state is in the database)."""
        if self._timer is not None:
            self._timer.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None
        for task in self.tasks:
            task.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._start_due()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._heap and len(self._running) < self.limit:
                delay = _due_at(self._heap[0]) - self.clock()
                self._timer = loop.call_later(max(delay, 0.0), self._wake.set)
            await self._wake.wait()

    def _start_due(self) -> None:
        now = self.clock()
        heap = self._heap
        while heap and len(self._running) < self.limit:
            key = heap[0]
            order_id = key & _ID_MASK
            if self._due.get(order_id) != key:
                heapq.heappop(heap)  # stale: rescheduled or cancelled
                continue
            at = _due_at(key)
            if at > now:
                return
            heapq.heappop(heap)
            del self._due[order_id]
            metrics.job_started(self.job, now - at)
            self._running.add(order_id)
            task = asyncio.get_running_loop().create_task(self._one(order_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _one(self, order_id: int) -> None:
        try:
            await self._run(order_id)
        except asyncio.CancelledError:
            log.debug("%s of order %s cancelled at shutdown", self.name, order_id)
        finally:
            self._running.discard(order_id)
            again = self._after_run.pop(order_id, None)
            if again is not None:
                self.schedule(order_id, again)
            self._wake.set()  # a slot is free


class OrderJobs:
    """Implements `shop.services.orders.Jobs`: due-queues for orders, APScheduler for the rest."""

    def __init__(
        self,
        poll_interval: float,
        route_intervals: dict[str, float] | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.poll_interval = poll_interval
        self.route_intervals = route_intervals or {}
        self.leases = leases  # None: the only process, no leases (unit tests of the queues)
        # misfire_grace_time=None: a late one-shot job still runs (the default 1 s drops it).
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(_observe_lag, EVENT_JOB_SUBMITTED)
        self._orders: OrderService | None = None
        self._running: set[asyncio.Task[object]] = set()
        # Watched orders and their route (a cache of the orders table, never a source of truth).
        self._route_of: dict[int, str] = {}
        self._pollers: dict[str, DueQueue] = {}  # one per route
        self._deadlines = DueQueue("deadline", self._deadline, EXPIRES_IN_FLIGHT, time.time)
        self._started = False

    def bind(self, orders: OrderService) -> None:
        self._orders = orders

    @property
    def orders(self) -> OrderService:
        assert self._orders is not None, "OrderJobs.bind() was not called"
        return self._orders

    def start(self) -> None:
        """Start inside the running event loop (the dispatcher's startup)."""
        self.scheduler.start()
        self._started = True
        for queue in self._queues():
            queue.start()

    def shutdown(self) -> None:
        self._started = False
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # cancels the jobs that are running
        for queue in self._queues():
            queue.stop()

    async def aclose(self) -> None:
        """Stop scheduling and wait until running jobs have unwound."""
        self.shutdown()
        tasks = set(self._running).union(*(queue.tasks for queue in self._queues()))
        await asyncio.gather(*tasks, return_exceptions=True)

    def _queues(self) -> list[DueQueue]:
        return [self._deadlines, *self._pollers.values()]

    def counts(self) -> dict[str, int]:
        """Watched orders, polls running, deadlines pending (for benchmarks and logs)."""
        return {
            "watched": len(self._route_of),
            "polls_running": sum(queue.running for queue in self._pollers.values()),
            "deadlines": len(self._deadlines),
            "scheduler_jobs": len(self.scheduler.get_jobs()),
        }

    def live_by_route(self) -> dict[str, int]:
        """Watched orders per route (the metrics' live orders)."""
        return dict(collections.Counter(self._route_of.values()))

    def _tracked(self, func: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """Remember the job's task; a cancel at shutdown ends it quietly (state is in the DB)."""

        @functools.wraps(func)
        async def run(*args: object) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)  # type: ignore[arg-type]
            try:
                await func(*args)
            except asyncio.CancelledError:
                log.debug("Job %s cancelled at shutdown", func.__name__)
            finally:
                if task is not None:
                    self._running.discard(task)  # type: ignore[arg-type]

        return run

    def every(
        self,
        job_id: str,
        seconds: float,
        func: Callable[[], Awaitable[None]],
        first_in: float | None = None,
        singleton: bool = False,
    ) -> None:
        """A periodic job (catalog refresh, sweeper). Every instance schedules it; a
        `singleton` one runs its body only on the instance holding the job's lease."""
        body = self._guarded(job_id, func)
        if singleton and self.leases is not None:
            body = self._singleton(job_id, seconds, body, self.leases)
        self.scheduler.add_job(
            self._tracked(body),
            "interval",
            seconds=seconds,
            id=job_id,
            replace_existing=True,
            next_run_time=_at(seconds if first_in is None else first_in),
        )

    # -- per order (the Jobs protocol) --------------------------------------------------------

    def watch(self, order_id: int, deadline: int, route: str | None = None) -> None:
        """Poll the order now and then every interval; expire it at `deadline` (epoch s)."""
        # One str per route, not one per order read from the database.
        route_key = sys.intern(route) if route is not None else self._route_of.get(order_id, "")
        previous = self._route_of.get(order_id)
        if previous is not None and previous != route_key:
            self._pollers[previous].cancel(order_id)
        self._route_of[order_id] = route_key
        self._poller(route_key).schedule(order_id, time.monotonic())
        self._deadlines.schedule(order_id, float(deadline))

    def retry_close(self, order_id: int, delay: float) -> None:
        self._deadlines.schedule(order_id, time.time() + delay)

    def unwatch(self, order_id: int) -> None:
        route_key = self._route_of.pop(order_id, None)
        if route_key is not None:
            self._pollers[route_key].cancel(order_id)
        self._deadlines.cancel(order_id)

    def is_watched(self, order_id: int) -> bool:
        return order_id in self._route_of

    def _poller(self, route_key: str) -> DueQueue:
        queue = self._pollers.get(route_key)
        if queue is None:
            queue = DueQueue(f"poll {route_key}", self._poll, POLLS_IN_FLIGHT, time.monotonic)
            self._pollers[route_key] = queue
            if self._started:
                queue.start()
        return queue

    def _interval(self, route_key: str) -> float:
        """The route's own poll interval (a push-capable route polls slowly), else the default."""
        return self.route_intervals.get(route_key, self.poll_interval)

    async def _poll(self, order_id: int) -> None:
        started = time.monotonic()
        keep = True
        try:
            # While its deadline runs, the expiry asks upstream itself: no poll in between.
            if not self._deadlines.is_running(order_id):
                keep = await self.orders.poll(order_id)
        except Exception:
            log.exception("Poll of order %s crashed; will retry", order_id)
        route_key = self._route_of.get(order_id)
        if route_key is None:
            return  # unwatched while it ran
        if keep and self._started:
            self._pollers[route_key].schedule(order_id, started + self._interval(route_key))
        elif not keep:
            del self._route_of[order_id]  # the deadline (if still pending) stays

    async def _deadline(self, order_id: int) -> None:
        try:
            await self.orders.expire(order_id)
        except Exception:
            log.exception("Deadline of order %s crashed; retrying in a minute", order_id)
            self._deadlines.schedule(order_id, time.time() + DEADLINE_RETRY_SECONDS)

    @staticmethod
    def _singleton(
        name: str, period: float, body: Callable[[], Awaitable[None]], leases: Leases
    ) -> Callable[[], Awaitable[None]]:
        """Run `body` only while this instance holds the lease on job `name`: taken (or renewed)
        at each run for one period plus a margin, and renewed while the run lasts."""
        hold = job_lease_seconds(period)
        held = False  # this instance ran it last time (for the takeover counter)

        async def renew_while_running() -> None:
            while True:
                await asyncio.sleep(hold / 3)
                try:
                    await leases.acquire_job(name, hold)
                except Exception:
                    log.exception("Renewing the lease of job %s failed", name)

        async def run() -> None:
            nonlocal held
            try:
                mine = await leases.acquire_job(name, hold)
            except Exception:
                log.exception("Job %s: its lease could not be read; skipped this time", name)
                return
            if not mine:
                held = False
                return
            if not held:
                metrics.job_lease_taken(name)
                log.info("Job %s runs on this instance from now on", name)
                held = True
            renewer = asyncio.get_running_loop().create_task(renew_while_running())
            try:
                await body()
            finally:
                renewer.cancel()

        return run

    @staticmethod
    def _guarded(
        job_id: str, func: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await func()
            except Exception:
                log.exception("Job %s failed", job_id)

        return run

    async def sweep(self) -> None:
        """Safety net: purchases stuck in `created` past their grace period are settled; every
        live order is watched; overdue ones close; stray codes go out. With leases, it is a
        singleton job, and watching (what this instance holds) is `keep_leases`' part."""
        await self.orders.settle_stuck_purchases()
        if self.leases is None:
            await self._rewatch_all()
        await self.orders.sweep_codes()

    def held_ids(self) -> set[int]:
        """The orders this instance watches: polled, or with a deadline pending."""
        return set(self._route_of) | self._deadlines.ids()

    async def keep_leases(self) -> None:
        """Every third of the lease: renew what this instance holds (one UPDATE), drop from
        the queues what another instance took, watch any held order that is missing (the
        sweeper's old safety net, for this instance's own), then claim what nobody holds."""
        before = self.held_ids()  # all held before the renewal began: missing now = taken
        held = await self.orders.renew_leases()
        ids = {order_id for order_id, _, _, _ in held}
        lost = sorted(i for i in before if i not in ids and i in self.held_ids())
        for order_id in lost:
            self.unwatch(order_id)
        if lost:
            metrics.leases_lost("order", len(lost))
            log.info("Orders %s are no longer held by this instance; dropped", lost)
        now = time.time()
        for order_id, status, deadline, route in held:
            if status not in WATCHED or deadline is None:
                continue  # `created`: its purchase is running on this instance
            if not self.is_watched(order_id):
                log.info("Order %s is held here but was not watched; watching it", order_id)
                self.watch(order_id, deadline, route)
            elif deadline < now and not self._deadlines.has(order_id):
                self._deadlines.schedule(order_id, now)
        await self.orders.claim_free()

    async def claim_free(self) -> None:
        """Between renewals: take the orders nobody holds (a dead instance's, once its lease
        ran out)."""
        await self.orders.claim_free()

    async def release_leases(self) -> None:
        """A graceful stop: the other instances take over at their next round."""
        if self.leases is not None:
            released = await self.leases.release()
            log.info("Released %s lease(s)", released)

    async def _rewatch_all(self) -> None:
        now = time.time()
        async for order_id, _, deadline, route in self.orders.orders.live_brief():
            if deadline is None:
                continue
            if not self.is_watched(order_id):
                log.warning("Order %s had no poll job; rescheduling", order_id)
                self.watch(order_id, deadline, route)
            elif deadline < now and not self._deadlines.has(order_id):
                self._deadlines.schedule(order_id, now)


class SmsJobs:
    """Implements `shop.services.sms.SmsJobs` on the same scheduler as the order jobs."""

    RENDER_DELAY = 1.0  # status edits are batched, so 100 reports make a handful of edits
    RENDER_ATTEMPTS = 5  # a status edit that failed is made again, this many times in a row

    def __init__(self, jobs: OrderJobs, poll_seconds: float) -> None:
        self._jobs = jobs
        self.poll_seconds = poll_seconds
        self._sms: SmsService | None = None
        # A render in progress has read the state already; a change meanwhile marks it stale so
        # the same run renders again. (A second job with the same id would be skipped by the
        # scheduler while the first still runs, and the last state would never be shown.)
        self._rendering: set[int] = set()
        self._stale: set[int] = set()

    def bind(self, sms: SmsService) -> None:
        self._sms = sms

    @property
    def sms(self) -> SmsService:
        assert self._sms is not None, "SmsJobs.bind() was not called"
        return self._sms

    @property
    def scheduler(self) -> AsyncIOScheduler:
        return self._jobs.scheduler

    def watch_sms(self, send_id: int, first_in: float) -> None:
        self.scheduler.add_job(
            self._jobs._tracked(self._poll),
            "date",
            run_date=_at(first_in),
            args=(send_id,),
            id=f"sms:{send_id}",
            replace_existing=True,
        )

    def watched_sms(self) -> set[int]:
        """The sends this instance polls (a job each)."""
        return {
            int(job.id.split(":", 1)[1])
            for job in self.scheduler.get_jobs()
            if job.id.startswith("sms:")
        }

    def unwatch_sms(self, send_id: int) -> None:
        try:
            self.scheduler.remove_job(f"sms:{send_id}")
        except JobLookupError:
            pass

    def render_sms(self, send_id: int) -> None:
        if send_id in self._rendering:
            self._stale.add(send_id)
        elif self.scheduler.get_job(f"smsview:{send_id}") is None:
            self.scheduler.add_job(
                self._jobs._tracked(self._render),
                "date",
                run_date=_at(self.RENDER_DELAY),
                args=(send_id,),
                id=f"smsview:{send_id}",
                replace_existing=True,
            )

    async def _poll(self, send_id: int) -> None:
        keep = True
        try:
            keep = await self.sms.poll(send_id)
        except Exception:
            log.exception("Status poll of SMS send %s crashed; will retry", send_id)
        if keep and self.scheduler.running:
            self.watch_sms(send_id, self.poll_seconds)

    async def _render(self, send_id: int) -> None:
        self._rendering.add(send_id)
        failed = 0
        try:
            while True:
                self._stale.discard(send_id)
                try:
                    shown = await self.sms.render(send_id)
                except Exception:
                    log.exception("Rendering SMS send %s failed", send_id)
                    shown = False
                failed = 0 if shown else failed + 1
                if not shown and failed < self.RENDER_ATTEMPTS:
                    # The last state may have no later change to draw it: try it again.
                    self._stale.add(send_id)
                if send_id not in self._stale:
                    return
                await asyncio.sleep(self.RENDER_DELAY * (failed + 1))
        finally:
            self._rendering.discard(send_id)
            self._stale.discard(send_id)


class RentalPoller:
    """Polls live rentals, each at least once every `RentalService.poll_seconds`.

    The schedule is the database's (`rentals.next_poll_at`): every `tick` seconds the poller
    claims the rentals due, oldest due first (`claim_due` pushes each one period ahead by a
    conditional UPDATE per rental, so a restart resumes where it stopped and two instances
    never poll the same rental in one period), and
    polls them, at most `in_flight` at once. How many it claims is paced by a token bucket
    refilled at `per_minute / 2` rentals a minute (two requests a poll): rentals take no more
    than their share of the SMSPool budget and leave the rest to one-time orders, and 300
    rentals due at once (a start) are spread over the period instead of queueing ahead of
    everyone in the request budget. When more rentals are live than the share polls in one
    period, every rental is still polled in turn (oldest due first), just less often.
    """

    def __init__(
        self,
        rentals: RentalService,
        per_minute: float,
        tick: float = 1.0,
        in_flight: int = 20,
    ) -> None:
        self.rentals = rentals
        self.rate = per_minute / 60.0 / 2.0  # rentals a second
        self.tick = max(0.05, min(tick, rentals.poll_seconds / 60))  # 1 s at a 60 s period
        self.in_flight = in_flight
        self.burst = max(1.0, self.rate * 5.0)
        self._tokens = self.burst
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[int] = set()  # rentals being polled by this process
        self._loop_task: asyncio.Task[None] | None = None
        self.polls = 0  # done by this process (the bench reads it)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        """Stop claiming and cancel the polls running (their state is in the database)."""
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        last = time.monotonic()
        while True:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - last) * self.rate)
            last = now
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Rental poller: claiming due rentals failed")
            await asyncio.sleep(self.tick)

    async def run_once(self) -> int:
        """Claim what the bucket and the free slots allow and start those polls."""
        room = min(int(self._tokens), self.in_flight - len(self._tasks))
        if room <= 0:
            return 0
        due = await self.rentals.claim_due(room)
        self._tokens -= len(due)
        for rental in due:
            if rental.id in self._running:
                continue  # its last poll is still running (a slow upstream): skip a turn
            self._running.add(rental.id)
            task = asyncio.get_running_loop().create_task(self._poll(rental))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(due)

    async def _poll(self, rental: Rental) -> None:
        try:
            await self.rentals.poll(rental)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Rental %s: poll failed", rental.id)
        finally:
            self._running.discard(rental.id)
            self.polls += 1
