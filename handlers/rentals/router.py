"""/rent and the "Rent a number" menu, /rentals ("My rentals"), a rental's card and its
buttons (Messages, Extend, Refund), and the single-service picker of the confirm screen (a
paged list, most popular first, or a typed name: the only FSM state here). Thin: each handler
calls one service method and renders."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from handlers.callbacks import (
    MenuCb,
    RentalCb,
    RentalsCb,
    RentKindCb,
    RentOfferCb,
    RentPayCb,
    RentSvcCb,
)
from handlers.filters import TypedText
from handlers.rentals import screens
from handlers.ui import Screen, answer, back_to_menu, show
from shop.errors import NotFound
from shop.i18n import _, user_text
from shop.models import Rental, User
from shop.money import Currency
from shop.services.rentals import RentalFailed, RentalPriceChanged, RentalService


class RentServiceSearch(StatesGroup):
    """Typing a service's name for a single-service line; the data names the rental offer
    (`e`, `oid`, `d`), never a price."""

    name = State()


SEARCH_MAX_CHARS = 64


def _unavailable() -> str:
    return _("Rentals are not available in this shop.")


def _service(rentals: RentalService | None) -> RentalService:
    if rentals is None:
        raise NotFound(_unavailable())
    return rentals


def _card(rental: Rental, rentals: RentalService, currency: Currency) -> Screen:
    refundable = rentals.refundable(rental)
    return (
        screens.rental_card(rental, currency, refundable),
        screens.rental_keyboard(rental, refundable),
    )


def _noticed_card(
    notice: str, rental: Rental, rentals: RentalService, currency: Currency
) -> Screen:
    """A rental's card under a one-line notice of what just happened to it."""
    text, markup = _card(rental, rentals, currency)
    return notice + "\n\n" + text, markup


async def _list(user: User, page: int, rentals: RentalService, currency: Currency) -> Screen:
    items, page, pages = await rentals.page_for_user(user.id, page, screens.RENTALS_PER_PAGE)
    return (
        screens.rentals_text(items, page, pages, currency),
        screens.rentals_keyboard(items, page, pages),
    )


def build_rentals_router() -> Router:
    router = Router(name="rentals")

    @router.message(Command("rent"))
    async def rent_command(message: Message, rentals: RentalService | None) -> None:
        if rentals is None:
            await message.answer(_unavailable())
            return
        await message.answer(screens.rent_home_text(), reply_markup=screens.rent_home_keyboard())

    @router.callback_query(MenuCb.filter(F.to == "rent"))
    async def rent_menu(callback: CallbackQuery, rentals: RentalService | None) -> None:
        _service(rentals)
        await answer(callback)
        await show(callback, screens.rent_home_text(), screens.rent_home_keyboard())

    @router.callback_query(RentKindCb.filter())
    async def kind(
        callback: CallbackQuery,
        callback_data: RentKindCb,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        extendable = bool(callback_data.e)
        choices = await _service(rentals).choices(extendable)
        await answer(callback)
        await show(
            callback,
            screens.countries_text(extendable, choices),
            screens.countries_keyboard(extendable, choices, callback_data.page, currency),
        )

    @router.callback_query(RentOfferCb.filter())
    async def offer(
        callback: CallbackQuery,
        callback_data: RentOfferCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        extendable = bool(callback_data.e)
        if not callback_data.d:
            choice = await service.choice(extendable, callback_data.oid)
            await answer(callback)
            await show(
                callback, screens.periods_text(choice), screens.periods_keyboard(choice, currency)
            )
            return
        quote = await service.quote(
            extendable, callback_data.oid, callback_data.d, callback_data.s
        )
        await answer(callback)
        await show(
            callback,
            screens.confirm_text(quote, user.balance, currency),
            screens.confirm_keyboard(quote),
        )

    @router.callback_query(RentSvcCb.filter())
    async def pick_service(
        callback: CallbackQuery,
        callback_data: RentSvcCb,
        rentals: RentalService | None,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        service = _service(rentals)
        extendable, days = bool(callback_data.e), callback_data.d
        choice = await service.single_service_offer(extendable, callback_data.oid, days)
        if callback_data.find:
            await state.set_state(RentServiceSearch.name)
            await state.set_data({"e": callback_data.e, "oid": callback_data.oid, "d": days})
            await answer(callback)
            await show(
                callback,
                screens.service_search_prompt(choice, days),
                screens.service_search_cancel(choice, days),
            )
            return
        if raw_state is not None:
            await state.clear()  # back from a search
        found, page, pages = await service.single_services(
            callback_data.page, screens.SERVICES_PER_PAGE
        )
        await answer(callback)
        await show(
            callback,
            screens.services_text(choice, days, page, pages),
            screens.services_keyboard(choice, days, found, page, pages),
        )

    @router.message(StateFilter(RentServiceSearch.name), TypedText())
    async def typed_service(
        message: Message, rentals: RentalService | None, state: FSMContext
    ) -> None:
        service = _service(rentals)
        data = await state.get_data()
        extendable, offer_id, days = (
            bool(data.get("e")),
            str(data.get("oid")),
            int(data.get("d") or 0),
        )
        choice = await service.single_service_offer(extendable, offer_id, days)
        query = " ".join((message.text or "").split())[:SEARCH_MAX_CHARS]
        found = await service.find_single_services(query)
        if found:
            await state.clear()
        await message.answer(
            screens.service_results_text(query, found),
            reply_markup=screens.service_results_keyboard(choice, days, found),
        )

    @router.callback_query(RentPayCb.filter())
    async def pay(
        callback: CallbackQuery,
        callback_data: RentPayCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        message = callback.message
        chat_id = message.chat.id if message is not None else None
        try:
            rental_id = await service.charge(
                user.id,
                bool(callback_data.e),
                callback_data.oid,
                callback_data.d,
                callback_data.s,
                callback_data.p,
                callback_data.t,
                chat_id,
            )
            await answer(callback, _("Renting the number…"))
            rental = await service.buy(rental_id)
        except RentalPriceChanged as changed:
            await answer(callback)
            await show(
                callback,
                _("The price has changed. Please confirm the new price.")
                + "\n\n"
                + screens.confirm_text(changed.quote, user.balance, currency),
                screens.confirm_keyboard(changed.quote),
            )
            return
        except RentalFailed as failed:
            refunded = (
                " "
                + _("{amount} is back on your balance.").format(
                    amount=currency.format(failed.refunded)
                )
                if failed.refunded
                else ""
            )
            await show(
                callback,
                _("❌ The number could not be rented: {reason}").format(
                    reason=user_text(failed.cause)
                )
                + refunded,
                back_to_menu(),
            )
            return
        refundable = service.refundable(rental)
        await show(
            callback,
            screens.rented_text(rental, currency, refundable),
            screens.rental_keyboard(rental, refundable),
        )
        if message is not None and not isinstance(message, InaccessibleMessage):
            await service.attach_message(rental.id, message.chat.id, message.message_id)

    @router.message(Command("rentals"))
    async def rentals_command(
        message: Message, user: User, rentals: RentalService | None, currency: Currency
    ) -> None:
        if rentals is None:
            await message.answer(_unavailable())
            return
        text, markup = await _list(user, 0, rentals, currency)
        await message.answer(text, reply_markup=markup)

    @router.callback_query(RentalsCb.filter())
    async def rentals_page(
        callback: CallbackQuery,
        callback_data: RentalsCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        text, markup = await _list(user, callback_data.page, _service(rentals), currency)
        await answer(callback)
        await show(callback, text, markup)

    @router.callback_query(RentalCb.filter(F.act == "show"))
    async def card(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        rental = await service.get_for_user(user.id, callback_data.rid)
        await answer(callback)
        await show(callback, *_card(rental, service, currency))

    @router.callback_query(RentalCb.filter(F.act == "msgs"))
    async def history(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
    ) -> None:
        rental, items, page, pages = await _service(rentals).messages_page(
            user.id, callback_data.rid, callback_data.n, screens.MESSAGES_PER_PAGE
        )
        await answer(callback)
        await show(
            callback,
            screens.history_text(rental, items, page, pages),
            screens.history_keyboard(rental, page, pages),
        )

    @router.callback_query(RentalCb.filter(F.act == "ext"))
    async def extend(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        if not callback_data.d:
            rental, prices = await service.extend_prices(user.id, callback_data.rid)
            await answer(callback)
            await show(
                callback,
                screens.extend_text(rental),
                screens.extend_keyboard(rental, prices, currency),
            )
            return
        rental, price = await service.extend_quote(user.id, callback_data.rid, callback_data.d)
        seq = await service.next_extension_seq(rental.id)
        await answer(callback)
        await show(
            callback,
            screens.extend_confirm_text(rental, callback_data.d, price, user.balance, currency),
            screens.extend_confirm_keyboard(rental, callback_data.d, price, seq),
        )

    @router.callback_query(RentalCb.filter(F.act == "extok"))
    async def extend_confirm(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        await answer(callback, _("Extending…"))
        try:
            done = await service.extend(
                user.id, callback_data.rid, callback_data.d, callback_data.n, callback_data.p
            )
        except RentalFailed as failed:
            rental = await service.get_for_user(user.id, callback_data.rid)
            notice = _(
                "❌ The rental was not extended: {reason} {amount} is back on your balance."
            ).format(reason=user_text(failed.cause), amount=currency.format(failed.refunded))
            await show(callback, *_noticed_card(notice, rental, service, currency))
            return
        notice = _("✅ Extended by {days} for {price}.").format(
            days=screens.days_text(done.days), price=currency.format(done.price)
        )
        await show(callback, *_noticed_card(notice, done.rental, service, currency))

    @router.callback_query(RentalCb.filter(F.act == "refund"))
    async def refund(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        rental = await service.get_for_user(user.id, callback_data.rid)
        if not service.refundable(rental):
            await answer(
                callback,
                _(
                    "This rental can no longer be refunded: a refund is possible only within "
                    "12 hours of renting and before the first message."
                ),
                alert=True,
            )
            return
        await answer(callback)
        await show(
            callback,
            screens.refund_confirm_text(rental, currency),
            screens.refund_confirm_keyboard(rental),
        )

    @router.callback_query(RentalCb.filter(F.act == "refundok"))
    async def refund_confirm(
        callback: CallbackQuery,
        callback_data: RentalCb,
        user: User,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        service = _service(rentals)
        done = await service.refund(user.id, callback_data.rid)
        await answer(callback, _("Refunded."))
        notice = _("↩️ Refunded: {amount} is back on your balance.").format(
            amount=currency.format(done.refunded)
        )
        await show(callback, *_noticed_card(notice, done.rental, service, currency))

    return router
