"""Filters of our own, as `Filter` subclasses (checked on the event loop).

aiogram runs a filter or handler that is a plain callable, such as a bare magic filter
(`F.text`) or a `State`, through `asyncio.to_thread`: a round trip to a worker thread for every
update that reaches it. The admin router's filter alone sat in front of every callback and
message. So filters on hot paths are `Filter` subclasses, aiogram's `StateFilter`, or its
`MagicData` (a magic filter on `event` and the workflow data, resolved on the loop).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiogram import Router
from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TgUser


class FromUsers(Filter):
    """The sender is one of `user_ids` (the admins)."""

    def __init__(self, user_ids: Iterable[int]) -> None:
        self.user_ids = frozenset(user_ids)

    async def __call__(self, event: TelegramObject, event_from_user: TgUser | None = None) -> bool:
        return event_from_user is not None and event_from_user.id in self.user_ids


class TypedText(Filter):
    """A message with text that is not a command: what a form's step reads."""

    async def __call__(self, message: Message) -> bool:
        text = message.text
        return text is not None and text != "" and not text.startswith("/")


class CallbackPrefixes(Filter):
    """The callback's data was packed by one of the router's `CallbackData` factories.

    As a router-level filter it sends every other callback past the router (and its
    sub-routers) at once, instead of through each of its handlers' `CallbackData` filters."""

    def __init__(self, factories: Iterable[tuple[str, str]]) -> None:
        pairs = frozenset(factories)  # (prefix, separator)
        self.exact = frozenset(prefix for prefix, _ in pairs)  # a factory with no fields
        self.heads = tuple(sorted(prefix + separator for prefix, separator in pairs))

    async def __call__(self, query: CallbackQuery) -> bool:
        data = query.data
        return data is not None and (data in self.exact or data.startswith(self.heads))


def _factories(router: Router) -> set[tuple[str, str]] | None:
    """(prefix, separator) of every `CallbackData` factory the router's callback handlers and
    its sub-routers' filter by; None when one of them takes callbacks without one."""
    found: set[tuple[str, str]] = set()
    for handler in router.callback_query.handlers:
        factories = [
            f.callback.callback_data
            for f in handler.filters or []
            if isinstance(f.callback, CallbackQueryFilter)
        ]
        if not factories:
            return None
        found.update((factory.__prefix__, factory.__separator__) for factory in factories)
    for sub in router.sub_routers:
        below = _factories(sub)
        if below is None:
            return None
        found |= below
    return found


def route_callbacks_by_prefix(router: Router) -> None:
    """Give `router` and each router below it a `CallbackPrefixes` filter on callback queries,
    read from its own handlers once they are all registered (so it cannot miss one). A router
    with a handler that takes any callback (the fallback) gets none."""
    factories = _factories(router)
    if factories is not None:
        router.callback_query.filter(CallbackPrefixes(factories))
    for sub in router.sub_routers:
        route_callbacks_by_prefix(sub)
