"""Small helpers every router uses: the user middleware, editing in place, the error router."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionTypeFilter, Filter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import (
    CallbackQuery,
    ErrorEvent,
    InaccessibleMessage,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.types import User as TgUser

from bot.errors import AppError
from bot.i18n import __, i18n, locale_of, user_text
from bot.services.users import UserService

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


async def show(
    callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None
) -> Message | None:
    """Replace the clicked message's content (one message per flow, no flooding)."""
    message = callback.message
    if message is None or isinstance(message, InaccessibleMessage):
        if callback.from_user is None or callback.bot is None:
            return None
        return await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
    try:
        edited = await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" in exc.message:
            return message
        raise
    return edited if isinstance(edited, Message) else message


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


class CallbackPrefixes(Filter):
    """Router-level filter: the callback data starts with a prefix one of its handlers takes.

    aiogram tries a callback query on every handler of every router in turn, and each
    `SomeCb.filter()` parses the data (raising on a foreign prefix): a tap on a button of the
    last router paid for some forty failed checks. With this filter in front, a router whose
    handlers cannot match is skipped after one set lookup.
    """

    def __init__(self, prefixes: dict[str, frozenset[str]]) -> None:
        self.prefixes = prefixes  # separator -> prefixes

    async def __call__(self, query: CallbackQuery) -> bool:
        data = query.data
        if not data:
            return False
        return any(data.split(sep, 1)[0] in names for sep, names in self.prefixes.items())


def index_callbacks(root: Router) -> None:
    """Give each router whose callback handlers all use `CallbackData` filters a
    `CallbackPrefixes` filter, checked before its other router-level filters. What it lets
    through is unchanged (a `CallbackData` filter never matches another prefix); routers
    with a handler for any data (the fallback) or with sub-routers are left alone."""
    for router in root.sub_routers:
        observer = router.callback_query
        if router.sub_routers or not observer.handlers:
            continue
        prefixes: dict[str, set[str]] = {}
        for handler in observer.handlers:
            found = [
                f.callback.callback_data
                for f in handler.filters or []
                if isinstance(f.callback, CallbackQueryFilter)
            ]
            if not found:
                break
            for factory in found:
                prefixes.setdefault(factory.__separator__, set()).add(factory.__prefix__)
        else:
            observer.filter(CallbackPrefixes({k: frozenset(v) for k, v in prefixes.items()}))
            filters = observer._handler.filters  # aiogram appends; the cheap check goes first
            if filters:
                filters.insert(0, filters.pop())
