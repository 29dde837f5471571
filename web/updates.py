"""Each Telegram `update_id` handled once, however often Telegram delivers it.

Telegram repeats a delivery that got no 2xx answer (ours failed, timed out, or the instance
died), always with the same `update_id`. Before handling an update the webhook claims it:

* `NEW`: ours to handle. On success it is marked done (kept a day); on failure the claim is
  released, so Telegram's next delivery handles it again.
* `DONE`: handled before; answer 200 at once.
* `BUSY`: being handled right now (by this instance or another); answer 503 and let Telegram
  come back.

With Redis (`REDIS_URL`) the claim is a key shared by every instance: `SET NX` with a short
processing TTL that a running handler keeps renewing (so the claim of an instance that died
lapses within one TTL), then a "done" marker kept for a day. Without Redis a bounded in-process
table does the same: one instance is the only legal set-up without Redis.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

DONE_SECONDS = 86400  # how long a handled update_id is remembered
CLAIM_SECONDS = 30.0  # a claim's life without renewal: how long a dead instance blocks a retry
LOCAL_LIMIT = 100_000  # handled update_ids remembered without Redis


class Seen(enum.Enum):
    NEW = "new"
    DONE = "done"
    BUSY = "busy"


@dataclass
class Claim:
    update_id: int
    seen: Seen
    token: str = ""
    _renewal: asyncio.Task[None] | None = field(default=None, repr=False)


class UpdateClaims(Protocol):
    async def claim(self, update_id: int) -> Claim: ...

    async def done(self, claim: Claim) -> None: ...

    async def release(self, claim: Claim) -> None: ...


class LocalUpdateClaims:
    """The claims of one process: updates in progress, and the ids handled lately."""

    def __init__(self, limit: int = LOCAL_LIMIT, keep_seconds: float = DONE_SECONDS) -> None:
        self.limit = limit
        self.keep_seconds = keep_seconds
        self._busy: set[int] = set()
        self._done: OrderedDict[int, float] = OrderedDict()

    async def claim(self, update_id: int) -> Claim:
        self._forget_old()
        if update_id in self._done:
            return Claim(update_id, Seen.DONE)
        if update_id in self._busy:
            return Claim(update_id, Seen.BUSY)
        self._busy.add(update_id)
        return Claim(update_id, Seen.NEW)

    async def done(self, claim: Claim) -> None:
        self._busy.discard(claim.update_id)
        self._done[claim.update_id] = time.monotonic()
        self._done.move_to_end(claim.update_id)
        while len(self._done) > self.limit:
            self._done.popitem(last=False)

    async def release(self, claim: Claim) -> None:
        self._busy.discard(claim.update_id)

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self.keep_seconds
        while self._done:
            update_id, at = next(iter(self._done.items()))
            if at >= horizon:
                return
            del self._done[update_id]


# Renew or delete a claim only while it is still ours (its value is our token).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_DONE = b"done"


class RedisUpdateClaims:
    """Claims shared by every instance through Redis (`{prefix}:tg-update:{bot}:{update}`)."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        bot_id: int,
        claim_seconds: float = CLAIM_SECONDS,
        done_seconds: int = DONE_SECONDS,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:tg-update:{bot_id}:"
        self.claim_ms = max(int(claim_seconds * 1000), 1)
        self.done_seconds = done_seconds
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def key(self, update_id: int) -> str:
        return f"{self.prefix}{update_id}"

    async def claim(self, update_id: int) -> Claim:
        key = self.key(update_id)
        token = secrets.token_hex(16).encode()
        for _ in range(3):  # a claim that lapses between our SET and GET: try again
            if await self.redis.set(key, token, nx=True, px=self.claim_ms):
                claim = Claim(update_id, Seen.NEW, token.decode())
                claim._renewal = asyncio.get_running_loop().create_task(self._keep(claim))
                return claim
            value = await self.redis.get(key)
            if value == _DONE:
                return Claim(update_id, Seen.DONE)
            if value is not None:
                return Claim(update_id, Seen.BUSY)
        return Claim(update_id, Seen.BUSY)

    async def done(self, claim: Claim) -> None:
        await self._stop_renewal(claim)
        # Whoever holds the key now, this update has been handled.
        await self.redis.set(self.key(claim.update_id), _DONE, ex=self.done_seconds)

    async def release(self, claim: Claim) -> None:
        await self._stop_renewal(claim)
        await self._release(keys=[self.key(claim.update_id)], args=[claim.token])

    async def _keep(self, claim: Claim) -> None:
        """Renew the claim while its update is being handled."""
        key = self.key(claim.update_id)
        while True:
            await asyncio.sleep(self.claim_ms / 3000)
            try:
                renewed = await self._renew(keys=[key], args=[claim.token, self.claim_ms])
            except Exception as exc:  # Redis away for a moment: the next renewal may work
                log.warning("Claim of update %s not renewed: %s", claim.update_id, exc)
                continue
            if not renewed:
                log.warning("Claim of update %s lapsed while it was handled", claim.update_id)
                return

    @staticmethod
    async def _stop_renewal(claim: Claim) -> None:
        task, claim._renewal = claim._renewal, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # never raises; a cancel of our own still does
