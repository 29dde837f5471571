"""Keyboards are pure functions of data. One pager serves every long list."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.telegram import Keyboard
from handlers import render
from handlers.callbacks import (
    CountryCb,
    LanguageCb,
    MenuCb,
    NoopCb,
    OrderCb,
    OrdersCb,
    QuoteCb,
    RouteCb,
    ServiceCb,
    ServicesCb,
    SmsCb,
    WalletCb,
    WatchCb,
)
from shop.i18n import _, country_name, i18n
from shop.models import Country, Order, OrderStatus, Service, SmsSend
from shop.money import Currency
from shop.providers.base import Route
from shop.services.catalog import CountryChoice, Page, RouteChoice


class Rows:
    """Rows of inline buttons. Like aiogram's InlineKeyboardBuilder for what we use, without
    its deep copy on every add (which was a sixth of the CPU of a menu click)."""

    def __init__(self) -> None:
        self._rows: list[list[InlineKeyboardButton]] = []
        self._pending: list[InlineKeyboardButton] = []

    def add(self, *buttons: InlineKeyboardButton) -> None:
        """Buttons to lay out with the next `adjust`."""
        self._pending.extend(buttons)

    def adjust(self, *sizes: int) -> None:
        """Flow the added buttons into rows of these sizes; the last size repeats."""
        pending, self._pending = self._pending, []
        index = 0
        while pending:
            size = sizes[min(index, len(sizes) - 1)]
            self._rows.append(pending[:size])
            pending = pending[size:]
            index += 1

    def row(self, *buttons: InlineKeyboardButton) -> None:
        """A row of its own (nothing when empty)."""
        self.adjust(8)
        if buttons:
            self._rows.append(list(buttons))

    def as_markup(self) -> InlineKeyboardMarkup:
        self.adjust(8)
        return Keyboard(inline_keyboard=self._rows)


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    """A button that sends `data` (packed by its CallbackData factory)."""
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def pager(page: int, pages: int, to: Callable[[int], CallbackData]) -> list[InlineKeyboardButton]:
    """◀ 2/5 ▶ — nothing when everything fits on one page."""
    if pages <= 1:
        return []
    row = [button("◀", to(page - 1)) if page > 0 else button(" ", NoopCb())]
    row.append(button(f"{page + 1}/{pages}", NoopCb()))
    row.append(button("▶", to(page + 1)) if page + 1 < pages else button(" ", NoopCb()))
    return row


_MAIN_MENUS: dict[tuple[str, bool], InlineKeyboardMarkup] = {}


def main_menu(sms_enabled: bool = False) -> InlineKeyboardMarkup:
    """The main menu; built once per language (markups are immutable, so one is shared)."""
    key = (i18n.current_locale, sms_enabled)
    markup = _MAIN_MENUS.get(key)
    if markup is None:
        markup = _MAIN_MENUS[key] = _main_menu(sms_enabled)
    return markup


def _main_menu(sms_enabled: bool) -> InlineKeyboardMarkup:
    builder = Rows()
    builder.add(button(_("📱 Buy a number"), MenuCb(to="buy")))
    if sms_enabled:
        builder.add(button(_("✉️ Send SMS"), MenuCb(to="sms")))
    builder.add(
        button(_("💰 Balance"), MenuCb(to="balance")),
        button(_("🗂 My orders"), MenuCb(to="orders")),
        button(_("❓ Help"), MenuCb(to="help")),
        button(_("🌐 Language"), MenuCb(to="language")),
    )
    builder.adjust(*((2, 2, 2) if sms_enabled else (1, 2, 2)))
    return builder.as_markup()


def language(locales: Sequence[str], names: dict[str, str], current: str) -> InlineKeyboardMarkup:
    """One button per language, each in its own language; the current one is ticked."""
    builder = Rows()
    for locale in locales:
        mark = "✅ " if locale == current else ""
        builder.add(button(mark + names.get(locale, locale), LanguageCb(locale=locale)))
    builder.adjust(2)
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def sms_cancel() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("✖ Cancel"), SmsCb(act="cancel"))]])


def sms_confirm(send_id: int, can_pay: bool, total: str) -> InlineKeyboardMarkup:
    builder = Rows()
    if can_pay:
        builder.row(
            button(_("✅ Send for {amount}").format(amount=total), SmsCb(sid=send_id, act="send"))
        )
    else:
        builder.row(button(_("➕ Top up"), WalletCb(act="topup")))
    builder.row(button(_("✖ Cancel"), SmsCb(act="cancel")))
    return builder.as_markup()


def sms_status(send_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("🔄 Refresh"), SmsCb(sid=send_id, act="show"))],
            [button(_("🗂 My orders"), OrdersCb()), button(_("◀ Menu"), MenuCb(to="main"))],
        ]
    )


def back_to_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("◀ Menu"), MenuCb(to="main"))]])


def services(
    page: Page[Service],
    query: str,
    recents: Sequence[tuple[Service, Country, str]] = (),
    route_titles: dict[str, str] | None = None,
) -> InlineKeyboardMarkup:
    builder = Rows()
    if recents and not query and page.page == 0:
        service, country, route = recents[0]
        title = (route_titles or {}).get(route)
        if title is not None:
            builder.row(
                button(
                    _("🔁 Buy again: {service} {flag} · {route}").format(
                        service=service.name, flag=country.flag, route=title
                    ),
                    RouteCb(sid=service.id, cc=country.code, rt=route),
                )
            )
        for service, country, _route in recents:
            name = country_name(country.code, country.name)
            builder.row(
                button(
                    f"🕘 {service.name} · {country.flag} {name}",
                    CountryCb(sid=service.id, cc=country.code),
                )
            )
    for service in page.items:
        builder.add(button(service.name, ServiceCb(sid=service.id)))
    builder.adjust(2)
    builder.row(*pager(page.page, page.pages, lambda p: ServicesCb(page=p, q=query)))
    if query:
        builder.row(button(_("✖ Clear search"), ServicesCb()))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def countries(
    service_id: int, page: Page[CountryChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = Rows()
    for choice in page.items:
        builder.row(
            button(
                render.country_button(choice, currency),
                CountryCb(sid=service_id, cc=choice.country.code),
            )
        )
    builder.row(*pager(page.page, page.pages, lambda p: ServiceCb(sid=service_id, page=p)))
    builder.row(button(_("◀ Services"), ServicesCb()))
    return builder.as_markup()


def routes(
    service_id: int, country: str, choices: list[RouteChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = Rows()
    for choice in choices:
        text = render.route_button(choice, currency)
        data = (
            RouteCb(sid=service_id, cc=country, rt=choice.route.key) if choice.stock else NoopCb()
        )
        builder.row(button(text, data))
    if not any(choice.stock for choice in choices):
        builder.row(
            button(_("🔔 Tell me when it's in stock"), WatchCb(sid=service_id, cc=country))
        )
    builder.row(button(_("◀ Countries"), ServiceCb(sid=service_id)))
    return builder.as_markup()


def confirm(
    quote_id: int, service_id: int, country: str, can_pay: bool, price: str
) -> InlineKeyboardMarkup:
    builder = Rows()
    if can_pay:
        builder.row(button(_("✅ Pay {price}").format(price=price), QuoteCb(qid=quote_id)))
    else:
        builder.row(button(_("➕ Top up"), WalletCb(act="topup")))
    builder.row(button(_("◀ Back"), CountryCb(sid=service_id, cc=country)))
    return builder.as_markup()


def after_failure(
    service_id: int, country: str, alternative: tuple[int, str] | None = None
) -> InlineKeyboardMarkup:
    """Other routes and the menu; with an alternative quote (id, button text), one tap buys."""
    rows = []
    if alternative is not None:
        rows.append([button(alternative[1], QuoteCb(qid=alternative[0]))])
    rows.append([button(_("◀ Other routes"), CountryCb(sid=service_id, cc=country))])
    rows.append([button(_("◀ Menu"), MenuCb(to="main"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def in_stock(service_id: int, country: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("📱 Buy now"), CountryCb(sid=service_id, cc=country))]]
    )


def order(order: Order, route: Route | None) -> InlineKeyboardMarkup:
    builder = Rows()
    if order.status is OrderStatus.NUMBER_ISSUED:
        builder.row(
            button(_("🔄 Refresh"), OrderCb(oid=order.id, act="refresh")),
            button(_("✖ Cancel"), OrderCb(oid=order.id, act="cancel")),
        )
    elif order.status is OrderStatus.CODE_RECEIVED:
        row = [button(_("🔄 Refresh"), OrderCb(oid=order.id, act="refresh"))]
        if route is not None and route.can_request_another:
            row.append(button(_("📨 Another code"), OrderCb(oid=order.id, act="another")))
        if route is not None and route.can_finish:
            row.append(button(_("✔ Done"), OrderCb(oid=order.id, act="done")))
        builder.row(*row)
    builder.row(button(_("🗂 My orders"), OrdersCb()), button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def orders(
    items: list[Order], page: int, pages: int, sms_sends: Sequence[SmsSend] = ()
) -> InlineKeyboardMarkup:
    builder = Rows()
    for item in items:
        builder.add(button(f"#{item.id}", OrderCb(oid=item.id, act="show")))
    for send in sms_sends:
        builder.add(button(f"✉️ #{send.id}", SmsCb(sid=send.id, act="show")))
    builder.adjust(5)
    builder.row(*pager(page, pages, lambda p: OrdersCb(page=p)))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()
