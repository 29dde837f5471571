"""Orders: an order's details and a refund of an order that got no code (the Orders section
of the panel lists the commands)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from handlers.admin import screens
from handlers.admin.args import actor, split_args, whole_number
from handlers.callbacks import AdminCb, AdminRentalCb
from handlers.ui import answer, show
from shop.errors import NotFound
from shop.i18n import _
from shop.money import Currency
from shop.numbers import MAX_ID
from shop.services.orders import OrderService
from shop.services.people import PeopleService
from shop.services.rentals import RentalService


def build_orders_router() -> Router:
    router = Router(name="admin-orders")

    @router.callback_query(AdminCb.filter(F.to == "orders"))
    async def orders_section(callback: CallbackQuery) -> None:
        await answer(callback)
        await show(callback, screens.orders_help(), screens.back_keyboard())

    @router.message(Command("order"))
    async def order_details(
        message: Message, command: CommandObject, orders: OrderService, currency: Currency
    ) -> None:
        usage = _("/order <order_id>")
        (order_text,) = split_args(command, 1, 1, usage)
        order = await orders.get(whole_number(order_text, usage))
        if order is None:
            await message.answer(screens.no_such_order())
            return
        codes = await orders.codes(order.id)
        await message.answer(screens.order_details(order, codes, currency))

    @router.message(Command("refund"))
    async def refund(
        message: Message, command: CommandObject, people: PeopleService, currency: Currency
    ) -> None:
        usage = _("/refund <order_id>")
        (order_text,) = split_args(command, 1, 1, usage)
        order_id = whole_number(order_text, usage)
        if order_id == MAX_ID:  # typed beyond SQLite's range: no such order
            raise NotFound(
                _("Order #{order_id} does not exist.").format(order_id=order_text.lstrip("#"))
            )
        refunded = await people.refund(actor(message), order_id)
        await message.answer(screens.order_refunded(order_id, refunded, currency))

    @router.message(Command("rental"))
    async def rental_details(
        message: Message,
        command: CommandObject,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        usage = _("/rental <rental_id>")
        (rental_text,) = split_args(command, 1, 1, usage)
        rental_id = whole_number(rental_text, usage)
        rental = await rentals.get(rental_id) if rentals is not None else None
        if rental is None or rentals is None:
            raise NotFound(_("Rental #{id} does not exist.").format(id=rental_text.lstrip("#")))
        refundable = rentals.refundable(rental)
        await message.answer(
            screens.rental_details(rental, currency, refundable),
            reply_markup=screens.rental_details_keyboard(rental.id) if refundable else None,
        )

    @router.callback_query(AdminRentalCb.filter(F.act == "refund"))
    async def rental_refund(
        callback: CallbackQuery,
        callback_data: AdminRentalCb,
        rentals: RentalService | None,
        currency: Currency,
    ) -> None:
        if rentals is None:
            raise NotFound(_("Rentals are not available in this shop."))
        done = await rentals.admin_refund(callback_data.rid, actor(callback))
        await answer(callback, _("Refunded."))
        await show(
            callback,
            screens.rental_refunded(done.rental.id, done.refunded, currency)
            + "\n\n"
            + screens.rental_details(done.rental, currency, False),
            None,
        )

    return router
