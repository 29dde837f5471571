"""Issue 12, item 13: routes whose bulk offers may leave pairs out price one pair on demand, at
INTERACTIVE priority, in one request (a customer is waiting), against the fakes over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from shop.providers.base import (
    CountryRef,
    PairPricing,
    Priority,
    UpstreamOffer,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget
from shop.providers.papsms import PapSMSClient, PapSMSRoute
from shop.providers.sandbox import SandboxRoute
from shop.providers.smspalm import SERVER_TWO, SMSPalmClient, SMSPalmRoute
from shop.providers.smspool import LISTED_STOCK, SMSPoolClient, SMSPoolRoute
from shop.providers.spotsms import SpotSMSClient, SpotSMSRoute
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspool import FakeSMSPool


class CountingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(per_minute=60000)
        self.acquired: list[int] = []

    async def acquire(self, priority: int) -> None:
        self.acquired.append(priority)
        await super().acquire(priority)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def test_only_routes_with_partial_lists_price_one_pair(http: httpx.AsyncClient) -> None:
    budget = RequestBudget(60000)
    pool = SMSPoolRoute(SMSPoolClient(http, "http://x", api_key="k", budget=budget), Decimal(1))
    pap = PapSMSRoute(PapSMSClient(http, "http://x", api_key="k", budget=budget), Decimal(1))
    palm = SMSPalmRoute(SMSPalmClient(http, "http://x", "k", budget), SERVER_TWO, Decimal(1))
    spot = SpotSMSRoute(SpotSMSClient(http, "http://x", "k", budget), Decimal(1))
    assert isinstance(pool, PairPricing) and isinstance(pap, PairPricing)
    # Their bulk lists are complete: a pair missing there is not sold.
    for route in (palm, spot, SandboxRoute("USD")):
        assert not isinstance(route, PairPricing)


async def test_smspool_pair_offer(http: httpx.AsyncClient) -> None:
    async with FakeSMSPool() as fake:
        budget = CountingBudget()
        client = SMSPoolClient(
            http, fake.base_url, api_key=fake.api_key, budget=budget, retry_delays=(0, 0)
        )
        route = SMSPoolRoute(client, Decimal(1))
        offer = await route.pair_offer("1012", CountryRef("1", "US"), Priority.INTERACTIVE)
        assert offer == UpstreamOffer("1", Decimal("0.31"), LISTED_STOCK)
        assert budget.acquired == [Priority.INTERACTIVE]
        assert await route.pair_offer("1012", CountryRef("5", "CA"), Priority.INTERACTIVE) is None
        fake.prices[("1011", "1")].price = Decimal("0")
        assert await route.pair_offer("1011", CountryRef("1", "US"), Priority.INTERACTIVE) is None
        fake.fail_next("request/price", "<html>502</html>", 502)
        with pytest.raises(UpstreamUnavailable):
            await route.pair_offer("1012", CountryRef("1", "US"), Priority.INTERACTIVE)
        assert fake.count("request/price") == 4  # never retried: a customer is waiting


async def test_papsms_pair_offer(http: httpx.AsyncClient) -> None:
    async with FakePapSMS(rate_limit=None) as fake:
        budget = CountingBudget()
        client = PapSMSClient(
            http, fake.base_url, api_key=fake.api_key, budget=budget, backoff=(0, 0)
        )
        route = PapSMSRoute(client, Decimal(1))
        fake.unlisted = {("whatsapp", "us")}
        listed = await route.offers("whatsapp", Priority.BACKGROUND)
        assert all(o.country_id != "us" for o in listed)
        us, gb = CountryRef("us", "US"), CountryRef("gb", "GB")
        offer = await route.pair_offer("whatsapp", us, Priority.INTERACTIVE)
        assert offer == UpstreamOffer("us", Decimal("0.80"), 120)
        assert budget.acquired[-1] == Priority.INTERACTIVE
        assert await route.pair_offer("instagram", gb, Priority.INTERACTIVE) is None
        fake.fail_next("/prices", "<html>502</html>", 502)
        before = fake.count("/prices")
        with pytest.raises(UpstreamUnavailable):
            await route.pair_offer("whatsapp", us, Priority.INTERACTIVE)
        assert fake.count("/prices") == before + 1  # never retried: a customer is waiting
