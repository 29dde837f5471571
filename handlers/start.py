"""/start, /help, the main menu and the callbacks that lead nowhere."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.money import Currency
from handlers import keyboards, render
from handlers.callbacks import MenuCb, NoopCb
from handlers.common import answer, show
from storage.models import User


def build_start_router() -> Router:
    router = Router(name="start")

    @router.message(CommandStart())
    async def start(
        message: Message,
        user: User,
        currency: Currency,
        sandbox: bool,
        sms_enabled: bool,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        if raw_state is not None:  # loaded by aiogram's FSM middleware already
            await state.clear()  # any half-typed input (an SMS) is abandoned
        await message.answer(
            render.main_menu(user.first_name, user.balance, currency, sandbox),
            reply_markup=keyboards.main_menu(sms_enabled),
        )

    @router.message(Command("help"))
    async def help_command(message: Message) -> None:
        await message.answer(render.HELP, reply_markup=keyboards.back_to_menu())

    @router.callback_query(MenuCb.filter(F.to == "main"))
    async def main_menu(
        callback: CallbackQuery,
        user: User,
        currency: Currency,
        sandbox: bool,
        sms_enabled: bool,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        if raw_state is not None:  # loaded by aiogram's FSM middleware already
            await state.clear()
        await answer(callback)
        await show(
            callback,
            render.main_menu(user.first_name, user.balance, currency, sandbox),
            keyboards.main_menu(sms_enabled),
        )

    @router.callback_query(MenuCb.filter(F.to == "help"))
    async def help_menu(callback: CallbackQuery) -> None:
        await answer(callback)
        await show(callback, render.HELP, keyboards.back_to_menu())

    @router.callback_query(NoopCb.filter())
    async def noop(callback: CallbackQuery) -> None:
        await answer(callback)

    return router


def build_fallback_router() -> Router:
    """Last in line: unknown commands, stale or forged buttons, messages we do not expect."""
    router = Router(name="fallback")

    @router.message(F.text.startswith("/"))
    async def unknown_command(message: Message) -> None:
        await message.answer("Unknown command. Send /help to see what I can do.")

    @router.message()
    async def anything_else(message: Message) -> None:
        await message.answer("Send /buy to get a number, or /help for all commands.")

    @router.callback_query()
    async def stale_button(callback: CallbackQuery) -> None:
        await answer(callback, "This button is no longer valid. Send /start.", alert=True)

    return router
