"""Admin commands. The router only sees messages from ADMIN_IDS; others fall through to
"unknown command"."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.errors import InvalidInput
from bot.money import Currency
from bot.services.admin import AdminService, Period
from bot.services.catalog import CatalogService
from bot.services.notify import Notifier
from bot.services.orders import OrderService
from bot.services.sms import SmsService
from bot.services.wallet import WalletService
from handlers import render
from handlers.render import esc

ADMIN_COMMANDS = {
    "addbalance": "<user_id> <amount> — credit a wallet",
    "order": "<id> — order details",
    "refund": "<order_id> — refund an order without a code",
    "providers": "upstream balances",
    "stats": "users, orders, revenue, margin",
    "smsprice": "<country> <price> — SMS price per segment",
    "setmarkup": "<percent> [provider] [service] — markup",
}


def _args(command: CommandObject, count: int, usage: str) -> list[str]:
    parts = (command.args or "").split()
    if len(parts) != count:
        raise InvalidInput(f"Usage: /{command.command} {usage}")
    return parts


def _int(value: str, usage: str) -> int:
    if not value.lstrip("#").isdigit():
        raise InvalidInput(f"Usage: {usage}")
    return int(value.lstrip("#"))


def _period(name: str, period: Period, currency: Currency) -> str:
    return (
        f"<b>{name}</b>: {period.orders} orders, {period.paid_orders} paid · revenue "
        f"{currency.format(period.revenue)} · cost {currency.format(period.cost)} · margin "
        f"{currency.format(period.margin)}"
    )


def build_admin_router(admin_ids: Iterable[int]) -> Router:
    router = Router(name="admin")
    router.message.filter(F.from_user.id.in_(set(admin_ids)))

    @router.message(Command("addbalance"))
    async def add_balance(
        message: Message,
        command: CommandObject,
        wallet: WalletService,
        notifier: Notifier,
        currency: Currency,
    ) -> None:
        usage = "/addbalance <user_id> <amount>, e.g. /addbalance 12345 2.50"
        user_text, amount_text = _args(command, 2, "<user_id> <amount>")
        user_id = _int(user_text, usage)
        try:
            amount = currency.parse(amount_text)
        except ValueError as exc:
            raise InvalidInput(f"Bad amount: {exc}. {usage}") from None
        admin_id = message.from_user.id if message.from_user else None
        balance = await wallet.adjust(user_id, amount, "credited by admin", admin_id)
        await notifier.balance_credited(user_id, amount, balance)
        await message.answer(
            f"Credited {currency.format(amount)} to {user_id}. New balance: "
            f"{currency.format(balance)}."
        )

    @router.message(Command("order"))
    async def order_details(
        message: Message, command: CommandObject, orders: OrderService, currency: Currency
    ) -> None:
        (order_text,) = _args(command, 1, "<order_id>")
        order = await orders.get(_int(order_text, "/order <order_id>"))
        if order is None:
            await message.answer("No such order.")
            return
        codes = await orders.codes(order.id)
        lines = [
            f"<b>Order #{order.id}</b> · user <code>{order.user_id}</code>",
            f"{esc(order.service_name)} · {esc(order.country)} · {esc(order.route)}",
            f"Status: {render.STATUS_LABELS[order.status]}"
            + (" · ⚠️ needs attention" if order.needs_attention else ""),
            f"Number: <code>{esc(order.phone or '—')}</code> · activation "
            f"<code>{esc(order.activation_id or '—')}</code>",
            f"Price {currency.format(order.price)} · cost {currency.format(order.cost)} "
            f"({esc(str(order.upstream_cost))} upstream)"
            + (" · refunded" if order.refunded else ""),
        ]
        if order.error:
            lines.append(f"Note: {esc(order.error)}")
        lines.extend(f"Code: <code>{esc(c.code)}</code>" for c in codes)
        await message.answer("\n".join(lines))

    @router.message(Command("refund"))
    async def refund(
        message: Message, command: CommandObject, orders: OrderService, currency: Currency
    ) -> None:
        (order_text,) = _args(command, 1, "<order_id>")
        admin_id = message.from_user.id if message.from_user else 0
        refunded = await orders.admin_refund(_int(order_text, "/refund <order_id>"), admin_id)
        await message.answer(
            f"Refunded {currency.format(refunded)} for order #{order_text.lstrip('#')}."
        )

    @router.message(Command("providers"))
    async def providers(message: Message, admin: AdminService, currency: Currency) -> None:
        lines = ["<b>Upstream balances</b>"]
        for account in await admin.balances():
            if account.amount is None:
                lines.append(f"{esc(account.title)}: unavailable ({esc(account.error or '')})")
                continue
            shop = currency.format(currency.convert_up(account.amount, account.rate))
            lines.append(f"{esc(account.title)}: {account.amount} {account.currency} (≈ {shop})")
        if len(lines) == 1:
            lines.append("No provider is configured.")
        await message.answer("\n".join(lines))

    @router.message(Command("stats"))
    async def stats(message: Message, admin: AdminService, currency: Currency) -> None:
        result = await admin.stats()
        await message.answer(
            "\n".join(
                [
                    f"<b>Users</b>: {result.users} ({result.users_today} new today)",
                    _period("Today (UTC)", result.today, currency),
                    _period("Total", result.total, currency),
                    *(
                        f"<b>SMS {name}</b>: {p.sends} sends · revenue "
                        f"{currency.format(p.revenue)} · cost {currency.format(p.cost)} · "
                        f"margin {currency.format(p.margin)}"
                        for name, p in (("today", result.sms_today), ("total", result.sms_total))
                        if p is not None
                    ),
                ]
            )
        )

    @router.message(Command("setmarkup"))
    async def set_markup(
        message: Message, command: CommandObject, catalog: CatalogService
    ) -> None:
        usage = "/setmarkup <percent> [provider] [service], e.g. /setmarkup 25 smspool WhatsApp"
        parts = (command.args or "").split(maxsplit=2)
        if not parts:
            raise InvalidInput(f"Usage: {usage}")
        try:
            percent = Decimal(parts[0].rstrip("%"))
        except InvalidOperation:
            raise InvalidInput(f"Bad percent. Usage: {usage}") from None
        if not percent.is_finite() or percent < 0 or percent > 1000:
            raise InvalidInput("The markup must be between 0 and 1000 percent.")
        provider = parts[1].lower() if len(parts) > 1 else ""
        accounts = {route.account for route in catalog.routes.values()}
        if provider in ("*", "all", "any"):
            provider = ""
        if provider and provider not in accounts:
            raise InvalidInput(f"Unknown provider. Use one of: {', '.join(sorted(accounts))}.")
        service_id, service_name = 0, "every service"
        if len(parts) > 2:
            service = await catalog.find_service(parts[2])
            if service is None:
                raise InvalidInput(f"Unknown service {parts[2]!r}.")
            service_id, service_name = service.id, service.name
        await catalog.pricing.set_markup(percent, provider, service_id)
        await message.answer(
            f"Markup {percent}% for {esc(provider or 'every provider')}, {esc(service_name)}."
        )

    @router.message(Command("smsprice"))
    async def sms_price(
        message: Message, command: CommandObject, sms: SmsService | None, currency: Currency
    ) -> None:
        usage = "/smsprice <country> <price>, e.g. /smsprice EE 0.08"
        if sms is None:
            await message.answer("SMS sending is not configured (SMSPM_HASH, SMSPM_TOKEN).")
            return
        country_text, price_text = _args(command, 2, "<country> <price>")
        try:
            price = currency.parse(price_text)
        except ValueError as exc:
            raise InvalidInput(f"Bad price: {exc}. {usage}") from None
        country = await sms.set_price(country_text, price)
        await message.answer(f"SMS to {esc(country)}: {currency.format(price)} per segment.")

    return router
