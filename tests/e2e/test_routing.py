"""Coming back and choosing routes: buy again, stock alerts, success rates, markups."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser


async def test_buy_again_and_recent_picks(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "2")
    await buy(alice)
    await alice.send("/buy")
    services = await alice.wait_for("Choose a service")
    assert "🔁 Buy again: WhatsApp 🇺🇸 · SMSPalm Server 2" in services.button_texts
    assert "🕘 WhatsApp · 🇺🇸 United States" in services.button_texts
    await alice.click(services, "Buy again")
    confirm = await alice.wait_for("Confirm your purchase")
    assert "SMSPalm Server 2" in confirm.plain and "$0.33" in confirm.plain
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
    assert len(palm.activations) == 2


async def test_tell_me_when_in_stock(
    harness_factory: Callable[..., BotHarness], palm: FakeSMSPalm, alice: FakeUser
) -> None:
    harness = harness_factory(stock_check_seconds=1)
    for server in ("serverone", "servertwo"):
        palm.prices[server][(16, "wa")] = [Decimal("100.00"), 0]  # sold out in the UK
    await harness.start()
    menu = await start(alice)
    await alice.click(menu, "Buy a number")
    services = await alice.wait_for("Choose a service")
    await alice.click(services, "WhatsApp")
    countries = await alice.wait_for("Choose a country")
    await alice.click(countries, "United Kingdom")
    routes = await alice.wait_for("Choose a route")
    answer = await alice.wait_answer(await alice.click(routes, "Tell me when"))
    assert "message you once" in (answer.text or "")
    palm.prices["servertwo"][(16, "wa")][1] = 5  # back in stock upstream
    notice = await alice.wait_for("in stock again", timeout=15)
    assert "United Kingdom" in notice.plain and "📱 Buy now" in notice.button_texts
    assert harness.app is not None
    assert await harness.app.catalog.routing.watches() == []  # told once


async def test_success_rate_shows_once_a_route_has_enough_orders(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    assert running.app is not None
    running.app.catalog.stats_ttl = 0  # no caching of the rates in this test
    await start(alice)
    await fund(admin, alice, "10")
    for i in range(10):
        card = await buy(alice)
        activation = list(palm.activations.values())[-1]
        if i < 9:
            palm.deliver_code(activation.id, f"1000{i}")
            await alice.wait_for(f"1000{i}")
        else:
            await alice.wait_answer(await alice.click(card, "Cancel"))
            await alice.wait_for("Cancelled")
    assert running.app is not None
    app = running.app
    # Orders that got a code end when their deadline passes; end them now.
    for order in (await app.orders.page_for_user(alice.id, 0, 20))[0]:
        await app.orders.expire(order.id)
    service = await app.catalog.find_service("WhatsApp")
    assert service is not None
    choices = await app.catalog.route_choices(service.id, "US")
    server_two = next(c for c in choices if c.route.key == "smspalm2")
    assert server_two.success_rate == 90
    menu = await start(alice)
    await alice.click(menu, "Buy a number")
    services = await alice.wait_for("Choose a service")
    await alice.click(services, "🕘 WhatsApp")
    routes = await alice.wait_for("Choose a route")
    assert any("90% ok" in t for t in routes.button_texts)


async def test_setmarkup_per_provider_and_service(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await admin.send("/setmarkup 100 smspalm WhatsApp")
    await admin.wait_for("Markup 100% for smspalm, WhatsApp")
    for bad in (
        "/setmarkup",
        "/setmarkup x",
        "/setmarkup -5",
        "/setmarkup 10 nosuch",
        "/setmarkup 10 smspalm NoSuchService",
    ):
        await admin.send(bad)
        await admin.wait_for(
            lambda m: (
                "Usage" in m.plain
                or "Unknown" in m.plain
                or "between" in m.plain
                or "Bad" in m.plain
            )
        )
    await alice.send("/setmarkup 0")
    await alice.wait_for("Unknown command")
    assert running.app is not None
    app = running.app
    service = await app.catalog.find_service("WhatsApp")
    telegram_service = await app.catalog.find_service("Telegram")
    assert service is not None and telegram_service is not None
    choices = await app.catalog.route_choices(service.id, "US")
    # 250 NGN × 0.001 × 2.00 = $0.50 on Server 2; other services keep 30 %.
    assert next(c for c in choices if c.route.key == "smspalm2").price == 50
    await admin.send("/setmarkup 10")
    await admin.wait_for("Markup 10% for every provider")
    choices = await app.catalog.route_choices(service.id, "US")
    assert next(c for c in choices if c.route.key == "smspalm2").price == 50  # specific wins
