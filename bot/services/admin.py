"""What the shop owner asks about: stats and upstream balances."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from bot.money import Currency
from bot.providers.base import ProviderError, Route
from storage.orders import OrderRepo
from storage.sms import SmsRepo
from storage.users import UserRepo


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
class Stats:
    users: int
    users_today: int
    today: Period
    total: Period
    sms_today: SmsPeriod | None = None
    sms_total: SmsPeriod | None = None


@dataclass(frozen=True)
class AccountBalance:
    title: str
    currency: str
    amount: Decimal | None
    error: str | None
    rate: Decimal


def start_of_today() -> int:
    now = datetime.now(UTC)
    return int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


class AdminService:
    def __init__(
        self,
        users: UserRepo,
        orders: OrderRepo,
        routes: dict[str, Route],
        sms: SmsRepo | None = None,
        currency: Currency | None = None,
        sms_rate: Decimal = Decimal(1),
    ) -> None:
        self.users = users
        self.orders = orders
        self.routes = routes
        self.sms = sms
        self.currency = currency
        self.sms_rate = sms_rate

    async def stats(self) -> Stats:
        """Users, orders, revenue and margin today (UTC) and in total.

        Revenue counts orders that were charged and not refunded.
        """
        today = start_of_today()

        async def period(since: int) -> Period:
            paid, revenue, cost = await self.orders.stats(since)
            return Period(await self.orders.count_since(since), paid, revenue, cost)

        async def sms_period(since: int) -> SmsPeriod | None:
            if self.sms is None or self.currency is None:
                return None
            sends, revenue, cost_eur = await self.sms.stats(since)
            return SmsPeriod(sends, revenue, self.currency.convert_up(cost_eur, self.sms_rate))

        return Stats(
            users=await self.users.count(),
            users_today=await self.users.count(today),
            today=await period(today),
            total=await period(0),
            sms_today=await sms_period(today),
            sms_total=await sms_period(0),
        )

    async def balances(self) -> list[AccountBalance]:
        """One line per upstream account (SMSPalm's two servers share one balance)."""
        accounts: dict[str, Route] = {}
        for route in self.routes.values():
            accounts.setdefault(route.account, route)

        async def one(route: Route) -> AccountBalance:
            title = route.title.split(" Server")[0]
            try:
                amount = await asyncio.wait_for(route.balance(), timeout=20)
            except (ProviderError, TimeoutError) as exc:
                return AccountBalance(title, route.currency, None, type(exc).__name__, route.rate)
            return AccountBalance(title, route.currency, amount, None, route.rate)

        return list(await asyncio.gather(*(one(r) for r in accounts.values())))

    @staticmethod
    def now() -> int:
        return int(time.time())
