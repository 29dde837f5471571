"""Screens of rentals: the two kinds, countries with their prices, periods, the confirm screen,
the rental's own card (Extend, Refund, Messages), "My rentals", the message history, and the
messages jobs send (a forwarded SMS, the reminder, the end)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import (
    MenuCb,
    RentalCb,
    RentalsCb,
    RentKindCb,
    RentOfferCb,
    RentPayCb,
    RentSvcCb,
)
from handlers.ui import button, esc, pager
from shop.i18n import _, __, format_date, ngettext
from shop.models import Rental, RentalMessage, RentalState, Service
from shop.money import Currency
from shop.services.rentals import RentalChoice, RentQuote

COUNTRIES_PER_PAGE = 8
SERVICES_PER_PAGE = 8
RENTALS_PER_PAGE = 5
MESSAGES_PER_PAGE = 5

STATE_LABELS = {
    RentalState.BUYING: __("⏳ Renting…"),
    RentalState.ACTIVE: __("✅ Active"),
    RentalState.EXTENDED: __("✅ Active (extended)"),
    RentalState.REFUNDED: __("↩️ Refunded"),
    RentalState.EXPIRED: __("⌛ Ended"),
    RentalState.FAILED: __("❌ Failed"),
}


def state_label(state: RentalState) -> str:
    return str(STATE_LABELS[state])


def phone(number: str | None) -> str:
    if not number:
        return "—"
    return number if number.startswith("+") else f"+{number}"


def days_text(days: int) -> str:
    return ngettext("{n} day", "{n} days", days).format(n=days)


def days_left(rental: Rental, now: float | None = None) -> int:
    if rental.expires_at is None:
        return 0
    left = rental.expires_at - (time.time() if now is None else now)
    return max(0, math.ceil(left / 86400))


# -- choosing ------------------------------------------------------------------------------------


def rent_home_text() -> str:
    return "\n".join(
        [
            _("🏠 <b>Rent a number</b>"),
            _(
                "Rent a number for days and receive every SMS sent to it here: for logging in "
                "again later, or an account that gets codes now and then."
            ),
            "",
            _("<b>Extendable</b>: add days before it ends and keep the number."),
            _("<b>Fixed period</b>: for the days you pick, usually cheaper."),
        ]
    )


def rent_home_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(button(_("🔁 Extendable"), RentKindCb(e=1)))
    builder.row(button(_("📅 Fixed period"), RentKindCb(e=0)))
    builder.row(button(_("🗂 My rentals"), RentalsCb()), button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def kind_name(extendable: bool) -> str:
    return _("Extendable") if extendable else _("Fixed period")


def countries_text(extendable: bool, choices: Sequence[RentalChoice]) -> str:
    head = _("🏠 <b>Rent a number</b> · {kind}").format(kind=kind_name(extendable))
    if not choices:
        return head + "\n\n" + _("No rentals of this kind are for sale right now.")
    return head + "\n\n" + _("Choose a country (price from the shortest period):")


def _from_price(choice: RentalChoice, currency: Currency) -> str:
    cheapest = min(choice.prices.values()) if choice.prices else 0
    return _("from {price}").format(price=currency.format(cheapest))


def countries_keyboard(
    extendable: bool, choices: Sequence[RentalChoice], page: int, currency: Currency
) -> InlineKeyboardMarkup:
    pages = max(1, math.ceil(len(choices) / COUNTRIES_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = choices[page * COUNTRIES_PER_PAGE : (page + 1) * COUNTRIES_PER_PAGE]
    builder = InlineKeyboardBuilder()
    for choice in shown:
        builder.row(
            button(
                f"{choice.country} · {_from_price(choice, currency)}",
                RentOfferCb(e=int(extendable), oid=choice.offer_id),
            )
        )
    builder.row(*pager(page, pages, lambda p: RentKindCb(e=int(extendable), page=p)))
    builder.row(button(_("◀ Back"), MenuCb(to="rent")))
    return builder.as_markup()


def periods_text(choice: RentalChoice) -> str:
    return "\n".join(
        [
            _("🏠 <b>Rent a number</b> · {kind}").format(kind=kind_name(choice.extendable)),
            _("Country: {country}").format(country=esc(choice.country)),
            "",
            _("For how long?"),
        ]
    )


def periods_keyboard(choice: RentalChoice, currency: Currency) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for days, price in sorted(choice.prices.items()):
        builder.row(
            button(
                f"{days_text(days)} · {currency.format(price)}",
                RentOfferCb(e=int(choice.extendable), oid=choice.offer_id, d=days),
            )
        )
    builder.row(button(_("◀ Back"), RentKindCb(e=int(choice.extendable))))
    return builder.as_markup()


def confirm_text(quote: RentQuote, balance: int, currency: Currency) -> str:
    choice = quote.choice
    lines = [
        _("🏠 <b>Confirm your rental</b>"),
        _("Country: {country}").format(country=esc(choice.country)),
        _("Period: {days}").format(days=days_text(quote.days)),
        _("Kind: {kind}").format(kind=kind_name(choice.extendable)),
    ]
    if quote.service is not None:
        lines.append(
            _("One service only: {service} (half price)").format(service=esc(quote.service.name))
        )
    elif choice.single_service_allowed:
        lines.append(_("Any service. Codes from one service only? Half price."))
    lines += [
        _("Price: <b>{price}</b>").format(price=currency.format(quote.price)),
        _("Your balance: {balance}").format(balance=currency.format(balance)),
        "",
        _(
            "Every SMS sent to the number is forwarded here. A refund is possible within 12 "
            "hours and before the first message."
        ),
    ]
    return "\n".join(lines)


def confirm_keyboard(quote: RentQuote) -> InlineKeyboardMarkup:
    choice = quote.choice
    builder = InlineKeyboardBuilder()
    builder.row(
        button(
            _("✅ Confirm · {days}").format(days=days_text(quote.days)),
            RentPayCb(
                e=int(choice.extendable),
                oid=choice.offer_id,
                d=quote.days,
                p=quote.price,
                t=quote.token,
                s=quote.service.id if quote.service is not None else 0,
            ),
        )
    )
    if choice.single_service_allowed:
        picker = RentSvcCb(e=int(choice.extendable), oid=choice.offer_id, d=quote.days)
        if quote.service is None:
            builder.row(button(_("🎯 One service (discount)"), picker))
        else:
            any_service = RentOfferCb(e=int(choice.extendable), oid=choice.offer_id, d=quote.days)
            builder.row(
                button(_("🌐 Any service"), any_service),
                button(_("🎯 Another service"), picker),
            )
    builder.row(button(_("◀ Back"), RentOfferCb(e=int(choice.extendable), oid=choice.offer_id)))
    return builder.as_markup()


def services_text(choice: RentalChoice, days: int, page: int, pages: int) -> str:
    return "\n".join(
        [
            _("🎯 <b>One service</b> · {country}, {days}").format(
                country=esc(choice.country), days=days_text(days)
            ),
            _(
                "The number then receives codes from that service only, at half price. Most "
                "popular first (page {page}/{pages}), or search by name:"
            ).format(page=page + 1, pages=pages),
        ]
    )


def _service_buttons(
    builder: InlineKeyboardBuilder, choice: RentalChoice, days: int, services: Sequence[Service]
) -> None:
    for service in services:
        builder.add(
            button(
                service.name,
                RentOfferCb(e=int(choice.extendable), oid=choice.offer_id, d=days, s=service.id),
            )
        )
    builder.adjust(2)


def services_keyboard(
    choice: RentalChoice, days: int, services: Sequence[Service], page: int, pages: int
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _service_buttons(builder, choice, days, services)
    here = RentSvcCb(e=int(choice.extendable), oid=choice.offer_id, d=days)
    builder.row(*pager(page, pages, lambda p: here.model_copy(update={"page": p})))
    builder.row(button(_("🔎 Search by name"), here.model_copy(update={"find": 1})))
    builder.row(
        button(
            _("◀ Any service"), RentOfferCb(e=int(choice.extendable), oid=choice.offer_id, d=days)
        )
    )
    return builder.as_markup()


def service_search_prompt(choice: RentalChoice, days: int) -> str:
    return "\n".join(
        [
            _("🎯 <b>One service</b> · {country}, {days}").format(
                country=esc(choice.country), days=days_text(days)
            ),
            _("Type the service's name, for example <i>WhatsApp</i>:"),
        ]
    )


def service_search_cancel(choice: RentalChoice, days: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(
        button(_("◀ Back"), RentSvcCb(e=int(choice.extendable), oid=choice.offer_id, d=days))
    )
    return builder.as_markup()


def service_results_text(query: str, found: Sequence[Service]) -> str:
    if not found:
        return _("Nothing matches “{query}”. Type another name.").format(query=esc(query))
    return _("🎯 Services matching “{query}”:").format(query=esc(query))


def service_results_keyboard(
    choice: RentalChoice, days: int, found: Sequence[Service]
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _service_buttons(builder, choice, days, found)
    builder.row(
        button(_("◀ Back"), RentSvcCb(e=int(choice.extendable), oid=choice.offer_id, d=days))
    )
    return builder.as_markup()


# -- a rental ------------------------------------------------------------------------------------


def rental_card(rental: Rental, currency: Currency, refundable: bool) -> str:
    status = state_label(rental.state)
    lines = [
        _("🏠 <b>Rental #{id}</b> · {country}").format(id=rental.id, country=esc(rental.country)),
        _("Number: {phone}").format(phone=f"<code>{esc(phone(rental.phone))}</code>"),
        _("Status: {status}").format(status=status),
    ]
    if rental.state.is_live and rental.expires_at is not None:
        lines.append(
            _("Until {date} UTC ({left})").format(
                date=format_date(rental.expires_at), left=days_left_text(rental)
            )
        )
    lines.append(_("Paid: {amount}").format(amount=currency.format(rental.paid)))
    lines.append(_("Messages: {n}").format(n=rental.messages))
    if rental.state.is_live:
        lines.append("")
        lines.append(_("Every SMS sent to this number is forwarded here."))
        if refundable:
            lines.append(_("Refund possible until the first message (12 hours at most)."))
    return "\n".join(lines)


def days_left_text(rental: Rental) -> str:
    left = days_left(rental)
    return ngettext("{n} day left", "{n} days left", left).format(n=left)


def rental_keyboard(rental: Rental, refundable: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(button(_("📨 Messages"), RentalCb(rid=rental.id, act="msgs")))
    actions = []
    if rental.extendable and rental.state.is_live:
        actions.append(button(_("➕ Extend"), RentalCb(rid=rental.id, act="ext")))
    if refundable:
        actions.append(button(_("↩️ Refund"), RentalCb(rid=rental.id, act="refund")))
    if actions:
        builder.row(*actions)
    builder.row(button(_("🗂 My rentals"), RentalsCb()), button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def rented_text(rental: Rental, currency: Currency, refundable: bool) -> str:
    return _("✅ Rented!") + "\n\n" + rental_card(rental, currency, refundable)


def rentals_text(items: Sequence[Rental], page: int, pages: int, currency: Currency) -> str:
    if not items:
        return _("You have no rentals yet. Send /rent to rent a number.")
    head = _("🗂 <b>Your rentals</b> (page {page}/{pages})").format(page=page + 1, pages=pages)
    body = []
    for rental in items:
        left = f" · {days_left_text(rental)}" if rental.state.is_live else ""
        body.append(
            f"#{rental.id} {esc(rental.country)} · <code>{esc(phone(rental.phone))}</code>\n"
            f"   {state_label(rental.state)}{left} · {currency.format(rental.paid)}"
        )
    return head + "\n\n" + "\n".join(body)


def rentals_keyboard(items: Sequence[Rental], page: int, pages: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for rental in items:
        builder.add(button(f"#{rental.id}", RentalCb(rid=rental.id, act="show")))
    builder.adjust(5)
    builder.row(*pager(page, pages, lambda p: RentalsCb(page=p)))
    builder.row(
        button(_("🏠 Rent a number"), MenuCb(to="rent")), button(_("◀ Menu"), MenuCb(to="main"))
    )
    return builder.as_markup()


def message_block(message: RentalMessage) -> str:
    sender = esc(message.sender) if message.sender else _("unknown")
    return "\n".join(
        [
            _("From: {sender} · {time}").format(sender=sender, time=esc(message.sent_at)),
            esc(message.text),
        ]
    )


def history_text(rental: Rental, messages: Sequence[RentalMessage], page: int, pages: int) -> str:
    head = _("📨 <b>Messages of rental #{id}</b> ({phone}), page {page}/{pages}").format(
        id=rental.id, phone=esc(phone(rental.phone)), page=page + 1, pages=pages
    )
    if not messages:
        return head + "\n\n" + _("No messages yet. They appear here and in this chat.")
    return head + "\n\n" + "\n\n".join(message_block(m) for m in messages)


def history_keyboard(rental: Rental, page: int, pages: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(*pager(page, pages, lambda p: RentalCb(rid=rental.id, act="msgs", n=p)))
    builder.row(button(_("◀ Back"), RentalCb(rid=rental.id, act="show")))
    return builder.as_markup()


# -- extend and refund ----------------------------------------------------------------------------


def extend_text(rental: Rental) -> str:
    return "\n".join(
        [
            _("➕ <b>Extend rental #{id}</b> ({phone})").format(
                id=rental.id, phone=esc(phone(rental.phone))
            ),
            _("By how many days?"),
        ]
    )


def extend_keyboard(
    rental: Rental, prices: dict[int, int], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for days, price in sorted(prices.items()):
        builder.row(
            button(
                f"+{days_text(days)} · {currency.format(price)}",
                RentalCb(rid=rental.id, act="ext", d=days),
            )
        )
    builder.row(button(_("◀ Back"), RentalCb(rid=rental.id, act="show")))
    return builder.as_markup()


def extend_confirm_text(
    rental: Rental, days: int, price: int, balance: int, currency: Currency
) -> str:
    return "\n".join(
        [
            _("➕ <b>Extend rental #{id}</b> by {days}").format(
                id=rental.id, days=days_text(days)
            ),
            _("Price: <b>{price}</b>").format(price=currency.format(price)),
            _("Your balance: {balance}").format(balance=currency.format(balance)),
        ]
    )


def extend_confirm_keyboard(
    rental: Rental, days: int, price: int, seq: int
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(
        button(
            _("✅ Confirm extension"),
            RentalCb(rid=rental.id, act="extok", d=days, n=seq, p=price),
        )
    )
    builder.row(button(_("◀ Back"), RentalCb(rid=rental.id, act="ext")))
    return builder.as_markup()


def refund_confirm_text(rental: Rental, currency: Currency) -> str:
    return "\n".join(
        [
            _("↩️ <b>Refund rental #{id}</b> ({phone})?").format(
                id=rental.id, phone=esc(phone(rental.phone))
            ),
            _("{amount} goes back to your balance and the number is released.").format(
                amount=currency.format(rental.paid)
            ),
        ]
    )


def refund_confirm_keyboard(rental: Rental) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.row(button(_("↩️ Yes, refund"), RentalCb(rid=rental.id, act="refundok")))
    builder.row(button(_("◀ Back"), RentalCb(rid=rental.id, act="show")))
    return builder.as_markup()


# -- sent by jobs ---------------------------------------------------------------------------------


def forwarded_message(rental: Rental, message: RentalMessage) -> str:
    head = _("📩 <b>SMS to {phone}</b> (rental #{id})").format(
        phone=esc(phone(rental.phone)), id=rental.id
    )
    return head + "\n" + message_block(message)


def reminder_text(rental: Rental) -> str:
    when = format_date(rental.expires_at or 0)
    text = _("⏰ Your rental #{id} ({phone}) ends on {date} UTC.").format(
        id=rental.id, phone=esc(phone(rental.phone)), date=when
    )
    if rental.extendable:
        text += " " + _("Extend it to keep the number.")
    return text


def reminder_keyboard(rental: Rental) -> InlineKeyboardMarkup | None:
    if not rental.extendable:
        return None
    builder = InlineKeyboardBuilder()
    builder.row(button(_("➕ Extend"), RentalCb(rid=rental.id, act="ext")))
    return builder.as_markup()


def ended_text(rental: Rental) -> str:
    return _(
        "⌛ Your rental #{id} ({phone}) has ended. Messages sent to this number no longer "
        "reach you. Thank you!"
    ).format(id=rental.id, phone=esc(phone(rental.phone)))


def failed_text(rental: Rental, refunded: int, currency: Currency) -> str:
    return _("↩️ Rental #{id} could not be completed. {amount} is back on your balance.").format(
        id=rental.id, amount=currency.format(refunded)
    )


def extension_failed_text(rental: Rental, days: int, refunded: int, currency: Currency) -> str:
    return _(
        "↩️ The extension of rental #{id} ({phone}) by {days} could not be completed. "
        "{amount} is back on your balance."
    ).format(
        id=rental.id,
        phone=esc(phone(rental.phone)),
        days=days_text(days),
        amount=currency.format(refunded),
    )
