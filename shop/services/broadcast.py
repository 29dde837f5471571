"""Admin broadcasts: the admin's message copied to every active user at a steady rate.

One asyncio task per running broadcast (at most one runs at a time) owns the sending. Every
state that matters is in SQLite (`storage/broadcasts.py`): the copies that start together are
claimed as 'sending' in one commit right before they go out (the same commit settles the
outcomes that came back since the previous one), so after a crash only the copies in flight
are uncertain, a restart sends everyone never tried, and nobody gets it twice. Telegram stays
behind the `BroadcastSender` protocol (`handlers/broadcast.py` implements it).

With several instances, a running broadcast is sent by the one instance holding its lease
(`broadcast:{id}` in `job_leases`, renewed while it runs): every instance calls `resume()`
periodically, and only one whose lease it can take picks up a broadcast whose sender died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shop.errors import AppError, InvalidState, NotFound
from shop.i18n import _
from shop.models import Broadcast, BroadcastStatus, Counts, DeliveryStatus, Outcome
from shop.ports import BroadcastRepository
from shop.services.leases import Leases

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 3.0  # how often the progress message is edited
MAX_FLOOD_RETRIES = 10  # 429s for one recipient before it counts as failed
SLOWDOWN = 0.8  # the pace after each flood episode, relative to the one before
MIN_RATE = 1.0  # messages/s the pace never drops under
RECOVER_SECONDS = 60.0  # without a flood wait for this long, the pace goes back up a step
CLOSE_GRACE = 10.0  # seconds a graceful close waits for in-flight copies before cancelling
TICK = 0.1  # at most one claim commit per tick: the copies due within it share that commit
MAX_GROUP = 10  # copies per commit at most: above 100/s the tick shrinks instead


class FloodWait(Exception):
    """Telegram asked to wait: nothing was sent; try again after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}")
        self.seconds = seconds


class Phase(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # stopped by a shutdown; resumes at the next start
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Progress:
    """What the progress message shows."""

    broadcast_id: int
    phase: Phase
    counts: Counts
    rate: float
    eta_seconds: float | None


class BroadcastSender(Protocol):
    """The Telegram side: one copy per recipient and the admin's progress message."""

    async def copy(
        self, user_id: int, from_chat_id: int, message_id: int
    ) -> tuple[DeliveryStatus, str | None]:
        """Copy the message to `user_id`: SENT, BLOCKED (the user blocked the bot) or FAILED
        with the error. Raises FloodWait when Telegram asks to slow down."""
        ...

    async def progress(self, broadcast: Broadcast, progress: Progress, final: bool) -> None:
        """Edit the progress message. Best effort, except that a final edit tries harder."""
        ...


class BroadcastBusy(AppError):
    pass


@dataclass
class _Run:
    """The in-memory side of one running broadcast: pacing and tallies (all rebuildable)."""

    broadcast: Broadcast
    interval: float
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    unknown: int = 0
    total: int = 0
    paused_until: float = 0.0
    last_flood: float = 0.0
    stopping: bool = False
    cancelled: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    queue: deque[int] = field(default_factory=deque)  # read as pending, not claimed yet
    results: list[Outcome] = field(default_factory=list)  # outcomes not written yet
    released: list[int] = field(default_factory=list)  # flood-refused: back to pending
    floods: dict[int, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def counts(self) -> Counts:
        return Counts(
            total=self.total,
            sent=self.sent,
            failed=self.failed,
            blocked=self.blocked,
            unknown=self.unknown,
        )

    def stop(self, cancelled: bool) -> None:
        self.stopping = True
        self.cancelled = self.cancelled or cancelled
        self.wake.set()


class BroadcastService:
    def __init__(
        self,
        repo: BroadcastRepository,
        sender: BroadcastSender,
        rate: float,
        progress_seconds: float = PROGRESS_SECONDS,
        leases: Leases | None = None,
    ) -> None:
        self.repo = repo
        self.leases = leases  # None: the only process sends every broadcast
        self.sender = sender
        self.rate = rate
        self.progress_seconds = progress_seconds
        # One second of recipients per read (reads claim nothing).
        self.batch = max(10, min(500, math.ceil(rate)))
        self.max_in_flight = max(4, min(100, math.ceil(rate / 2)))
        self._runs: dict[int, _Run] = {}
        self._closed = False

    # -- queries -----------------------------------------------------------------------------

    async def recipients(self) -> int:
        """How many users a broadcast started now would reach (active, not banned)."""
        return await self.repo.recipients()

    async def running(self) -> Broadcast | None:
        running = await self.repo.running()
        return running[0] if running else None

    async def get(self, broadcast_id: int) -> Broadcast | None:
        return await self.repo.get(broadcast_id)

    async def counts(self, broadcast_id: int) -> Counts:
        return await self.repo.counts(broadcast_id)

    # -- commands ----------------------------------------------------------------------------

    async def check_idle(self) -> None:
        """Raise BroadcastBusy while a broadcast is running (only one runs at a time)."""
        running = await self.running()
        if running is not None:
            raise BroadcastBusy(_busy(running.id))

    async def draft(self, admin_id: int, from_chat_id: int, message_id: int) -> Broadcast:
        """Store the admin's message as a draft; nothing is sent until `start`."""
        await self.check_idle()
        return await self.repo.create_draft(admin_id, from_chat_id, message_id, admin_id)

    async def start(self, broadcast_id: int, admin_id: int, progress_msg: int) -> Broadcast:
        """Create one delivery per recipient (one transaction, audited) and start sending.

        `progress_msg` (in the admin's chat) becomes the progress message.
        """
        if self._closed:
            raise InvalidState(_("The bot is shutting down. Please try again in a moment."))
        started, busy = await self.repo.start(broadcast_id, admin_id, progress_msg)
        if busy is not None:
            raise BroadcastBusy(_busy(busy.id))
        if started is None:
            raise InvalidState(_("This broadcast was already started or cancelled."))
        log.info("Broadcast %s started by %s: %s recipients", started.id, admin_id, started.total)
        await self._hold(started.id)  # new: nobody else holds it
        self._launch(started)
        return started

    async def cancel(self, broadcast_id: int, admin_id: int) -> Broadcast:
        """Cancel a draft or stop a running broadcast (audited). Who got it keeps it; nobody
        else gets it."""
        cancelled = await self.repo.cancel(broadcast_id, admin_id)
        if cancelled is None:
            if await self.repo.get(broadcast_id) is None:
                raise NotFound()
            raise InvalidState(_("This broadcast has already finished."))
        log.info("Broadcast %s cancelled by %s", broadcast_id, admin_id)
        run = self._runs.get(broadcast_id)
        if run is not None:
            run.stop(cancelled=True)  # the runner settles what is in flight and reports
        elif cancelled.progress_msg is not None:
            counts = await self.repo.counts(broadcast_id)
            await self.sender.progress(
                cancelled, Progress(broadcast_id, Phase.CANCELLED, counts, 0.0, None), True
            )
        return cancelled

    async def resume(self) -> list[int]:
        """At start: pick up running broadcasts. Rows a crash left in 'sending' (copies in
        flight) are settled as sent with an unknown outcome, never resent; every recipient
        never tried is still pending and gets it."""
        resumed = []
        for broadcast in await self.repo.running():
            if broadcast.id in self._runs or self._closed:
                continue
            if not await self._hold(broadcast.id):
                continue  # another instance is sending it
            interrupted = await self.repo.settle_interrupted(broadcast.id)
            log.info(
                "Resuming broadcast %s (%s deliveries with an unknown outcome)",
                broadcast.id,
                interrupted,
            )
            self._launch(broadcast)
            resumed.append(broadcast.id)
        return resumed

    async def close(self, graceful: bool = True, grace: float = CLOSE_GRACE) -> None:
        """Stop the runners. Gracefully: in-flight copies finish (for up to `grace` seconds),
        outcomes are written and recipients not tried yet go back to pending (the broadcast
        resumes at the next start). Otherwise the tasks are cancelled, as a crash would."""
        self._closed = True
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        if graceful:
            for run in self._runs.values():
                run.stop(cancelled=False)
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()  # a no-op for those that ended
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if graceful and self.leases is not None:
            try:  # stopped cleanly: another instance may resume them at once
                await self.leases.jobs.release(self.leases.owner)
            except Exception:
                log.exception("Broadcast leases not released; they run out by themselves")

    async def wait(self, broadcast_id: int) -> None:
        """Until the runner of this broadcast (if any) has ended; for tests and benchmarks."""
        run = self._runs.get(broadcast_id)
        if run is not None and run.task is not None:
            await asyncio.shield(run.task)

    # -- the runner --------------------------------------------------------------------------

    def _launch(self, broadcast: Broadcast) -> None:
        run = _Run(broadcast=broadcast, interval=1.0 / self.rate)
        run.last_flood = asyncio.get_running_loop().time()
        self._runs[broadcast.id] = run
        run.task = asyncio.create_task(self._run(run), name=f"broadcast-{broadcast.id}")
        run.task.add_done_callback(lambda _task: self._runs.pop(broadcast.id, None))

    async def _hold(self, broadcast_id: int) -> bool:
        """Take or renew this instance's lease on sending the broadcast."""
        if self.leases is None:
            return True
        return await self.leases.acquire_job(f"broadcast:{broadcast_id}", self.leases.seconds)

    async def _keep_holding(self, run: _Run) -> None:
        """Renew the lease while the broadcast runs; if another instance took it (this one
        stalled past the lease), stop here: what is in flight is settled, the rest is theirs."""
        assert self.leases is not None
        while not run.stopping:
            await asyncio.sleep(self.leases.renew_every)
            try:
                held = await self._hold(run.broadcast.id)
            except Exception:
                log.exception("Renewing the lease of broadcast %s failed", run.broadcast.id)
                continue
            if not held:
                log.warning("Broadcast %s is sent by another instance now", run.broadcast.id)
                run.stop(cancelled=False)

    async def _run(self, run: _Run) -> None:
        keeper = None
        if self.leases is not None:
            keeper = asyncio.get_running_loop().create_task(self._keep_holding(run))
        try:
            await self._send_all(run)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left 'running' in the database: the next start resumes it.
            log.exception("Broadcast %s stopped by an error", run.broadcast.id)
        finally:
            if keeper is not None:
                keeper.cancel()

    async def _send_all(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        broadcast = run.broadcast
        counts = await self.repo.counts(broadcast.id)
        run.total, run.sent, run.failed = counts.total, counts.sent, counts.failed
        run.blocked, run.unknown = counts.blocked, counts.unknown
        await self._report(run, Phase.RUNNING)
        in_flight: set[asyncio.Task[None]] = set()
        progress: asyncio.Task[None] | None = None
        last_report = loop.time()
        next_at = loop.time()
        last_claim = next_at - TICK
        try:
            while not run.stopping:
                if not run.queue:
                    run.queue.extend(await self.repo.pending(broadcast.id, self.batch))
                    if not run.queue:
                        if not in_flight:
                            break
                        # The last copies may still come back with a flood wait (requeued).
                        await asyncio.wait(in_flight)
                        continue
                now = loop.time()
                if run.paused_until > now:  # a flood wait: write what is known, wake on a stop
                    if run.results or run.released:
                        await self.repo.settle(broadcast.id, *self._take(run))
                        continue
                    run.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(run.wake.wait(), run.paused_until - now)
                    continue
                tick = min(TICK, MAX_GROUP * run.interval)
                delay = max(next_at, last_claim + tick) - now
                if delay > 0:  # at most one tick
                    await asyncio.sleep(delay)
                    continue
                slots = self.max_in_flight - len(in_flight)
                if slots <= 0:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                # A steady pace: catch up at most a tick after a late wake-up or a pause.
                next_at = max(next_at, now - tick - run.interval)
                due = min(1 + int((now - next_at) / run.interval), MAX_GROUP, slots)
                group = [run.queue.popleft() for _ in range(min(due, len(run.queue)))]
                next_at += len(group) * run.interval
                settled, released = self._take(run)
                last_claim = now
                claimed = await self.repo.claim(broadcast.id, group, settled, released)
                if claimed is None:  # cancelled, maybe by another process
                    run.stop(cancelled=True)
                    break
                for user_id in claimed:  # right after the commit that made them 'sending'
                    task = asyncio.create_task(self._deliver(run, user_id))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                now = loop.time()
                if now - run.last_flood >= RECOVER_SECONDS and run.interval > 1.0 / self.rate:
                    run.interval = max(1.0 / self.rate, run.interval * SLOWDOWN)
                    run.last_flood = now
                if now - last_report >= self.progress_seconds and (
                    progress is None or progress.done()
                ):
                    last_report = now
                    progress = asyncio.create_task(self._report(run, Phase.RUNNING))
            if in_flight:
                await asyncio.wait(in_flight)
        except asyncio.CancelledError:
            for pending in (*in_flight, progress):
                if pending is not None:
                    pending.cancel()
            raise
        settled, released = self._take(run)
        if run.stopping:
            # Those read but never claimed are still pending; nothing to undo for them.
            run.queue.clear()
            await self.repo.settle(broadcast.id, settled, release=released)
            phase = Phase.CANCELLED if run.cancelled else Phase.PAUSED
        else:
            if released:
                await self.repo.settle(broadcast.id, [], release=released)
            finished = await self.repo.finish(broadcast.id, settled)
            status = finished.status if finished is not None else BroadcastStatus.CANCELLED
            phase = {BroadcastStatus.DONE: Phase.DONE, BroadcastStatus.RUNNING: Phase.PAUSED}.get(
                status, Phase.CANCELLED
            )
        if progress is not None:  # never let a late progress edit overwrite the final one
            await asyncio.gather(progress, return_exceptions=True)
        final = await self.repo.counts(broadcast.id)
        log.info(
            "Broadcast %s %s: sent %s (unknown %s), failed %s, blocked %s, of %s",
            broadcast.id,
            phase.value,
            final.sent,
            final.unknown,
            final.failed,
            final.blocked,
            final.total,
        )
        await self.sender.progress(
            broadcast, Progress(broadcast.id, phase, final, 1.0 / run.interval, None), True
        )

    @staticmethod
    def _take(run: _Run) -> tuple[list[Outcome], list[int]]:
        """The outcomes and the flood-refused recipients not written yet (now taken)."""
        settled, run.results = run.results, []
        released, run.released = run.released, []
        return settled, released

    async def _deliver(self, run: _Run, user_id: int) -> None:
        broadcast = run.broadcast
        try:
            status, error = await self.sender.copy(
                user_id, broadcast.from_chat_id, broadcast.message_id
            )
        except FloodWait as flood:
            self._flooded(run, user_id, flood.seconds)
            return
        except Exception as exc:  # a bug or an unexpected transport error: count, go on
            log.exception("Broadcast %s: copy to %s failed", broadcast.id, user_id)
            status, error = DeliveryStatus.FAILED, type(exc).__name__
        run.results.append(Outcome(user_id, status, error))
        if run.paused_until > asyncio.get_running_loop().time():
            run.wake.set()  # the runner writes it now rather than after the pause
        if status == DeliveryStatus.SENT:
            run.sent += 1
        elif status == DeliveryStatus.BLOCKED:
            run.blocked += 1
        else:
            run.failed += 1

    def _flooded(self, run: _Run, user_id: int, seconds: float) -> None:
        """Telegram's flood limit is per bot: pause everything, slow down, retry this user."""
        now = asyncio.get_running_loop().time()
        run.last_flood = now
        if now >= run.paused_until:  # a new episode, not another answer of the same one
            rate = max(MIN_RATE, SLOWDOWN / run.interval)
            run.interval = 1.0 / rate
            log.warning(
                "Broadcast %s: flood wait %ss, pace now %.1f/s", run.broadcast.id, seconds, rate
            )
        run.paused_until = max(run.paused_until, now + seconds)
        run.floods[user_id] = run.floods.get(user_id, 0) + 1
        if run.floods[user_id] > MAX_FLOOD_RETRIES:
            run.results.append(Outcome(user_id, DeliveryStatus.FAILED, "flood wait"))
            run.failed += 1
            return
        run.released.append(user_id)  # nothing was sent: pending again, in the next commit
        run.queue.appendleft(user_id)
        run.wake.set()

    async def _report(self, run: _Run, phase: Phase) -> None:
        counts = run.counts()
        rate = 1.0 / run.interval
        pause = max(0.0, run.paused_until - asyncio.get_running_loop().time())
        eta = counts.left / rate + pause
        await self.sender.progress(
            run.broadcast, Progress(run.broadcast.id, phase, counts, rate, eta), False
        )


def _busy(broadcast_id: int) -> str:
    return _(
        "Broadcast #{id} is running. Only one runs at a time: wait for it to finish or cancel "
        "it with the button on its progress message."
    ).format(id=broadcast_id)
