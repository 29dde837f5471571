"""/start, /help, /language, the main menu, and the last stop for what nothing else took."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from handlers.callbacks import LanguageCb, MenuCb, NoopCb
from handlers.menu import screens
from handlers.ui import Screen, answer, back_to_menu, show
from shop.i18n import _, i18n, language_name, locale_of
from shop.models import User
from shop.money import Currency
from shop.services.rentals import RentalService
from shop.services.users import UserService


def _language_screen(user: User) -> Screen:
    locales = i18n.available_locales
    names = {locale: language_name(locale) for locale in locales}
    current = locale_of(user)
    return (
        screens.language_text(current, names),
        screens.language_keyboard(locales, names, current),
    )


async def _clear(state: FSMContext) -> None:
    """`state.clear()` in one write where it can: the buy screens' states carry no data, and
    the main menu is shown from them often."""
    await state.set_state(None)
    if await state.get_data():
        await state.set_data({})


async def _main_menu(
    user: User,
    currency: Currency,
    sandbox: bool,
    sms_enabled: bool,
    rentals_enabled: bool,
    state: FSMContext,
    raw_state: str | None,
) -> Screen:
    """The main menu; any half-typed input (an SMS) is abandoned."""
    if raw_state is not None:  # loaded by aiogram's FSM middleware already
        await _clear(state)
    return (
        screens.main_menu_text(user.first_name, user.balance, currency, sandbox),
        screens.main_menu_keyboard(sms_enabled, rentals_enabled),
    )


def build_menu_router() -> Router:
    router = Router(name="menu")

    @router.message(CommandStart())
    async def start(
        message: Message,
        user: User,
        currency: Currency,
        sandbox: bool,
        sms_enabled: bool,
        state: FSMContext,
        raw_state: str | None,
        rentals: RentalService | None,
    ) -> None:
        text, markup = await _main_menu(
            user, currency, sandbox, sms_enabled, rentals is not None, state, raw_state
        )
        await message.answer(text, reply_markup=markup)

    @router.message(Command("help"))
    async def help_command(
        message: Message, sms_enabled: bool, rentals: RentalService | None
    ) -> None:
        await message.answer(
            screens.help_text(sms_enabled, rentals is not None), reply_markup=back_to_menu()
        )

    @router.message(Command("language"))
    async def language_command(message: Message, user: User) -> None:
        text, markup = _language_screen(user)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(MenuCb.filter(F.to == "language"))
    async def language_menu(callback: CallbackQuery, user: User) -> None:
        await answer(callback)
        text, markup = _language_screen(user)
        await show(callback, text, markup)

    @router.callback_query(LanguageCb.filter())
    async def choose_language(
        callback: CallbackQuery, callback_data: LanguageCb, user: User, users: UserService
    ) -> None:
        user = await users.set_locale(user.id, callback_data.locale)
        with i18n.use_locale(locale_of(user)):  # the rest of this update speaks the new one
            await answer(
                callback,
                _("Language: {language}").format(language=language_name(callback_data.locale)),
            )
            text, markup = _language_screen(user)
            await show(callback, text, markup)

    @router.callback_query(MenuCb.filter(F.to == "main"))
    async def main_menu(
        callback: CallbackQuery,
        user: User,
        currency: Currency,
        sandbox: bool,
        sms_enabled: bool,
        state: FSMContext,
        raw_state: str | None,
        rentals: RentalService | None,
    ) -> None:
        text, markup = await _main_menu(
            user, currency, sandbox, sms_enabled, rentals is not None, state, raw_state
        )
        await answer(callback)
        await show(callback, text, markup)

    @router.callback_query(MenuCb.filter(F.to == "help"))
    async def help_menu(
        callback: CallbackQuery, sms_enabled: bool, rentals: RentalService | None
    ) -> None:
        await answer(callback)
        await show(callback, screens.help_text(sms_enabled, rentals is not None), back_to_menu())

    @router.callback_query(NoopCb.filter())
    async def noop(callback: CallbackQuery) -> None:
        await answer(callback)

    return router


def build_fallback_router() -> Router:
    """Last in line: unknown commands, stale or forged buttons, messages we do not expect."""
    router = Router(name="fallback")

    @router.message(F.text.startswith("/"))
    async def unknown_command(message: Message) -> None:
        await message.answer(_("Unknown command. Send /help to see what I can do."))

    @router.message()
    async def anything_else(message: Message) -> None:
        await message.answer(_("Send /buy to get a number, or /help for all commands."))

    @router.callback_query()
    async def stale_button(callback: CallbackQuery) -> None:
        await answer(callback, _("This button is no longer valid. Send /start."), alert=True)

    return router
