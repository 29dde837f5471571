"""/balance and the Balance screen, /history and the wallet history pages, /promo."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from handlers.callbacks import MenuCb, WalletCb
from handlers.ui import Screen, answer, show
from handlers.wallet import screens
from shop.errors import InvalidInput
from shop.i18n import _
from shop.models import User
from shop.money import Currency
from shop.services.promos import PromoService
from shop.services.wallet import WalletService

RECENT = 5


async def _balance(
    user: User,
    wallet: WalletService,
    currency: Currency,
    state: FSMContext,
    raw_state: str | None,
) -> Screen:
    """The Balance screen. A half-typed top-up amount is dropped: "Cancel" on the
    typed-amount prompt comes back here."""
    if raw_state is not None and raw_state.startswith("TopupForm:"):
        await state.clear()
    recent = await wallet.history(user.id, RECENT)
    return screens.balance_text(user.balance, currency, recent), screens.balance_keyboard()


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
        text, markup = await _balance(user, wallet, currency, state, raw_state)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(MenuCb.filter(F.to == "balance"))
    async def balance_menu(
        callback: CallbackQuery,
        user: User,
        wallet: WalletService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        text, markup = await _balance(user, wallet, currency, state, raw_state)
        await answer(callback)
        await show(callback, text, markup)

    @router.message(Command("history"))
    async def history_command(
        message: Message, user: User, wallet: WalletService, currency: Currency
    ) -> None:
        page = await wallet.history_page(user.id, 0)
        await message.answer(
            screens.history_text(page, currency), reply_markup=screens.history_keyboard(page)
        )

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
        await show(callback, screens.history_text(page, currency), screens.history_keyboard(page))

    @router.message(Command("promo"))
    async def promo(
        message: Message,
        command: CommandObject,
        user: User,
        promos: PromoService,
        currency: Currency,
    ) -> None:
        code = (command.args or "").strip()
        if not code or len(code.split()) != 1:
            raise InvalidInput(_("Usage: /promo <code>"))
        redeemed = await promos.redeem(user.id, code)
        await message.answer(screens.promo_text(redeemed, currency))

    return router
