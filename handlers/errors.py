"""The one place errors become messages: an `AppError` is told to the user (an alert on a
button, a reply to a message); anything else is logged with its stack and the user gets a
short apology."""

from __future__ import annotations

import html
import logging

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from shop.errors import AppError
from shop.i18n import __, user_text

log = logging.getLogger(__name__)

APOLOGY = __("Sorry, something went wrong on our side. Please try again.")


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
