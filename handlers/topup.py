"""Top-ups (amount, method, Telegram Stars invoice and payment, Crypto Pay link), promo codes,
referrals, and the admin commands that go with them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Protocol

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)

from handlers.callbacks import MenuCb, TopupAmountCb, TopupPayCb, WalletCb
from handlers.common import answer, show
from handlers.keyboards import button
from handlers.render import esc
from shop.errors import AppError, InvalidInput
from shop.i18n import _, i18n, locale_of
from shop.models import User
from shop.money import Currency
from shop.numbers import parse_uint
from shop.ports import ShopSettings
from shop.services.promos import PromoService, parse_expiry
from shop.services.topups import (
    DUPLICATE,
    REFUNDED,
    XTR,
    AdminStarsRefund,
    CheckoutError,
    RefundAnswer,
    StarsRefundOutcome,
    TopupService,
)

log = logging.getLogger(__name__)

REF_RE = re.compile(r"^ref_([0-9]{1,15})$")
MAX_PROMO_USES = 1_000_000

TOPUP_ADMIN_COMMANDS = {
    "refundstars": "<charge_id> — refund a Telegram Stars top-up",
    "newpromo": "<code> <amount> <uses> [7d|YYYY-MM-DD] — create a promo code",
    "setmintopup": "<amount> — minimum top-up",
    "setstarsrate": "<rate> — shop currency per star",
}


class TopupForm(StatesGroup):
    amount = State()


class TelegramStars:
    """The Stars side of the Bot API for the top-up service (`StarsGateway`)."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def refund(self, user_id: int, charge_id: str) -> tuple[RefundAnswer, str]:
        try:
            await self.bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=charge_id
            )
        except TelegramBadRequest as exc:
            if "CHARGE_ALREADY_REFUNDED" in exc.message:
                return RefundAnswer.ALREADY_REFUNDED, exc.message
            return RefundAnswer.REFUSED, exc.message
        except TelegramAPIError as exc:  # network, 5xx, flood wait: worth asking again
            return RefundAnswer.NO_ANSWER, f"{type(exc).__name__}: {exc.message}"
        return RefundAnswer.REFUNDED, ""


class CryptoInvoiceLike(Protocol):
    topup_id: int
    pay_url: str


class CryptoLike(Protocol):
    async def create(self, user_id: int, amount: int) -> CryptoInvoiceLike: ...


# -- texts and keyboards ----------------------------------------------------------------------


async def _amount_screen(
    topups: TopupService, currency: Currency
) -> tuple[str, InlineKeyboardMarkup]:
    limits = await topups.limits()
    text = _("➕ <b>Top up your balance</b>\n\nChoose an amount ({min} to {max}):").format(
        min=currency.format(limits.min), max=currency.format(limits.max)
    )
    presets = [button(currency.format(p), TopupAmountCb(amount=p)) for p in limits.presets]
    rows = [presets[i : i + 2] for i in range(0, len(presets), 2)]
    rows.append([button(_("✏️ Other amount"), WalletCb(act="other"))])
    rows.append([button(_("◀ Balance"), MenuCb(to="balance"))])
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def _methods_screen(
    amount: int, currency: Currency, topups: TopupService, crypto: CryptoLike | None
) -> tuple[str, InlineKeyboardMarkup]:
    rows: list[list[InlineKeyboardButton]] = []
    if topups.stars_enabled:
        rows.append([button(_("⭐ Telegram Stars"), TopupPayCb(m="stars", amount=amount))])
    if crypto is not None:
        rows.append([button(_("💎 Crypto"), TopupPayCb(m="crypto", amount=amount))])
    rows.append([button(_("◀ Back"), WalletCb(act="topup"))])
    if len(rows) == 1:
        text = _("No payment method is available right now. Please try again later.")
    else:
        text = _("Top up <b>{amount}</b>. How would you like to pay?").format(
            amount=currency.format(amount)
        )
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def _amount_prompt(topups_limits: tuple[int, int], currency: Currency) -> str:
    low, high = topups_limits
    return _("✏️ Send the amount in {code}, from {min} to {max} (for example 12.50).").format(
        code=currency.code, min=currency.format(low), max=currency.format(high)
    )


def _cancel_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("✖ Cancel"), MenuCb(to="balance"))]])


def _checkout_error(error: CheckoutError) -> str:
    texts = {
        CheckoutError.UNKNOWN_USER: _("Please send /start first."),
        CheckoutError.BANNED: _("Your account is blocked from payments."),
        CheckoutError.BAD_PAYLOAD: _("This invoice is not valid. Please start a new top-up."),
        CheckoutError.NOT_PENDING: _("This invoice was already paid or closed."),
        CheckoutError.WRONG_AMOUNT: _("The invoice amount does not match. Please start again."),
        CheckoutError.EXPIRED: _("This invoice has expired. Please start a new top-up."),
    }
    return texts[error]


async def referrals_text(
    bot: Bot, user: User, topups: TopupService, currency: Currency, settings: ShopSettings
) -> str:
    me = await bot.me()
    link = f"https://t.me/{me.username}?start=ref_{user.id}"
    invited, earned = await topups.referral_stats(user.id)
    lines = [_("👥 <b>Referrals</b>"), ""]
    if settings.referral_percent > 0:
        lines.append(
            _("Invite friends and earn {percent}% of every top-up they make.").format(
                percent=settings.referral_percent.normalize()
            )
        )
    else:
        lines.append(_("The referral programme is paused."))
    lines += [
        "",
        _("Your link: {link}").format(link=esc(link)),
        _("Invited: <b>{count}</b>").format(count=invited),
        _("Earned: <b>{amount}</b>").format(amount=currency.format(earned)),
    ]
    return "\n".join(lines)


def _referrals_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("◀ Balance"), MenuCb(to="balance"))]])


def _stars_refund_text(result: AdminStarsRefund, currency: Currency) -> str:
    """What /refundstars tells the admin."""
    charge_id, outcome = esc(result.charge_id), result.outcome
    if outcome is StarsRefundOutcome.UNCREDITED:
        charge = result.charge
        assert charge is not None
        if charge.status == REFUNDED:
            return _(
                "Refunded {stars} ⭐ of payment {charge} to user {user}; it was never "
                "credited, so no wallet changed."
            ).format(stars=charge.stars, charge=charge_id, user=charge.user_id)
        return _(
            "Telegram did not refund payment {charge} ({error}). Nothing was "
            "credited for it; try /refundstars {charge} again later."
        ).format(charge=charge_id, error=esc(charge.error or ""))
    if outcome is StarsRefundOutcome.ALREADY_REFUNDED:
        return _(
            "Telegram says payment {charge} was refunded already; the wallet debit stands."
        ).format(charge=charge_id)
    if outcome is StarsRefundOutcome.REFUSED:
        return _(
            "Telegram refused the refund ({error}). The wallet debit was reversed; "
            "nothing changed."
        ).format(error=esc(result.detail))
    if outcome is StarsRefundOutcome.NO_ANSWER:
        return _(
            "Telegram did not answer ({error}). The wallet was debited; send "
            "/refundstars {charge} again to retry the Stars refund."
        ).format(error=esc(result.detail), charge=charge_id)
    if outcome is StarsRefundOutcome.DEBITED_BEFORE:
        return _("Stars refund of {charge} completed (the wallet was debited before).").format(
            charge=charge_id
        )
    refund = result.refund
    assert refund is not None
    lines = [
        _("Refunded {stars} ⭐ to user {user}; {amount} debited, balance {balance}.").format(
            stars=esc(refund.topup.pay_amount),
            user=refund.topup.user_id,
            amount=currency.format(refund.amount),
            balance=currency.format(refund.balance),
        )
    ]
    if refund.bonus_taken:
        lines.append(
            _("The referral bonus of {amount} was taken back from user {user}.").format(
                amount=currency.format(refund.bonus_taken), user=refund.inviter_id
            )
        )
    if refund.bonus_kept:
        lines.append(
            _(
                "User {user} has spent the referral bonus of {amount} already; it stays "
                "with them."
            ).format(amount=currency.format(refund.bonus_kept), user=refund.inviter_id)
        )
    return "\n".join(lines)


# -- routers ----------------------------------------------------------------------------------


def build_referral_router() -> Router:
    """`/start ref_<id>`: link a new user to the inviter, then let /start show the menu."""
    router = Router(name="referral")

    @router.message(CommandStart(deep_link=True, magic=F.args.regexp(REF_RE)))
    async def start_with_referral(
        message: Message, command: CommandObject, user: User, topups: TopupService
    ) -> None:
        match = REF_RE.match(command.args or "")
        if match is not None:
            inviter_id = int(match.group(1))
            if await topups.link_referrer(user.id, inviter_id):
                log.info("User %s was invited by %s", user.id, inviter_id)
        raise SkipHandler()

    return router


def build_topup_router() -> Router:
    router = Router(name="topup")

    @router.message(Command("topup"))
    async def topup_command(
        message: Message, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.clear()
        text, markup = await _amount_screen(topups, currency)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(WalletCb.filter(F.act == "topup"))
    async def topup_menu(
        callback: CallbackQuery, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.clear()
        await answer(callback)
        text, markup = await _amount_screen(topups, currency)
        await show(callback, text, markup)

    @router.callback_query(WalletCb.filter(F.act == "other"))
    async def other_amount(
        callback: CallbackQuery, topups: TopupService, currency: Currency, state: FSMContext
    ) -> None:
        await state.set_state(TopupForm.amount)
        await answer(callback)
        limits = await topups.limits()
        await show(
            callback, _amount_prompt((limits.min, limits.max), currency), _cancel_keyboard()
        )

    @router.message(StateFilter(TopupForm.amount), F.text, ~F.text.startswith("/"))
    async def typed_amount(
        message: Message,
        topups: TopupService,
        currency: Currency,
        settings: ShopSettings,
        crypto: CryptoLike | None,
        state: FSMContext,
    ) -> None:
        try:
            amount = await topups.parse_amount(message.text or "")
        except InvalidInput as exc:  # stay in the form: the user may type again
            await message.answer(esc(exc.user_message), reply_markup=_cancel_keyboard())
            return
        await state.clear()
        text, markup = _methods_screen(amount, currency, topups, crypto)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(TopupAmountCb.filter())
    async def preset_amount(
        callback: CallbackQuery,
        callback_data: TopupAmountCb,
        topups: TopupService,
        currency: Currency,
        settings: ShopSettings,
        crypto: CryptoLike | None,
    ) -> None:
        amount = await topups.check_amount(callback_data.amount)
        await answer(callback)
        text, markup = _methods_screen(amount, currency, topups, crypto)
        await show(callback, text, markup)

    @router.callback_query(TopupPayCb.filter(F.m == "stars"))
    async def pay_stars(
        callback: CallbackQuery,
        callback_data: TopupPayCb,
        user: User,
        bot: Bot,
        topups: TopupService,
        currency: Currency,
        settings: ShopSettings,
    ) -> None:
        invoice = await topups.open_stars(user.id, callback_data.amount)
        await answer(callback)
        amount = currency.format(invoice.topup.amount)
        await bot.send_invoice(
            chat_id=user.id,
            title=_("Top up {amount}").format(amount=amount),
            description=_(
                "{stars} ⭐ for {amount} on your balance. Valid for {minutes} min."
            ).format(
                stars=invoice.stars, amount=amount, minutes=settings.invoice_ttl_seconds // 60
            ),
            payload=invoice.payload,
            currency=XTR,
            prices=[
                LabeledPrice(
                    label=_("Top up {amount}").format(amount=amount), amount=invoice.stars
                )
            ],
        )

    @router.callback_query(TopupPayCb.filter(F.m == "crypto"))
    async def pay_crypto(
        callback: CallbackQuery,
        callback_data: TopupPayCb,
        user: User,
        topups: TopupService,
        currency: Currency,
        crypto: CryptoLike | None,
    ) -> None:
        if crypto is None:
            raise AppError(_("Crypto payments are not available."))
        amount = await topups.check_amount(callback_data.amount)
        await answer(callback)
        created = await crypto.create(user.id, amount)
        markup = InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=_("Pay in @CryptoBot"), url=created.pay_url)],
                [button(_("◀ Balance"), MenuCb(to="balance"))],
            ]
        )
        await show(
            callback,
            _(
                "💎 Top up <b>{amount}</b> with crypto: tap the button to pay in @CryptoBot. "
                "Your balance is credited as soon as the payment arrives."
            ).format(amount=currency.format(amount)),
            markup,
        )

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery, topups: TopupService) -> None:
        # Telegram waits 10 s for this answer: two reads, no upstream calls.
        try:
            error = await topups.check_checkout(
                query.from_user.id, query.invoice_payload, query.currency, query.total_amount
            )
        except Exception:
            log.exception("Pre-checkout %s could not be checked", query.id)
            await query.answer(ok=False, error_message=_("Please try again in a moment."))
            return
        if error is None:
            await query.answer(ok=True)
            return
        log.info("Pre-checkout %s refused: %s", query.id, error.value)
        user = await topups.users.get(query.from_user.id)
        with i18n.use_locale(locale_of(user)):
            text = _checkout_error(error)
        await query.answer(ok=False, error_message=text)

    @router.message(F.successful_payment)
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
        charge = result.charge
        if result.credited:
            await message.answer(
                _("✅ +{amount} credited. Balance: <b>{balance}</b>").format(
                    amount=currency.format(result.credited),
                    balance=currency.format(result.balance),
                )
            )
        elif charge.status == "credited":
            log.info("Stars payment %s credited before", charge.charge_id)
            await message.answer(
                _("This payment was credited already. Balance: <b>{balance}</b>").format(
                    balance=currency.format(result.balance)
                )
            )
        elif result.replay and charge.status == REFUNDED:
            await message.answer(_("This payment was returned to you already."))
        elif charge.status == REFUNDED:
            if charge.reason == DUPLICATE:
                text = _(
                    "You paid this invoice twice. The second payment ({stars} ⭐) was "
                    "returned to you; your balance was credited once."
                )
            else:
                text = _(
                    "We could not match your payment of {stars} ⭐ to a top-up, so it was "
                    "returned to you."
                )
            await message.answer(text.format(stars=charge.stars))
        else:
            await message.answer(
                _(
                    "We could not use your payment of {stars} ⭐ (this invoice was paid "
                    "already, or it matches no top-up). It will be returned to you; the shop "
                    "owner has been told."
                ).format(stars=charge.stars)
            )

    @router.message(F.refunded_payment)
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
        if result.shortfall:
            text = _(
                "↩️ Telegram returned {stars} ⭐ of your top-up of {amount}: {debited} was "
                "taken back from your balance. Balance: <b>{balance}</b>"
            ).format(
                stars=result.stars,
                amount=currency.format(result.amount),
                debited=currency.format(result.debited),
                balance=currency.format(result.balance),
            )
        else:
            text = _(
                "↩️ Your top-up of {amount} was refunded: {stars} ⭐ returned, {amount} "
                "debited. Balance: <b>{balance}</b>"
            ).format(
                stars=result.stars,
                amount=currency.format(result.amount),
                balance=currency.format(result.balance),
            )
        await message.answer(text)

    @router.message(Command("promo"))
    async def promo(
        message: Message,
        command: CommandObject,
        user: User,
        promos: PromoService,
        currency: Currency,
    ) -> None:
        code = (command.args or "").strip()
        if not code or len(code.split()) != 1:
            raise InvalidInput(_("Usage: /promo <code>"))
        redeemed = await promos.redeem(user.id, code)
        await message.answer(
            _("🎁 Promo code {code}: +{amount} credited. Balance: <b>{balance}</b>").format(
                code=esc(redeemed.code),
                amount=currency.format(redeemed.amount),
                balance=currency.format(redeemed.balance),
            )
        )

    @router.message(Command("referrals"))
    async def referrals_command(
        message: Message,
        bot: Bot,
        user: User,
        topups: TopupService,
        currency: Currency,
        settings: ShopSettings,
    ) -> None:
        text = await referrals_text(bot, user, topups, currency, settings)
        await message.answer(text, reply_markup=_referrals_keyboard())

    @router.callback_query(WalletCb.filter(F.act == "refs"))
    async def referrals_menu(
        callback: CallbackQuery,
        bot: Bot,
        user: User,
        topups: TopupService,
        currency: Currency,
        settings: ShopSettings,
    ) -> None:
        await answer(callback)
        text = await referrals_text(bot, user, topups, currency, settings)
        await show(callback, text, _referrals_keyboard())

    return router


def build_topup_admin_router(admin_ids: Iterable[int]) -> Router:
    """Admin-only; anyone else falls through to "unknown command"."""
    router = Router(name="topup-admin")
    router.message.filter(F.from_user.id.in_(set(admin_ids)))

    @router.message(Command("refundstars"))
    async def refund_stars(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        parts = (command.args or "").split()
        if len(parts) != 1:
            raise InvalidInput(_("Usage: /refundstars <charge_id>"))
        admin_id = message.from_user.id if message.from_user else 0
        result = await topups.refund_stars(admin_id, parts[0])
        await message.answer(_stars_refund_text(result, currency))

    @router.message(Command("newpromo"))
    async def new_promo(
        message: Message, command: CommandObject, promos: PromoService, currency: Currency
    ) -> None:
        usage = _("Usage: /newpromo <code> <amount> <uses> [expiry: 7d or 2030-12-31]")
        parts = (command.args or "").split()
        if len(parts) not in (3, 4):
            raise InvalidInput(usage)
        code, amount_text, uses_text = parts[:3]
        try:
            amount = currency.parse(amount_text)
        except ValueError:
            raise InvalidInput(usage) from None
        uses = parse_uint(uses_text)
        if uses is None or not 0 < uses <= MAX_PROMO_USES:
            raise InvalidInput(usage)
        expires_at = None
        if len(parts) == 4:
            try:
                expires_at = parse_expiry(parts[3])
            except ValueError:
                raise InvalidInput(usage) from None
        admin_id = message.from_user.id if message.from_user else 0
        promo = await promos.create(admin_id, code, amount, uses, expires_at)
        expiry = (
            _("never expires")
            if promo.expires_at is None
            else _("expires {when} UTC").format(when=_utc(promo.expires_at))
        )
        await message.answer(
            _("Promo code {code}: {amount} × {uses} uses, {expiry}.").format(
                code=esc(promo.code),
                amount=currency.format(promo.amount),
                uses=promo.max_uses,
                expiry=expiry,
            )
        )

    @router.message(Command("setmintopup"))
    async def set_min_topup(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        usage = _("Usage: /setmintopup <amount>, e.g. /setmintopup 2.50")
        try:
            amount = currency.parse((command.args or "").strip())
        except ValueError:
            raise InvalidInput(usage) from None
        await topups.set_min(message.from_user.id if message.from_user else 0, amount)
        await message.answer(_("Minimum top-up: {amount}.").format(amount=currency.format(amount)))

    @router.message(Command("setstarsrate"))
    async def set_stars_rate(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        if not (command.args or "").strip():
            raise InvalidInput(_("Usage: /setstarsrate <rate>, e.g. /setstarsrate 0.013"))
        rate = await topups.set_stars_rate(
            message.from_user.id if message.from_user else 0, command.args or ""
        )
        await message.answer(
            _("Stars rate: 1 ⭐ = {rate} {code}.").format(rate=rate, code=currency.code)
        )

    return router


def _utc(timestamp: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")
