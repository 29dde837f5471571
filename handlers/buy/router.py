"""Buy a number: service -> country -> route -> confirm -> pay; while the customer's buying is
paused, Buy says until when."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.types import CallbackQuery, Message, TelegramObject

from handlers.buy import screens
from handlers.callbacks import (
    CountryCb,
    MenuCb,
    QuoteCb,
    RouteCb,
    ServiceCb,
    ServicesCb,
    WatchCb,
    short_query,
)
from handlers.orders.screens import order_card, order_keyboard
from handlers.ui import Screen, answer, back_to_menu, esc, show
from shop.errors import BuyPaused
from shop.i18n import _, i18n
from shop.models import User
from shop.money import Currency
from shop.services.catalog import CatalogService
from shop.services.orders import (
    AlreadyBuying,
    Bought,
    NotBought,
    OrderService,
    Repriced,
)


async def services_screen(catalog: CatalogService, query: str = "", page: int = 0) -> Screen:
    """A page of services, rendered in the current language (kept between catalog changes)."""

    async def build() -> Screen:
        found = await catalog.services(query, page)
        return screens.services_text(found, query), screens.services_keyboard(found, query)

    key = ("services", query, page, i18n.current_locale)
    return (await catalog.menu(key, build))[0]


async def countries_screen(
    catalog: CatalogService, service_id: int, page: int, currency: Currency
) -> Screen:
    """A service's countries with their "from" prices (kept between catalog changes)."""

    async def build() -> Screen:
        service = await catalog.service(service_id)
        found = await catalog.countries(service.id, page)
        return (
            screens.countries_text(service, found),
            screens.countries_keyboard(service.id, found, currency),
        )

    key = ("countries", service_id, page, i18n.current_locale)
    screen, cached = await catalog.menu(key, build)
    if cached:  # a build reads the offers, which steers the refresh order by itself
        await catalog.viewed(service_id)
    return screen


async def routes_screen(
    catalog: CatalogService, service_id: int, country_code: str, currency: Currency
) -> Screen:
    """The routes selling a service in a country (kept between catalog changes). The prices
    are what the menu shows; Pay charges the quote made when the route is picked."""

    async def build() -> Screen:
        service = await catalog.service(service_id)
        country = await catalog.country(country_code)
        choices = await catalog.route_choices(service.id, country.code)
        return (
            screens.routes_text(service, country, choices, currency),
            screens.routes_keyboard(service.id, country.code, choices, currency),
        )

    key = ("routes", service_id, country_code, i18n.current_locale)
    return (await catalog.menu(key, build))[0]


def build_buy_router() -> Router:
    """The buy flow, after the buy-paused notice (a sub-router is tried after the parent's
    handlers, so the flow is a sub-router too)."""
    router = Router(name="buy")
    router.include_routers(_build_pause_router(), _build_flow_router())
    return router


def _build_pause_router() -> Router:
    """Tried before the buy flow: opening Buy while paused says when buying resumes.

    The same rule is enforced in `OrderService.quote`/`confirm`, so deeper paths (Buy again, a
    recent pick, another route) end in the same notice; this only shows it up front.
    """
    router = Router(name="buy-paused")

    async def _buy_paused(
        event: TelegramObject, orders: OrderService, user: User | None = None
    ) -> bool | dict[str, Any]:
        """Filter: matches while this user's buying is paused, handing the notice on."""
        if user is None:
            return False
        until = await orders.buy_paused_until(user.id)
        if until is None:
            return False
        return {"paused": BuyPaused(until)}

    @router.message(Command("buy"), _buy_paused)
    async def buy_command(message: Message, paused: BuyPaused) -> None:
        await message.answer(esc(paused.user_message), reply_markup=back_to_menu())

    @router.callback_query(MenuCb.filter(F.to == "buy"), _buy_paused)
    async def buy_menu(callback: CallbackQuery, paused: BuyPaused) -> None:
        await answer(callback)
        await show(callback, esc(paused.user_message), back_to_menu())

    return router


def _build_flow_router() -> Router:
    router = Router(name="buy-flow")

    async def first_screen(catalog: CatalogService, user: User) -> Screen:
        """Services, with the user's recent picks and "Buy again" on top."""
        recents = await catalog.recent_picks(user.id)
        if not recents:
            return await services_screen(catalog)
        page = await catalog.services()
        titles = {key: route.title for key, route in catalog.route_infos.items()}
        return (
            screens.services_text(page, ""),
            screens.services_keyboard(page, "", recents, titles),
        )

    @router.message(Command("buy"))
    async def buy_command(message: Message, catalog: CatalogService, user: User) -> None:
        text, markup = await first_screen(catalog, user)
        await message.answer(text, reply_markup=markup)

    @router.message(StateFilter(None), F.text, ~F.text.startswith("/"))
    async def search(message: Message, catalog: CatalogService) -> None:
        text, markup = await services_screen(catalog, short_query(message.text or ""))
        await message.answer(text, reply_markup=markup)

    @router.callback_query(MenuCb.filter(F.to == "buy"))
    async def buy_menu(callback: CallbackQuery, catalog: CatalogService, user: User) -> None:
        await answer(callback)
        text, markup = await first_screen(catalog, user)
        await show(callback, text, markup)

    @router.callback_query(WatchCb.filter())
    async def watch(
        callback: CallbackQuery, callback_data: WatchCb, catalog: CatalogService, user: User
    ) -> None:
        await catalog.watch_stock(user.id, callback_data.sid, callback_data.cc)
        await answer(
            callback, _("🔔 Done. We'll message you once when it's in stock."), alert=True
        )

    @router.callback_query(ServicesCb.filter())
    async def services_page(
        callback: CallbackQuery, callback_data: ServicesCb, catalog: CatalogService
    ) -> None:
        await answer(callback)
        text, markup = await services_screen(catalog, callback_data.q, callback_data.page)
        await show(callback, text, markup)

    @router.callback_query(ServiceCb.filter())
    async def countries_page(
        callback: CallbackQuery,
        callback_data: ServiceCb,
        catalog: CatalogService,
        currency: Currency,
    ) -> None:
        text, markup = await countries_screen(
            catalog, callback_data.sid, callback_data.page, currency
        )
        await answer(callback)
        await show(callback, text, markup)

    @router.callback_query(CountryCb.filter())
    async def routes_page(
        callback: CallbackQuery,
        callback_data: CountryCb,
        catalog: CatalogService,
        currency: Currency,
    ) -> None:
        text, markup = await routes_screen(catalog, callback_data.sid, callback_data.cc, currency)
        await answer(callback)
        await show(callback, text, markup)

    @router.callback_query(RouteCb.filter())
    async def confirm_page(
        callback: CallbackQuery,
        callback_data: RouteCb,
        user: User,
        orders: OrderService,
        currency: Currency,
    ) -> None:
        view = await orders.quote(user.id, callback_data.rt, callback_data.sid, callback_data.cc)
        await answer(callback)
        text, markup = screens.confirm_screen(view, user.balance, currency)
        await show(callback, text, markup)

    @router.callback_query(QuoteCb.filter())
    async def pay(
        callback: CallbackQuery,
        callback_data: QuoteCb,
        user: User,
        orders: OrderService,
        currency: Currency,
    ) -> None:
        await orders.payable_quote(user.id, callback_data.qid)  # forged, used, expired: alert
        await answer(callback, _("⏳ Buying your number…"))
        message_id = callback.message.message_id if callback.message is not None else None
        outcome = await orders.buy(user.id, callback_data.qid, callback.from_user.id, message_id)
        match outcome:
            case Bought(order=order):
                card = await orders.card(order)
                await show(callback, order_card(card, currency), order_keyboard(card))
            case Repriced(view=view):
                text, markup = screens.confirm_screen(view, user.balance, currency)
                await show(
                    callback,
                    _("⚠️ The price has changed since you opened this screen.") + "\n\n" + text,
                    markup,
                )
            case NotBought():
                await show(callback, *screens.not_bought_screen(outcome, currency))
            case AlreadyBuying():
                pass  # a second tap on the same Pay button: the first one is handling it

    return router
