"""Screens of the wallet: the balance with recent movements, and the history pages."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.callbacks import MenuCb, WalletCb
from handlers.ui import button, esc
from shop.i18n import _
from shop.models import LedgerEntry, LedgerKind
from shop.money import Currency
from shop.services.promos import Redeemed
from shop.services.wallet import HistoryPage


def kind_label(entry: LedgerEntry) -> str:
    """What a ledger row was, in the user's language."""
    labels = {
        LedgerKind.TOPUP: _("Top-up"),
        LedgerKind.TOPUP_REFUND: _("Top-up refunded"),
        LedgerKind.PURCHASE: _("Purchase"),
        LedgerKind.REFUND: _("Refund"),
        LedgerKind.CREDIT: _("Credited by the shop"),
        LedgerKind.ADJUSTMENT: _("Adjustment"),
        LedgerKind.PROMO: _("Promo code"),
        LedgerKind.REFERRAL: _("Referral bonus"),
        LedgerKind.RENTAL: _("Number rental"),
        LedgerKind.RENTAL_EXTEND: _("Rental extended"),
        LedgerKind.RENTAL_REFUND: _("Rental refunded"),
    }
    label = labels.get(entry.kind, entry.kind.value)
    if entry.kind is LedgerKind.PROMO and entry.promo_code:
        label = f"{label} {entry.promo_code}"
    return esc(label)


def signed(amount: int, currency: Currency) -> str:
    return ("+" if amount > 0 else "−") + currency.format(abs(amount))


def entry_line(entry: LedgerEntry, currency: Currency) -> str:
    when = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M")
    where = ""
    if entry.order_id is not None:
        where = f" · #{entry.order_id}"
    elif entry.sms_send_id is not None:
        where = " · " + _("SMS #{id}").format(id=entry.sms_send_id)
    return f"<code>{when}</code> {signed(entry.amount, currency)} {kind_label(entry)}{where}"


def balance_text(amount: int, currency: Currency, recent: list[LedgerEntry]) -> str:
    lines = [_("💰 Your balance: <b>{balance}</b>").format(balance=currency.format(amount))]
    if recent:
        lines.append("")
        lines.append(_("Recent movements:"))
        lines.extend(entry_line(e, currency) for e in recent)
    return "\n".join(lines)


def balance_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("➕ Top up"), WalletCb(act="topup"))],
            [
                button(_("📜 History"), WalletCb(act="hist")),
                button(_("👥 Referrals"), WalletCb(act="refs")),
            ],
            [button(_("◀ Menu"), MenuCb(to="main"))],
        ]
    )


def history_text(page: HistoryPage, currency: Currency) -> str:
    if not page.entries and page.page == 0:
        return _("📜 <b>Wallet history</b>\n\nNo movements yet.")
    header = _("📜 <b>Wallet history</b> (page {page}, newest first, UTC)").format(
        page=page.page + 1
    )
    return "\n".join([header, "", *(entry_line(e, currency) for e in page.entries)])


def history_keyboard(page: HistoryPage) -> InlineKeyboardMarkup:
    nav: list[InlineKeyboardButton] = []
    if page.page > 0:
        nav.append(button(_("◀ Newer"), WalletCb(act="hist", page=page.page - 1)))
    if page.has_next:
        nav.append(button(_("Older ▶"), WalletCb(act="hist", page=page.page + 1)))
    rows = [nav] if nav else []
    rows.append([button(_("💰 Balance"), MenuCb(to="balance"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def promo_text(redeemed: Redeemed, currency: Currency) -> str:
    return _("🎁 Promo code {code}: +{amount} credited. Balance: <b>{balance}</b>").format(
        code=esc(redeemed.code),
        amount=currency.format(redeemed.amount),
        balance=currency.format(redeemed.balance),
    )
