"""Screens of orders: the order card (also redrawn by notifications), the code message, the
notice of an order that ended without a code, and the list of a customer's orders."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import MenuCb, OrderCb, OrdersCb, SmsCb
from handlers.sms.screens import sms_line
from handlers.ui import button, esc, pager, place
from shop.i18n import _, __
from shop.models import ROUTE_REMOVED, Order, OrderCard, OrderCode, OrderStatus, SmsSend
from shop.money import Currency
from shop.services.orders import CancelOutcome

STATUS_LABELS = {
    OrderStatus.CREATED: __("⏳ Buying the number…"),
    OrderStatus.NUMBER_ISSUED: __("⏳ Waiting for the SMS"),
    OrderStatus.CODE_RECEIVED: __("✅ Code received"),
    OrderStatus.COMPLETED: __("✅ Completed"),
    OrderStatus.CANCELLED: __("↩️ Cancelled"),
    OrderStatus.EXPIRED: __("⌛ Expired, no code"),
    OrderStatus.FAILED: __("❌ Failed"),
}


def status_label(status: OrderStatus) -> str:
    """An order status for people, in the current language."""
    return str(STATUS_LABELS[status])


def _phone(phone: str | None) -> str:
    if not phone:
        return "—"
    return phone if phone.startswith("+") else f"+{phone}"


def _time_left(order: Order) -> str:
    if order.deadline is None:
        return ""
    left = int(order.deadline - time.time())
    if left <= 0:
        return " " + _("(time is up)")
    return " " + _("({time} left)").format(time=f"{left // 60}:{left % 60:02d}")


def order_card(card: OrderCard, currency: Currency) -> str:
    order, codes, route, country = card.order, card.codes, card.route, card.country
    where = place(country) if country else esc(order.country)
    title = route.title if route else order.route
    status = status_label(order.status)
    if order.status in (OrderStatus.NUMBER_ISSUED, OrderStatus.CODE_RECEIVED):
        status += _time_left(order)
    price = currency.format(order.price)
    lines = [
        f"📱 <b>{esc(order.service_name)}</b> · {where} · {esc(title)}",
        _("Order #{id}").format(id=order.id),
        _("Number: {phone}").format(phone=f"<code>{esc(_phone(order.phone))}</code>"),
        _("Status: {status}").format(status=status),
        (
            _("Price: {price} (refunded)").format(price=price)
            if order.refunded
            else _("Price: {price}").format(price=price)
        ),
    ]
    if codes:
        lines.append("")
        lines.append(_("Codes:"))
        for code in codes:
            text = f" — {esc(code.text)}" if code.text and code.text != code.code else ""
            lines.append(f"• <code>{esc(code.code)}</code>{text}")
    elif order.status is OrderStatus.NUMBER_ISSUED:
        lines.append("\n" + _("Use this number now; the code will appear here."))
    return "\n".join(lines)


def code_message(order: Order, code: OrderCode) -> str:
    text = f"\n{esc(code.text)}" if code.text and code.text != code.code else ""
    head = _("📩 <b>{service}</b> code for {phone}:").format(
        service=esc(order.service_name), phone=f"<code>{esc(_phone(order.phone))}</code>"
    )
    return f"{head}\n<code>{esc(code.code)}</code>{text}"


def order_closed_text(order: Order, refunded: int, currency: Currency) -> str:
    reasons = {
        OrderStatus.EXPIRED: _("No code arrived in time, so the number was cancelled."),
        OrderStatus.CANCELLED: _("The number was cancelled."),
        OrderStatus.FAILED: _("The purchase could not be completed."),
    }
    reason = reasons.get(order.status) or _("The order was closed.")
    if order.error == ROUTE_REMOVED:
        reason = _("The provider of this number is no longer available, so the order was closed.")
    money = (
        " " + _("{amount} is back on your balance.").format(amount=currency.format(refunded))
        if refunded
        else ""
    )
    head = _("↩️ Order #{id} ({service}):").format(id=order.id, service=esc(order.service_name))
    return f"{head} {reason}{money}"


def order_line(order: Order, codes: list[OrderCode], currency: Currency) -> str:
    code = f" · <code>{esc(codes[-1].code)}</code>" if codes else ""
    refunded = " · " + _("refunded") if order.refunded else ""
    return (
        f"#{order.id} {esc(order.service_name)} · <code>{esc(_phone(order.phone))}</code>\n"
        f"   {status_label(order.status)} · {currency.format(order.price)}{refunded}{code}"
    )


def orders_text(
    items: list[Order],
    codes: dict[int, list[OrderCode]],
    page: int,
    pages: int,
    currency: Currency,
    sms_sends: list[SmsSend] | None = None,
) -> str:
    sms_block = ""
    if sms_sends:
        sms_block = (
            "\n\n"
            + _("<b>SMS sends</b>")
            + "\n"
            + "\n".join(sms_line(s, currency) for s in sms_sends)
        )
    if not items:
        return _("You have no number orders yet. Tap <b>Buy a number</b> to get one.") + sms_block
    body = "\n".join(order_line(o, codes.get(o.id, []), currency) for o in items)
    head = _("🗂 <b>Your orders</b> (page {page}/{pages})").format(page=page + 1, pages=pages)
    return f"{head}\n\n{body}{sms_block}"


CANCEL_NOTICES = {
    CancelOutcome.REFUNDED: __("Cancelled. The money is back on your balance."),
    CancelOutcome.CODE_ARRIVED: __("A code has just arrived, so the number was not cancelled."),
    CancelOutcome.ALREADY_CLOSED: __("This order is already closed."),
}


def order_keyboard(card: OrderCard) -> InlineKeyboardMarkup:
    order, route = card.order, card.route
    builder = InlineKeyboardBuilder()
    if order.status is OrderStatus.NUMBER_ISSUED:
        builder.row(
            button(_("🔄 Refresh"), OrderCb(oid=order.id, act="refresh")),
            button(_("✖ Cancel"), OrderCb(oid=order.id, act="cancel")),
        )
    elif order.status is OrderStatus.CODE_RECEIVED:
        row = [button(_("🔄 Refresh"), OrderCb(oid=order.id, act="refresh"))]
        if route is not None and route.can_request_another:
            row.append(button(_("📨 Another code"), OrderCb(oid=order.id, act="another")))
        if route is not None and route.can_finish:
            row.append(button(_("✔ Done"), OrderCb(oid=order.id, act="done")))
        builder.row(*row)
    builder.row(button(_("🗂 My orders"), OrdersCb()), button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def orders_keyboard(
    items: list[Order], page: int, pages: int, sms_sends: Sequence[SmsSend] = ()
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for item in items:
        builder.add(button(f"#{item.id}", OrderCb(oid=item.id, act="show")))
    for send in sms_sends:
        builder.add(button(f"✉️ #{send.id}", SmsCb(sid=send.id, act="show")))
    builder.adjust(5)
    builder.row(*pager(page, pages, lambda p: OrdersCb(page=p)))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()
