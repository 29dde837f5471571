"""Screens of buying a number: services, countries, routes, the confirm screen, and what a
failed purchase offers instead."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.callbacks import (
    AzCb,
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
from shop.services.catalog import (
    CountryChoice,
    Page,
    PairChoice,
    RecentPick,
    RouteChoice,
    ServiceChoice,
)
from shop.services.orders import NotBought, QuoteView


def services_text(total: int) -> str:
    """The services screen: popular first; what typing does."""
    if not total:
        return _("No services are available right now. Please try again later.")
    head = _("📱 <b>Choose a service</b> ({count})").format(count=total)
    hint = _(
        "Popular first. Type a name to search, or a service and a country to go straight "
        "to it: <i>whatsapp usa</i>."
    )
    return head + "\n" + hint


def az_services_text(page: Page[ServiceChoice]) -> str:
    return (
        _("🔤 <b>All services A-Z</b> ({count})").format(count=page.total)
        + "\n"
        + _("Type a name to search.")
    )


def found_services_text(query: str) -> str:
    return _("🔎 Services matching “{query}”:").format(query=esc(query))


def no_match_hint(query: str) -> str:
    """Typed outside any screen, and nothing matched."""
    return _(
        "🔎 No service matches “{query}”. To buy, type a service and a country, e.g. "
        "<i>whatsapp usa</i>, or send /buy."
    ).format(query=esc(query))


def country_only_hint(country: Country) -> str:
    return _(
        "🔎 Which service in {country}? Type it with the country, e.g. <i>whatsapp usa</i>."
    ).format(country=place(country))


def pairs_text(query: str) -> str:
    return _("🔎 Which one do you mean by “{query}”?").format(query=esc(query))


def countries_text(service: Service, total: int, note: str = "") -> str:
    """A service's countries screen: popular first; what typing does."""
    head = f"<b>{esc(service.name)}</b>"
    if not total:
        return head + "\n" + _("No country offers this service right now.")
    return (
        (note + "\n\n" if note else "")
        + head
        + "\n"
        + _("🌍 Choose a country ({count}). Prices are “from”.").format(count=total)
        + "\n"
        + _("Popular first. Type a country's name or code to search: <i>usa</i>, <i>uk</i>.")
    )


def az_countries_text(service: Service, page: Page[CountryChoice]) -> str:
    return (
        f"<b>{esc(service.name)}</b>\n"
        + _("🔤 All countries A-Z ({count}). Prices are “from”.").format(count=page.total)
        + "\n"
        + _("Type a country's name or code to search.")
    )


def found_countries_text(service: Service, query: str) -> str:
    return f"<b>{esc(service.name)}</b>\n" + _("🔎 Countries matching “{query}”:").format(
        query=esc(query)
    )


def no_country_note(query: str) -> str:
    return _("🔎 No country matches “{query}”.").format(query=esc(query))


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


def _sold_out(label: str, sold_out: bool) -> str:
    """A list entry with nothing to buy ends as a sold-out country's does."""
    return label + " · " + _("sold out") if sold_out else label


def pair_button(service: Service, country: Country, sold_out: bool = False) -> str:
    name = country_name(country.code, country.name)
    return _sold_out(f"{service.name} · {country.flag} {name}", sold_out)


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
    popular: Sequence[ServiceChoice],
    total: int,
    recents: Sequence[RecentPick] = (),
    route_titles: dict[str, str] | None = None,
) -> InlineKeyboardMarkup:
    """Recent picks and "Buy again" on top, the popular services, then "All services A-Z".
    "Buy again" repeats the newest pick whose route has numbers now (one tap to confirm)."""
    builder = InlineKeyboardBuilder()
    again = next((pick for pick in recents if pick.route_has_numbers), None)
    title = None if again is None else (route_titles or {}).get(again.route)
    if again is not None and title is not None:
        service, country = again.service, again.country
        builder.row(
            button(
                _("🔁 Buy again: {service} {flag} · {route}").format(
                    service=service.name, flag=country.flag, route=title
                ),
                RouteCb(sid=service.id, cc=country.code, rt=again.route),
            )
        )
    for pick in recents:
        builder.row(
            button(
                "🕘 " + pair_button(pick.service, pick.country, pick.sold_out),
                CountryCb(sid=pick.service.id, cc=pick.country.code),
            )
        )
    builder.attach(_service_grid(popular))
    if total > len(popular):
        builder.row(button(_("🔤 All services A-Z ({count})").format(count=total), AzCb()))
    builder.row(button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def az_services_keyboard(page: Page[ServiceChoice]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.attach(_service_grid(page.items))
    builder.row(*pager(page.page, page.pages, lambda p: AzCb(page=p)))
    builder.row(button(_("◀ Popular"), ServicesCb()), button(_("◀ Menu"), MenuCb(to="main")))
    return builder.as_markup()


def found_services_keyboard(services: Sequence[ServiceChoice]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.attach(_service_grid(services))
    builder.row(button(_("◀ Services"), ServicesCb()))
    return builder.as_markup()


def _service_grid(services: Sequence[ServiceChoice]) -> InlineKeyboardBuilder:
    grid = InlineKeyboardBuilder()
    for choice in services:
        label = _sold_out(choice.service.name, choice.sold_out)
        grid.add(button(label, ServiceCb(sid=choice.service.id)))
    grid.adjust(2)
    return grid


def pairs_keyboard(pairs: Sequence[PairChoice]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for pair in pairs:
        builder.row(
            button(
                pair_button(pair.service, pair.country, pair.sold_out),
                CountryCb(sid=pair.service.id, cc=pair.country.code),
            )
        )
    builder.row(button(_("◀ Services"), ServicesCb()))
    return builder.as_markup()


def hint_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(_("📱 Buy a number"), MenuCb(to="buy"))]])


def countries_keyboard(
    service_id: int, choices: Sequence[CountryChoice], total: int, currency: Currency
) -> InlineKeyboardMarkup:
    """The popular countries of a service, then "All countries A-Z"."""
    builder = InlineKeyboardBuilder()
    _country_rows(builder, service_id, choices, currency)
    if total > len(choices):
        builder.row(
            button(
                _("🔤 All countries A-Z ({count})").format(count=total),
                AzCb(sid=service_id),
            )
        )
    builder.row(button(_("◀ Services"), ServicesCb()))
    return builder.as_markup()


def az_countries_keyboard(
    service_id: int, page: Page[CountryChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _country_rows(builder, service_id, page.items, currency)
    builder.row(*pager(page.page, page.pages, lambda p: AzCb(sid=service_id, page=p)))
    builder.row(
        button(_("◀ Popular"), ServiceCb(sid=service_id)), button(_("◀ Services"), ServicesCb())
    )
    return builder.as_markup()


def found_countries_keyboard(
    service_id: int, choices: Sequence[CountryChoice], currency: Currency
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    _country_rows(builder, service_id, choices, currency)
    builder.row(button(_("◀ Countries"), ServiceCb(sid=service_id)))
    return builder.as_markup()


def _country_rows(
    builder: InlineKeyboardBuilder,
    service_id: int,
    choices: Sequence[CountryChoice],
    currency: Currency,
) -> None:
    for choice in choices:
        builder.row(
            button(
                country_button(choice, currency),
                CountryCb(sid=service_id, cc=choice.country.code),
            )
        )


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
