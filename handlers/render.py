"""Message texts. Everything that came from outside goes through `esc` (HTML)."""

from __future__ import annotations

import html
import time

from bot.money import Currency
from bot.providers.base import Route
from bot.services.catalog import CountryChoice, Page, RouteChoice
from bot.services.orders import QuoteView
from storage.models import Country, LedgerEntry, Order, OrderCode, OrderStatus, Service
from storage.sms import SmsMessage, SmsSend

esc = html.escape

STATUS_LABELS = {
    OrderStatus.CREATED: "⏳ Buying the number…",
    OrderStatus.NUMBER_ISSUED: "⏳ Waiting for the SMS",
    OrderStatus.CODE_RECEIVED: "✅ Code received",
    OrderStatus.COMPLETED: "✅ Completed",
    OrderStatus.CANCELLED: "↩️ Cancelled",
    OrderStatus.EXPIRED: "⌛ Expired, no code",
    OrderStatus.FAILED: "❌ Failed",
}

HELP = (
    "<b>How it works</b>\n"
    "1. Top up your balance.\n"
    "2. Tap <b>Buy a number</b>, pick a service, a country and a route.\n"
    "3. Use the number where you sign up. The code appears here within seconds.\n"
    "No code before the time runs out? The number is cancelled and you get your money back "
    "automatically.\n\n"
    "<b>Commands</b>\n"
    "/buy — buy a number\n/sms — send an SMS\n/balance — your balance\n/orders — your orders\n"
    "/help — this help\n\n"
    "Tip: type part of a service name at any time to search for it."
)


def main_menu(first_name: str, balance: int, currency: Currency, sandbox: bool) -> str:
    lines = [
        f"👋 Hi, {esc(first_name)}!",
        "Virtual numbers for SMS verification: pay from your balance, get the code here, "
        "or get your money back.",
        f"\n💰 Balance: <b>{currency.format(balance)}</b>",
    ]
    if sandbox:
        lines.append(
            "\n🧪 <b>Sandbox mode</b>: the Sandbox route sells made-up numbers and codes."
        )
    return "\n".join(lines)


def services(page: Page[Service], query: str) -> str:
    if query and not page.total:
        return f"🔎 No service matches “{esc(query)}”. Try a shorter name."
    if not page.total:
        return "No services are available right now. Please try again later."
    head = f"🔎 Services matching “{esc(query)}”" if query else "📱 <b>Choose a service</b>"
    return f"{head} ({page.total})\nType part of a name to search."


def countries(service: Service, page: Page[CountryChoice]) -> str:
    if not page.total:
        return f"<b>{esc(service.name)}</b>\nNo country offers this service right now."
    return f"<b>{esc(service.name)}</b>\n🌍 Choose a country ({page.total}). Prices are “from”."


def routes(
    service: Service, country: Country, choices: list[RouteChoice], currency: Currency
) -> str:
    head = f"<b>{esc(service.name)}</b> · {country.flag} {esc(country.name)}"
    if not choices:
        return f"{head}\nNo route sells this right now."
    return f"{head}\nChoose a route (cheapest first):"


def route_button(choice: RouteChoice, currency: Currency) -> str:
    stock = f"{choice.stock} left" if choice.stock else "sold out"
    rate = f" · {choice.success_rate}% ok" if choice.success_rate is not None else ""
    return f"{choice.route.title} · {currency.format(choice.price)} · {stock}{rate}"


def country_button(choice: CountryChoice, currency: Currency) -> str:
    stock = f"{choice.stock}" if choice.stock else "sold out"
    price = currency.format(choice.price_from)
    return f"{choice.country.flag} {choice.country.name} · {price} · {stock}"


def confirm(view: QuoteView, balance: int, currency: Currency) -> str:
    price = view.quote.price
    minutes = max(1, round((view.quote.expires_at - time.time()) / 60))
    lines = [
        "🧾 <b>Confirm your purchase</b>",
        f"Service: <b>{esc(view.service_name)}</b>",
        f"Country: {view.country_flag} {esc(view.country_name)}",
        f"Route: {esc(view.route.title)}",
        f"Price: <b>{currency.format(price)}</b>",
    ]
    if balance >= price:
        lines.append(f"Balance: {currency.format(balance)} → {currency.format(balance - price)}")
        lines.append(f"\nThis price is held for {minutes} min. No code, no charge.")
    else:
        lines.append(f"Balance: {currency.format(balance)}")
        lines.append(
            f"\n⚠️ You need {currency.format(price - balance)} more. Top up and try again."
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
        return " (time is up)"
    return f" ({left // 60}:{left % 60:02d} left)"


def order_card(
    order: Order,
    codes: list[OrderCode],
    route: Route | None,
    currency: Currency,
    country: Country | None = None,
) -> str:
    where = f"{country.flag} {esc(country.name)}" if country else esc(order.country)
    title = route.title if route else order.route
    status = STATUS_LABELS[order.status]
    if order.status in (OrderStatus.NUMBER_ISSUED, OrderStatus.CODE_RECEIVED):
        status += _time_left(order)
    lines = [
        f"📱 <b>{esc(order.service_name)}</b> · {where} · {esc(title)}",
        f"Order #{order.id}",
        f"Number: <code>{esc(_phone(order.phone))}</code>",
        f"Status: {status}",
        f"Price: {currency.format(order.price)}" + (" (refunded)" if order.refunded else ""),
    ]
    if codes:
        lines.append("")
        lines.append("Codes:")
        for code in codes:
            text = f" — {esc(code.text)}" if code.text and code.text != code.code else ""
            lines.append(f"• <code>{esc(code.code)}</code>{text}")
    elif order.status is OrderStatus.NUMBER_ISSUED:
        lines.append("\nUse this number now; the code will appear here.")
    return "\n".join(lines)


def code_message(order: Order, code: OrderCode) -> str:
    text = f"\n{esc(code.text)}" if code.text and code.text != code.code else ""
    return (
        f"📩 <b>{esc(order.service_name)}</b> code for <code>{esc(_phone(order.phone))}</code>:\n"
        f"<code>{esc(code.code)}</code>{text}"
    )


def order_closed(order: Order, refunded: int, currency: Currency) -> str:
    reasons = {
        OrderStatus.EXPIRED: "No code arrived in time, so the number was cancelled.",
        OrderStatus.CANCELLED: "The number was cancelled.",
        OrderStatus.FAILED: "The purchase could not be completed.",
    }
    reason = reasons.get(order.status, "The order was closed.")
    money = f" {currency.format(refunded)} is back on your balance." if refunded else ""
    return f"↩️ Order #{order.id} ({esc(order.service_name)}): {reason}{money}"


def order_line(order: Order, codes: list[OrderCode], currency: Currency) -> str:
    code = f" · <code>{esc(codes[-1].code)}</code>" if codes else ""
    refunded = " · refunded" if order.refunded else ""
    return (
        f"#{order.id} {esc(order.service_name)} · <code>{esc(_phone(order.phone))}</code>\n"
        f"   {STATUS_LABELS[order.status]} · {currency.format(order.price)}{refunded}{code}"
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
        sms_block = "\n\n<b>SMS sends</b>\n" + "\n".join(sms_line(s, currency) for s in sms_sends)
    if not items:
        return "You have no number orders yet. Tap <b>Buy a number</b> to get one." + sms_block
    body = "\n".join(order_line(o, codes.get(o.id, []), currency) for o in items)
    return f"🗂 <b>Your orders</b> (page {page + 1}/{pages})\n\n{body}{sms_block}"


def balance(amount: int, currency: Currency, history: list[LedgerEntry]) -> str:
    lines = [f"💰 Your balance: <b>{currency.format(amount)}</b>"]
    if history:
        lines.append("\nRecent movements:")
        for entry in history:
            sign = "+" if entry.amount > 0 else "−"
            order = f" · order #{entry.order_id}" if entry.order_id else ""
            lines.append(
                f"{sign}{currency.format(abs(entry.amount))} {esc(entry.kind.value)}{order}"
            )
    lines.append("\nTo top up, contact the shop owner.")
    return "\n".join(lines)


# -- SMS -------------------------------------------------------------------------------------

SMS_ICONS = {
    "pending": "⏳",
    "queued": "⏳",
    "submitted": "📤",
    "delivered": "✅",
    "failed": "❌",
}

SMS_PROMPT_RECIPIENTS = (
    "✉️ <b>Send SMS</b>\n"
    "Send the recipients' numbers with the country code, one per line or separated by commas "
    "(up to 100), e.g. <code>+372 5678 9045</code>."
)


def sms_invalid(invalid: list[tuple[str, str]]) -> str:
    lines = ["These numbers can't be used:"]
    lines += [f"• <code>{esc(raw)}</code> — {esc(reason)}" for raw, reason in invalid[:20]]
    if len(invalid) > 20:
        lines.append(f"…and {len(invalid) - 20} more.")
    lines.append("\nPlease send the corrected list.")
    return "\n".join(lines)


def sms_prompt_text(count: int, sender: str) -> str:
    return (
        f"✉️ {count} recipient(s). Sender: <b>{esc(sender)}</b>.\nNow send the text of the message."
    )


def _numbers(numbers: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"+{n}" for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


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
    lines = [
        "✉️ <b>Confirm your SMS</b>",
        f"To: {len(messages)} recipient(s): {esc(_numbers([m.to_number for m in messages]))}",
        f"From: {esc(send.sender)}",
        f"Length: {send.segments} segment(s) per message ({esc(send.encoding)})",
        f"<blockquote>{esc(preview)}</blockquote>",
        f"Price per recipient: {per}",
        f"Total: <b>{currency.format(send.total_price)}</b>",
    ]
    if balance >= send.total_price:
        lines.append(
            f"Balance: {currency.format(balance)} → {currency.format(balance - send.total_price)}"
        )
        lines.append("\nFailed messages are refunded automatically.")
    else:
        lines.append(f"Balance: {currency.format(balance)}")
        lines.append(
            f"\n⚠️ You need {currency.format(send.total_price - balance)} more. Top up first."
        )
    return "\n".join(lines)


def sms_status(send: SmsSend, messages: list[SmsMessage], currency: Currency) -> str:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.status] = counts.get(message.status, 0) + 1
    refunded = sum(m.price for m in messages if m.refunded)
    head = {
        "sending": "Sending…",
        "sent": "Sent, waiting for delivery reports",
        "done": "Finished",
        "failed": "Not sent",
        "draft": "Not sent yet",
    }.get(send.status, send.status)
    lines = [
        f"✉️ <b>SMS #{send.id}</b> · {head}",
        f"{len(messages)} recipient(s) · {send.segments} segment(s) · "
        f"{currency.format(send.total_price)}",
        "",
    ]
    for message in messages:
        tail = " · refunded" if message.refunded else ""
        lines.append(
            f"{SMS_ICONS.get(message.status, '•')} +{esc(message.to_number)} "
            f"{esc(message.status)}{tail}"
        )
    summary = " · ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    lines.append(f"\n{esc(summary)}")
    if refunded:
        lines.append(f"Refunded: {currency.format(refunded)}")
    if send.status == "failed" and send.error:
        lines.append(
            "The provider did not accept this SMS. The full price is back on your balance."
        )
    return "\n".join(lines)


def sms_line(send: SmsSend, currency: Currency) -> str:
    return f"✉️ SMS #{send.id} · {currency.format(send.total_price)} · {esc(send.status)}"
