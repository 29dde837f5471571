"""The owner's panel (/admin) and admin commands. The router only sees updates from ADMIN_IDS;
anyone else's command falls through to "unknown command" and a forged panel button to "no longer
valid"."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, FSInputFile, Message

from handlers import admin_render as view
from handlers.callbacks import AdminCb
from handlers.common import answer, show
from handlers.render import esc, status_label
from shop.errors import InvalidInput, NotFound
from shop.i18n import N_, _, i18n, locale_of
from shop.money import Currency
from shop.numbers import MAX_ID, parse_uint
from shop.services.admin import AdminService
from shop.services.catalog import CatalogService
from shop.services.notify import Notifier
from shop.services.orders import OrderService
from shop.services.sms import SmsService

log = logging.getLogger(__name__)

# Shown in the admins' / menu; English here, translated per language by `App.set_commands`.
ADMIN_COMMANDS = {
    "admin": N_("the owner's panel"),
    "stats": N_("users, orders, revenue, margin, balances"),
    "user": N_("<id or @username> — a user's profile, orders and ledger"),
    "addbalance": N_("<user_id> <amount> [reason] — credit a wallet"),
    "subbalance": N_("<user_id> <amount> <reason> — debit a wallet"),
    "ban": N_("<id or @username> [reason] — ban a user"),
    "unban": N_("<id or @username> — lift a ban"),
    "order": N_("<id> — order details"),
    "refund": N_("<order_id> — refund an order without a code"),
    "providers": N_("upstream balances"),
    "reconcile": N_("[days] — upstream spend against revenue"),
    "backup": N_("a copy of the database"),
    "audit": N_("[page] — the admin actions log"),
    "smsprice": N_("<country> <price> — SMS price per segment"),
    "setmarkup": N_("<percent> [provider] [service] — markup"),
}

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # what a bot may upload
MAX_RECONCILE_DAYS = 366


def _usage(usage: str) -> InvalidInput:
    return InvalidInput(_("Usage: {usage}").format(usage=usage))


def _split(command: CommandObject, least: int, most: int, usage: str) -> list[str]:
    """The command's arguments; the last one takes the rest of the line (a reason)."""
    parts = (command.args or "").split(maxsplit=most - 1)
    if not least <= len(parts) <= most:
        raise _usage(usage)
    return parts


def _int(value: str, usage: str) -> int:
    """ASCII digits (an id may start with #); beyond SQLite's range reads as `MAX_ID`, which
    names nothing, so an id that large is "not found" and a count is out of its range."""
    number = parse_uint(value.lstrip("#"))
    if number is None:
        raise _usage(usage)
    return number


def _amount(currency: Currency, text: str, usage: str) -> int:
    try:
        return currency.parse(text)
    except ValueError as exc:
        raise InvalidInput(
            _(
                "Bad amount ({error}): a positive number with at most {decimals} decimals. {usage}"
            ).format(error=exc, decimals=currency.exponent, usage=usage)
        ) from None


def _actor(event: Message | CallbackQuery) -> int:
    return event.from_user.id if event.from_user else 0


def _low_balance(admin: AdminService, currency: Currency) -> int:
    return currency.convert_up(admin.settings.low_balance_warning, Decimal(1))


async def _stats_text(admin: AdminService, catalog: CatalogService, currency: Currency) -> str:
    result = await admin.stats()
    titles = {key: route.title for key, route in catalog.route_infos.items()}
    return view.stats(result, currency, titles, _low_balance(admin, currency))


async def _recon_text(admin: AdminService, currency: Currency, days: int) -> str:
    return view.reconciliation(await admin.reconcile(days), days, currency)


async def _audit_text(admin: AdminService, page: int) -> tuple[str, int, int]:
    entries, page, pages = await admin.audit_page(page)
    return view.audit(entries, page, pages), page, pages


def _backups_text(admin: AdminService) -> str:
    settings = admin.settings
    return view.backups(
        admin.backups(), settings.backup_hour_utc, settings.backup_keep, settings.backup_dir
    )


async def _send_backup(bot: Bot, chat_id: int, admin: AdminService, actor_id: int) -> None:
    path = await admin.backup(actor_id)
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        await bot.send_message(
            chat_id,
            _("💾 The backup is too large to send here; it is saved as {path}.").format(
                path=f"<code>{esc(str(path))}</code>"
            ),
        )
        return
    await bot.send_document(
        chat_id, FSInputFile(path, filename=path.name), caption=view.backup_caption(path)
    )


def build_admin_router(admin_ids: Iterable[int]) -> Router:
    router = Router(name="admin")
    admins = set(admin_ids)
    router.message.filter(F.from_user.id.in_(admins))
    router.callback_query.filter(F.from_user.id.in_(admins))

    # -- the panel -------------------------------------------------------------------------------

    @router.message(Command("admin"))
    async def panel(message: Message) -> None:
        await message.answer(view.home(), reply_markup=view.home_keyboard())

    @router.callback_query(AdminCb.filter())
    async def panel_section(
        callback: CallbackQuery,
        callback_data: AdminCb,
        admin: AdminService,
        catalog: CatalogService,
        currency: Currency,
        bot: Bot,
    ) -> None:
        section = callback_data.to
        if section == "dobackup":
            await answer(callback, _("Backing up…"))
            await _send_backup(bot, callback.from_user.id, admin, _actor(callback))
            await show(callback, _backups_text(admin), view.backup_keyboard())
            return
        await answer(callback)
        if section == "stats":
            text = await _stats_text(admin, catalog, currency)
            await show(callback, text, view.stats_keyboard())
        elif section == "users":
            await show(callback, view.users_help(), view.back_keyboard())
        elif section == "orders":
            await show(callback, view.orders_help(), view.back_keyboard())
        elif section == "pricing":
            text = view.pricing(await admin.pricing_view(), currency)
            await show(callback, text, view.back_keyboard())
        elif section == "broadcast":
            await show(callback, view.broadcast_help(), view.back_keyboard())
        elif section == "recon":
            days = min(max(callback_data.n, 1), MAX_RECONCILE_DAYS)
            await show(
                callback, await _recon_text(admin, currency, days), view.recon_keyboard(days)
            )
        elif section == "backup":
            await show(callback, _backups_text(admin), view.backup_keyboard())
        elif section == "audit":
            text, page, pages = await _audit_text(admin, callback_data.n)
            await show(callback, text, view.audit_keyboard(page, pages))
        else:
            await show(callback, view.home(), view.home_keyboard())

    # -- figures ----------------------------------------------------------------------------------

    @router.message(Command("stats"))
    async def stats(
        message: Message, admin: AdminService, catalog: CatalogService, currency: Currency
    ) -> None:
        await message.answer(await _stats_text(admin, catalog, currency))

    @router.message(Command("providers"))
    async def providers(message: Message, admin: AdminService, currency: Currency) -> None:
        balances = await admin.balances()
        await message.answer(view.providers(balances, currency, _low_balance(admin, currency)))

    @router.message(Command("reconcile"))
    async def reconcile(
        message: Message, command: CommandObject, admin: AdminService, currency: Currency
    ) -> None:
        usage = _("/reconcile [days], e.g. /reconcile 30")
        (days_text,) = _split(command, 0, 1, usage) or ["7"]
        days = _int(days_text, usage)
        if not 1 <= days <= MAX_RECONCILE_DAYS:
            raise _usage(usage)
        await message.answer(await _recon_text(admin, currency, days))

    @router.message(Command("audit"))
    async def audit(message: Message, command: CommandObject, admin: AdminService) -> None:
        usage = _("/audit [page]")
        (page_text,) = _split(command, 0, 1, usage) or ["1"]
        page = _int(page_text, usage)
        text, page, pages = await _audit_text(admin, max(page, 1) - 1)
        await message.answer(text, reply_markup=view.audit_keyboard(page, pages))

    @router.message(Command("backup"))
    async def backup(message: Message, admin: AdminService, bot: Bot) -> None:
        await _send_backup(bot, message.chat.id, admin, _actor(message))

    # -- users ------------------------------------------------------------------------------------

    @router.message(Command("user"))
    async def user_card(
        message: Message, command: CommandObject, admin: AdminService, currency: Currency
    ) -> None:
        (query,) = _split(command, 1, 1, _("/user <id or @username>"))
        card = await admin.user_card(query)
        await message.answer(view.user_card(card, currency))

    @router.message(Command("addbalance"))
    async def add_balance(
        message: Message,
        command: CommandObject,
        admin: AdminService,
        notifier: Notifier,
        currency: Currency,
    ) -> None:
        usage = _("/addbalance <user_id> <amount> [reason], e.g. /addbalance 12345 2.50")
        parts = _split(command, 2, 3, usage)
        user = await admin.find_user(parts[0])
        amount = _amount(currency, parts[1], usage)
        reason = parts[2] if len(parts) > 2 else "credited by admin"
        balance = await admin.credit(_actor(message), user.id, amount, reason)
        await notifier.balance_credited(user.id, amount, balance)
        await message.answer(
            _("Credited {amount} to {user}. New balance: {balance}.").format(
                amount=currency.format(amount), user=user.id, balance=currency.format(balance)
            )
        )

    @router.message(Command("subbalance"))
    async def sub_balance(
        message: Message,
        command: CommandObject,
        admin: AdminService,
        currency: Currency,
        bot: Bot,
    ) -> None:
        usage = _(
            "/subbalance <user_id> <amount> <reason>, e.g. /subbalance 12345 1.50 chargeback"
        )
        parts = _split(command, 3, 3, usage)
        user = await admin.find_user(parts[0])
        amount = _amount(currency, parts[1], usage)
        reason = parts[2].strip()
        balance = await admin.debit(_actor(message), user.id, amount, reason)
        with i18n.use_locale(locale_of(user)):
            notice = _(
                "💸 {amount} was deducted from your balance: {reason}. Balance: <b>{balance}</b>"
            ).format(
                amount=currency.format(amount),
                reason=esc(reason),
                balance=currency.format(balance),
            )
        try:
            await bot.send_message(user.id, notice)
        except TelegramAPIError as exc:
            log.info("Debit notice to %s not delivered: %s", user.id, exc.message)
        await message.answer(
            _("Debited {amount} from {user}. New balance: {balance}.").format(
                amount=currency.format(amount), user=user.id, balance=currency.format(balance)
            )
        )

    @router.message(Command("ban"))
    async def ban(message: Message, command: CommandObject, admin: AdminService) -> None:
        parts = _split(command, 1, 2, _("/ban <id or @username> [reason]"))
        reason = parts[1].strip() if len(parts) > 1 else ""
        user = await admin.ban(_actor(message), parts[0], reason)
        live = await admin.live_orders(user.id)
        text = _("🚫 Banned {name} (<code>{id}</code>).").format(
            name=esc(user.first_name), id=user.id
        )
        if live:
            text += " " + _("Their live orders keep running: {n}.").format(n=live)
        await message.answer(text)

    @router.message(Command("unban"))
    async def unban(message: Message, command: CommandObject, admin: AdminService) -> None:
        (query,) = _split(command, 1, 1, _("/unban <id or @username>"))
        user = await admin.unban(_actor(message), query)
        await message.answer(
            _("✅ Unbanned {name} (<code>{id}</code>).").format(
                name=esc(user.first_name), id=user.id
            )
        )

    # -- orders and prices ------------------------------------------------------------------------

    @router.message(Command("order"))
    async def order_details(
        message: Message, command: CommandObject, orders: OrderService, currency: Currency
    ) -> None:
        usage = _("/order <order_id>")
        (order_text,) = _split(command, 1, 1, usage)
        order = await orders.get(_int(order_text, usage))
        if order is None:
            await message.answer(_("No such order."))
            return
        codes = await orders.codes(order.id)
        lines = [
            _("<b>Order #{id}</b> · user <code>{user}</code>").format(
                id=order.id, user=order.user_id
            ),
            f"{esc(order.service_name)} · {esc(order.country)} · {esc(order.route)}",
            _("Status: {status}").format(status=status_label(order.status))
            + (" · " + _("⚠️ needs attention") if order.needs_attention else ""),
            _("Number: {phone} · activation {activation}").format(
                phone=f"<code>{esc(order.phone or '—')}</code>",
                activation=f"<code>{esc(order.activation_id or '—')}</code>",
            ),
            _("Price {price} · cost {cost} ({upstream} upstream)").format(
                price=currency.format(order.price),
                cost=currency.format(order.cost),
                upstream=esc(str(order.upstream_cost)),
            )
            + (" · " + _("refunded") if order.refunded else ""),
        ]
        if order.error:
            lines.append(_("Note: {note}").format(note=esc(order.error)))
        lines.extend(_("Code: {code}").format(code=f"<code>{esc(c.code)}</code>") for c in codes)
        await message.answer("\n".join(lines))

    @router.message(Command("refund"))
    async def refund(
        message: Message, command: CommandObject, admin: AdminService, currency: Currency
    ) -> None:
        usage = _("/refund <order_id>")
        (order_text,) = _split(command, 1, 1, usage)
        order_id = _int(order_text, usage)
        if order_id == MAX_ID:  # typed beyond SQLite's range: no such order
            raise NotFound(
                _("Order #{order_id} does not exist.").format(order_id=order_text.lstrip("#"))
            )
        refunded = await admin.refund(_actor(message), order_id)
        await message.answer(
            _("Refunded {amount} for order #{id}.").format(
                amount=currency.format(refunded), id=order_id
            )
        )

    @router.message(Command("setmarkup"))
    async def set_markup(
        message: Message, command: CommandObject, catalog: CatalogService, admin: AdminService
    ) -> None:
        usage = _("/setmarkup <percent> [provider] [service], e.g. /setmarkup 25 smspool WhatsApp")
        parts = _split(command, 1, 3, usage)
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
        await admin.set_markup(_actor(message), percent, provider, service_id, service_name)
        await message.answer(
            _("Markup {percent}% for {provider}, {service}.").format(
                percent=percent,
                provider=esc(provider or _("every provider")),
                service=esc(service_name or _("every service")),
            )
        )

    @router.message(Command("smsprice"))
    async def sms_price(
        message: Message,
        command: CommandObject,
        sms: SmsService | None,
        admin: AdminService,
        currency: Currency,
    ) -> None:
        usage = _("/smsprice <country> <price>, e.g. /smsprice EE 0.08")
        if sms is None:
            await message.answer(_("SMS sending is not configured (SMSPM_HASH, SMSPM_TOKEN)."))
            return
        country_text, price_text = _split(command, 2, 2, usage)
        price = _amount(currency, price_text, usage)
        country = await sms.set_price(country_text, price)
        await admin.record(_actor(message), "smsprice", country, currency.format(price))
        await message.answer(
            _("SMS to {country}: {price} per segment.").format(
                country=esc(country), price=currency.format(price)
            )
        )

    return router
