"""Referrals: `/start ref_<id>` links a new user to the inviter; /referrals (and the button on
the Balance screen) shows the invite link and what it earned."""

from __future__ import annotations

import logging
import re

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message

from handlers.callbacks import WalletCb
from handlers.referrals import screens
from handlers.ui import answer, show
from shop.models import User
from shop.money import Currency
from shop.services.topups import TopupService

log = logging.getLogger(__name__)

REF_RE = re.compile(r"^ref_([0-9]{1,15})$")


async def _referrals_text(bot: Bot, user: User, topups: TopupService, currency: Currency) -> str:
    me = await bot.me()
    link = f"https://t.me/{me.username}?start=ref_{user.id}"
    invited, earned = await topups.referral_stats(user.id)
    return screens.referrals_text(link, invited, earned, topups.referral_percent, currency)


def build_referral_router() -> Router:
    """Placed before the menu router: the deep link is recorded, then /start runs."""
    router = Router(name="referrals")

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

    @router.message(Command("referrals"))
    async def referrals_command(
        message: Message, bot: Bot, user: User, topups: TopupService, currency: Currency
    ) -> None:
        text = await _referrals_text(bot, user, topups, currency)
        await message.answer(text, reply_markup=screens.referrals_keyboard())

    @router.callback_query(WalletCb.filter(F.act == "refs"))
    async def referrals_menu(
        callback: CallbackQuery, bot: Bot, user: User, topups: TopupService, currency: Currency
    ) -> None:
        await answer(callback)
        text = await _referrals_text(bot, user, topups, currency)
        await show(callback, text, screens.referrals_keyboard())

    return router
