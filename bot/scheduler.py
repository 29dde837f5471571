"""APScheduler 3 jobs: one poll and one deadline per live order, plus periodic safety nets.

Jobs live in memory with primitive arguments and are rebuilt from the orders table at start.
A poll reschedules itself one poll interval after it *started*, so when the request budget is
the bottleneck the next poll follows at once and the cycle is max(interval, budget wait).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.services.orders import OrderService
from bot.services.sms import SmsService

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60


def _at(seconds_from_now: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(seconds_from_now, 0.0))


class OrderJobs:
    """Implements `bot.services.orders.Jobs` with an AsyncIOScheduler."""

    def __init__(
        self, poll_interval: float, route_intervals: dict[str, float] | None = None
    ) -> None:
        self.poll_interval = poll_interval
        self.route_intervals = route_intervals or {}
        # misfire_grace_time=None: a late one-shot job still runs (the default 1 s drops it).
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._orders: OrderService | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._route_of: dict[int, str] = {}  # a cache for poll intervals; never a source of truth
        self._polling: set[int] = set()  # orders whose poll is running right now

    def bind(self, orders: OrderService) -> None:
        self._orders = orders

    @property
    def orders(self) -> OrderService:
        assert self._orders is not None, "OrderJobs.bind() was not called"
        return self._orders

    def start(self) -> None:
        """Start inside the running event loop (the dispatcher's startup)."""
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # cancels the jobs that are running

    async def aclose(self) -> None:
        """Stop scheduling and wait until running jobs have unwound."""
        self.shutdown()
        await asyncio.gather(*self._running, return_exceptions=True)

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
    ) -> None:
        """A periodic job (catalog refresh, sweeper)."""
        self.scheduler.add_job(
            self._tracked(self._guarded(job_id, func)),
            "interval",
            seconds=seconds,
            id=job_id,
            replace_existing=True,
            next_run_time=_at(seconds if first_in is None else first_in),
        )

    # -- per order (the Jobs protocol) --------------------------------------------------------

    def watch(self, order_id: int, deadline: int, route: str | None = None) -> None:
        if route is not None:
            self._route_of[order_id] = route
        self._schedule_poll(order_id, 0.0)
        self._schedule_deadline(order_id, deadline - time.time())

    def retry_close(self, order_id: int, delay: float) -> None:
        self._schedule_deadline(order_id, delay)

    def unwatch(self, order_id: int) -> None:
        self._route_of.pop(order_id, None)
        for job_id in (f"poll:{order_id}", f"deadline:{order_id}"):
            try:
                self.scheduler.remove_job(job_id)
            except JobLookupError:
                pass

    def is_watched(self, order_id: int) -> bool:
        # A running one-shot job has left the job store; the in-flight set covers that gap.
        return order_id in self._polling or self.scheduler.get_job(f"poll:{order_id}") is not None

    def _schedule_poll(self, order_id: int, delay: float) -> None:
        self.scheduler.add_job(
            self._tracked(self._poll),
            "date",
            run_date=_at(delay),
            args=(order_id,),
            id=f"poll:{order_id}",
            replace_existing=True,
            # The next run is scheduled while this one is still finishing; with the default of
            # one instance APScheduler would skip it and drop the job, and polling would stop.
            max_instances=2,
        )

    def _schedule_deadline(self, order_id: int, delay: float) -> None:
        self.scheduler.add_job(
            self._tracked(self._deadline),
            "date",
            run_date=_at(delay),
            args=(order_id,),
            id=f"deadline:{order_id}",
            replace_existing=True,
        )

    async def _poll(self, order_id: int) -> None:
        if order_id in self._polling:
            return  # a poll of this order is running; it schedules the next one
        self._polling.add(order_id)
        started = time.monotonic()
        keep = True
        try:
            keep = await self.orders.poll(order_id)
        except Exception:
            log.exception("Poll of order %s crashed; will retry", order_id)
        finally:
            self._polling.discard(order_id)
        if keep and self.scheduler.running:
            elapsed = time.monotonic() - started
            self._schedule_poll(order_id, self._interval(order_id) - elapsed)

    def _interval(self, order_id: int) -> float:
        """The route's own poll interval (a push-capable route polls slowly), else the default."""
        route_key = self._route_of.get(order_id)
        return self.route_intervals.get(route_key or "", self.poll_interval)

    async def _deadline(self, order_id: int) -> None:
        try:
            await self.orders.expire(order_id)
        except Exception:
            log.exception("Deadline of order %s crashed; retrying in a minute", order_id)
            self._schedule_deadline(order_id, 60.0)

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
        """Safety net: every live order has its jobs; overdue ones close; stray codes go out."""
        now = time.time()
        for order in await self.orders.orders.live():
            if order.deadline is None:
                continue
            if not self.is_watched(order.id):
                log.warning("Order %s had no poll job; rescheduling", order.id)
                self.watch(order.id, order.deadline, order.route)
            elif self.scheduler.get_job(f"deadline:{order.id}") is None and order.deadline < now:
                self._schedule_deadline(order.id, 0.0)
        await self.orders.sweep_codes()


class SmsJobs:
    """Implements `bot.services.sms.SmsJobs` on the same scheduler as the order jobs."""

    RENDER_DELAY = 1.0  # status edits are batched, so 100 reports make a handful of edits

    def __init__(self, jobs: OrderJobs, poll_seconds: float) -> None:
        self._jobs = jobs
        self.poll_seconds = poll_seconds
        self._sms: SmsService | None = None

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

    def unwatch_sms(self, send_id: int) -> None:
        try:
            self.scheduler.remove_job(f"sms:{send_id}")
        except JobLookupError:
            pass

    def render_sms(self, send_id: int) -> None:
        if self.scheduler.get_job(f"smsview:{send_id}") is None:
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
        try:
            await self.sms.render(send_id)
        except Exception:
            log.exception("Rendering SMS send %s failed", send_id)
