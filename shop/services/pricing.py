"""Retail prices: upstream cost × the route's rate × (1 + markup), rounded up.

The markup is the most specific of: provider + service, provider, service, global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from shop.money import Currency
from shop.ports import RoutingRepository
from shop.providers.base import Route


@dataclass(frozen=True)
class PriceTable:
    """Markups as they are now; build one per screen or purchase with `Pricing.table()`."""

    currency: Currency
    default_markup: Decimal
    overrides: dict[tuple[str, int], Decimal] = field(default_factory=dict)

    def markup(self, provider: str, service_id: int) -> Decimal:
        for key in ((provider, service_id), (provider, 0), ("", service_id)):
            if key in self.overrides:
                return self.overrides[key]
        return self.default_markup

    def retail(self, route: Route, cost: Decimal, service_id: int = 0) -> int:
        """What the customer pays, in shop minor units."""
        return self.currency.convert_up(cost, route.rate, self.markup(route.account, service_id))


class Pricing:
    def __init__(
        self, currency: Currency, markup_percent: Decimal, repo: RoutingRepository | None = None
    ) -> None:
        self.currency = currency
        self.markup_percent = markup_percent
        self.repo = repo

    async def table(self) -> PriceTable:
        overrides = await self.repo.markups() if self.repo is not None else {}
        return PriceTable(self.currency, self.markup_percent, overrides)

    def cost(self, route: Route, cost: Decimal) -> int:
        """What the shop pays upstream, in shop minor units (rounded up: margins not flattered)."""
        return self.currency.convert_up(cost, route.rate)

    async def set_markup(self, percent: Decimal, provider: str = "", service_id: int = 0) -> None:
        assert self.repo is not None
        await self.repo.set_markup(provider, service_id, percent)
