"""Issue 12, items 12 and 13: what the catalog offers and where a purchase goes.

* Two unmapped upstream countries whose names share a prefix are two countries, and each
  purchase goes to its own; rows an older bot stored under the old key keep working.
* A price of 0 is no offer, on every provider.
* A route whose bulk list leaves a pair out (SMSPool's suggested countries) is asked for that
  one pair when a customer picks it, once per refresh period, and sells it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from shop.countries import resolve
from shop.models import OrderStatus
from storage.db import Database
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.e2e.upstreams import Upstreams, running_upstreams
from tests.fakes.smspalm import SERVER_ONE, SERVER_TWO, FakeSMSPalm
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.telegram import FakeUser, Message

ANTILLES, CURACAO = "Netherlands Antilles", "Netherlands Antilles Curacao"
LEGACY_KEY = "x-netherlands-anti"  # what both names were keyed as before (16-char slug)
TITLES = {
    "smspalm": "SMSPalm Server 2",
    "smspool": "SMSPool",
    "spotsms": "SpotSMS",
    "papsms": "PapSMS",
}


@pytest.fixture
async def upstreams(palm: FakeSMSPalm) -> AsyncIterator[Upstreams]:
    async with running_upstreams(palm) as made:
        yield made


def _settings(upstreams: Upstreams, *providers: str) -> dict[str, Any]:
    """SMSPalm (the harness's default) plus `providers`."""
    return {key: value for name in providers for key, value in upstreams.keys(name).items()}


def _list_antilles(palm: FakeSMSPalm) -> None:
    """SMSPalm Server 2 sells WhatsApp in two places pycountry does not know."""
    palm.countries[SERVER_TWO] += [{"id": 900, "eng": ANTILLES}, {"id": 901, "eng": CURACAO}]
    palm.prices[SERVER_TWO][(900, "wa")] = [Decimal("100.00"), 5]
    palm.prices[SERVER_TWO][(901, "wa")] = [Decimal("200.00"), 7]


async def _route_buttons(user: FakeUser, service: str, country: str) -> Message:
    menu = await start(user)
    await user.click(menu, "Buy a number")
    await user.click(await user.wait_for("Choose a service"), service)
    await user.click(await user.wait_for("Choose a country"), country)
    return await user.wait_for("Choose a route")


# ---------------------------------------------------------------------- item 12: country keys


async def test_unmapped_countries_sharing_a_prefix_are_bought_where_chosen(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    _list_antilles(palm)
    harness = harness_factory()
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    for country, country_id, price in ((CURACAO, 901, "$0.26"), (ANTILLES, 900, "$0.13")):
        # "Name ·": the one button of that country, wherever the list puts the other
        confirm = await buy_to_confirm(alice, country=f"{country} ·")
        assert price in confirm.plain and country in confirm.plain
        await alice.click(confirm, "Pay")
        await alice.wait_for("Waiting for the SMS")
        bought = list(palm.activations.values())[-1]
        assert bought.country_id == country_id
    assert harness.app is not None
    orders = (await harness.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert {o.country for o in orders} == {resolve(ANTILLES).code, resolve(CURACAO).code}


async def test_rows_stored_under_the_old_key_keep_working(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory()
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    card = await buy(alice)
    await alice.wait_answer(await alice.click(card, "Cancel"))
    await alice.wait_for("Cancelled")
    whatsapp = await app.catalog.find_service("WhatsApp")
    assert whatsapp is not None
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    await harness.stop()

    # What the bot before this change wrote once SMSPalm listed both places: one key for both.
    keys = {"key": LEGACY_KEY, "service": whatsapp.id, "now": int(time.time())}
    db = Database(harness.settings.database)
    await db.connect()
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO countries (code, name, flag) VALUES (:key, :name, '🏳️')",
            {**keys, "name": ANTILLES},
        )
        await tx.executemany(
            "INSERT INTO route_countries (route, upstream_id, country) "
            "VALUES ('smspalm2', :upstream, :key)",
            [{**keys, "upstream": "900"}, {**keys, "upstream": "901"}],
        )
        await tx.execute(
            "INSERT INTO offers (route, service_id, country, cost, stock, updated_at) "
            "VALUES ('smspalm2', :service, :key, '200.00', 7, :now)",
            keys,
        )
        await tx.execute(
            "UPDATE orders SET country = :key WHERE id = :id", {**keys, "id": order.id}
        )
        await tx.execute(
            "INSERT INTO stock_watches (user_id, service_id, country, created_at) "
            "VALUES (:user, :service, :key, :now)",
            {**keys, "user": alice.id},
        )
    await db.close()
    _list_antilles(palm)

    app = await harness.start()
    antilles = resolve(ANTILLES)
    # The old order, the watch and the name now live under the new key; nothing is left
    # under the old one, so no stale offer can send a purchase to the wrong place.
    moved = await app.orders.get(order.id)
    assert moved is not None and moved.country == antilles.code
    assert (await app.catalog.country(antilles.code)).name == ANTILLES
    assert await app.catalog.routing.watches() == [(alice.id, whatsapp.id, antilles.code)]
    for table, column in (
        ("countries", "code"),
        ("route_countries", "country"),
        ("offers", "country"),
        ("orders", "country"),
        ("stock_watches", "country"),
    ):
        left = await app.db.fetchval(
            f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (LEGACY_KEY,)
        )
        assert left == 0, table
    # "Buy again" on the old order and a fresh pick both buy in the right place.
    for country, country_id in ((ANTILLES, 900), (CURACAO, 901)):
        confirm = await buy_to_confirm(alice, country=f"{country} ·")
        await alice.click(confirm, "Pay")
        await alice.wait_for("Waiting for the SMS")
        assert list(palm.activations.values())[-1].country_id == country_id
    await harness.check_ledger()


# ---------------------------------------------------------------------- item 12: zero prices


def _zero_price_for_whatsapp_in_us(upstreams: Upstreams, provider: str) -> None:
    if provider == "smspalm":
        for server in (SERVER_ONE, SERVER_TWO):
            upstreams.palm.prices[server][(187, "wa")][0] = Decimal("0.00")
    elif provider == "spotsms":
        upstreams.spot.services[0]["price"] = "0.0000"  # WhatsApp, every country
    elif provider == "smspool":
        upstreams.pool.prices[("1012", "1")].price = Decimal("0.00")
    else:
        upstreams.pap.prices[("whatsapp", "us")][0] = Decimal("0.00")


@pytest.mark.parametrize("provider", list(TITLES))
async def test_a_zero_price_is_not_offered(
    provider: str,
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    _zero_price_for_whatsapp_in_us(upstreams, provider)
    harness = harness_factory(**_settings(upstreams, "smspool", "spotsms", "papsms"))
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    titles = " ".join(routes.button_texts)
    assert TITLES[provider] not in titles
    others = [title for key, title in TITLES.items() if key != provider]
    assert all(title in titles for title in others), titles
    # A forged button for the free offer gets a clear answer, and nothing is stored.
    whatsapp = await app.catalog.find_service("WhatsApp")
    assert whatsapp is not None
    key = "smspalm2" if provider == "smspalm" else provider
    answer = await alice.wait_answer(await alice.click_data(routes, f"r:{whatsapp.id}:US:{key}"))
    assert answer.text is not None and "No numbers are available" in answer.text
    assert await app.db.fetchval("SELECT COUNT(*) FROM quotes") == 0
    # Another route still sells.
    await alice.click(routes, others[0])
    confirm = await alice.wait_for("Confirm your purchase")
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.NUMBER_ISSUED and order.price > 0
    await harness.check_ledger()


# ---------------------------------------------------------------------- item 13: one-pair prices

WHATSAPP_POOL, US_POOL, CANADA_POOL = "1012", "1", "5"


def _pool_price_asks(pool: FakeSMSPool, country_id: str) -> int:
    """request/price calls for WhatsApp in one SMSPool country."""
    return sum(
        1
        for r in pool.requests
        if r.path == "request/price"
        and r.params.get("service") == WHATSAPP_POOL
        and r.params.get("country") == country_id
    )


async def _age_pair_checks(harness: BotHarness) -> None:
    """Make every one-pair check older than the catalog refresh period."""
    assert harness.app is not None
    async with harness.app.db.transaction() as tx:
        await tx.execute(
            "UPDATE offer_checks SET checked_at = checked_at - ?",
            (harness.settings.catalog_refresh_seconds + 1,),
        )
    harness.app.catalog.changed()


async def test_smspool_sells_where_its_suggested_countries_do_not_reach(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    upstreams.pool.suggested = {WHATSAPP_POOL: ["2"]}  # WhatsApp: only the UK is suggested
    harness = harness_factory(**_settings(upstreams, "smspool", "spotsms", "papsms"))
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    titles = " ".join(routes.button_texts)
    assert all(title in titles for title in TITLES.values()), titles
    assert _pool_price_asks(upstreams.pool, US_POOL) == 1
    await alice.click(routes, "SMSPool")
    confirm = await alice.wait_for("Confirm your purchase")
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    (sold,) = upstreams.pool.orders.values()
    assert order.route == "smspool" and sold.short_name == "US"
    assert order.activation_id == sold.order_id

    # Another tap, after something dropped the rendered menus, is served from the catalog.
    asked = _pool_price_asks(upstreams.pool, US_POOL)
    app.catalog.changed()
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    assert "SMSPool" in " ".join(routes.button_texts)
    assert _pool_price_asks(upstreams.pool, US_POOL) == asked
    # Once the refresh period has passed, the pair is asked again.
    await _age_pair_checks(harness)
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    assert "SMSPool" in " ".join(routes.button_texts)
    assert _pool_price_asks(upstreams.pool, US_POOL) == asked + 1
    await harness.check_ledger()


async def test_a_pair_not_sold_there_costs_one_request_per_refresh_period(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    alice: FakeUser,
) -> None:
    upstreams.pool.suggested = {WHATSAPP_POOL: ["2"]}
    harness = harness_factory(**_settings(upstreams, "smspool"))
    app = await harness.start()
    for _ in range(3):  # SMSPool has no WhatsApp price in Canada; SMSPalm sells it
        app.catalog.changed()
        routes = await _route_buttons(alice, "WhatsApp", "Canada")
        titles = " ".join(routes.button_texts)
        assert "SMSPalm" in titles and "SMSPool" not in titles
    assert _pool_price_asks(upstreams.pool, CANADA_POOL) == 1
    await _age_pair_checks(harness)
    await _route_buttons(alice, "WhatsApp", "Canada")
    assert _pool_price_asks(upstreams.pool, CANADA_POOL) == 2


async def test_a_failing_one_pair_price_does_not_break_the_screen(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    alice: FakeUser,
) -> None:
    upstreams.pool.suggested = {WHATSAPP_POOL: ["2"]}
    harness = harness_factory(**_settings(upstreams, "smspool"))
    app = await harness.start()
    upstreams.pool.fail_next("request/price", "<html><body>500</body></html>", 500)
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    titles = " ".join(routes.button_texts)
    assert "SMSPalm Server 2" in titles and "SMSPool" not in titles
    assert _pool_price_asks(upstreams.pool, US_POOL) == 1  # the screen did not wait on retries
    # A failure is not an answer: the next tap asks again, and SMSPool sells.
    app.catalog.changed()
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    assert "SMSPool" in " ".join(routes.button_texts)
    assert _pool_price_asks(upstreams.pool, US_POOL) == 2


async def test_papsms_prices_a_pair_its_list_leaves_out(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    upstreams.pap.unlisted = {("whatsapp", "us")}
    harness = harness_factory(**_settings(upstreams, "papsms"))
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    routes = await _route_buttons(alice, "WhatsApp", "United States")
    assert "PapSMS" in " ".join(routes.button_texts)
    asks = [r for r in upstreams.pap.requests if r.path == "/prices" and r.query.get("country")]
    assert [(r.query["service"], r.query["country"]) for r in asks] == [("whatsapp", "us")]
    await alice.click(routes, "PapSMS")
    confirm = await alice.wait_for("Confirm your purchase")
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
    (bought,) = upstreams.pap.activations.values()
    assert bought.country == "us"
    await harness.check_ledger()
