"""/balance and the Balance screen, /history and the wallet history pages."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from handlers.callbacks import MenuCb, WalletCb
from handlers.common import answer, show
from handlers.keyboards import button
from handlers.render import esc
from shop.i18n import _
from shop.models import LedgerEntry, LedgerKind, User
from shop.money import Currency
from shop.services.wallet import HistoryPage, WalletService

RECENT = 5


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


def build_wallet_router() -> Router:
    router = Router(name="wallet")

    @router.message(Command("balance"))
    async def balance_command(
        message: Message,
        user: User,
        wallet: WalletService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        if raw_state is not None and raw_state.startswith("TopupForm:"):
            await state.clear()
        recent = await wallet.history(user.id, RECENT)
        await message.answer(
            balance_text(user.balance, currency, recent), reply_markup=balance_keyboard()
        )

    @router.callback_query(MenuCb.filter(F.to == "balance"))
    async def balance_menu(
        callback: CallbackQuery,
        user: User,
        wallet: WalletService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        if raw_state is not None and raw_state.startswith("TopupForm:"):
            await state.clear()  # "Cancel" on the typed-amount prompt comes back here
        await answer(callback)
        recent = await wallet.history(user.id, RECENT)
        await show(callback, balance_text(user.balance, currency, recent), balance_keyboard())

    @router.message(Command("history"))
    async def history_command(
        message: Message, user: User, wallet: WalletService, currency: Currency
    ) -> None:
        page = await wallet.history_page(user.id, 0)
        await message.answer(history_text(page, currency), reply_markup=history_keyboard(page))

    @router.callback_query(WalletCb.filter(F.act == "hist"))
    async def history_menu(
        callback: CallbackQuery,
        callback_data: WalletCb,
        user: User,
        wallet: WalletService,
        currency: Currency,
    ) -> None:
        await answer(callback)
        page = await wallet.history_page(user.id, callback_data.page)
        await show(callback, history_text(page, currency), history_keyboard(page))

    return router
