"""Keyboards are pure functions of data. One pager serves every long list."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

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
from shop.models import Country, Order, OrderStatus, RouteInfo, Service, SmsSend
from shop.money import Currency
from shop.services.catalog import CountryChoice, Page, RouteChoice


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
    builder = InlineKeyboardBuilder()
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
    builder = InlineKeyboardBuilder()
    for locale in locales:
        mark = "✅ " if locale == current else ""
        builder.add(button(mark + names.get(locale, locale), LanguageCb(locale=locale)))
    builder.adjust(2)
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def sms_cancel() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("✖ Cancel"), SmsCb(act="cancel"))]])


def sms_confirm(send_id: int, can_pay: bool, total: str) -> InlineKeyboardMarkup:
    pay = (
        button(_("✅ Send for {amount}").format(amount=total), SmsCb(sid=send_id, act="send"))
        if can_pay
        else button(_("➕ Top up"), WalletCb(act="topup"))
    )
    cancel = button(_("✖ Cancel"), SmsCb(act="cancel"))
    return InlineKeyboardMarkup(inline_keyboard=[[pay], [cancel]])


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
    builder = InlineKeyboardBuilder()
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
    grid = InlineKeyboardBuilder()
    for service in page.items:
        grid.add(button(service.name, ServiceCb(sid=service.id)))
    builder.attach(grid.adjust(2))
    builder.row(*pager(page.page, page.pages, lambda p: ServicesCb(page=p, q=query)))
    if query:
        builder.row(button(_("✖ Clear search"), ServicesCb()))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def countries(
    service_id: int, page: Page[CountryChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
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
    builder = InlineKeyboardBuilder()
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
    pay = (
        button(_("✅ Pay {price}").format(price=price), QuoteCb(qid=quote_id))
        if can_pay
        else button(_("➕ Top up"), WalletCb(act="topup"))
    )
    back = button(_("◀ Back"), CountryCb(sid=service_id, cc=country))
    return InlineKeyboardMarkup(inline_keyboard=[[pay], [back]])


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


def order(order: Order, route: RouteInfo | None) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
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
    builder = InlineKeyboardBuilder()
    for item in items:
        builder.add(button(f"#{item.id}", OrderCb(oid=item.id, act="show")))
    for send in sms_sends:
        builder.add(button(f"✉️ #{send.id}", SmsCb(sid=send.id, act="show")))
    builder.adjust(5)
    builder.row(*pager(page, pages, lambda p: OrdersCb(page=p)))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()
