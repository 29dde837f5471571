"""Top-ups: the amount (a preset or typed), the payment method, the Telegram Stars invoice or
the Crypto Pay link; then Telegram's payment updates (pre-checkout, successful and refunded
payments)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import Command, MagicData, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from handlers.callbacks import TopupAmountCb, TopupPayCb, WalletCb
from handlers.filters import TypedText
from handlers.topup import screens
from handlers.ui import answer, esc, show
from shop.errors import AppError, InvalidInput
from shop.i18n import _, i18n, locale_of
from shop.models import User
from shop.money import Currency
from shop.services.crypto import CryptoTopups
from shop.services.topups import XTR, TopupService
from shop.services.users import UserService

log = logging.getLogger(__name__)


class TopupForm(StatesGroup):
    amount = State()


def build_topup_router() -> Router:
    router = Router(name="topup")

    @router.message(Command("topup"))
    async def topup_command(
        message: Message, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.clear()
        text, markup = screens.amount_screen(await topups.limits(), currency)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(WalletCb.filter(F.act == "topup"))
    async def topup_menu(
        callback: CallbackQuery, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.clear()
        await answer(callback)
        text, markup = screens.amount_screen(await topups.limits(), currency)
        await show(callback, text, markup)

    @router.callback_query(WalletCb.filter(F.act == "other"))
    async def other_amount(
        callback: CallbackQuery, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.set_state(TopupForm.amount)
        await answer(callback)
        limits = await topups.limits()
        await show(callback, screens.amount_prompt(limits, currency), screens.cancel_keyboard())

    @router.message(StateFilter(TopupForm.amount), TypedText())
    async def typed_amount(
        message: Message,
        topups: TopupService,
        currency: Currency,
        crypto: CryptoTopups | None,
        state: FSMContext,
    ) -> None:
        try:
            amount = await topups.parse_amount(message.text or "")
        except InvalidInput as exc:  # stay in the form: the user may type again
            await message.answer(esc(exc.user_message), reply_markup=screens.cancel_keyboard())
            return
        await state.clear()
        stars, has_crypto = topups.stars_enabled, crypto is not None
        text, markup = screens.methods_screen(amount, currency, stars, has_crypto)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(TopupAmountCb.filter())
    async def preset_amount(
        callback: CallbackQuery,
        callback_data: TopupAmountCb,
        topups: TopupService,
        currency: Currency,
        crypto: CryptoTopups | None,
    ) -> None:
        amount = await topups.check_amount(callback_data.amount)
        await answer(callback)
        stars, has_crypto = topups.stars_enabled, crypto is not None
        await show(callback, *screens.methods_screen(amount, currency, stars, has_crypto))

    @router.callback_query(TopupPayCb.filter(F.m == "stars"))
    async def pay_stars(
        callback: CallbackQuery,
        callback_data: TopupPayCb,
        user: User,
        bot: Bot,
        topups: TopupService,
        currency: Currency,
    ) -> None:
        invoice = await topups.open_stars(user.id, callback_data.amount)
        await answer(callback)
        amount = currency.format(invoice.topup.amount)
        minutes = topups.invoice_ttl_seconds // 60
        await bot.send_invoice(
            chat_id=user.id,
            title=screens.invoice_title(amount),
            description=screens.invoice_description(invoice.stars, amount, minutes),
            payload=invoice.payload,
            currency=XTR,
            prices=[LabeledPrice(label=screens.invoice_title(amount), amount=invoice.stars)],
        )

    @router.callback_query(TopupPayCb.filter(F.m == "crypto"))
    async def pay_crypto(
        callback: CallbackQuery,
        callback_data: TopupPayCb,
        user: User,
        topups: TopupService,
        currency: Currency,
        crypto: CryptoTopups | None,
    ) -> None:
        if crypto is None:
            raise AppError(_("Crypto payments are not available."))
        amount = await topups.check_amount(callback_data.amount)
        await answer(callback)
        created = await crypto.create(user.id, amount)
        await show(callback, *screens.crypto_screen(amount, created.pay_url, currency))

    return router


def build_payment_router() -> Router:
    """Telegram's payment updates: the pre-checkout query and the payment messages."""
    router = Router(name="payments")

    @router.pre_checkout_query()
    async def pre_checkout(
        query: PreCheckoutQuery, topups: TopupService, users: UserService
    ) -> None:
        # Telegram waits 10 s for this answer: two reads, no upstream calls.
        try:
            error = await topups.check_checkout(
                query.from_user.id, query.invoice_payload, query.currency, query.total_amount
            )
        except Exception:
            log.exception("Pre-checkout %s could not be checked", query.id)
            await query.answer(ok=False, error_message=screens.checkout_retry())
            return
        if error is None:
            await query.answer(ok=True)
            return
        log.info("Pre-checkout %s refused: %s", query.id, error.value)
        user = await users.get(query.from_user.id)
        with i18n.use_locale(locale_of(user)):
            text = screens.checkout_error(error)
        await query.answer(ok=False, error_message=text)

    @router.message(MagicData(F.event.successful_payment))
    async def successful_payment(
        message: Message, user: User, topups: TopupService, currency: Currency
    ) -> None:
        payment = message.successful_payment
        assert payment is not None
        result = await topups.pay_stars(
            user.id,
            payment.invoice_payload,
            payment.telegram_payment_charge_id,
            payment.currency,
            payment.total_amount,
        )
        if not result.credited and result.charge.status == "credited":
            log.info("Stars payment %s credited before", result.charge.charge_id)
        await message.answer(screens.payment_text(result, currency))

    @router.message(MagicData(F.event.refunded_payment))
    async def refunded_payment(message: Message, topups: TopupService, currency: Currency) -> None:
        refund = message.refunded_payment
        assert refund is not None
        user_id = message.from_user.id if message.from_user else message.chat.id
        result = await topups.telegram_refunded(
            user_id, refund.telegram_payment_charge_id, refund.total_amount
        )
        if result.outcome != "debited":
            log.info("refunded_payment %s: %s", refund.telegram_payment_charge_id, result.outcome)
            return
        await message.answer(screens.telegram_refund_text(result, currency))

    return router
