"""Small helpers every router uses: the user middleware, editing in place, the error router."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionTypeFilter
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
