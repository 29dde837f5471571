"""The referrals screen: the customer's invite link and what it has earned."""

from __future__ import annotations

from decimal import Decimal

from aiogram.types import InlineKeyboardMarkup

from handlers.callbacks import MenuCb
from handlers.ui import button, esc
from shop.i18n import _
from shop.money import Currency


def referrals_text(
    link: str, invited: int, earned: int, percent: Decimal, currency: Currency
) -> str:
    lines = [_("👥 <b>Referrals</b>"), ""]
    if percent > 0:
        lines.append(
            _("Invite friends and earn {percent}% of every top-up they make.").format(
                percent=percent.normalize()
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


def referrals_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("◀ Balance"), MenuCb(to="balance"))]])
