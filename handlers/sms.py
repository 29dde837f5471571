"""Send SMS: recipients -> text -> confirm -> live delivery statuses. FSM only for the typing."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from handlers import keyboards, render
from handlers.callbacks import MenuCb, SmsCb
from handlers.common import answer, show
from shop.errors import AppError, InvalidState
from shop.i18n import _, __, user_text
from shop.models import User
from shop.money import Currency
from shop.phones import Recipient, parse_recipients
from shop.services.sms import SmsSendFailed, SmsService

MAX_RECIPIENTS = 100
NOT_OFFERED = __("Sending SMS is not available in this shop.")


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
            await message.answer(str(NOT_OFFERED))
            return
        await begin(state)
        await message.answer(render.sms_prompt_recipients(), reply_markup=keyboards.sms_cancel())

    @router.callback_query(MenuCb.filter(F.to == "sms"))
    async def sms_menu(callback: CallbackQuery, state: FSMContext, sms: SmsService | None) -> None:
        if sms is None:
            await answer(callback, str(NOT_OFFERED), alert=True)
            return
        await answer(callback)
        await begin(state)
        await show(callback, render.sms_prompt_recipients(), keyboards.sms_cancel())

    @router.message(SmsForm.recipients, F.text, ~F.text.startswith("/"))
    async def recipients(message: Message, state: FSMContext, sms: SmsService) -> None:
        parsed = parse_recipients(message.text or "", limit=MAX_RECIPIENTS)
        if parsed.invalid:
            await message.answer(
                render.sms_invalid([(i.raw, i.reason) for i in parsed.invalid]),
                reply_markup=keyboards.sms_cancel(),
            )
            return
        if parsed.too_many:
            await message.answer(
                _("At most {count} recipients per SMS. Please send a shorter list.").format(
                    count=MAX_RECIPIENTS
                ),
                reply_markup=keyboards.sms_cancel(),
            )
            return
        if not parsed.valid:
            await message.answer(
                render.sms_prompt_recipients(), reply_markup=keyboards.sms_cancel()
            )
            return
        await state.update_data(recipients=[[r.digits, r.region] for r in parsed.valid])
        await state.set_state(SmsForm.text)
        await message.answer(
            render.sms_prompt_text(len(parsed.valid), sms.sender),
            reply_markup=keyboards.sms_cancel(),
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
            render.sms_confirm(draft.send, draft.messages, user.balance, currency),
            reply_markup=keyboards.sms_confirm(
                draft.send.id,
                user.balance >= draft.send.total_price,
                currency.format(draft.send.total_price),
            ),
        )

    @router.message(SmsForm.recipients)
    @router.message(SmsForm.text)
    async def not_text(message: Message) -> None:
        await message.answer(
            _("Please send text, or tap Cancel."), reply_markup=keyboards.sms_cancel()
        )

    @router.callback_query(SmsCb.filter(F.act == "cancel"))
    async def cancel(callback: CallbackQuery, state: FSMContext) -> None:
        await state.clear()
        await answer(callback, _("Cancelled."))
        await show(callback, _("SMS cancelled. Nothing was charged."), keyboards.back_to_menu())

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
        try:
            view = await sms.confirm(user.id, callback_data.sid, callback.from_user.id, message_id)
        except InvalidState:
            return  # a second tap: the first one is sending
        except SmsSendFailed as failed:
            refund = "\n\n" + _("{amount} is back on your balance.").format(
                amount=currency.format(failed.refunded)
            )
            await show(
                callback, f"❌ {render.esc(user_text(failed))}{refund}", keyboards.back_to_menu()
            )
            return
        except AppError as error:
            await show(callback, f"❌ {render.esc(user_text(error))}", keyboards.back_to_menu())
            return
        await show(
            callback,
            render.sms_status(view.send, view.messages, currency),
            keyboards.sms_status(view.send.id),
        )

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
        await show(
            callback,
            render.sms_status(view.send, view.messages, currency),
            keyboards.sms_status(view.send.id),
        )

    return router
