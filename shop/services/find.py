"""Find what to buy in seconds (issue 16): popular services and countries first, typed search
on each screen, and one typed line ("whatsapp usa") straight to the routes of a pair.

Popular services: once the shop has `min_orders` orders over the last `POPULAR_DAYS` days,
the services most ordered in that window, then the built-in `STARTING_SERVICES` it lacks;
before that, the starting list alone (a catalog small enough to fit shows the rest A-Z after).
Popular countries of a service: once the service has `min_service_orders` orders in the
window, its most ordered countries first; then the most stocked. Sold-out services and
countries come last, as in every list (`CatalogService.service_choices`); so do sold-out
entries among typed matches and a line's readings. An order counts whatever became of it: it
is what a customer came for.

Both counts are read through covering indexes (migration 011) and kept for `popular_ttl`
seconds; the search index (`shop.search.SearchIndex`) is rebuilt only when the names in the
catalog change. Everything kept here is a cache of the database: dropping it changes nothing.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shop.models import Country, Service
from shop.ports import FindingRepository
from shop.search import CountryMatch, LineKind, SearchIndex, ServiceMatch, pick
from shop.services.catalog import CatalogService, CountryChoice, PairChoice, ServiceChoice

STARTING_SERVICES: tuple[str, ...] = (
    "WhatsApp", "Telegram", "Google", "Facebook", "Instagram", "TikTok", "Discord",
    "Microsoft", "Amazon", "Apple", "Twitter", "Snapchat", "OpenAI", "Uber", "PayPal",
    "Netflix", "Tinder", "Viber", "WeChat", "Yahoo",
)  # fmt: skip
POPULAR_SERVICES = 20  # services on the first screen (with the starting list, at most)
POPULAR_COUNTRIES = 20  # countries on a service's first screen
POPULAR_DAYS = 30
MIN_ORDERS = 30  # orders in the window before they rank the services
MIN_SERVICE_ORDERS = 5  # a service's orders in the window before they rank its countries
POPULAR_TTL = 300.0  # seconds a popularity count is reused
NAMES_TTL = 60.0  # seconds the searched names are reused without a catalog change
MATCHES_SHOWN = 6  # buttons offered for an ambiguous search
TYPED_MAX = 64  # characters of a typed text that are read
_BOUGHT_ROWS = 100


class FoundKind(enum.Enum):
    PAIR = "pair"  # open the routes of `service` in `country`
    SERVICE = "service"  # open the countries of `service`
    PAIRS = "pairs"  # several readings of a line: `pairs`, best first
    SERVICES = "services"  # several services: `services`, best first
    COUNTRIES = "countries"  # several countries of `service`: `countries`, best first
    COUNTRY = "country"  # a line naming only a country: `country`
    NOTHING = "nothing"


@dataclass(frozen=True)
class Found:
    """What a typed text found; the fields its `kind` names are filled."""

    kind: FoundKind
    service: Service | None = None
    country: Country | None = None
    pairs: tuple[PairChoice, ...] = ()
    services: tuple[ServiceChoice, ...] = ()
    countries: tuple[CountryChoice, ...] = ()


@dataclass
class _Names:
    """The catalog's searchable names and their index, as of one read (`version` and
    `read_at` move on when a later read finds the same names)."""

    key: tuple[tuple[tuple[int, str], ...], tuple[tuple[str, str], ...]]
    index: SearchIndex
    services: dict[int, Service]
    countries: dict[str, Country]
    version: int
    read_at: float = field(default_factory=time.monotonic)


class FindService:
    def __init__(
        self,
        catalog: CatalogService,
        repo: FindingRepository,
        *,
        starting: Sequence[str] = STARTING_SERVICES,
        min_orders: int = MIN_ORDERS,
        min_service_orders: int = MIN_SERVICE_ORDERS,
        popular_ttl: float = POPULAR_TTL,
    ) -> None:
        self.catalog = catalog
        self.repo = repo
        self.starting = tuple(starting)
        self.min_orders = min_orders
        self.min_service_orders = min_service_orders
        self.popular_ttl = popular_ttl
        self._names: _Names | None = None
        self._reading: asyncio.Task[_Names] | None = None
        self._popular: tuple[float, int, list[Service]] | None = None
        self._bought: dict[int, tuple[float, dict[str, int]]] = {}

    # -- popular first -------------------------------------------------------------------------

    async def popular_services(self) -> list[ServiceChoice]:
        """The services of the first screen, most popular first (see the module docstring),
        sold-out ones last."""
        return await self.catalog.service_choices(await self._popular_services())

    async def _popular_services(self) -> list[Service]:
        names = await self._read_names()
        cached = self._popular
        if cached is not None and cached[1] == id(names) and not self._stale(cached[0]):
            return cached[2]
        since = int(time.time()) - POPULAR_DAYS * 86400
        bought = await self.repo.services_bought(since, _BOUGHT_ROWS)
        ids: list[int] = []
        if sum(count for _, count in bought) >= self.min_orders:
            ids += [service_id for service_id, _ in bought if service_id in names.services]
        for name in self.starting:
            match = pick(names.index.services(name, 2))
            if match is not None:
                ids.append(match.id)
        if len(names.services) <= POPULAR_SERVICES:  # all of them fit: the rest A-Z after
            ids += list(names.services)
        popular = [names.services[i] for i in dict.fromkeys(ids)][:POPULAR_SERVICES]
        self._popular = (time.monotonic(), id(names), popular)
        return popular

    async def popular_countries(self, service_id: int) -> tuple[list[CountryChoice], int]:
        """The countries of a service's first screen, and how many it is sold in at all."""
        choices = await self._choices(service_id)
        bought = await self._countries_bought(service_id)
        ranked = sorted(
            choices,
            key=lambda c: (
                c.stock == 0,
                -bought.get(c.country.code, 0),
                -c.stock,
                c.country.name.lower(),
            ),
        )
        return ranked[:POPULAR_COUNTRIES], len(choices)

    async def _countries_bought(self, service_id: int) -> dict[str, int]:
        cached = self._bought.get(service_id)
        if cached is not None and not self._stale(cached[0]):
            return cached[1]
        since = int(time.time()) - POPULAR_DAYS * 86400
        rows = await self.repo.countries_bought(service_id, since, _BOUGHT_ROWS)
        bought = dict(rows) if sum(n for _, n in rows) >= self.min_service_orders else {}
        if len(self._bought) >= 4096:
            self._bought.clear()
        self._bought[service_id] = (time.monotonic(), bought)
        return bought

    def _stale(self, since: float) -> bool:
        return time.monotonic() - since >= self.popular_ttl

    # -- typed search --------------------------------------------------------------------------

    async def read_line(self, text: str, locale: str) -> Found:
        """What a line typed on the services screen or outside any input means: a pair
        ("whatsapp us", "ватсап сша"), a service, a country alone, or a few of either."""
        names = await self._read_names()
        parsed = names.index.one_line(text[:TYPED_MAX], locale)
        if parsed.kind is LineKind.PAIR:
            service, country = self._pair(names, parsed.pairs[0].service, parsed.pairs[0].country)
            return Found(FoundKind.PAIR, service=service, country=country)
        if parsed.kind is LineKind.PAIRS:
            pairs = [self._pair(names, p.service, p.country) for p in parsed.pairs[:MATCHES_SHOWN]]
            return Found(FoundKind.PAIRS, pairs=tuple(await self.catalog.pair_choices(pairs)))
        if parsed.kind is LineKind.SERVICE:
            return await self._services_found(names, parsed.services)
        if parsed.kind is LineKind.COUNTRY:
            picked = pick(parsed.countries)
            if picked is not None:
                return Found(FoundKind.COUNTRY, country=names.countries[picked.code])
        return Found(FoundKind.NOTHING)

    async def find_service(self, text: str, locale: str) -> Found:
        """Text typed on the services screen: a service by name, or a whole line."""
        return await self.read_line(text, locale)

    async def find_country(self, service_id: int, text: str, locale: str) -> Found:
        """Text typed on a service's countries screen: one of its countries (English name,
        ISO code, or the name in any language the index knows: "сша", "us", "Britain"), or
        else a whole line. A country the service is not sold in opens its (empty) routes."""
        service = await self.catalog.service(service_id)
        names = await self._read_names()
        choices = {c.country.code: c for c in await self._choices(service_id)}
        matches = names.index.countries(text[:TYPED_MAX], locale, limit=40)
        sold = [match for match in matches if match.code in choices]
        picked = pick(sold) or pick(matches)
        if picked is not None and picked.code in names.countries:
            return Found(FoundKind.PAIR, service=service, country=names.countries[picked.code])
        if sold:
            shown = sorted(
                (choices[match.code] for match in sold[:MATCHES_SHOWN]),
                key=lambda choice: choice.stock == 0,  # sold-out ones last
            )
            return Found(FoundKind.COUNTRIES, service=service, countries=tuple(shown))
        line = await self.read_line(text, locale)
        if line.kind in (FoundKind.PAIR, FoundKind.PAIRS, FoundKind.SERVICE):
            return line
        return Found(FoundKind.NOTHING, service=service)

    async def _services_found(self, names: _Names, matches: Sequence[ServiceMatch]) -> Found:
        picked = pick(matches)
        if picked is not None:
            return Found(FoundKind.SERVICE, service=names.services[picked.id])
        shown = [names.services[match.id] for match in matches[:MATCHES_SHOWN]]
        if not shown:
            return Found(FoundKind.NOTHING)
        return Found(FoundKind.SERVICES, services=tuple(await self.catalog.service_choices(shown)))

    @staticmethod
    def _pair(
        names: _Names, service: ServiceMatch, country: CountryMatch
    ) -> tuple[Service, Country]:
        return names.services[service.id], names.countries[country.code]

    async def _choices(self, service_id: int) -> list[CountryChoice]:
        """A service's countries, kept with the menus (dropped on a catalog change)."""
        key = ("country-choices", service_id)
        return (await self.catalog.menu(key, lambda: self.catalog.country_choices(service_id)))[0]

    # -- the searched names --------------------------------------------------------------------

    async def _read_names(self) -> _Names:
        """The names and their index: read again after a catalog change or `NAMES_TTL`, and
        indexed again only when they differ. Meanwhile callers keep the previous ones."""
        names = self._names
        fresh = names is not None and (
            names.version == self.catalog.version and time.monotonic() - names.read_at < NAMES_TTL
        )
        if fresh and names is not None:
            return names
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(names))
            self._reading.add_done_callback(self._read_done)
        if names is not None:
            return names
        return await asyncio.shield(self._reading)

    def _read_done(self, task: asyncio.Task[_Names]) -> None:
        self._reading = None
        if not task.cancelled() and task.exception() is None:
            self._names = task.result()

    async def _read(self, previous: _Names | None) -> _Names:
        version = self.catalog.version
        routes = await self.catalog.live_routes()
        services, countries = await self.repo.searchable(routes)
        key = (
            tuple((s.id, s.name) for s in services),
            tuple((c.code, c.name) for c in countries),
        )
        if previous is not None and previous.key == key:
            previous.version, previous.read_at = version, time.monotonic()
            return previous
        # Tens of milliseconds for a large catalog: off the event loop.
        index = await asyncio.to_thread(SearchIndex, key[0], key[1])
        return _Names(
            key,
            index,
            {s.id: s for s in services},
            {c.code: c for c in countries},
            version,
        )
