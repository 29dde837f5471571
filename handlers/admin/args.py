"""Reading the arguments of admin commands: every malformed one is an `InvalidInput` with the
command's usage, which the error router shows."""

from __future__ import annotations

from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, Message

from shop.errors import InvalidInput
from shop.i18n import _
from shop.money import Currency
from shop.numbers import parse_uint


def usage_error(usage: str) -> InvalidInput:
    return InvalidInput(_("Usage: {usage}").format(usage=usage))


def split_args(command: CommandObject, least: int, most: int, usage: str) -> list[str]:
    """The command's arguments; the last one takes the rest of the line (a reason)."""
    parts = (command.args or "").split(maxsplit=most - 1)
    if not least <= len(parts) <= most:
        raise usage_error(usage)
    return parts


def whole_number(value: str, usage: str) -> int:
    """ASCII digits (an id may start with #); beyond SQLite's range reads as `MAX_ID`, which
    names nothing, so an id that large is "not found" and a count is out of its range."""
    number = parse_uint(value.lstrip("#"))
    if number is None:
        raise usage_error(usage)
    return number


def amount(currency: Currency, text: str, usage: str) -> int:
    try:
        return currency.parse(text)
    except ValueError as exc:
        raise InvalidInput(
            _(
                "Bad amount ({error}): a positive number with at most {decimals} decimals. {usage}"
            ).format(error=exc, decimals=currency.exponent, usage=usage)
        ) from None


def actor(event: Message | CallbackQuery) -> int:
    """Who is acting, for the audit log."""
    return event.from_user.id if event.from_user else 0
