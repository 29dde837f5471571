"""What every screen uses: HTML escaping, buttons, the one pager for long lists, redrawing a
screen in place and answering a button."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InaccessibleMessage,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from handlers.callbacks import MenuCb, NoopCb
from shop.i18n import _, country_name
from shop.models import Country

log = logging.getLogger(__name__)

Screen = tuple[str, InlineKeyboardMarkup]

esc = html.escape  # everything that came from outside goes through it (HTML parse mode)


def place(country: Country) -> str:
    """Flag and name of a country, in the current language (HTML-escaped)."""
    return f"{country.flag} {esc(country_name(country.code, country.name))}"


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    """A button that sends `data` (packed by its CallbackData factory)."""
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def pager(page: int, pages: int, to: Callable[[int], CallbackData]) -> list[InlineKeyboardButton]:
    """◀ 2/5 ▶ — nothing when everything fits on one page."""
    if pages <= 1:
        return []
    row = [button("◀", to(page - 1)) if page > 0 else button(" ", NoopCb())]
    row.append(button(f"{page + 1}/{pages}", NoopCb()))
    row.append(button("▶", to(page + 1)) if page + 1 < pages else button(" ", NoopCb()))
    return row


def back_to_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("◀ Menu"), MenuCb(to="main"))]])


async def show(callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace the clicked message's content (one message per flow, no flooding)."""
    message = callback.message
    if message is None or isinstance(message, InaccessibleMessage):
        if callback.bot is not None:
            await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def answer(callback: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Answer a callback; a query already answered or too old is not an error."""
    try:
        await callback.answer(text, show_alert=alert)
    except TelegramBadRequest as exc:
        log.debug("Callback answer ignored: %s", exc.message)
