"""The ban guard: every update from a banned user stops here.

A banned user is told once ("You can't use this bot.") the first time they show up after the
ban, and then hears nothing: messages get no answer, callbacks are answered silently (so the
button stops spinning) and nothing reaches a handler, so they cannot buy or start a top-up.
Stars pre-checkout queries are not guarded here: the top-up router declines a banned user's
payment itself, with its own message. Three things still pass: a `successful_payment` (Telegram
has taken the money already, so it must be credited), a `refunded_payment` (Telegram gave the
stars back, so the credit must be taken back) and anything from an admin (admins cannot be
banned).
Live orders of a banned user keep running: codes and refunds come from jobs, not updates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TgUser

from handlers.ui import answer
from shop.i18n import _
from shop.models import User
from shop.services.people import PeopleService

log = logging.getLogger(__name__)


class BanGuard(BaseMiddleware):
    """Register after the user middleware, which loads `user` (and sets the language)."""

    def __init__(self, admin_ids: Iterable[int], people: PeopleService) -> None:
        self.admin_ids = frozenset(admin_ids)
        self.people = people

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        sender: TgUser | None = data.get("event_from_user")
        people = self.people
        if sender is None or sender.id in self.admin_ids:
            return await handler(event, data)
        user: User | None = data.get("user")  # read fresh for every update
        banned = user.is_banned if user is not None else await people.is_banned(sender.id)
        if not banned:
            return await handler(event, data)
        if isinstance(event, Message) and (
            event.successful_payment is not None or event.refunded_payment is not None
        ):
            return await handler(event, data)  # Telegram moved money: it must be accounted
        if isinstance(event, CallbackQuery):
            await answer(event)
        if await people.claim_ban_notice(sender.id):
            bot: Bot | None = data.get("bot")
            if bot is not None:
                try:
                    await bot.send_message(sender.id, _("You can't use this bot."))
                except TelegramAPIError as exc:
                    log.info("Ban notice to %s not delivered: %s", sender.id, exc.message)
        return None
