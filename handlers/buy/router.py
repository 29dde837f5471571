"""Buy a number: service -> country -> route -> confirm -> pay; while the customer's buying is
paused, Buy says until when."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject

from handlers.buy import screens
from handlers.callbacks import (
    AzCb,
    CountryCb,
    MenuCb,
    QuoteCb,
    RouteCb,
    ServiceCb,
    ServicesCb,
    WatchCb,
)
from handlers.filters import TypedText
from handlers.orders.screens import order_card, order_keyboard
from handlers.ui import Screen, answer, back_to_menu, esc, show
from shop.errors import BuyPaused
from shop.i18n import _, i18n
from shop.models import Country, Service, User
from shop.money import Currency
from shop.numbers import parse_uint
from shop.services.catalog import CatalogService, ServiceChoice
from shop.services.find import TYPED_MAX, FindService, Found, FoundKind
from shop.services.orders import (
    AlreadyBuying,
    Bought,
    NotBought,
    OrderService,
    Repriced,
)

AZ_SERVICES_PER_PAGE = 20  # 2 columns x 10 rows


class BuyForm(StatesGroup):
    """What typing does on a buy screen. On the services screen, as outside any input, a
    typed text is a service or a whole line ("whatsapp usa"): no state, so that the screen
    most taps land on costs no write."""

    # A service's countries (and its routes): a country's name or code. Kept as
    # "BuyForm:country:<service id>", so that one write says both what typing does and for
    # which service (a state and its data would be two writes on every tap of a service).
    country = State()


_COUNTRIES_OF = f"{BuyForm.country.state}:"
# States that only say which screen is shown: the SQLite FSM keeps them in memory.
SCREEN_STATES = (_COUNTRIES_OF,)


def _countries_of(service_id: int) -> str:
    return f"{_COUNTRIES_OF}{service_id}"


def _typed(message: Message) -> str:
    """What was typed, spaces collapsed, at most TYPED_MAX characters (echoed, escaped)."""
    return " ".join((message.text or "").split())[:TYPED_MAX]


async def _typing_a_country(message: Message, raw_state: str | None) -> bool | dict[str, Any]:
    """Filter: a service's countries are on screen; hands its id on as `service_id`."""
    if raw_state is None or not raw_state.startswith(_COUNTRIES_OF):
        return False
    service_id = parse_uint(raw_state[len(_COUNTRIES_OF) :])
    return False if service_id is None else {"service_id": service_id}


async def _popular_services(
    catalog: CatalogService, find: FindService
) -> tuple[list[ServiceChoice], int]:
    """The popular services and how many services there are in all (kept between catalog
    changes): the services screen, and Buy with the user's recent picks above them."""

    async def build() -> tuple[list[ServiceChoice], int]:
        popular = await find.popular_services()
        total = (await catalog.services(per_page=1)).total
        return popular, total

    return (await catalog.menu(("popular services",), build))[0]


async def services_screen(catalog: CatalogService, find: FindService) -> Screen:
    """The services screen: popular first, then "All services A-Z" (kept between catalog
    changes, per language)."""

    async def build() -> Screen:
        popular, total = await _popular_services(catalog, find)
        return screens.services_text(total), screens.services_keyboard(popular, total)

    return (await catalog.menu(("services", i18n.current_locale), build))[0]


async def az_services_screen(catalog: CatalogService, page: int) -> Screen:
    async def build() -> Screen:
        found = await catalog.service_page(page, AZ_SERVICES_PER_PAGE)
        return screens.az_services_text(found), screens.az_services_keyboard(found)

    key = ("az-services", page, i18n.current_locale)
    return (await catalog.menu(key, build))[0]


async def countries_screen(
    catalog: CatalogService,
    find: FindService,
    service_id: int,
    currency: Currency,
    note: str = "",
) -> Screen:
    """A service's countries, popular first, with their "from" prices (kept between catalog
    changes)."""

    async def build() -> Screen:
        service = await catalog.service(service_id)
        popular, total = await find.popular_countries(service.id)
        return (
            screens.countries_text(service, total, note),
            screens.countries_keyboard(service.id, popular, total, currency),
        )

    if note:
        return await build()
    key = ("countries", service_id, i18n.current_locale)
    screen, cached = await catalog.menu(key, build)
    if cached:  # a build reads the offers, which steers the refresh order by itself
        await catalog.viewed(service_id)
    return screen


async def az_countries_screen(
    catalog: CatalogService, service_id: int, page: int, currency: Currency
) -> Screen:
    """A page of a service's countries A-Z (sold-out ones last)."""

    async def build() -> Screen:
        service = await catalog.service(service_id)
        found = await catalog.countries(service.id, page)
        return (
            screens.az_countries_text(service, found),
            screens.az_countries_keyboard(service.id, found, currency),
        )

    key = ("az-countries", service_id, page, i18n.current_locale)
    screen, cached = await catalog.menu(key, build)
    if cached:
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
    """Typing on the buy flow and /buy, after the buy-paused notice (a sub-router is tried
    after the parent's handlers, so the flow is a sub-router too). The flow's buttons are
    `build_buy_menus_router`'s."""
    router = Router(name="buy")
    router.include_routers(_build_pause_router(), _build_flow_router())
    return router


async def _buy_paused(
    event: TelegramObject, orders: OrderService, user: User | None = None
) -> bool | dict[str, Any]:
    """Filter: matches while this user's buying is paused, handing the notice on.

    The same rule is enforced in `OrderService.quote`/`confirm`, so deeper paths (Buy again, a
    recent pick, another route) end in the same notice; this only shows it up front."""
    if user is None:
        return False
    until = await orders.buy_paused_until(user.id)
    if until is None:
        return False
    return {"paused": BuyPaused(until)}


def _build_pause_router() -> Router:
    """Tried before the buy flow: /buy while paused says when buying resumes."""
    router = Router(name="buy-paused")

    @router.message(Command("buy"), _buy_paused)
    async def buy_command(message: Message, paused: BuyPaused) -> None:
        await message.answer(esc(paused.user_message), reply_markup=back_to_menu())

    return router


async def _first_screen(catalog: CatalogService, find: FindService, user: User) -> Screen:
    """Services, with the user's recent picks and "Buy again" above the popular ones."""
    recents = await catalog.recent_picks(user.id)
    if not recents:
        return await services_screen(catalog, find)
    popular, total = await _popular_services(catalog, find)
    titles = {key: route.title for key, route in catalog.route_infos.items()}
    return (
        screens.services_text(total),
        screens.services_keyboard(popular, total, recents, titles),
    )


async def _enter(state: FSMContext, raw_state: str | None, service_id: int | None = None) -> None:
    """Say what typing does on the screen just shown: a service's countries (`service_id`),
    or else services and whole lines (no state). Written only when it changes; another
    form's input is abandoned with its data."""
    wanted = None if service_id is None else _countries_of(service_id)
    if raw_state == wanted:
        return
    if raw_state is not None and not raw_state.startswith(_COUNTRIES_OF):
        await state.clear()
        if wanted is None:
            return
    await state.set_state(wanted)


def _build_flow_router() -> Router:
    router = Router(name="buy-flow")

    async def found(
        message: Message,
        result: Found,
        query: str,
        catalog: CatalogService,
        find: FindService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        """Answer what was typed: one match opens it, several are offered as buttons, none
        says so (a service's countries screen is shown again, with the note)."""
        match result:
            case Found(kind=FoundKind.PAIR, service=Service() as service, country=Country() as c):
                text, markup = await routes_screen(catalog, service.id, c.code, currency)
                await _enter(state, raw_state, service.id)
            case Found(kind=FoundKind.SERVICE, service=Service() as service):
                text, markup = await countries_screen(catalog, find, service.id, currency)
                await _enter(state, raw_state, service.id)
            case Found(kind=FoundKind.PAIRS, pairs=pairs):
                text, markup = screens.pairs_text(query), screens.pairs_keyboard(pairs)
            case Found(kind=FoundKind.SERVICES, services=services):
                text = screens.found_services_text(query)
                markup = screens.found_services_keyboard(services)
                await _enter(state, raw_state)
            case Found(kind=FoundKind.COUNTRIES, service=Service() as service, countries=choices):
                text = screens.found_countries_text(service, query)
                markup = screens.found_countries_keyboard(service.id, choices, currency)
            case Found(kind=FoundKind.NOTHING, service=Service() as service):
                note = screens.no_country_note(query)
                text, markup = await countries_screen(catalog, find, service.id, currency, note)
            case Found(kind=FoundKind.COUNTRY, country=Country() as country):
                text, markup = screens.country_only_hint(country), screens.hint_keyboard()
            case _:
                text, markup = screens.no_match_hint(query), screens.hint_keyboard()
        await message.answer(text, reply_markup=markup)

    @router.message(Command("buy"))
    async def buy_command(
        message: Message,
        catalog: CatalogService,
        find: FindService,
        user: User,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        text, markup = await _first_screen(catalog, find, user)
        await _enter(state, raw_state)
        await message.answer(text, reply_markup=markup)

    @router.message(StateFilter(None), TypedText())
    async def typed_line(
        message: Message,
        catalog: CatalogService,
        find: FindService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        """Outside any input (the services screen too): "whatsapp usa", or a service."""
        query = _typed(message)
        result = await find.read_line(query, i18n.current_locale)
        await found(message, result, query, catalog, find, currency, state, raw_state)

    @router.message(_typing_a_country, TypedText())
    async def typed_country(
        message: Message,
        service_id: int,
        catalog: CatalogService,
        find: FindService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        """On a service's countries (or routes): a country of that service, or a line."""
        query = _typed(message)
        result = await find.find_country(service_id, query, i18n.current_locale)
        await found(message, result, query, catalog, find, currency, state, raw_state)

    return router


def build_buy_menus_router() -> Router:
    """The buy flow's buttons. Tried right after the main menu's: most taps are theirs, and
    no other router takes their callbacks (the prefixes are the flow's own; of the menu's
    destinations, Buy only), so a tap of the flow is not first tried against every other
    router. Opening Buy while paused says when buying resumes (the first handler)."""
    router = Router(name="buy-menus")

    @router.callback_query(MenuCb.filter(F.to == "buy"), _buy_paused)
    async def buy_paused_menu(callback: CallbackQuery, paused: BuyPaused) -> None:
        await answer(callback)
        await show(callback, esc(paused.user_message), back_to_menu())

    @router.callback_query(MenuCb.filter(F.to == "buy"))
    async def buy_menu(
        callback: CallbackQuery,
        catalog: CatalogService,
        find: FindService,
        user: User,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        await answer(callback)
        text, markup = await _first_screen(catalog, find, user)
        await _enter(state, raw_state)
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
        callback: CallbackQuery,
        callback_data: ServicesCb,
        catalog: CatalogService,
        find: FindService,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        await answer(callback)
        screen = await services_screen(catalog, find)  # page, q: an older version's pager
        await _enter(state, raw_state)
        await show(callback, *screen)

    @router.callback_query(AzCb.filter(F.sid == 0))
    async def az_services(
        callback: CallbackQuery,
        callback_data: AzCb,
        catalog: CatalogService,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        await answer(callback)
        screen = await az_services_screen(catalog, callback_data.page)
        await _enter(state, raw_state)
        await show(callback, *screen)

    @router.callback_query(ServiceCb.filter())
    async def countries_page(
        callback: CallbackQuery,
        callback_data: ServiceCb,
        catalog: CatalogService,
        find: FindService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        sid = callback_data.sid
        screen = await countries_screen(catalog, find, sid, currency)  # page: an older pager
        await answer(callback)
        await _enter(state, raw_state, sid)
        await show(callback, *screen)

    @router.callback_query(AzCb.filter())
    async def az_countries(
        callback: CallbackQuery,
        callback_data: AzCb,
        catalog: CatalogService,
        currency: Currency,
        state: FSMContext,
        raw_state: str | None,
    ) -> None:
        sid = callback_data.sid
        screen = await az_countries_screen(catalog, sid, callback_data.page, currency)
        await answer(callback)
        await _enter(state, raw_state, sid)
        await show(callback, *screen)

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
