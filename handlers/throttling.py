"""Protection against floods: a token bucket per user.

The throttle runs as an outer middleware on messages and callback queries *before* the user
middleware: it needs only Telegram's `event_from_user`, so a dropped update runs no handler
and writes nothing (only a notice reads the user, for their language). A refused callback
query is still answered (the button's spinner stops), and a refused message gets one "please
slow down" reply per throttled period, not one per message. Payment messages are never
throttled: the money has already moved.
"""

from __future__ import annotations

import enum
import html
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TgUser

from handlers.ui import answer
from shop.i18n import DEFAULT_LOCALE, _, i18n, locale_of
from shop.services.users import UserService

log = logging.getLogger(__name__)

PRUNE_EVERY = 1024  # hits between sweeps of idle buckets


class Verdict(enum.Enum):
    """A throttled period starts at the first refusal and ends once the bucket is full again
    (the user calmed down): a sustained flood gets one notice, not one per refill."""

    ALLOW = "allow"
    WARN = "warn"  # refused, and the first refusal of this throttled period
    DROP = "drop"  # refused again in the same period


class ThrottleStore(Protocol):
    """Where the buckets live. One process keeps them in memory (`MemoryThrottleStore`).

    When the bot runs on several machines, the buckets must be shared so a user cannot spread
    a flood across them: a Redis implementation of this one method replaces the memory store
    (a small Lua script doing the same refill-and-take atomically, keyed by user id, with a
    TTL of `burst / rate` seconds so idle buckets expire by themselves).
    """

    async def hit(self, key: int, rate: float, burst: int) -> Verdict:
        """Take one token from `key`'s bucket (refilled at `rate`/s up to `burst`)."""
        ...


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    warned: bool = False


class MemoryThrottleStore:
    """Token buckets in a dict; idle (full again) buckets are pruned now and then."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}
        self._hits = 0

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, key: int, rate: float, burst: int) -> Verdict:
        now = self._clock()
        self._hits += 1
        if self._hits % PRUNE_EVERY == 0:
            self._prune(now, rate, burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(burst), stamp=now)
        else:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= burst:
                bucket.warned = False  # full again: the throttled period (if any) is over
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Verdict.ALLOW
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.WARN

    def _prune(self, now: float, rate: float, burst: int) -> None:
        idle = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.stamp) * rate >= burst
        ]
        for key in idle:
            del self._buckets[key]


class ThrottleMiddleware(BaseMiddleware):
    """Slows down one user who floods clicks or commands; everyone else is unaffected."""

    def __init__(
        self,
        store: ThrottleStore,
        rate: float,
        burst: int,
        exempt: Iterable[int],
        users: UserService,
    ) -> None:
        self.store = store
        self.rate = rate
        self.burst = burst
        self.exempt = frozenset(exempt)
        self.users = users

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot or sender.id in self.exempt or _is_payment(event):
            return await handler(event, data)
        verdict = await self.store.hit(sender.id, self.rate, self.burst)
        if verdict is Verdict.ALLOW:
            return await handler(event, data)
        log.info("Throttled user %s (%s)", sender.id, verdict.value)
        if isinstance(event, CallbackQuery):
            # Every refused query is answered, or its button keeps spinning.
            with i18n.use_locale(await self._locale(sender)):
                await answer(event, _("Too fast — please wait a moment."), alert=True)
        elif isinstance(event, Message) and verdict is Verdict.WARN:
            with i18n.use_locale(await self._locale(sender)):
                text = _("You're sending messages too fast. Please slow down a little.")
            try:
                await event.answer(html.escape(text))
            except TelegramAPIError as exc:  # blocked, flood-limited: the drop still stands
                log.debug("Slow-down notice to %s failed: %s", sender.id, exc)
        return None

    async def _locale(self, sender: TgUser) -> str:
        """The user's language: their saved choice if we know them, else Telegram's."""
        user = await self.users.get(sender.id)
        if user is not None:
            return locale_of(user)
        base = (sender.language_code or "").split("-", 1)[0].lower()
        return base if base in i18n.available_locales else DEFAULT_LOCALE


def _is_payment(event: TelegramObject) -> bool:
    """Payment service messages carry money already taken: never drop them."""
    return isinstance(event, Message) and (
        event.successful_payment is not None or event.refunded_payment is not None
    )


def build_throttle(
    rate: float,
    burst: int,
    exempt: Iterable[int],
    users: UserService,
    store: ThrottleStore | None = None,
) -> ThrottleMiddleware:
    """The throttle for one process; pass a shared `store` when running several."""
    return ThrottleMiddleware(store or MemoryThrottleStore(), rate, burst, exempt, users)
