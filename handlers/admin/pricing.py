"""Prices: the Pricing section of the panel, markups, SMS prices, the minimum top-up and the
Stars rate."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.args import actor, amount, split_args
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.errors import InvalidInput
from shop.i18n import _
from shop.money import Currency
from shop.services.audit import AuditService
from shop.services.catalog import CatalogService
from shop.services.markups import MarkupService
from shop.services.sms import SmsService
from shop.services.topups import TopupService


def build_pricing_router() -> Router:
    router = Router(name="admin-pricing")

    @router.callback_query(AdminCb.filter(F.to == "pricing"))
    async def pricing_section(
        callback: CallbackQuery, markups: MarkupService, currency: Currency
    ) -> None:
        await answer(callback)
        text = screens.pricing(await markups.pricing_view(), currency)
        await show(callback, text, screens.back_keyboard())

    @router.message(Command("setmarkup"))
    async def set_markup(
        message: Message, command: CommandObject, catalog: CatalogService, markups: MarkupService
    ) -> None:
        usage = _("/setmarkup <percent> [provider] [service], e.g. /setmarkup 25 smspool WhatsApp")
        parts = split_args(command, 1, 3, usage)
        try:
            percent = Decimal(parts[0].rstrip("%"))
        except InvalidOperation:
            raise InvalidInput(_("Bad percent. Usage: {usage}").format(usage=usage)) from None
        if not percent.is_finite() or percent < 0 or percent > 1000:
            raise InvalidInput(_("The markup must be between 0 and 1000 percent."))
        provider = parts[1].lower() if len(parts) > 1 else ""
        accounts = {route.account for route in catalog.route_infos.values()}
        if provider in ("*", "all", "any"):
            provider = ""
        if provider and provider not in accounts:
            raise InvalidInput(
                _("Unknown provider. Use one of: {names}.").format(
                    names=", ".join(sorted(accounts))
                )
            )
        service_id, service_name = 0, ""
        if len(parts) > 2:
            service = await catalog.find_service(parts[2])
            if service is None:
                raise InvalidInput(_("Unknown service “{name}”.").format(name=parts[2]))
            service_id, service_name = service.id, service.name
        await markups.set_markup(actor(message), percent, provider, service_id, service_name)
        await message.answer(screens.markup_set(percent, provider, service_name))

    @router.message(Command("smsprice"))
    async def sms_price(
        message: Message,
        command: CommandObject,
        sms: SmsService | None,
        audit: AuditService,
        currency: Currency,
    ) -> None:
        usage = _("/smsprice <country> <price>, e.g. /smsprice EE 0.08")
        if sms is None:
            await message.answer(screens.sms_off())
            return
        country_text, price_text = split_args(command, 2, 2, usage)
        price = amount(currency, price_text, usage)
        country = await sms.set_price(country_text, price)
        await audit.record(actor(message), "smsprice", country, currency.format(price))
        await message.answer(screens.sms_price_set(country, price, currency))

    @router.message(Command("setmintopup"))
    async def set_min_topup(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        usage = _("Usage: /setmintopup <amount>, e.g. /setmintopup 2.50")
        try:
            minimum = currency.parse((command.args or "").strip())
        except ValueError:
            raise InvalidInput(usage) from None
        await topups.set_min(actor(message), minimum)
        await message.answer(screens.min_topup_set(minimum, currency))

    @router.message(Command("setstarsrate"))
    async def set_stars_rate(
        message: Message, command: CommandObject, topups: TopupService, currency: Currency
    ) -> None:
        if not (command.args or "").strip():
            raise InvalidInput(_("Usage: /setstarsrate <rate>, e.g. /setstarsrate 0.013"))
        rate = await topups.set_stars_rate(actor(message), command.args or "")
        await message.answer(screens.stars_rate_set(rate, currency))

    return router
