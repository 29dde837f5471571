"""Users: a user's card, wallet credits and debits, bans (the Users section of the panel
lists the commands)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.args import actor, amount, split_args
from handlers.callbacks import AdminCb
from handlers.ui import answer, show
from shop.i18n import _, i18n, locale_of
from shop.money import Currency
from shop.services.notify import Notifier
from shop.services.people import PeopleService

log = logging.getLogger(__name__)


def build_people_router() -> Router:
    router = Router(name="admin-people")

    @router.callback_query(AdminCb.filter(F.to == "users"))
    async def users_section(callback: CallbackQuery) -> None:
        await answer(callback)
        await show(callback, screens.users_help(), screens.back_keyboard())

    @router.message(Command("user"))
    async def user_card(
        message: Message, command: CommandObject, people: PeopleService, currency: Currency
    ) -> None:
        (query,) = split_args(command, 1, 1, _("/user <id or @username>"))
        card = await people.user_card(query)
        await message.answer(screens.user_card(card, currency))

    @router.message(Command("addbalance"))
    async def add_balance(
        message: Message,
        command: CommandObject,
        people: PeopleService,
        notifier: Notifier,
        currency: Currency,
    ) -> None:
        usage = _("/addbalance <user_id> <amount> [reason], e.g. /addbalance 12345 2.50")
        parts = split_args(command, 2, 3, usage)
        user = await people.find_user(parts[0])
        credit = amount(currency, parts[1], usage)
        reason = parts[2] if len(parts) > 2 else "credited by admin"
        balance = await people.credit(actor(message), user.id, credit, reason)
        await notifier.balance_credited(user.id, credit, balance)
        await message.answer(screens.credited(user.id, credit, balance, currency))

    @router.message(Command("subbalance"))
    async def sub_balance(
        message: Message,
        command: CommandObject,
        people: PeopleService,
        currency: Currency,
        bot: Bot,
    ) -> None:
        usage = _(
            "/subbalance <user_id> <amount> <reason>, e.g. /subbalance 12345 1.50 chargeback"
        )
        parts = split_args(command, 3, 3, usage)
        user = await people.find_user(parts[0])
        debit = amount(currency, parts[1], usage)
        reason = parts[2].strip()
        balance = await people.debit(actor(message), user.id, debit, reason)
        with i18n.use_locale(locale_of(user)):
            notice = screens.debit_notice(debit, reason, balance, currency)
        try:
            await bot.send_message(user.id, notice)
        except TelegramAPIError as exc:
            log.info("Debit notice to %s not delivered: %s", user.id, exc.message)
        await message.answer(screens.debited(user.id, debit, balance, currency))

    @router.message(Command("ban"))
    async def ban(message: Message, command: CommandObject, people: PeopleService) -> None:
        parts = split_args(command, 1, 2, _("/ban <id or @username> [reason]"))
        reason = parts[1].strip() if len(parts) > 1 else ""
        user = await people.ban(actor(message), parts[0], reason)
        live = await people.live_orders(user.id)
        await message.answer(screens.banned(user, live))

    @router.message(Command("unban"))
    async def unban(message: Message, command: CommandObject, people: PeopleService) -> None:
        (query,) = split_args(command, 1, 1, _("/unban <id or @username>"))
        user = await people.unban(actor(message), query)
        await message.answer(screens.unbanned(user))

    return router
