"""Screens of a broadcast: the prompt, the preview's confirm screen, and the progress message
edited in place until the end."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import BroadcastCb
from shop.i18n import _
from shop.services.broadcast import Phase, Progress


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return _("{s} s").format(s=seconds)
    if seconds < 3600:
        return _("{m} min {s} s").format(m=seconds // 60, s=seconds % 60)
    return _("{h} h {m} min").format(h=seconds // 3600, m=seconds % 3600 // 60)


def progress_text(progress: Progress) -> str:
    c = progress.counts
    head = {
        Phase.RUNNING: _("📣 <b>Broadcast #{id}</b>: sending…"),
        Phase.PAUSED: _(
            "⏸ <b>Broadcast #{id}</b>: paused while the bot restarts; it resumes by itself."
        ),
        Phase.DONE: _("✅ <b>Broadcast #{id}</b>: done."),
        Phase.CANCELLED: _("⛔ <b>Broadcast #{id}</b>: cancelled."),
    }[progress.phase].format(id=progress.broadcast_id)
    lines = [
        head,
        _(
            "Sent: {sent} · failed: {failed} · blocked: {blocked} · left: {left} · total: {total}"
        ).format(sent=c.sent, failed=c.failed, blocked=c.blocked, left=c.left, total=c.total),
    ]
    if progress.phase == Phase.RUNNING and progress.eta_seconds is not None:
        lines.append(
            _("Pace: {rate}/s · about {eta} to go").format(
                rate=f"{progress.rate:.1f}", eta=_duration(progress.eta_seconds)
            )
        )
    if c.blocked and progress.phase != Phase.RUNNING:
        lines.append(_("Users who blocked the bot are skipped from now on."))
    if c.unknown:
        lines.append(
            _(
                "{unknown} of the sent were being sent when the bot stopped: their outcome is "
                "unknown, so they count as sent and were not sent again."
            ).format(unknown=c.unknown)
        )
    return "\n".join(lines)


def progress_keyboard(broadcast_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("⛔ Cancel broadcast"), callback_data=BroadcastCb(bid=broadcast_id, act="stop")
    )
    return builder.as_markup()


def confirm_keyboard(broadcast_id: int, recipients: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📣 Send to {count}").format(count=recipients),
        callback_data=BroadcastCb(bid=broadcast_id, act="send"),
    )
    builder.button(text=_("✖️ Cancel"), callback_data=BroadcastCb(bid=broadcast_id, act="cancel"))
    builder.adjust(2)
    return builder.as_markup()


def prompt_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("✖️ Cancel"), callback_data=BroadcastCb(act="cancel"))
    return builder.as_markup()


def prompt_text() -> str:
    return _(
        "📣 <b>Broadcast</b>\nSend me the message for every user: text, a photo or a "
        "document, formatted as you like. You will see a preview before anything is sent."
    )


def preview_text(recipients: int) -> str:
    return _(
        "👆 This is how it will look.\nSend it to <b>{count}</b> users (everyone active "
        "who has not blocked the bot and is not banned)?"
    ).format(count=recipients)
