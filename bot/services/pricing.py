"""Retail prices: upstream cost × the route's rate × (1 + markup), rounded up."""

from __future__ import annotations

from decimal import Decimal

from bot.money import Currency
from bot.providers.base import Route


class Pricing:
    def __init__(self, currency: Currency, markup_percent: Decimal) -> None:
        self.currency = currency
        self.markup_percent = markup_percent

    def retail(self, route: Route, cost: Decimal) -> int:
        """What the customer pays, in shop minor units."""
        return self.currency.convert_up(cost, route.rate, self.markup_percent)

    def cost(self, route: Route, cost: Decimal) -> int:
        """What the shop pays upstream, in shop minor units (rounded up: margins not flattered)."""
        return self.currency.convert_up(cost, route.rate)
