"""/balance and the Balance screen."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.money import Currency
from bot.services.wallet import WalletService
from handlers import keyboards, render
from handlers.callbacks import MenuCb
from handlers.common import answer, show
from storage.models import User

RECENT = 5


def build_wallet_router() -> Router:
    router = Router(name="wallet")

    @router.message(Command("balance"))
    async def balance_command(
        message: Message, user: User, wallet: WalletService, currency: Currency
    ) -> None:
        history = await wallet.history(user.id, RECENT)
        await message.answer(
            render.balance(user.balance, currency, history), reply_markup=keyboards.back_to_menu()
        )

    @router.callback_query(MenuCb.filter(F.to == "balance"))
    async def balance_menu(
        callback: CallbackQuery, user: User, wallet: WalletService, currency: Currency
    ) -> None:
        await answer(callback)
        history = await wallet.history(user.id, RECENT)
        await show(
            callback, render.balance(user.balance, currency, history), keyboards.back_to_menu()
        )

    return router
