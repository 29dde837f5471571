"""The instance registry: which bot processes run on this shop's database, and the rule that
only instances sharing Redis may run together.

Every process gets a random id and a row in the `instances` table, refreshed by a heartbeat
every HEARTBEAT_SECONDS (with `REDIS_URL`, also a key with a TTL in Redis). An instance that
runs without `REDIS_URL` keeps its request budgets, flood throttle and FSM in its own memory
and database connection, so it must be the only one: a second instance refuses to start
while another one without `REDIS_URL` is alive, and an instance without `REDIS_URL` refuses
to start while any other one is alive. The row is in the database in both modes, since an
instance without Redis can only see the others there.

An instance is taken for gone when its heartbeat is older than INSTANCE_TTL_SECONDS, or at
once when it ran on this same machine (and process namespace) and its process has ended: a
bot restarted after a crash or a kill starts without waiting.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from shop.models import Instance
from shop.ports import Database, InstancePresence, InstanceRepository, Tx

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
INSTANCE_TTL_SECONDS = 30  # three missed heartbeats: gone

# Instances registered by this process and not yet left. Several apps in one process (tests)
# share a pid, so for a row with our own pid this, not the process table, tells if it lives.
_JOINED: set[str] = set()


class StartupRefused(Exception):
    """The bot must not start; the message says why and what to do."""


class AnotherInstanceRunning(StartupRefused):
    """Another live instance on this database, and the two do not both share Redis."""


def this_node() -> str:
    """This machine and its process namespace: where a pid names the same process. Two
    containers may share a host name (host networking) but never a pid namespace."""
    host = socket.gethostname()
    try:
        return f"{host} {os.readlink('/proc/self/ns/pid')}"
    except OSError:  # not Linux
        return host


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class InstanceRegistry:
    """This process's entry in the registry: `join` at start, `beat` periodically, `leave`
    at shutdown. `presence` is the Redis side, given when `REDIS_URL` is set."""

    def __init__(
        self,
        db: Database,
        repo: InstanceRepository,
        presence: InstancePresence | None = None,
        ttl: int = INSTANCE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = process_alive,
    ) -> None:
        self.db = db
        self.repo = repo
        self.presence = presence
        self.ttl = ttl
        self.clock = clock
        self.alive = alive
        now = int(clock())
        self.instance = Instance(
            id=secrets.token_hex(6),
            host=socket.gethostname(),
            node=this_node(),
            pid=os.getpid(),
            shared=presence is not None,
            started_at=now,
            seen_at=now,
        )

    async def join(self) -> None:
        """Register this instance, or raise `StartupRefused` (nothing registered then)."""
        now = int(self.clock())
        async with self.db.transaction() as tx:
            blocking = await self._register(tx, now)
            if blocking:
                raise AnotherInstanceRunning(self._refusal(blocking[0], now))
        _JOINED.add(self.instance.id)
        log.info(
            "Instance %s started on %s (pid %s)%s",
            self.instance.id,
            self.instance.host,
            self.instance.pid,
            ", sharing state through Redis" if self.presence is not None else "",
        )
        if self.presence is not None:
            # Redis down at start does not stop the start: /readyz says so until it answers,
            # and the next heartbeat writes the key.
            try:
                await self.presence.mark(self.instance, self.ttl)
            except Exception as exc:
                log.warning("Instance %s not marked in Redis: %s", self.instance.id, exc)

    async def beat(self) -> None:
        """The heartbeat. If another instance took this one for gone (no heartbeat for the
        TTL: the process stalled) and removed its row, it registers again, and says so."""
        now = int(self.clock())
        if not await self.repo.seen(self.instance.id, now):
            async with self.db.transaction() as tx:
                blocking = await self._register(tx, now)
            log.warning(
                "Instance %s was taken for gone (no heartbeat for %s s) and registered again",
                self.instance.id,
                self.ttl,
            )
            for other in blocking:
                log.error("Two instances without shared Redis: %s", self._describe(other, now))
        if self.presence is not None:
            try:
                await self.presence.mark(self.instance, self.ttl)
            except Exception as exc:
                log.warning("Instance heartbeat in Redis failed: %s", exc)

    async def leave(self) -> None:
        """Unregister at shutdown, so a restart need not wait for the TTL."""
        _JOINED.discard(self.instance.id)
        async with self.db.transaction() as tx:
            await self.repo.remove(tx, [self.instance.id])
        if self.presence is not None:
            try:
                await self.presence.clear(self.instance.id)
            except Exception as exc:
                log.warning("Instance %s not cleared from Redis: %s", self.instance.id, exc)

    async def live(self) -> list[Instance]:
        """The instances alive now, this one included."""
        now = int(self.clock())
        return [i for i in await self.repo.all() if self._is_alive(i, now)]

    async def _register(self, tx: Tx, now: int) -> list[Instance]:
        """Remove the rows of instances that are gone; add this one unless a live instance
        blocks it. Returns the blocking instances (none: registered)."""
        others = await self.repo.others(tx, self.instance.id)
        gone = [other.id for other in others if not self._is_alive(other, now)]
        if gone:
            await self.repo.remove(tx, gone)
            log.info("Instances gone (no heartbeat, or their process ended): %s", gone)
        live = [other for other in others if other.id not in gone]
        blocking = [other for other in live if not (self.instance.shared and other.shared)]
        if not blocking:
            await self.repo.add(tx, replace(self.instance, seen_at=now))
        return blocking

    def _is_alive(self, other: Instance, now: int) -> bool:
        if now - other.seen_at >= self.ttl:
            return False
        if other.node != self.instance.node:
            return True  # elsewhere: only its heartbeat can tell
        if other.pid == self.instance.pid:
            return other.id in _JOINED
        return self.alive(other.pid)

    def _describe(self, other: Instance, now: int) -> str:
        return (
            f"instance {other.id} on {other.host} (pid {other.pid}, last seen "
            f"{max(now - other.seen_at, 0)} s ago"
            f"{'' if other.shared else ', without REDIS_URL'})"
        )

    def _refusal(self, other: Instance, now: int) -> str:
        wait = max(other.seen_at + self.ttl - now, 1)
        return (
            f"Not starting: {self._describe(other, now)} runs on this database. Several "
            "instances may run together only with REDIS_URL set on every one of them (the "
            "request budgets, flood throttle and typed input are shared through Redis). If that "
            f"instance has stopped, it counts as gone {wait} s from now: start again then."
        )
