"""The owner's figures: users, orders, revenue and margin, route success, top services,
top-ups, SMS sends, upstream balances and the last self-check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from shop.models import RentalTotals, RouteSuccess, TopService, TopupTotals
from shop.money import Currency
from shop.ports import OrderRepository, ShopSettings, SmsRepository, StatsRepository
from shop.providers.base import ProviderError, Route
from shop.services.selfcheck import SelfCheckService, SelfCheckStatus

DAY = 86400
BALANCE_TIMEOUT = 20  # seconds an upstream gets to tell its balance


@dataclass(frozen=True)
class Period:
    orders: int
    paid_orders: int
    revenue: int
    cost: int

    @property
    def margin(self) -> int:
        return self.revenue - self.cost


@dataclass(frozen=True)
class SmsPeriod:
    sends: int
    revenue: int
    cost: int  # upstream cost in shop minor units (from SMSPM's per-message prices)

    @property
    def margin(self) -> int:
        return self.revenue - self.cost


@dataclass(frozen=True)
class AccountBalance:
    title: str
    currency: str
    amount: Decimal | None
    error: str | None
    rate: Decimal
    account: str = ""
    shop: int | None = None  # the amount in shop minor units
    low: bool = False  # under LOW_BALANCE_WARNING


@dataclass(frozen=True)
class Stats:
    users: int
    users_today: int
    today: Period
    total: Period
    sms_today: SmsPeriod | None = None
    sms_total: SmsPeriod | None = None
    week: Period | None = None
    active_week: int = 0
    banned: int = 0
    routes: list[RouteSuccess] = field(default_factory=list)
    top_services: list[TopService] = field(default_factory=list)
    # today / 7 days / total; None while no top-up was ever paid
    topups: tuple[TopupTotals, TopupTotals, TopupTotals] | None = None
    balances: list[AccountBalance] = field(default_factory=list)
    self_check: SelfCheckStatus | None = None
    # rentals bought today / in 7 days / in total; None while rentals are not sold
    rentals: tuple[RentalTotals, RentalTotals, RentalTotals] | None = None


class RentalFigures(Protocol):
    async def totals(self, since: int = 0) -> RentalTotals: ...


def start_of_today() -> int:
    now = datetime.now(UTC)
    return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def accounts(routes: Mapping[str, Route]) -> dict[str, Route]:
    """One route per upstream account (SMSPalm's two servers share one balance)."""
    found: dict[str, Route] = {}
    for route in routes.values():
        found.setdefault(route.account, route)
    return found


def account_title(route: Route) -> str:
    """The account's name: "SMSPalm" for "SMSPalm Server 1"."""
    return route.title.split(" Server")[0]


async def upstream_balance(route: Route) -> Decimal:
    """The account's balance upstream; ProviderError or TimeoutError when it does not say."""
    return await asyncio.wait_for(route.balance(), timeout=BALANCE_TIMEOUT)


class StatsService:
    def __init__(
        self,
        repo: StatsRepository,
        orders: OrderRepository,
        routes: Mapping[str, Route],
        currency: Currency,
        settings: ShopSettings,
        sms: SmsRepository | None,
        self_check: SelfCheckService,
        rentals: RentalFigures | None = None,
    ) -> None:
        self._rentals = rentals
        self._repo = repo
        self._orders = orders
        self.routes = routes
        self._currency = currency
        self.settings = settings
        self._sms = sms
        self._self_check = self_check

    async def stats(self) -> Stats:
        """Users, orders, revenue and margin today (UTC), over 7 days and in total; route success
        rates, top services, top-ups, upstream balances and the last self-check.

        Revenue counts orders that were charged and not refunded.
        """
        today = start_of_today()
        week = int(time.time()) - 7 * DAY

        async def period(since: int) -> Period:
            paid, revenue, cost = await self._orders.stats(since)
            return Period(await self._orders.count_since(since), paid, revenue, cost)

        async def sms_period(since: int) -> SmsPeriod | None:
            if self._sms is None:
                return None
            sends, revenue, cost_eur = await self._sms.stats(since)
            return SmsPeriod(
                sends, revenue, self._currency.convert_up(cost_eur, self.settings.smspm_rate)
            )

        counts = await self._repo.user_counts(today, week)
        topups = None
        total_topups = await self._repo.topups(0)
        if total_topups.count:
            topups = (await self._repo.topups(today), await self._repo.topups(week), total_topups)
        rentals = None
        if self._rentals is not None:
            rentals = (
                await self._rentals.totals(today),
                await self._rentals.totals(week),
                await self._rentals.totals(0),
            )
        return Stats(
            rentals=rentals,
            users=counts.total,
            users_today=counts.new_since,
            today=await period(today),
            total=await period(0),
            sms_today=await sms_period(today),
            sms_total=await sms_period(0),
            week=await period(week),
            active_week=counts.active_since,
            banned=counts.banned,
            routes=await self._repo.route_success(week),
            top_services=await self._repo.top_services(week, 5),
            topups=topups,
            balances=await self.balances(),
            self_check=await self._self_check.status(),
        )

    async def balances(self) -> list[AccountBalance]:
        """One line per upstream account (SMSPalm's two servers share one balance)."""
        threshold = self._currency.convert_up(self.settings.low_balance_warning, Decimal(1))

        async def one(route: Route) -> AccountBalance:
            title = account_title(route)
            try:
                amount = await upstream_balance(route)
            except (ProviderError, TimeoutError) as exc:
                return AccountBalance(
                    title, route.currency, None, type(exc).__name__, route.rate, route.account
                )
            shop = self._currency.convert_up(amount, route.rate)
            return AccountBalance(
                title,
                route.currency,
                amount,
                None,
                route.rate,
                route.account,
                shop,
                shop < threshold and not route.is_sandbox,
            )

        return list(await asyncio.gather(*(one(r) for r in accounts(self.routes).values())))
