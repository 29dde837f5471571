"""Screens of sending an SMS: the prompts, the confirm screen with the price, and the live
delivery status (also redrawn by notifications)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

from handlers.callbacks import MenuCb, OrdersCb, SmsCb, WalletCb
from handlers.ui import Screen, button, esc
from shop.i18n import N_, _, __, ngettext, user_text
from shop.models import SmsMessage, SmsSend
from shop.money import Currency
from shop.services.sms import SmsNotSent

NOT_OFFERED = __("Sending SMS is not available in this shop.")


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


def sms_confirm_text(
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


def sms_status_text(send: SmsSend, messages: list[SmsMessage], currency: Currency) -> str:
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


def sms_status(send: SmsSend, messages: list[SmsMessage], currency: Currency) -> Screen:
    """The status message of a send: one line per recipient, Refresh, My orders, Menu."""
    return sms_status_text(send, messages, currency), sms_status_keyboard(send.id)


def sms_line(send: SmsSend, currency: Currency) -> str:
    label = SMS_SEND_STATUSES.get(send.status)
    status = str(label) if label is not None else send.status
    return f"✉️ SMS #{send.id} · {currency.format(send.total_price)} · {esc(status)}"


def sms_cancel_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("✖ Cancel"), SmsCb(act="cancel"))]])


def sms_confirm_keyboard(send_id: int, can_pay: bool, total: str) -> InlineKeyboardMarkup:
    pay = (
        button(_("✅ Send for {amount}").format(amount=total), SmsCb(sid=send_id, act="send"))
        if can_pay
        else button(_("➕ Top up"), WalletCb(act="topup"))
    )
    cancel = button(_("✖ Cancel"), SmsCb(act="cancel"))
    return InlineKeyboardMarkup(inline_keyboard=[[pay], [cancel]])


def sms_status_keyboard(send_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("🔄 Refresh"), SmsCb(sid=send_id, act="show"))],
            [button(_("🗂 My orders"), OrdersCb()), button(_("◀ Menu"), MenuCb(to="main"))],
        ]
    )


def sms_not_sent(outcome: SmsNotSent, currency: Currency) -> str:
    text = f"❌ {esc(user_text(outcome.error))}"
    if outcome.refunded is not None:
        text += "\n\n" + _("{amount} is back on your balance.").format(
            amount=currency.format(outcome.refunded)
        )
    return text
