"""Payments: refunding a customer's Telegram Stars payment, and creating promo codes."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from handlers.admin import screens
from handlers.admin.args import actor
from shop.errors import InvalidInput
from shop.i18n import _
from shop.money import Currency
from shop.numbers import parse_uint
from shop.services.promos import PromoService, parse_expiry
from shop.services.topups import TopupService

MAX_PROMO_USES = 1_000_000


def build_payments_router() -> Router:
    router = Router(name="admin-payments")

    @router.message(Command("refundstars"))
    async def refund_stars(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        parts = (command.args or "").split()
        if len(parts) != 1:
            raise InvalidInput(_("Usage: /refundstars <charge_id>"))
        result = await topups.refund_stars(actor(message), parts[0])
        await message.answer(screens.stars_refund_text(result, currency))

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
        promo = await promos.create(actor(message), code, amount, uses, expires_at)
        await message.answer(screens.promo_created(promo, currency))

    return router
