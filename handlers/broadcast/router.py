"""/broadcast (admins only): the next message is the content, a preview and a confirm screen,
then one progress message edited in place, with a Cancel button, until the end."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, MagicData, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from handlers.broadcast import screens
from handlers.callbacks import BroadcastCb
from handlers.ui import answer, show
from shop.i18n import _
from shop.services.broadcast import BroadcastService

log = logging.getLogger(__name__)

# What copyMessage can copy and a broadcast may carry.
CONTENT_TYPES = frozenset(
    {"text", "photo", "document", "video", "animation", "audio", "voice", "video_note"}
)


class BroadcastForm(StatesGroup):
    content = State()


def build_broadcast_router() -> Router:
    """Admins only: included in the admin router, whose filter lets no one else in."""
    router = Router(name="broadcast")

    @router.message(Command("broadcast"))
    async def broadcast_command(
        message: Message, state: FSMContext, broadcasts: BroadcastService
    ) -> None:
        await broadcasts.check_idle()
        await state.clear()
        await state.set_state(BroadcastForm.content)
        await message.answer(screens.prompt_text(), reply_markup=screens.prompt_keyboard())

    @router.message(StateFilter(BroadcastForm.content), MagicData(~F.event.text.startswith("/")))
    async def content(
        message: Message, state: FSMContext, bot: Bot, broadcasts: BroadcastService
    ) -> None:
        if message.content_type not in CONTENT_TYPES or message.from_user is None:
            await message.answer(
                _("That cannot be broadcast. Send text, a photo or a document."),
                reply_markup=screens.prompt_keyboard(),
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
            screens.preview_text(recipients),
            reply_markup=screens.confirm_keyboard(draft.id, recipients),
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
