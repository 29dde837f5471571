"""/broadcast (admins only): the next message is the content, a preview and a confirm screen,
then one progress message edited in place, with a Cancel button, until the end.

`TelegramBroadcaster` is the Telegram side of `shop.services.broadcast.BroadcastSender`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiogram import Bot, F, Router
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
)
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import BroadcastCb
from handlers.common import answer, show
from shop.i18n import _, i18n, locale_of
from shop.models import Broadcast, DeliveryStatus
from shop.services.broadcast import BroadcastService, FloodWait, Phase, Progress
from shop.services.users import UserService

log = logging.getLogger(__name__)

# What copyMessage can copy and a broadcast may carry.
CONTENT_TYPES = frozenset(
    {"text", "photo", "document", "video", "animation", "audio", "voice", "video_note"}
)
FINAL_ATTEMPTS = 5
MAX_FINAL_WAIT = 60

BROADCAST_ADMIN_COMMANDS = {"broadcast": "message every active user"}


class BroadcastForm(StatesGroup):
    content = State()


# -- rendering ---------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return _("{s} s").format(s=seconds)
    if seconds < 3600:
        return _("{m} min {s} s").format(m=seconds // 60, s=seconds % 60)
    return _("{h} h {m} min").format(h=seconds // 3600, m=seconds % 3600 // 60)


def progress_text(progress: Progress) -> str:
    c = progress.counts
    head = {
        Phase.RUNNING: _("📣 <b>Broadcast #{id}</b>: sending…"),
        Phase.PAUSED: _(
            "⏸ <b>Broadcast #{id}</b>: paused while the bot restarts; it resumes by itself."
        ),
        Phase.DONE: _("✅ <b>Broadcast #{id}</b>: done."),
        Phase.CANCELLED: _("⛔ <b>Broadcast #{id}</b>: cancelled."),
    }[progress.phase].format(id=progress.broadcast_id)
    lines = [
        head,
        _(
            "Sent: {sent} · failed: {failed} · blocked: {blocked} · left: {left} · total: {total}"
        ).format(sent=c.sent, failed=c.failed, blocked=c.blocked, left=c.left, total=c.total),
    ]
    if progress.phase == Phase.RUNNING and progress.eta_seconds is not None:
        lines.append(
            _("Pace: {rate}/s · about {eta} to go").format(
                rate=f"{progress.rate:.1f}", eta=_duration(progress.eta_seconds)
            )
        )
    if c.blocked and progress.phase != Phase.RUNNING:
        lines.append(_("Users who blocked the bot are skipped from now on."))
    if c.unknown:
        lines.append(
            _(
                "{unknown} of the sent were being sent when the bot stopped: their outcome is "
                "unknown, so they count as sent and were not sent again."
            ).format(unknown=c.unknown)
        )
    return "\n".join(lines)


def _progress_keyboard(broadcast_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("⛔ Cancel broadcast"), callback_data=BroadcastCb(bid=broadcast_id, act="stop")
    )
    return builder.as_markup()


def _confirm_keyboard(broadcast_id: int, recipients: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📣 Send to {count}").format(count=recipients),
        callback_data=BroadcastCb(bid=broadcast_id, act="send"),
    )
    builder.button(text=_("✖️ Cancel"), callback_data=BroadcastCb(bid=broadcast_id, act="cancel"))
    builder.adjust(2)
    return builder.as_markup()


def _prompt_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✖️ Cancel"), callback_data=BroadcastCb(act="cancel"))
    return builder.as_markup()


# -- the Telegram side of the service ----------------------------------------------------------


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
            markup = _progress_keyboard(broadcast.id) if progress.phase == Phase.RUNNING else None
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


# -- the router --------------------------------------------------------------------------------


def build_broadcast_router(admin_ids: Iterable[int]) -> Router:
    router = Router(name="broadcast")
    ids = set(admin_ids)
    router.message.filter(F.from_user.id.in_(ids))
    router.callback_query.filter(F.from_user.id.in_(ids))

    @router.message(Command("broadcast"))
    async def broadcast_command(
        message: Message, state: FSMContext, broadcasts: BroadcastService
    ) -> None:
        await broadcasts.check_idle()
        await state.clear()
        await state.set_state(BroadcastForm.content)
        await message.answer(
            _(
                "📣 <b>Broadcast</b>\nSend me the message for every user: text, a photo or a "
                "document, formatted as you like. You will see a preview before anything is sent."
            ),
            reply_markup=_prompt_keyboard(),
        )

    @router.message(BroadcastForm.content, ~F.text.startswith("/"))
    async def content(
        message: Message, state: FSMContext, bot: Bot, broadcasts: BroadcastService
    ) -> None:
        if message.content_type not in CONTENT_TYPES or message.from_user is None:
            await message.answer(
                _("That cannot be broadcast. Send text, a photo or a document."),
                reply_markup=_prompt_keyboard(),
            )
            return
        await state.clear()
        chat_id = message.chat.id
        try:
            await bot.copy_message(
                chat_id=chat_id, from_chat_id=chat_id, message_id=message.message_id
            )
        except TelegramBadRequest as exc:
            log.info("Broadcast preview refused: %s", exc.message)
            await message.answer(_("Telegram cannot copy that message. Send /broadcast again."))
            return
        draft = await broadcasts.draft(message.from_user.id, chat_id, message.message_id)
        recipients = await broadcasts.recipients()
        await message.answer(
            _(
                "👆 This is how it will look.\nSend it to <b>{count}</b> users (everyone active "
                "who has not blocked the bot and is not banned)?"
            ).format(count=recipients),
            reply_markup=_confirm_keyboard(draft.id, recipients),
        )

    @router.callback_query(BroadcastCb.filter(F.act == "send"))
    async def send(
        callback: CallbackQuery, callback_data: BroadcastCb, broadcasts: BroadcastService
    ) -> None:
        message = callback.message
        if not isinstance(message, Message):
            await answer(callback, _("This screen is too old. Send /broadcast again."), True)
            return
        await broadcasts.start(callback_data.bid, callback.from_user.id, message.message_id)
        await answer(callback, _("Broadcast started."))

    @router.callback_query(BroadcastCb.filter(F.act == "cancel"))
    async def cancel(
        callback: CallbackQuery,
        callback_data: BroadcastCb,
        state: FSMContext,
        broadcasts: BroadcastService,
    ) -> None:
        if callback_data.bid == 0:
            await state.clear()
        else:
            await broadcasts.cancel(callback_data.bid, callback.from_user.id)
        await answer(callback)
        await show(callback, _("Broadcast cancelled. Nothing was sent."), None)

    @router.callback_query(BroadcastCb.filter(F.act == "stop"))
    async def stop(
        callback: CallbackQuery, callback_data: BroadcastCb, broadcasts: BroadcastService
    ) -> None:
        await broadcasts.cancel(callback_data.bid, callback.from_user.id)
        await answer(callback, _("Stopping the broadcast…"))

    return router
