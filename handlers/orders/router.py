"""/orders, the order card and its buttons (Cancel, Another code, Done, Refresh)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from handlers.callbacks import MenuCb, OrderCb, OrdersCb
from handlers.orders import screens
from handlers.ui import Screen, answer, show
from shop.i18n import _
from shop.models import Order, User
from shop.money import Currency
from shop.services.orders import OrderService
from shop.services.sms import SmsService

PER_PAGE = 5


async def _list(
    user: User, page: int, orders: OrderService, currency: Currency, sms: SmsService | None
) -> Screen:
    items, pages = await orders.page_for_user(user.id, page, PER_PAGE)
    page = min(max(page, 0), pages - 1)
    codes = await orders.codes_for([o.id for o in items])
    sends = await sms.recent(user.id) if sms is not None and page == 0 else []
    return (
        screens.orders_text(items, codes, page, pages, currency, sends),
        screens.orders_keyboard(items, page, pages, sends),
    )


async def _card(order: Order, orders: OrderService, currency: Currency) -> Screen:
    card = await orders.card(order)
    return screens.order_card(card, currency), screens.order_keyboard(card)


def build_orders_router() -> Router:
    """/orders; the buttons are `build_orders_menus_router`'s."""
    router = Router(name="orders")

    @router.message(Command("orders"))
    async def orders_command(
        message: Message,
        user: User,
        orders: OrderService,
        currency: Currency,
        sms: SmsService | None,
    ) -> None:
        text, markup = await _list(user, 0, orders, currency, sms)
        await message.answer(text, reply_markup=markup)

    return router


def build_orders_menus_router() -> Router:
    """My orders and the order card's buttons, tried early (right after the buy flow's): no
    other router takes their callbacks (`tests/unit/test_filters.py`)."""
    router = Router(name="orders-menus")

    @router.callback_query(MenuCb.filter(F.to == "orders"))
    async def orders_menu(
        callback: CallbackQuery,
        user: User,
        orders: OrderService,
        currency: Currency,
        sms: SmsService | None,
    ) -> None:
        await answer(callback)
        text, markup = await _list(user, 0, orders, currency, sms)
        await show(callback, text, markup)

    @router.callback_query(OrdersCb.filter())
    async def orders_page(
        callback: CallbackQuery,
        callback_data: OrdersCb,
        user: User,
        orders: OrderService,
        currency: Currency,
        sms: SmsService | None,
    ) -> None:
        await answer(callback)
        text, markup = await _list(user, callback_data.page, orders, currency, sms)
        await show(callback, text, markup)

    @router.callback_query(OrderCb.filter(F.act.in_({"show", "refresh"})))
    async def order_card(
        callback: CallbackQuery,
        callback_data: OrderCb,
        user: User,
        orders: OrderService,
        currency: Currency,
    ) -> None:
        order = await orders.get_for_user(user.id, callback_data.oid)
        await answer(callback)
        text, markup = await _card(order, orders, currency)
        await show(callback, text, markup)

    @router.callback_query(OrderCb.filter(F.act == "cancel"))
    async def cancel(
        callback: CallbackQuery,
        callback_data: OrderCb,
        user: User,
        orders: OrderService,
        currency: Currency,
    ) -> None:
        outcome = await orders.cancel(user.id, callback_data.oid)
        await answer(callback, str(screens.CANCEL_NOTICES[outcome]))
        order = await orders.get_for_user(user.id, callback_data.oid)
        text, markup = await _card(order, orders, currency)
        await show(callback, text, markup)

    @router.callback_query(OrderCb.filter(F.act == "another"))
    async def another(
        callback: CallbackQuery, callback_data: OrderCb, user: User, orders: OrderService
    ) -> None:
        await orders.request_another(user.id, callback_data.oid)
        await answer(callback, _("Requested another SMS. The new code will appear here."))

    @router.callback_query(OrderCb.filter(F.act == "done"))
    async def done(
        callback: CallbackQuery,
        callback_data: OrderCb,
        user: User,
        orders: OrderService,
        currency: Currency,
    ) -> None:
        order = await orders.finish(user.id, callback_data.oid)
        await answer(callback, _("Done. Thank you!"))
        text, markup = await _card(order, orders, currency)
        await show(callback, text, markup)

    return router
