"""Message texts. Everything that came from outside goes through `esc` (HTML).

Every text is translated here, in the locale of the update (or the one a notification set).
"""

from __future__ import annotations

import html
import time

from shop.i18n import N_, _, __, country_name, ngettext
from shop.models import (
    ROUTE_REMOVED,
    Country,
    LedgerEntry,
    LedgerKind,
    Order,
    OrderCard,
    OrderCode,
    OrderStatus,
    Service,
    SmsMessage,
    SmsSend,
)
from shop.money import Currency
from shop.services.catalog import CountryChoice, Page, RouteChoice
from shop.services.orders import QuoteView

esc = html.escape

STATUS_LABELS = {
    OrderStatus.CREATED: __("⏳ Buying the number…"),
    OrderStatus.NUMBER_ISSUED: __("⏳ Waiting for the SMS"),
    OrderStatus.CODE_RECEIVED: __("✅ Code received"),
    OrderStatus.COMPLETED: __("✅ Completed"),
    OrderStatus.CANCELLED: __("↩️ Cancelled"),
    OrderStatus.EXPIRED: __("⌛ Expired, no code"),
    OrderStatus.FAILED: __("❌ Failed"),
}

LEDGER_KINDS = {
    LedgerKind.CREDIT: __("credit"),
    LedgerKind.PURCHASE: __("purchase"),
    LedgerKind.REFUND: __("refund"),
    LedgerKind.ADJUSTMENT: __("adjustment"),
    LedgerKind.TOPUP: __("top-up"),
    LedgerKind.TOPUP_REFUND: __("top-up refund"),
    LedgerKind.PROMO: __("promo code"),
    LedgerKind.REFERRAL: __("referral bonus"),
}


def status_label(status: OrderStatus) -> str:
    """An order status for people, in the current language."""
    return str(STATUS_LABELS[status])


def ledger_kind(kind: LedgerKind) -> str:
    label = LEDGER_KINDS.get(kind)
    return str(label) if label is not None else kind.value


def place(country: Country) -> str:
    """Flag and name of a country, in the current language (HTML-escaped)."""
    return f"{country.flag} {esc(country_name(country.code, country.name))}"


def help_text(sms_enabled: bool = False) -> str:
    commands = [
        _("/buy — buy a number"),
        *([_("/sms — send an SMS")] if sms_enabled else []),
        _("/balance — your balance"),
        _("/orders — your orders"),
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


def main_menu(first_name: str, balance: int, currency: Currency, sandbox: bool) -> str:
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


def language(current: str, names: dict[str, str]) -> str:
    return "\n".join(
        [
            _("🌐 <b>Language</b>"),
            _("The bot speaks {language}. Choose another one:").format(
                language=esc(names.get(current, current))
            ),
        ]
    )


def services(page: Page[Service], query: str) -> str:
    if query and not page.total:
        return _("🔎 No service matches “{query}”. Try a shorter name.").format(query=esc(query))
    if not page.total:
        return _("No services are available right now. Please try again later.")
    if query:
        head = _("🔎 Services matching “{query}” ({count})").format(
            query=esc(query), count=page.total
        )
    else:
        head = _("📱 <b>Choose a service</b> ({count})").format(count=page.total)
    return head + "\n" + _("Type part of a name to search.")


def countries(service: Service, page: Page[CountryChoice]) -> str:
    head = f"<b>{esc(service.name)}</b>"
    if not page.total:
        return head + "\n" + _("No country offers this service right now.")
    return (
        head
        + "\n"
        + _("🌍 Choose a country ({count}). Prices are “from”.").format(count=page.total)
    )


def routes(
    service: Service, country: Country, choices: list[RouteChoice], currency: Currency
) -> str:
    head = f"<b>{esc(service.name)}</b> · {place(country)}"
    if not choices:
        return head + "\n" + _("No route sells this right now.")
    return head + "\n" + _("Choose a route (cheapest first):")


def route_button(choice: RouteChoice, currency: Currency) -> str:
    stock = _("{count} left").format(count=choice.stock) if choice.stock else _("sold out")
    rate = (
        " · " + _("{percent}% ok").format(percent=choice.success_rate)
        if choice.success_rate is not None
        else ""
    )
    return f"{choice.route.title} · {currency.format(choice.price)} · {stock}{rate}"


def country_button(choice: CountryChoice, currency: Currency) -> str:
    stock = f"{choice.stock}" if choice.stock else _("sold out")
    price = currency.format(choice.price_from)
    name = country_name(choice.country.code, choice.country.name)
    return f"{choice.country.flag} {name} · {price} · {stock}"


def confirm(view: QuoteView, balance: int, currency: Currency) -> str:
    price = view.quote.price
    minutes = max(1, round((view.quote.expires_at - time.time()) / 60))
    name = esc(country_name(view.quote.country, view.country_name))
    lines = [
        _("🧾 <b>Confirm your purchase</b>"),
        _("Service: <b>{service}</b>").format(service=esc(view.service_name)),
        _("Country: {country}").format(country=f"{view.country_flag} {name}"),
        _("Route: {route}").format(route=esc(view.route.title)),
        _("Price: <b>{price}</b>").format(price=currency.format(price)),
    ]
    if balance >= price:
        lines.append(
            _("Balance: {before} → {after}").format(
                before=currency.format(balance), after=currency.format(balance - price)
            )
        )
        lines.append(
            "\n"
            + _("This price is held for {minutes} min. No code, no charge.").format(
                minutes=minutes
            )
        )
    else:
        lines.append(_("Balance: {amount}").format(amount=currency.format(balance)))
        lines.append(
            "\n"
            + _("⚠️ You need {amount} more. Top up and try again.").format(
                amount=currency.format(price - balance)
            )
        )
    return "\n".join(lines)


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


def order_closed(order: Order, refunded: int, currency: Currency) -> str:
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


def orders(
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


def balance(amount: int, currency: Currency, history: list[LedgerEntry]) -> str:
    lines = [_("💰 Your balance: <b>{amount}</b>").format(amount=currency.format(amount))]
    if history:
        lines.append("\n" + _("Recent movements:"))
        for entry in history:
            sign = "+" if entry.amount > 0 else "−"
            order = " · " + _("order #{id}").format(id=entry.order_id) if entry.order_id else ""
            lines.append(
                f"{sign}{currency.format(abs(entry.amount))} {esc(ledger_kind(entry.kind))}{order}"
            )
    lines.append("\n" + _("To top up, contact the shop owner."))
    return "\n".join(lines)


# -- SMS -------------------------------------------------------------------------------------

SMS_ICONS = {
    "pending": "⏳",
    "queued": "⏳",
    "submitted": "📤",
    "delivered": "✅",
    "failed": "❌",
}

SMS_STATUSES = {
    "pending": __("pending"),
    "queued": __("queued"),
    "submitted": __("submitted"),
    "delivered": __("delivered"),
    "failed": __("failed"),
}

SMS_SEND_STATUSES = {
    "sending": __("Sending…"),
    "sent": __("Sent, waiting for delivery reports"),
    "done": __("Finished"),
    "failed": __("Not sent"),
    "draft": __("Not sent yet"),
}


def sms_status_name(status: str) -> str:
    label = SMS_STATUSES.get(status)
    return str(label) if label is not None else status


def sms_prompt_recipients() -> str:
    return _(
        "✉️ <b>Send SMS</b>\n"
        "Send the recipients' numbers with the country code, one per line or separated by "
        "commas (up to 100), e.g. <code>+372 5678 9045</code>."
    )


# The reasons shop.phones gives for refusing a number (English constants there), repeated here
# so the extractor sees them; a unit test keeps the two in step.
PHONE_REASONS = (
    N_("add the country code, e.g. +372 5678 9045"),
    N_("not a phone number"),
    N_("not a valid phone number"),
    N_("not a number in a country (e.g. +800), it cannot receive SMS"),
    N_("looks like several numbers: put one number per line, or separate them with commas"),
)


def sms_invalid(invalid: list[tuple[str, str]]) -> str:
    lines = [_("These numbers can't be used:")]
    lines += [f"• <code>{esc(raw)}</code> — {esc(_(reason))}" for raw, reason in invalid[:20]]
    if len(invalid) > 20:
        lines.append(_("…and {count} more.").format(count=len(invalid) - 20))
    lines.append("\n" + _("Please send the corrected list."))
    return "\n".join(lines)


def recipients(count: int) -> str:
    return ngettext("{count} recipient", "{count} recipients", count).format(count=count)


def sms_prompt_text(count: int, sender: str) -> str:
    return (
        "✉️ "
        + _("{recipients}. Sender: <b>{sender}</b>.").format(
            recipients=recipients(count), sender=esc(sender)
        )
        + "\n"
        + _("Now send the text of the message.")
    )


def _numbers(numbers: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"+{n}" for n in numbers[:limit])
    if len(numbers) <= limit:
        return shown
    return _("{numbers} and {count} more").format(numbers=shown, count=len(numbers) - limit)


def sms_confirm(
    send: SmsSend, messages: list[SmsMessage], balance: int, currency: Currency
) -> str:
    prices = sorted({m.price for m in messages})
    per = (
        currency.format(prices[0])
        if len(prices) == 1
        else f"{currency.format(prices[0])}–{currency.format(prices[-1])}"
    )
    preview = send.text if len(send.text) <= 300 else send.text[:300] + "…"
    segments = ngettext(
        "Length: {count} segment per message ({encoding})",
        "Length: {count} segments per message ({encoding})",
        send.segments,
    ).format(count=send.segments, encoding=esc(send.encoding))
    lines = [
        _("✉️ <b>Confirm your SMS</b>"),
        _("To: {recipients}: {numbers}").format(
            recipients=recipients(len(messages)),
            numbers=esc(_numbers([m.to_number for m in messages])),
        ),
        _("From: {sender}").format(sender=esc(send.sender)),
        segments,
        f"<blockquote>{esc(preview)}</blockquote>",
        _("Price per recipient: {price}").format(price=per),
        _("Total: <b>{amount}</b>").format(amount=currency.format(send.total_price)),
    ]
    if balance >= send.total_price:
        lines.append(
            _("Balance: {before} → {after}").format(
                before=currency.format(balance),
                after=currency.format(balance - send.total_price),
            )
        )
        lines.append("\n" + _("Failed messages are refunded automatically."))
    else:
        lines.append(_("Balance: {amount}").format(amount=currency.format(balance)))
        lines.append(
            "\n"
            + _("⚠️ You need {amount} more. Top up first.").format(
                amount=currency.format(send.total_price - balance)
            )
        )
    return "\n".join(lines)


def sms_status(send: SmsSend, messages: list[SmsMessage], currency: Currency) -> str:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.status] = counts.get(message.status, 0) + 1
    refunded = sum(m.price for m in messages if m.refunded)
    label = SMS_SEND_STATUSES.get(send.status)
    head = str(label) if label is not None else send.status
    segments = ngettext("{count} segment", "{count} segments", send.segments).format(
        count=send.segments
    )
    lines = [
        f"✉️ <b>SMS #{send.id}</b> · {esc(head)}",
        f"{recipients(len(messages))} · {segments} · {currency.format(send.total_price)}",
        "",
    ]
    for message in messages:
        tail = " · " + _("refunded") if message.refunded else ""
        lines.append(
            f"{SMS_ICONS.get(message.status, '•')} +{esc(message.to_number)} "
            f"{esc(sms_status_name(message.status))}{tail}"
        )
    summary = " · ".join(f"{sms_status_name(name)} {n}" for name, n in sorted(counts.items()))
    lines.append(f"\n{esc(summary)}")
    if refunded:
        lines.append(_("Refunded: {amount}").format(amount=currency.format(refunded)))
    if send.status == "failed" and send.error:
        lines.append(
            _("The provider did not accept this SMS. The full price is back on your balance.")
        )
    return "\n".join(lines)


def sms_line(send: SmsSend, currency: Currency) -> str:
    label = SMS_SEND_STATUSES.get(send.status)
    status = str(label) if label is not None else send.status
    return f"✉️ SMS #{send.id} · {currency.format(send.total_price)} · {esc(status)}"
