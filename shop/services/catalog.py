"""Menus from the cached catalog; a scheduled refresh keeps it current within the budget."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shop.countries import is_iso, resolve
from shop.errors import InvalidState, NotFound
from shop.i18n import _
from shop.models import (
    Country,
    Offer,
    OfferRow,
    RouteCountry,
    RouteInfo,
    RouteService,
    RouteStats,
    Service,
)
from shop.ports import CatalogRepository, RoutingRepository
from shop.providers.base import CountryRef, PairPricing, Priority, ProviderError, Route
from shop.services.pricing import Pricing

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class CountryChoice:
    country: Country
    price_from: int
    stock: int


@dataclass(frozen=True)
class ServiceChoice:
    service: Service
    sold_out: bool = False  # no healthy route has a number of it in any country


@dataclass(frozen=True)
class PairChoice:
    service: Service
    country: Country
    sold_out: bool = False  # some healthy route sells it here, none has a number


@dataclass(frozen=True)
class RecentPick:
    """A service and country the user ordered lately, with the route of the newest order."""

    service: Service
    country: Country
    route: str
    sold_out: bool  # some healthy route sells it, none has a number
    route_has_numbers: bool  # that route (healthy) has a number of it: one tap can buy


@dataclass(frozen=True)
class RouteChoice:
    route: RouteInfo
    price: int
    stock: int
    success_rate: int | None = None  # percent of ended orders that got a code, once known


MIN_ORDERS_FOR_RATE = 10
VIEW_EVERY = 60.0
STATS_EVERY = 60.0
MENU_TTL = 5.0  # seconds a rendered menu may be reused (see `CatalogService.menu`)
MENU_ENTRIES = 4096  # the menu cache is emptied when it grows past this (search queries)
MAX_WATCHES = 10  # "tell me when in stock" requests per user


def service_slug(name: str) -> str:
    """The canonical key of a service: its name, lower-case, letters and digits only."""
    return re.sub(r"[^a-z0-9]+", "", name.lower()) or name.strip().lower()


def describe_route(route: Route) -> RouteInfo:
    """The plain description of a route that handlers and notices work with."""
    return RouteInfo(
        key=route.key,
        title=route.title,
        account=route.account,
        can_request_another=route.can_request_another,
        can_finish=route.can_finish,
        is_sandbox=route.is_sandbox,
    )


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


def _stock_by_pair(offers: Sequence[Offer]) -> dict[tuple[int, str], int]:
    """Numbers in stock per (service, country) over the offers, for each pair they list."""
    stock: dict[tuple[int, str], int] = {}
    for offer in offers:
        key = (offer.service_id, offer.country)
        stock[key] = stock.get(key, 0) + offer.stock
    return stock


class CatalogService:
    """Reads menus from SQLite; only a never-seen service costs an upstream round trip."""

    def __init__(
        self,
        repo: CatalogRepository,
        routes: dict[str, Route],
        pricing: Pricing,
        refresh_seconds: int,
        routing: RoutingRepository,
        per_page: int = 8,
        stats_ttl: float = STATS_EVERY,
        menu_ttl: float = MENU_TTL,
    ) -> None:
        self.stats_ttl = stats_ttl
        self.menu_ttl = menu_ttl
        self.version = 0  # bumped by every catalog change made through this service
        self._menus: dict[Hashable, tuple[float, int, Any]] = {}
        self.repo = repo
        self.routing = routing
        self.routes = routes
        # What handlers are told about the routes (the routes are fixed at start).
        self.route_infos = {key: describe_route(route) for key, route in routes.items()}
        self.pricing = pricing
        self.refresh_seconds = refresh_seconds
        self.per_page = per_page
        self._background: set[asyncio.Task[None]] = set()
        self._building: dict[Hashable, asyncio.Task[Any]] = {}
        self._asking: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        self._viewed: dict[int, float] = {}
        self._stats: tuple[float, dict[str, RouteStats]] | None = None

    async def live_routes(self) -> list[str]:
        return await self.repo.healthy_routes(list(self.routes))

    # -- rendered menus --------------------------------------------------------------------
    #
    # Menus (services, countries, routes) are derived from the cached catalog and change only
    # when it does, so handlers keep what they built (text and keyboard, per language) and
    # reuse it. An entry is dropped when this process changes the catalog (a refresh, a route
    # going down or up, new success rates) and in any case after `menu_ttl` seconds, which
    # bounds the lag for changes made elsewhere (a markup set by an admin, another process
    # refreshing the same database, the popularity order). Nothing charged comes from here:
    # the confirm screen holds a quote priced from the offer and markups read at that moment.

    async def menu(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The menu kept under `key`, built with `build` when there is none for the current
        catalog; also whether it came from the cache.

        A key is built by one caller at a time: clicks that arrive meanwhile wait for that
        build instead of starting their own (under load, an expired popular menu was rebuilt
        by every click that came in during the rebuild, each queueing its reads behind the
        others'). A menu that has only outlived `menu_ttl` is served once more while it is
        rebuilt in the background. The build runs in the first caller's context: `key` must
        hold whatever the build reads from it (the language)."""
        entry = self._menus.get(key)
        if entry is not None and entry[1] == self.version:
            if time.monotonic() - entry[0] >= self.menu_ttl and key not in self._building:
                self._build_menu(key, build)  # its failure is logged; the next click retries
            return entry[2], True
        task = self._building.get(key) or self._build_menu(key, build)
        return await asyncio.shield(task), False

    def _build_menu(self, key: Hashable, build: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        version = self.version  # read before building: a change made meanwhile wins

        async def run() -> T:
            value = await build()
            if version == self.version:
                if len(self._menus) >= MENU_ENTRIES:
                    self._menus.clear()
                self._menus[key] = (time.monotonic(), version, value)
            return value

        def done(task: asyncio.Task[T]) -> None:
            self._building.pop(key, None)
            if not task.cancelled() and task.exception() is not None:  # callers got it too
                log.debug("Building the menu %r failed: %r", key, task.exception())

        task = asyncio.ensure_future(run())
        self._building[key] = task
        task.add_done_callback(done)
        return task

    def changed(self) -> None:
        """The catalog changed: menus built before are stale."""
        self.version += 1
        self._menus.clear()

    async def viewed(self, service_id: int) -> None:
        """A service's countries were shown (from a kept menu): steers the refresh order."""
        if time.monotonic() - self._viewed.get(service_id, -VIEW_EVERY) >= VIEW_EVERY:
            self._viewed[service_id] = time.monotonic()
            await self.repo.mark_viewed(await self.live_routes(), service_id)

    # -- menus -----------------------------------------------------------------------------

    async def services(
        self, query: str = "", page: int = 0, per_page: int | None = None
    ) -> Page[Service]:
        """One page of the services any healthy route sells, A-Z, optionally filtered by
        name; `per_page` defaults to the catalog's page size."""
        size = per_page or self.per_page
        routes = await self.live_routes()
        total = await self.repo.count_services(routes, query)
        pages = _pages(total, size)
        page = min(max(page, 0), pages - 1)
        items = await self.repo.services(routes, query, size, page * size)
        return Page(items, page, pages, total)

    async def service_page(self, page: int, per_page: int) -> Page[ServiceChoice]:
        """One page of the services any healthy route sells, A-Z, sold-out ones last."""
        routes = await self.live_routes()
        total = await self.repo.count_services(routes)
        pages = _pages(total, per_page)
        page = min(max(page, 0), pages - 1)
        sold_out = await self.sold_out_services()
        items = await self.repo.services(routes, "", per_page, page * per_page, sorted(sold_out))
        choices = [ServiceChoice(service, service.id in sold_out) for service in items]
        return Page(choices, page, pages, total)

    # -- sold out --------------------------------------------------------------------------
    #
    # Every list of the buy flow shows what cannot be bought now after what can (in its own
    # order otherwise), marked "sold out": routes, countries, services, typed matches, recent
    # picks. What the catalog does not know yet (a service whose prices were never read on
    # some route) counts as in stock: finding out would cost an upstream request per service.

    async def sold_out_services(self) -> frozenset[int]:
        """The services no healthy route has a number of, in any country; kept with the
        menus (read again after a catalog change)."""

        async def build() -> frozenset[int]:
            return frozenset(await self.repo.sold_out_services(await self.live_routes()))

        return (await self.menu(("sold-out-services",), build))[0]

    async def service_choices(self, services: Sequence[Service]) -> list[ServiceChoice]:
        """Services as a list shows them: sold-out ones last, in the given order otherwise."""
        sold_out = await self.sold_out_services()
        choices = [ServiceChoice(service, service.id in sold_out) for service in services]
        return sorted(choices, key=lambda choice: choice.sold_out)

    async def pair_choices(self, pairs: Sequence[tuple[Service, Country]]) -> list[PairChoice]:
        """(service, country) pairs as a list shows them: sold-out ones last, in the given
        order otherwise. A pair no healthy route lists is not marked (its routes screen asks
        a route that lists pairs one at a time)."""
        offers = await self._pair_offers(
            [(service.id, country.code) for service, country in pairs]
        )
        stock = _stock_by_pair(offers)
        choices = [
            PairChoice(service, country, stock.get((service.id, country.code)) == 0)
            for service, country in pairs
        ]
        return sorted(choices, key=lambda choice: choice.sold_out)

    async def _pair_offers(self, pairs: Sequence[tuple[int, str]]) -> list[Offer]:
        """The healthy routes' offers of a few (service, country) pairs."""
        return await self.repo.pair_offers(await self.live_routes(), pairs) if pairs else []

    async def service(self, service_id: int) -> Service:
        service = await self.repo.service(service_id)
        if service is None:
            raise NotFound(_("This service is no longer offered."))
        return service

    async def country(self, code: str) -> Country:
        country = await self.repo.country(code)
        if country is None:
            raise NotFound(_("This country is no longer offered."))
        return country

    async def find_service(self, name: str) -> Service | None:
        """A service by its name or slug (any case, spaces and punctuation ignored)."""
        return await self.repo.service_by_slug(service_slug(name))

    async def find_country(self, code: str) -> Country | None:
        return await self.repo.country(code)

    async def countries(self, service_id: int, page: int = 0) -> Page[CountryChoice]:
        """A page of a service's countries: in stock first, then by name."""
        choices = await self.country_choices(service_id)
        pages = _pages(len(choices), self.per_page)
        page = min(max(page, 0), pages - 1)
        start = page * self.per_page
        return Page(choices[start : start + self.per_page], page, pages, len(choices))

    async def country_choices(self, service_id: int) -> list[CountryChoice]:
        """Every country selling a service, with its lowest price and its stock over the
        healthy routes: in stock first, then by name."""
        routes = await self.live_routes()
        await self._ensure_offers(routes, service_id)
        offers = await self.repo.offers_for_service(routes, service_id)
        table = await self.pricing.table()
        prices: dict[str, list[tuple[bool, int]]] = {}
        stock: dict[str, int] = {}
        for offer in offers:
            price = table.retail(self.routes[offer.route], offer.cost, service_id)
            prices.setdefault(offer.country, []).append((offer.stock == 0, price))
            stock[offer.country] = stock.get(offer.country, 0) + offer.stock
        # "From" is the cheapest route in stock; a sold-out country shows its cheapest price.
        best = {code: min(options)[1] for code, options in prices.items()}
        countries = await self.repo.countries(list(best))
        choices = [
            CountryChoice(countries[code], price, stock[code])
            for code, price in best.items()
            if code in countries
        ]
        choices.sort(key=lambda c: (c.stock == 0, c.country.name.lower()))
        return choices

    async def route_choices(self, service_id: int, country: str) -> list[RouteChoice]:
        """Every healthy route selling this service here, cheapest first (sold out last).

        A route whose bulk list may leave pairs out (`PairPricing`) and has no bulk offer for
        this pair is asked for this one pair (see `_look_up_pair`)."""
        routes = await self.live_routes()
        await self._ensure_offers(routes, service_id)  # typed in one line: maybe never shown
        offers = await self.repo.offers(routes, service_id, country)
        if await self._look_up_pair(routes, offers, service_id, country):
            offers = await self.repo.offers(routes, service_id, country)
        table = await self.pricing.table()
        stats = await self._route_stats()
        choices = []
        for offer in offers:
            route = self.routes[offer.route]
            stat = stats.get(offer.route)
            rate = (
                round(100 * stat.with_code / stat.orders)
                if stat is not None and stat.orders >= MIN_ORDERS_FOR_RATE
                else None
            )
            price = table.retail(route, offer.cost, service_id)
            choices.append(RouteChoice(self.route_infos[offer.route], price, offer.stock, rate))
        choices.sort(key=lambda c: (c.stock == 0, c.price, c.route.title))
        return choices

    async def _look_up_pair(
        self, routes: Sequence[str], offers: Sequence[Offer], service_id: int, country: str
    ) -> bool:
        """Ask each `PairPricing` route without a bulk offer here for this one pair, unless it
        was asked within the catalog refresh period (its answer, "not sold here" included, is
        in the database). True if any was asked."""
        in_bulk = {offer.route for offer in offers if not offer.looked_up}
        askable = [
            key
            for key in routes
            if key not in in_bulk and isinstance(self.routes.get(key), PairPricing)
        ]
        if not askable:
            return False
        checked = await self.repo.pair_checks(askable, service_id, country)
        fresh_since = int(time.time()) - self.refresh_seconds
        due = [key for key in askable if checked.get(key, 0) <= fresh_since]
        if not due:
            return False
        await asyncio.gather(*(self._ask_pair(key, service_id, country) for key in due))
        return True

    async def _ask_pair(self, route_key: str, service_id: int, country: str) -> None:
        """One route's price of one pair, asked once at a time however many taps wait."""
        key = (route_key, service_id, country)
        task = self._asking.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch_pair(route_key, service_id, country))
            self._asking[key] = task
            task.add_done_callback(lambda _: self._asking.pop(key, None))
        await asyncio.shield(task)

    async def _fetch_pair(self, route_key: str, service_id: int, country: str) -> None:
        route = self.routes[route_key]
        assert isinstance(route, PairPricing)
        try:
            code, ref = await self.upstream_refs(route_key, service_id, country)
        except NotFound:
            return  # the route does not sell this service or know this country: nothing to ask
        try:
            offer = await route.pair_offer(code, ref, Priority.INTERACTIVE)
        except ProviderError as exc:
            # Not an answer: not recorded, so the next tap asks again (within the budget).
            log.warning("Price of %s in %s on %s failed: %s", code, country, route_key, exc)
            return
        row = OfferRow(country, offer.cost, offer.stock) if offer and offer.cost > 0 else None
        if await self.repo.save_pair_offer(route_key, service_id, country, row):
            self.changed()

    async def _route_stats(self) -> dict[str, RouteStats]:
        """Success counts per route; a scan of all orders, so computed at most once a minute."""
        now = time.monotonic()
        if self._stats is None or now - self._stats[0] >= self.stats_ttl:
            stats = await self.routing.route_stats()
            if self._stats is not None and stats != self._stats[1]:
                self.changed()  # success rates shown on route buttons moved
            self._stats = (now, stats)
        return self._stats[1]

    async def _ensure_offers(self, routes: Sequence[str], service_id: int) -> None:
        if time.monotonic() - self._viewed.get(service_id, -VIEW_EVERY) >= VIEW_EVERY:
            # Views only steer which prices refresh first: one write a minute is plenty.
            self._viewed[service_id] = time.monotonic()
            await self.repo.mark_viewed(routes, service_id)
        now = int(time.time())
        missing = []
        refreshed_by_route = await self.repo.refreshed_times(routes, service_id)
        for route in routes:
            refreshed = refreshed_by_route.get(route, 0)
            if refreshed == 0:
                missing.append(route)
            elif refreshed < now - self.refresh_seconds:
                self._in_background(self.refresh_offers(route, service_id, Priority.BACKGROUND))
        if missing:
            await asyncio.gather(
                *(self.refresh_offers(r, service_id, Priority.INTERACTIVE) for r in missing)
            )

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- upstream lookups used by orders ---------------------------------------------------------

    async def upstream_refs(
        self, route: str, service_id: int, country: str
    ) -> tuple[str, CountryRef]:
        code = await self.repo.upstream_service(route, service_id)
        upstream_id = await self.repo.upstream_country(route, country)
        if code is None or upstream_id is None:
            raise NotFound(_("This offer is no longer available."))
        return code, CountryRef(upstream_id=upstream_id, iso=country if is_iso(country) else None)

    async def offer(self, route: str, service_id: int, country: str) -> Offer | None:
        """One route's cached offer for a service and country."""
        offers = await self.repo.offers([route], service_id, country)
        return offers[0] if offers else None

    # -- refresh -----------------------------------------------------------------------------

    async def refresh_route(self, route_key: str) -> bool:
        """Reload a route's services and countries; marks the route up or down."""
        route = self.routes[route_key]
        try:
            services = await route.services()
            countries = await route.countries()
        except ProviderError as exc:
            log.warning("Catalog refresh of %s failed: %s", route_key, exc)
            await self.repo.set_route_status(route_key, False, str(exc)[:200])
            self.changed()
            return False
        infos = [(c.id, resolve(c.iso or c.name)) for c in countries]
        await self.repo.save_route_catalog(
            route_key,
            [RouteService(s.code, service_slug(s.name), s.name.strip()) for s in services],
            [RouteCountry(uid, i.code, i.name, i.flag) for uid, i in infos],
        )
        await self.repo.set_route_status(route_key, True)
        self.changed()
        return True

    async def refresh_offers(self, route_key: str, service_id: int, priority: Priority) -> None:
        route = self.routes[route_key]
        code = await self.repo.upstream_service(route_key, service_id)
        if code is None:
            return
        try:
            offers = await route.offers(code, priority)
        except ProviderError as exc:
            log.warning("Prices of %s on %s failed: %s", code, route_key, exc)
            return
        by_id = await self.repo.route_countries(route_key)
        rows = []
        for offer in offers:
            if offer.cost <= 0:
                continue  # nothing is sold for nothing (and a quote's price must be > 0)
            country = by_id.get(offer.country_id) or self._iso_fallback(offer.country_id)
            if country is not None:
                rows.append(OfferRow(country, offer.cost, offer.stock))
        # Offers looked up one pair at a time stay until the refresh period has passed.
        keep_since = int(time.time()) - self.refresh_seconds
        await self.repo.save_offers(route_key, service_id, rows, keep_looked_up_since=keep_since)
        self.changed()

    @staticmethod
    def _iso_fallback(upstream_id: str) -> str | None:
        info = resolve(upstream_id)
        return None if info.code.startswith("x-") else info.code

    async def upgrade_country_keys(self) -> int:
        """Move countries stored under an older form of their key to the current one.

        Unmapped countries were keyed by the first 16 characters of their name's slug, so two
        names could share a key; now the key ends in a hash of the whole name. A row under an
        older key moves, with the orders, quotes and watches that name it, to the key its own
        name has now; the cached offers and upstream ids under it are dropped (the refresh
        rebuilds them), so none of them can send a purchase to the wrong country. Idempotent.
        """
        moved = 0
        for country in await self.repo.unmapped_countries():
            info = resolve(country.name)
            if info.code != country.code:
                log.info("Country %r: key %s -> %s", country.name, country.code, info.code)
                current = Country(info.code, info.name, info.flag)
                await self.repo.rekey_country(country.code, current)
                moved += 1
        if moved:
            self.changed()
        return moved

    async def refresh(self, offers_per_route: int = 20) -> None:
        """The scheduled job: lists for every route, then the stalest viewed offers."""
        await self.upgrade_country_keys()
        for route_key in self.routes:
            if not await self.refresh_route(route_key):
                continue
            older_than = int(time.time()) - self.refresh_seconds
            for service_id in await self.repo.refresh_candidates(
                route_key, older_than, offers_per_route
            ):
                await self.refresh_offers(route_key, service_id, Priority.BACKGROUND)

    # -- coming back -----------------------------------------------------------------------------

    async def recent_picks(self, user_id: int, limit: int = 3) -> list[RecentPick]:
        """The user's latest service/country picks, newest first and sold-out ones last.
        Their services and countries are read as a menu is (kept between catalog changes);
        whether they are in stock, on every call."""
        found = []
        for service_id, country_code, route in await self.routing.recent_picks(user_id, limit):
            service = await self._kept_service(service_id)
            country = await self._kept_country(country_code)
            if service is not None and country is not None:
                found.append((service, country, route))
        offers = await self._pair_offers([(s.id, c.code) for s, c, _ in found])
        stock = _stock_by_pair(offers)
        buyable = {(o.service_id, o.country, o.route) for o in offers if o.stock > 0}
        picks = [
            RecentPick(
                service,
                country,
                route,
                sold_out=stock.get((service.id, country.code)) == 0,
                route_has_numbers=(service.id, country.code, route) in buyable,
            )
            for service, country, route in found
        ]
        return sorted(picks, key=lambda pick: pick.sold_out)

    async def _kept_service(self, service_id: int) -> Service | None:
        async def build() -> Service | None:
            return await self.repo.service(service_id)

        return (await self.menu(("service", service_id), build))[0]

    async def _kept_country(self, code: str) -> Country | None:
        async def build() -> Country | None:
            return await self.repo.country(code)

        return (await self.menu(("country", code), build))[0]

    async def watch_stock(self, user_id: int, service_id: int, country: str) -> None:
        """Ask to be told once when any route has stock again: only for a service and country
        some route sells and every route has sold out, and at most MAX_WATCHES per user."""
        await self.service(service_id)
        await self.country(country)
        choices = await self.route_choices(service_id, country)  # what the routes screen shows
        if not choices:
            raise NotFound(_("This service is not offered in this country."))
        if any(choice.stock > 0 for choice in choices):
            raise InvalidState(_("It's in stock right now: pick a route to buy it."))
        if not await self.routing.watch(user_id, service_id, country, MAX_WATCHES):
            raise InvalidState(
                _(
                    "You are already waiting for {count} services and countries. We'll "
                    "message you when they are in stock; ask again after that."
                ).format(count=MAX_WATCHES)
            )

    async def check_watches(self) -> list[tuple[int, Service, Country]]:
        """Refresh the watched offers; return (user, service, country) now in stock, once."""
        watches = await self.routing.watches()
        routes = await self.live_routes()
        for service_id in sorted({w[1] for w in watches}):
            for route in routes:
                await self.refresh_offers(route, service_id, Priority.BACKGROUND)
        ready = []
        for user_id, service_id, country in watches:
            offers = await self.repo.offers(routes, service_id, country)
            if any(o.stock > 0 for o in offers) and await self.routing.drop_watch(
                user_id, service_id, country
            ):
                ready.append(
                    (user_id, await self.service(service_id), await self.country(country))
                )
        return ready

    async def close(self) -> None:
        tasks = [*self._background, *self._asking.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
