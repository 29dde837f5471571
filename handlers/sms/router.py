"""Send SMS: recipients -> text -> confirm -> live delivery statuses. FSM only for the typing."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from handlers.callbacks import MenuCb, SmsCb
from handlers.sms import screens
from handlers.ui import answer, back_to_menu, show
from shop.i18n import _
from shop.models import User
from shop.money import Currency
from shop.phones import Recipient, parse_recipients
from shop.services.sms import SmsAlreadySending, SmsNotSent, SmsSent, SmsService

MAX_RECIPIENTS = 100


class SmsForm(StatesGroup):
    recipients = State()
    text = State()


def build_sms_router() -> Router:
    router = Router(name="sms")

    async def begin(state: FSMContext) -> None:
        await state.clear()
        await state.set_state(SmsForm.recipients)

    @router.message(Command("sms"))
    async def sms_command(message: Message, state: FSMContext, sms: SmsService | None) -> None:
        if sms is None:
            await message.answer(str(screens.NOT_OFFERED))
            return
        await begin(state)
        await message.answer(
            screens.sms_prompt_recipients(), reply_markup=screens.sms_cancel_keyboard()
        )

    @router.callback_query(MenuCb.filter(F.to == "sms"))
    async def sms_menu(callback: CallbackQuery, state: FSMContext, sms: SmsService | None) -> None:
        if sms is None:
            await answer(callback, str(screens.NOT_OFFERED), alert=True)
            return
        await answer(callback)
        await begin(state)
        await show(callback, screens.sms_prompt_recipients(), screens.sms_cancel_keyboard())

    @router.message(SmsForm.recipients, F.text, ~F.text.startswith("/"))
    async def recipients(message: Message, state: FSMContext, sms: SmsService) -> None:
        parsed = parse_recipients(message.text or "", limit=MAX_RECIPIENTS)
        if parsed.invalid:
            await message.answer(
                screens.sms_invalid([(i.raw, i.reason) for i in parsed.invalid]),
                reply_markup=screens.sms_cancel_keyboard(),
            )
            return
        if parsed.too_many:
            await message.answer(
                _("At most {count} recipients per SMS. Please send a shorter list.").format(
                    count=MAX_RECIPIENTS
                ),
                reply_markup=screens.sms_cancel_keyboard(),
            )
            return
        if not parsed.valid:
            await message.answer(
                screens.sms_prompt_recipients(), reply_markup=screens.sms_cancel_keyboard()
            )
            return
        await state.update_data(recipients=[[r.digits, r.region] for r in parsed.valid])
        await state.set_state(SmsForm.text)
        await message.answer(
            screens.sms_prompt_text(len(parsed.valid), sms.sender),
            reply_markup=screens.sms_cancel_keyboard(),
        )

    @router.message(SmsForm.text, F.text, ~F.text.startswith("/"))
    async def text(
        message: Message, state: FSMContext, user: User, sms: SmsService, currency: Currency
    ) -> None:
        data = await state.get_data()
        recipients = [Recipient(digits, region) for digits, region in data.get("recipients", [])]
        draft = await sms.draft(user.id, recipients, message.text or "")
        await state.clear()
        await message.answer(
            screens.sms_confirm_text(draft.send, draft.messages, user.balance, currency),
            reply_markup=screens.sms_confirm_keyboard(
                draft.send.id,
                user.balance >= draft.send.total_price,
                currency.format(draft.send.total_price),
            ),
        )

    @router.message(SmsForm.recipients)
    @router.message(SmsForm.text)
    async def not_text(message: Message) -> None:
        await message.answer(
            _("Please send text, or tap Cancel."), reply_markup=screens.sms_cancel_keyboard()
        )

    @router.callback_query(SmsCb.filter(F.act == "cancel"))
    async def cancel(callback: CallbackQuery, state: FSMContext) -> None:
        await state.clear()
        await answer(callback, _("Cancelled."))
        await show(callback, _("SMS cancelled. Nothing was charged."), back_to_menu())

    @router.callback_query(SmsCb.filter(F.act == "send"))
    async def send(
        callback: CallbackQuery,
        callback_data: SmsCb,
        user: User,
        sms: SmsService,
        currency: Currency,
    ) -> None:
        await sms.view(user.id, callback_data.sid)  # someone else's: not found
        await answer(callback, _("✉️ Sending…"))
        message_id = callback.message.message_id if callback.message else None
        outcome = await sms.send(user.id, callback_data.sid, callback.from_user.id, message_id)
        match outcome:
            case SmsSent(view=view):
                text, markup = screens.sms_status(view.send, view.messages, currency)
                await show(callback, text, markup)
            case SmsNotSent():
                await show(callback, screens.sms_not_sent(outcome, currency), back_to_menu())
            case SmsAlreadySending():
                pass  # a second tap: the first one is sending

    @router.callback_query(SmsCb.filter(F.act == "show"))
    async def status(
        callback: CallbackQuery,
        callback_data: SmsCb,
        user: User,
        sms: SmsService,
        currency: Currency,
    ) -> None:
        view = await sms.view(user.id, callback_data.sid)
        await answer(callback)
        text, markup = screens.sms_status(view.send, view.messages, currency)
        await show(callback, text, markup)

    return router
