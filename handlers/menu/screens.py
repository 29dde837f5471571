"""Screens of the main menu: greeting, help, language choice."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import LanguageCb, MenuCb
from handlers.ui import button, esc
from shop.i18n import _, i18n
from shop.money import Currency


def help_text(sms_enabled: bool = False, rentals_enabled: bool = False) -> str:
    rentals = [_("/rent — rent a number for days"), _("/rentals — your rentals")]
    commands = [
        _("/buy — buy a number"),
        *([_("/sms — send an SMS")] if sms_enabled else []),
        _("/balance — your balance"),
        _("/orders — your orders"),
        *(rentals if rentals_enabled else []),
        _("/language — change the language"),
        _("/help — this help"),
    ]
    return "\n".join(
        [
            _("<b>How it works</b>"),
            _("1. Top up your balance."),
            _("2. Tap <b>Buy a number</b>, pick a service, a country and a route."),
            _("3. Use the number where you sign up. The code appears here within seconds."),
            _(
                "No code before the time runs out? The number is cancelled and you get your "
                "money back automatically."
            ),
            "",
            _("<b>Commands</b>"),
            *commands,
            "",
            _("Tip: type part of a service name at any time to search for it."),
        ]
    )


def main_menu_text(first_name: str, balance: int, currency: Currency, sandbox: bool) -> str:
    lines = [
        _("👋 Hi, {name}!").format(name=esc(first_name)),
        _(
            "Virtual numbers for SMS verification: pay from your balance, get the code here, "
            "or get your money back."
        ),
        "\n" + _("💰 Balance: <b>{amount}</b>").format(amount=currency.format(balance)),
    ]
    if sandbox:
        lines.append(
            "\n" + _("🧪 <b>Sandbox mode</b>: the Sandbox route sells made-up numbers and codes.")
        )
    return "\n".join(lines)


def language_text(current: str, names: dict[str, str]) -> str:
    return "\n".join(
        [
            _("🌐 <b>Language</b>"),
            _("The bot speaks {language}. Choose another one:").format(
                language=esc(names.get(current, current))
            ),
        ]
    )


_MAIN_MENUS: dict[tuple[str, bool, bool], InlineKeyboardMarkup] = {}


def main_menu_keyboard(
    sms_enabled: bool = False, rentals_enabled: bool = False
) -> InlineKeyboardMarkup:
    """The main menu; built once per language (markups are immutable, so one is shared)."""
    key = (i18n.current_locale, sms_enabled, rentals_enabled)
    markup = _MAIN_MENUS.get(key)
    if markup is None:
        markup = _MAIN_MENUS[key] = _main_menu(sms_enabled, rentals_enabled)
    return markup


def _main_menu(sms_enabled: bool, rentals_enabled: bool = False) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.add(button(_("📱 Buy a number"), MenuCb(to="buy")))
    if rentals_enabled:
        builder.add(button(_("🏠 Rent a number"), MenuCb(to="rent")))
    if sms_enabled:
        builder.add(button(_("✉️ Send SMS"), MenuCb(to="sms")))
    builder.add(
        button(_("💰 Balance"), MenuCb(to="balance")),
        button(_("🗂 My orders"), MenuCb(to="orders")),
        button(_("❓ Help"), MenuCb(to="help")),
        button(_("🌐 Language"), MenuCb(to="language")),
    )
    first = 1 + int(sms_enabled) + int(rentals_enabled)
    builder.adjust(*((first if first < 3 else 3), 2, 2))
    return builder.as_markup()


def language_keyboard(
    locales: Sequence[str], names: dict[str, str], current: str
) -> InlineKeyboardMarkup:
    """One button per language, each in its own language; the current one is ticked."""
    builder = InlineKeyboardBuilder()
    for locale in locales:
        mark = "✅ " if locale == current else ""
        builder.add(button(mark + names.get(locale, locale), LanguageCb(locale=locale)))
    builder.adjust(2)
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()
