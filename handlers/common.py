"""Small helpers every router uses: the user middleware, editing in place, the error router."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InaccessibleMessage,
    InlineKeyboardMarkup,
    TelegramObject,
)
from aiogram.types import User as TgUser

from shop.errors import AppError
from shop.i18n import __, i18n, locale_of, user_text
from shop.services.users import UserService

log = logging.getLogger(__name__)

APOLOGY = __("Sorry, something went wrong on our side. Please try again.")


class UserMiddleware(BaseMiddleware):
    """Registers the sender and hands handlers a `user` argument."""

    def __init__(self, users: UserService) -> None:
        self.users = users

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        if sender is None or sender.is_bot:
            return await handler(event, data)
        user = await self.users.seen(
            sender.id, sender.username, sender.first_name, sender.language_code
        )
        data["user"] = user
        with i18n.use_locale(locale_of(user)):
            return await handler(event, data)


class Services(BaseMiddleware):
    """Inner middleware: adds the shop's services to the arguments of the handler about to
    run (a handler takes the ones it names, like `catalog: CatalogService`). Filters run
    before it and do not get them: a filter that needs a service closes over it."""

    def __init__(self, services: Mapping[str, Any]) -> None:
        self.services = dict(services)

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data.update(self.services)
        return await handler(event, data)


async def show(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the clicked message's content (one message per flow, no flooding)."""
    message = callback.message
    if message is None or isinstance(message, InaccessibleMessage):
        if callback.bot is not None:
            await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def answer(callback: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Answer a callback; a query already answered or too old is not an error."""
    try:
        await callback.answer(text, show_alert=alert)
    except TelegramBadRequest as exc:
        log.debug("Callback answer ignored: %s", exc.message)


async def _tell(event: ErrorEvent, text: str) -> None:
    update = event.update
    if update.callback_query is not None:
        try:
            await update.callback_query.answer(text[:200], show_alert=True)
            return
        except TelegramBadRequest:
            query = update.callback_query
            if query.bot is not None:
                await query.bot.send_message(query.from_user.id, html.escape(text))
            return
    if update.message is not None:
        await update.message.answer(html.escape(text))


def build_errors_router() -> Router:
    """Maps AppError to its user message; anything else is logged with its stack."""
    router = Router(name="errors")

    @router.error(ExceptionTypeFilter(AppError))
    async def app_error(event: ErrorEvent) -> None:
        error = event.exception
        assert isinstance(error, AppError)
        await _tell(event, user_text(error))

    @router.error()
    async def unexpected(event: ErrorEvent) -> None:
        log.error("Unhandled error in update %s", event.update.update_id, exc_info=event.exception)
        try:
            await _tell(event, str(APOLOGY))
        except Exception:  # the apology itself failed (blocked, network): nothing more to do
            log.warning("Could not send the apology for update %s", event.update.update_id)

    return router


class InFlight(BaseMiddleware):
    """Tracks updates being handled, so shutdown can let a purchase finish before closing."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        task = asyncio.current_task()
        if task is None:
            return await handler(event, data)
        self._tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            self._tasks.discard(task)

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for running handlers, then cancel what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        await self.cancel()

    async def cancel(self) -> None:
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class CallbackIndex(BaseMiddleware):
    """Sends a callback query straight to the routers that can take it.

    aiogram tries a callback query on every router in turn: each one builds its middleware
    chain, checks its filters and tries its handlers, and each `SomeCb.filter()` parses the
    data. A tap on a button of the twelfth router paid for eleven of those walks, the largest
    single cost of a click. This outer middleware (on the Dispatcher) looks up the prefix of the
    callback data instead and propagates only to the routers that may match, in their order:
    those whose callback handlers all use `CallbackData` filters with that prefix, plus those
    that could take any data (a handler without such a filter, or sub-routers). What a router
    is offered is unchanged, since a `CallbackData` filter never matches another prefix.
    """

    def __init__(self, routers: Sequence[Router]) -> None:
        always: list[Router] = []
        by_prefix: dict[tuple[str, str], set[int]] = {}
        for position, router in enumerate(routers):
            prefixes = _callback_prefixes(router)
            if prefixes is None:
                always.append(router)
                continue
            for key in prefixes:
                by_prefix.setdefault(key, set()).add(position)
        self._always = tuple(always)
        self._separators = tuple(sorted({sep for sep, _ in by_prefix}))
        self._routes = {
            key: tuple(r for i, r in enumerate(routers) if i in positions or r in always)
            for key, positions in by_prefix.items()
        }

    def routers_for(self, data: str | None) -> tuple[Router, ...]:
        if data:
            for separator in self._separators:
                routers = self._routes.get((separator, data.split(separator, 1)[0]))
                if routers is not None:
                    return routers
        return self._always

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, CallbackQuery):
            return await handler(event, data)
        for router in self.routers_for(event.data):
            response = await router.propagate_event("callback_query", event, **data)
            if response is not UNHANDLED:
                return response
        return UNHANDLED


def _callback_prefixes(router: Router) -> set[tuple[str, str]] | None:
    """(separator, prefix) of every callback handler of `router`, or None when it may take
    other data: a handler without a `CallbackData` filter, or sub-routers."""
    if router.sub_routers:
        return None
    prefixes: set[tuple[str, str]] = set()
    for handler in router.callback_query.handlers:
        found = [
            f.callback.callback_data
            for f in handler.filters or []
            if isinstance(f.callback, CallbackQueryFilter)
        ]
        if not found:
            return None
        prefixes.update((factory.__separator__, factory.__prefix__) for factory in found)
    return prefixes


def index_callbacks(root: Router) -> None:
    """Route callback queries under `root` through a `CallbackIndex` (after every router is
    included; `root` itself must have no callback handlers, which the index would skip)."""
    if root.callback_query.handlers:
        raise ValueError("index_callbacks needs a root router without callback handlers")
    root.callback_query.outer_middleware(CallbackIndex(root.sub_routers))
