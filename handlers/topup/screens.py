"""Screens of topping up: the amount, the payment method, the Stars invoice, the Crypto Pay
link, and what the customer is told about a Stars payment or refund."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import MenuCb, TopupAmountCb, TopupPayCb, WalletCb
from handlers.ui import Screen, button
from shop.i18n import _
from shop.money import Currency
from shop.services.topups import (
    DUPLICATE,
    REFUNDED,
    CheckoutError,
    Limits,
    StarsPayment,
    TelegramRefund,
)


def amount_screen(limits: Limits, currency: Currency) -> Screen:
    text = _("➕ <b>Top up your balance</b>\n\nChoose an amount ({min} to {max}):").format(
        min=currency.format(limits.min), max=currency.format(limits.max)
    )
    presets = [button(currency.format(p), TopupAmountCb(amount=p)) for p in limits.presets]
    rows = [presets[i : i + 2] for i in range(0, len(presets), 2)]
    rows.append([button(_("✏️ Other amount"), WalletCb(act="other"))])
    rows.append([button(_("◀ Balance"), MenuCb(to="balance"))])
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def methods_screen(amount: int, currency: Currency, stars: bool, crypto: bool) -> Screen:
    rows: list[list[InlineKeyboardButton]] = []
    if stars:
        rows.append([button(_("⭐ Telegram Stars"), TopupPayCb(m="stars", amount=amount))])
    if crypto:
        rows.append([button(_("💎 Crypto"), TopupPayCb(m="crypto", amount=amount))])
    rows.append([button(_("◀ Back"), WalletCb(act="topup"))])
    if len(rows) == 1:
        text = _("No payment method is available right now. Please try again later.")
    else:
        text = _("Top up <b>{amount}</b>. How would you like to pay?").format(
            amount=currency.format(amount)
        )
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


def amount_prompt(limits: Limits, currency: Currency) -> str:
    return _("✏️ Send the amount in {code}, from {min} to {max} (for example 12.50).").format(
        code=currency.code, min=currency.format(limits.min), max=currency.format(limits.max)
    )


def cancel_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("✖ Cancel"), MenuCb(to="balance"))]])


def invoice_title(amount: str) -> str:
    return _("Top up {amount}").format(amount=amount)


def invoice_description(stars: int, amount: str, minutes: int) -> str:
    return _("{stars} ⭐ for {amount} on your balance. Valid for {minutes} min.").format(
        stars=stars, amount=amount, minutes=minutes
    )


def crypto_screen(amount: int, pay_url: str, currency: Currency) -> Screen:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("Pay in @CryptoBot"), url=pay_url)],
            [button(_("◀ Balance"), MenuCb(to="balance"))],
        ]
    )
    text = _(
        "💎 Top up <b>{amount}</b> with crypto: tap the button to pay in @CryptoBot. "
        "Your balance is credited as soon as the payment arrives."
    ).format(amount=currency.format(amount))
    return text, markup


def checkout_error(error: CheckoutError) -> str:
    texts = {
        CheckoutError.UNKNOWN_USER: _("Please send /start first."),
        CheckoutError.BANNED: _("Your account is blocked from payments."),
        CheckoutError.BAD_PAYLOAD: _("This invoice is not valid. Please start a new top-up."),
        CheckoutError.NOT_PENDING: _("This invoice was already paid or closed."),
        CheckoutError.WRONG_AMOUNT: _("The invoice amount does not match. Please start again."),
        CheckoutError.EXPIRED: _("This invoice has expired. Please start a new top-up."),
    }
    return texts[error]


def checkout_retry() -> str:
    return _("Please try again in a moment.")


def payment_text(result: StarsPayment, currency: Currency) -> str:
    """What a successful_payment came to: credited now or before, returned, or to return."""
    charge = result.charge
    if result.credited:
        return _("✅ +{amount} credited. Balance: <b>{balance}</b>").format(
            amount=currency.format(result.credited),
            balance=currency.format(result.balance),
        )
    if charge.status == "credited":
        return _("This payment was credited already. Balance: <b>{balance}</b>").format(
            balance=currency.format(result.balance)
        )
    if result.replay and charge.status == REFUNDED:
        return _("This payment was returned to you already.")
    if charge.status == REFUNDED:
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
        return text.format(stars=charge.stars)
    return _(
        "We could not use your payment of {stars} ⭐ (this invoice was paid "
        "already, or it matches no top-up). It will be returned to you; the shop "
        "owner has been told."
    ).format(stars=charge.stars)


def telegram_refund_text(result: TelegramRefund, currency: Currency) -> str:
    """Telegram gave a top-up's stars back: what was taken back from the balance."""
    if result.shortfall:
        return _(
            "↩️ Telegram returned {stars} ⭐ of your top-up of {amount}: {debited} was "
            "taken back from your balance. Balance: <b>{balance}</b>"
        ).format(
            stars=result.stars,
            amount=currency.format(result.amount),
            debited=currency.format(result.debited),
            balance=currency.format(result.balance),
        )
    return _(
        "↩️ Your top-up of {amount} was refunded: {stars} ⭐ returned, {amount} "
        "debited. Balance: <b>{balance}</b>"
    ).format(
        stars=result.stars,
        amount=currency.format(result.amount),
        balance=currency.format(result.balance),
    )
