"""Screens of buying a number: services, countries, routes, the confirm screen, and what a
failed purchase offers instead."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import (
    CountryCb,
    MenuCb,
    NoopCb,
    QuoteCb,
    RouteCb,
    ServiceCb,
    ServicesCb,
    WalletCb,
    WatchCb,
)
from handlers.ui import Screen, button, esc, pager, place
from shop.i18n import _, country_name, user_text
from shop.models import Country, Service
from shop.money import Currency
from shop.services.catalog import CountryChoice, Page, RouteChoice
from shop.services.orders import NotBought, QuoteView


def services_text(page: Page[Service], query: str) -> str:
    if query and not page.total:
        return _("🔎 No service matches “{query}”. Try a shorter name.").format(query=esc(query))
    if not page.total:
        return _("No services are available right now. Please try again later.")
    if query:
        head = _("🔎 Services matching “{query}” ({count})").format(
            query=esc(query), count=page.total
        )
    else:
        head = _("📱 <b>Choose a service</b> ({count})").format(count=page.total)
    return head + "\n" + _("Type part of a name to search.")


def countries_text(service: Service, page: Page[CountryChoice]) -> str:
    head = f"<b>{esc(service.name)}</b>"
    if not page.total:
        return head + "\n" + _("No country offers this service right now.")
    return (
        head
        + "\n"
        + _("🌍 Choose a country ({count}). Prices are “from”.").format(count=page.total)
    )


def routes_text(
    service: Service, country: Country, choices: list[RouteChoice], currency: Currency
) -> str:
    head = f"<b>{esc(service.name)}</b> · {place(country)}"
    if not choices:
        return head + "\n" + _("No route sells this right now.")
    return head + "\n" + _("Choose a route (cheapest first):")


def route_button(choice: RouteChoice, currency: Currency) -> str:
    stock = _("{count} left").format(count=choice.stock) if choice.stock else _("sold out")
    rate = (
        " · " + _("{percent}% ok").format(percent=choice.success_rate)
        if choice.success_rate is not None
        else ""
    )
    return f"{choice.route.title} · {currency.format(choice.price)} · {stock}{rate}"


def country_button(choice: CountryChoice, currency: Currency) -> str:
    stock = f"{choice.stock}" if choice.stock else _("sold out")
    price = currency.format(choice.price_from)
    name = country_name(choice.country.code, choice.country.name)
    return f"{choice.country.flag} {name} · {price} · {stock}"


def confirm_text(view: QuoteView, balance: int, currency: Currency) -> str:
    price = view.quote.price
    minutes = max(1, round((view.quote.expires_at - time.time()) / 60))
    name = esc(country_name(view.quote.country, view.country_name))
    lines = [
        _("🧾 <b>Confirm your purchase</b>"),
        _("Service: <b>{service}</b>").format(service=esc(view.service_name)),
        _("Country: {country}").format(country=f"{view.country_flag} {name}"),
        _("Route: {route}").format(route=esc(view.route.title)),
        _("Price: <b>{price}</b>").format(price=currency.format(price)),
    ]
    if balance >= price:
        lines.append(
            _("Balance: {before} → {after}").format(
                before=currency.format(balance), after=currency.format(balance - price)
            )
        )
        lines.append(
            "\n"
            + _("This price is held for {minutes} min. No code, no charge.").format(
                minutes=minutes
            )
        )
    else:
        lines.append(_("Balance: {amount}").format(amount=currency.format(balance)))
        lines.append(
            "\n"
            + _("⚠️ You need {amount} more. Top up and try again.").format(
                amount=currency.format(price - balance)
            )
        )
    return "\n".join(lines)


def services_keyboard(
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


def countries_keyboard(
    service_id: int, page: Page[CountryChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for choice in page.items:
        builder.row(
            button(
                country_button(choice, currency),
                CountryCb(sid=service_id, cc=choice.country.code),
            )
        )
    builder.row(*pager(page.page, page.pages, lambda p: ServiceCb(sid=service_id, page=p)))
    builder.row(button(_("◀ Services"), ServicesCb()))
    return builder.as_markup()


def routes_keyboard(
    service_id: int, country: str, choices: list[RouteChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for choice in choices:
        text = route_button(choice, currency)
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


def confirm_keyboard(
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


def in_stock_keyboard(service_id: int, country: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("📱 Buy now"), CountryCb(sid=service_id, cc=country))]]
    )


def confirm_screen(view: QuoteView, balance: int, currency: Currency) -> Screen:
    quote = view.quote
    markup = confirm_keyboard(
        quote.id,
        quote.service_id,
        quote.country,
        balance >= quote.price,
        currency.format(quote.price),
    )
    return confirm_text(view, balance, currency), markup


def not_bought_screen(outcome: NotBought, currency: Currency) -> Screen:
    """Why there is no number, what came back, and another route with numbers if any."""
    quote, other = outcome.quote, outcome.alternative
    text = f"❌ {esc(user_text(outcome.error))}"
    if outcome.refunded:
        text += "\n\n" + _("{amount} is back on your balance.").format(
            amount=currency.format(outcome.refunded)
        )
    alternative = None
    if other is not None:
        price = currency.format(other.quote.price)
        text += "\n\n" + _("{route} has numbers for {price}.").format(
            route=esc(other.route.title), price=price
        )
        alternative = (
            other.quote.id,
            _("✅ Buy from {route} for {price}").format(route=other.route.title, price=price),
        )
    return text, after_failure(quote.service_id, quote.country, alternative)
