"""Forged buttons, other people's orders, non-admins, double taps and bad input change nothing."""

from __future__ import annotations

import asyncio

from shop.models import OrderStatus
from shop.services.catalog import service_slug
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser


async def test_forged_callback_for_another_users_order(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
    telegram: FakeTelegram,
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    assert running.app is not None
    (order,) = (await running.app.orders.page_for_user(alice.id, 0, 5))[0]

    bob_menu = await start(bob)
    for action in ("cancel", "show", "done", "another", "refresh"):
        answer = await bob.wait_answer(await bob.click_data(bob_menu, f"o:{order.id}:{action}"))
        assert answer.show_alert and "not found" in (answer.text or "").lower()
    answer = await bob.wait_answer(await bob.click_data(bob_menu, "q:1"))
    assert "not available" in (answer.text or "")
    answer = await bob.wait_answer(await bob.click_data(bob_menu, "o:not-a-number:cancel"))
    assert "no longer valid" in (answer.text or "")

    (order,) = (await running.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.NUMBER_ISSUED and not order.refunded
    assert palm.count("setStatus") == 0
    assert telegram.unanswered_callbacks() == []


async def test_non_admin_cannot_use_admin_commands(running: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    for command in (
        f"/addbalance {alice.id} 100",
        "/stats",
        "/providers",
        "/order 1",
        "/refund 1",
    ):
        await alice.send(command)
        reply = await alice.wait_for("Unknown command")
        assert "Credited" not in reply.plain
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 0


async def test_admin_commands(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await admin.send(f"/addbalance {alice.id} 2.50")
    await admin.wait_for("Credited $2.50")
    await alice.wait_for("$2.50 was added")
    for bad in (
        "/addbalance",
        f"/addbalance {alice.id}",
        f"/addbalance {alice.id} -5",
        f"/addbalance {alice.id} 1.234",
        "/addbalance x 1",
        "/addbalance 999 1",
    ):
        await admin.send(bad)
        reply = await admin.wait_for(
            lambda m: "Usage" in m.plain or "Bad amount" in m.plain or "No user" in m.plain
        )
        assert "Credited" not in reply.plain

    await buy(alice)
    assert running.app is not None
    (order,) = (await running.app.orders.page_for_user(alice.id, 0, 5))[0]
    await admin.send(f"/order {order.id}")
    details = await admin.wait_for(f"Order #{order.id}")
    assert "WhatsApp" in details.plain and "smspalm2" in details.plain

    await admin.send("/stats")
    stats = await admin.wait_for("Users")
    assert "1 paid" in stats.plain and "revenue $0.33" in stats.plain

    await admin.send("/providers")
    providers = await admin.wait_for("Upstream balances")
    assert "SMSPalm" in providers.plain and "NGN" in providers.plain

    await admin.send(f"/refund {order.id}")
    await admin.wait_for("Refunded $0.33")
    await alice.wait_for("back on your balance")
    await admin.send(f"/refund {order.id}")
    await admin.wait_for("already refunded")
    assert await running.app.wallet.balance(alice.id) == 250
    (activation,) = palm.activations.values()
    assert activation.status == "cancelled"


async def test_admin_cannot_refund_an_order_with_a_code(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "987654")
    await alice.wait_for("987654")
    assert running.app is not None
    (order,) = (await running.app.orders.page_for_user(alice.id, 0, 5))[0]
    await admin.send(f"/refund {order.id}")
    await admin.wait_for("received a code")
    assert await running.app.wallet.balance(alice.id) == 67


async def test_fifty_concurrent_purchases_on_a_balance_for_ten(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    telegram: FakeTelegram,
) -> None:
    await start(alice)
    await fund(admin, alice, "3.30")  # exactly 10 × $0.33
    app = running.app
    assert app is not None
    service = await app.catalog.repo.service_by_slug(service_slug("WhatsApp"))
    assert service is not None
    quotes = [await app.orders.quote(alice.id, "smspalm2", service.id, "US") for _ in range(50)]
    screen = await buy_to_confirm(alice)
    clicks = await asyncio.gather(
        *(alice.click_data(screen, f"q:{view.quote.id}") for view in quotes)
    )
    await asyncio.gather(*(alice.wait_answer(c, timeout=30) for c in clicks))
    for _ in range(300):
        if palm.count("getNumber") >= 10 and len(app.orders.catalog._background) == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    orders, _ = await app.orders.page_for_user(alice.id, 0, 100)
    assert len(orders) == 10
    assert palm.count("getNumber") == 10
    assert await app.wallet.balance(alice.id) == 0
    assert await app.wallet.ledger.sum(alice.id) == 0


async def test_double_tap_on_pay_buys_once(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "5")
    confirm = await buy_to_confirm(alice)
    first, second = await asyncio.gather(alice.click(confirm, "Pay"), alice.click(confirm, "Pay"))
    await alice.wait_answer(first)
    await alice.wait_answer(second)
    await alice.wait_for("Waiting for the SMS")
    await asyncio.sleep(0.3)
    assert palm.count("getNumber") == 1
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 500 - 33


async def test_html_in_service_names_is_escaped(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "5")
    await alice.send("AT&T")  # the one match opens
    countries = await alice.wait_for("Choose a country")
    assert "AT&T <Verify>" in countries.plain
    assert "AT&amp;T &lt;Verify&gt;" in countries.text
    await alice.click(countries, "United States")
    routes = await alice.wait_for("Choose a route")
    await alice.click(routes, "SMSPalm")
    confirm = await alice.wait_for("Confirm your purchase")
    assert "Service: AT&T <Verify>" in confirm.plain
    await alice.click(confirm, "Pay")
    card = await alice.wait_for("Waiting for the SMS")
    assert "AT&T <Verify>" in card.plain


async def test_search_and_pages(
    harness_factory,
    palm: FakeSMSPalm,
    alice: FakeUser,  # type: ignore[no-untyped-def]
) -> None:
    for server in ("serverone", "servertwo"):
        palm.services[server] = palm.services[server] + [
            {"code": f"s{i:03d}", "name": f"Service {i:03d}"} for i in range(300)
        ]
    harness = harness_factory()
    await harness.start()
    menu = await start(alice)
    await alice.click(menu, "Buy a number")
    services = await alice.wait_for("Choose a service")
    assert "WhatsApp" in services.button_texts  # popular first: no paging
    await alice.click(services, "All services A-Z (305)")
    everything = await alice.wait_for("All services A-Z")
    first_page = list(everything.button_texts)
    assert "1/" in " ".join(first_page)
    await alice.click(everything, "▶")
    page2 = await alice.wait_for(
        lambda m: m.message_id == services.message_id and "2/" in " ".join(m.button_texts)
    )
    assert page2.button_texts != first_page
    await alice.send("service 29")
    found = await alice.wait_for("Services matching")
    assert all(t.startswith("Service 29") for t in found.button_texts if "◀" not in t)
    assert len(found.button_texts) < 20
    await alice.send("zzzz-nothing")
    await alice.wait_for("No service matches")


async def test_orders_list_is_paginated(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "5")
    for _ in range(6):
        await buy(alice)
    await alice.send("/orders")
    first = await alice.wait_for("Your orders")
    assert "page 1/2" in first.plain and first.plain.count("#") == 5
    await alice.click(first, "▶")
    second = await alice.wait_for("page 2/2")
    assert second.plain.count("#") == 1


async def test_unknown_input(running: BotHarness, alice: FakeUser) -> None:
    await start(alice)
    await alice.send("/nonsense")
    await alice.wait_for("Unknown command")
