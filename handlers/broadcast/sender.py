"""The Telegram side of `shop.services.broadcast.BroadcastSender`: copies the admin's message
to one user, and edits the admin's progress message."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)

from handlers.broadcast.screens import progress_keyboard, progress_text
from shop.i18n import i18n, locale_of
from shop.models import Broadcast, DeliveryStatus
from shop.services.broadcast import FloodWait, Phase, Progress
from shop.services.users import UserService

log = logging.getLogger(__name__)

FINAL_ATTEMPTS = 5
MAX_FINAL_WAIT = 60


class TelegramBroadcaster:
    """Copies the admin's message to one user; edits the admin's progress message."""

    def __init__(self, bot: Bot, users: UserService) -> None:
        self.bot = bot
        self.users = users
        self._locales: dict[int, str] = {}

    async def copy(
        self, user_id: int, from_chat_id: int, message_id: int
    ) -> tuple[DeliveryStatus, str | None]:
        try:
            await self.bot.copy_message(
                chat_id=user_id, from_chat_id=from_chat_id, message_id=message_id
            )
        except TelegramRetryAfter as exc:
            raise FloodWait(exc.retry_after) from None
        except TelegramForbiddenError as exc:
            return DeliveryStatus.BLOCKED, exc.message
        except TelegramAPIError as exc:  # bad request, network: counted as failed, not retried
            return DeliveryStatus.FAILED, exc.message
        return DeliveryStatus.SENT, None

    async def progress(self, broadcast: Broadcast, progress: Progress, final: bool) -> None:
        if broadcast.progress_msg is None:
            return
        locale = await self._locale(broadcast.admin_id)
        with i18n.use_locale(locale):
            text = progress_text(progress)
            markup = progress_keyboard(broadcast.id) if progress.phase == Phase.RUNNING else None
        for _attempt in range(FINAL_ATTEMPTS if final else 1):
            try:
                await self.bot.edit_message_text(
                    text=text,
                    chat_id=broadcast.progress_chat,
                    message_id=broadcast.progress_msg,
                    reply_markup=markup,
                )
                return
            except TelegramRetryAfter as exc:
                if not final or exc.retry_after > MAX_FINAL_WAIT:
                    return  # the next edit will show newer figures anyway
                await asyncio.sleep(exc.retry_after)
            except TelegramBadRequest as exc:
                if "message is not modified" not in exc.message:
                    log.warning("Broadcast %s progress not shown: %s", broadcast.id, exc.message)
                return
            except TelegramAPIError as exc:
                log.warning("Broadcast %s progress not shown: %s", broadcast.id, exc.message)
                if not final:
                    return
                await asyncio.sleep(1)

    async def _locale(self, admin_id: int) -> str:
        if admin_id not in self._locales:
            self._locales[admin_id] = locale_of(await self.users.get(admin_id))
        return self._locales[admin_id]
