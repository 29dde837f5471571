"""Everything that can go wrong upstream ends in a clear message and an exact refund."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from shop.models import OrderStatus
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser

PRICE = 33  # 250 NGN × 0.001 × 1.3 rounded up, in cents


async def _order(harness: BotHarness, user: FakeUser):
    assert harness.app is not None
    orders, _ = await harness.app.orders.page_for_user(user.id, 0, 10)
    return orders


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("NO_NUMBERS", 200, "No numbers are available"),
        ("NO_NUMBERS", 400, "No numbers are available"),
        ("BAD_SERVICE", 200, "not available on this route"),
        ("NO_ACTIVATION", 200, "provider"),
        ("BAD_KEY", 200, "temporarily unavailable"),
        ("Internal Server Error", 500, "provider is unavailable"),
        ("<html><body><h1>502 Bad Gateway</h1></body></html>", 502, "provider is unavailable"),
        ("WHATEVER_NEW_STRING", 200, "provider is unavailable"),
    ],
)
async def test_purchase_errors_refund_exactly(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    body: str,
    status: int,
    says: str,
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    palm.fail_next("getNumber", body, http_status=status)
    await alice.click(confirm, "Pay")
    failed = await alice.wait_for("back on your balance")
    assert says in failed.plain
    assert "$0.33 is back" in failed.plain
    assert any("Other routes" in t for t in failed.button_texts)
    assert body not in failed.plain  # upstream detail stays in the logs
    app = running.app
    assert app is not None
    assert await app.wallet.balance(alice.id) == 100
    (order,) = await _order(running, alice)
    assert order.status is OrderStatus.FAILED and order.refunded


async def test_no_balance_upstream_alerts_the_owner(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    palm.balance = palm.balance.__class__("1.00")  # our upstream account is empty
    confirm = await buy_to_confirm(alice)
    await alice.click(confirm, "Pay")
    await alice.wait_for("back on your balance")
    alert = await admin.wait_for("NO_BALANCE")
    assert "SMSPalm" in alert.plain
    app = running.app
    assert app is not None and await app.wallet.balance(alice.id) == 100


async def test_purchase_timeout_refunds_and_flags_for_the_owner(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    palm.delay_next("getNumber", 4)  # longer than HTTP_TIMEOUT_SECONDS=2
    await alice.click(confirm, "Pay")
    await alice.wait_for("back on your balance")
    alert = await admin.wait_for("did not get a clear answer")
    await palm.wait_idle()
    # The upstream did buy a number; the shop, not the customer, carries that.
    (activation,) = palm.activations.values()
    (order,) = await _order(running, alice)
    assert f"ref={order.id}" in alert.plain and activation.ref == str(order.id)
    assert order.needs_attention and order.refunded
    assert palm.count("getNumber") == 1  # never retried
    app = running.app
    assert app is not None and await app.wallet.balance(alice.id) == 100


async def test_not_enough_balance_changes_nothing(
    running: BotHarness, palm: FakeSMSPalm, alice: FakeUser
) -> None:
    confirm = await buy_to_confirm(alice)
    assert "You need $0.33 more" in confirm.plain
    assert not any("Pay" in t for t in confirm.button_texts)
    assert palm.count("getNumber") == 0
    await alice.click(confirm, "Top up")  # straight to the amounts
    amounts = await alice.wait_for("Top up your balance")
    assert amounts.message_id == confirm.message_id and "$5.00" in amounts.button_texts


async def test_no_code_by_deadline_cancels_and_refunds(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(order_timeout_seconds=2)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    notice = await alice.wait_for("No code arrived in time", timeout=15)
    assert "$0.33 is back on your balance" in notice.plain
    (activation,) = palm.activations.values()
    assert activation.status == "cancelled"
    statuses = [r.action for r in palm.requests]
    last_status = len(statuses) - 1 - statuses[::-1].index("getStatus")
    assert statuses.index("setStatus") > last_status - 1  # asked once more, then cancelled
    (order,) = await _order(harness, alice)
    assert order.status is OrderStatus.EXPIRED and order.refunded
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100


async def test_a_late_code_is_caught_by_the_last_check(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    # Polls are rare, so only the final check before cancelling can see the code.
    harness = harness_factory(order_timeout_seconds=2, poll_interval_seconds=60)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "555111")
    await alice.wait_for("555111", timeout=15)
    await alice.wait_for("Completed", timeout=15)
    (order,) = await _order(harness, alice)
    assert order.status is OrderStatus.COMPLETED and not order.refunded
    assert activation.status != "cancelled"
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100 - PRICE


async def test_cancel_refunds(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    telegram: FakeTelegram,
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    card = await buy(alice)
    query = await alice.click(card, "Cancel")
    answer = await alice.wait_answer(query)
    assert "back on your balance" in (answer.text or "")
    await alice.wait_for("Cancelled")
    (order,) = await _order(running, alice)
    assert order.status is OrderStatus.CANCELLED and order.refunded
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 100
    # Two more taps on the stale Cancel button refund nothing more. Each is answered, in
    # either order: one chat's updates take turns (on Redis, a lock that is not first come,
    # first served), so the second tap's answer does not mean the first one's has come.
    taps = [await alice.click_data(card, f"o:{order.id}:cancel") for _ in range(2)]
    for tap in taps:
        await alice.wait_answer(tap)
    assert await running.app.wallet.balance(alice.id) == 100
    assert telegram.unanswered_callbacks() == []


async def test_early_cancel_denied_keeps_the_order_live(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    palm.early_cancel_seconds = 3600
    await start(alice)
    await fund(admin, alice, "1")
    card = await buy(alice)
    answer = await alice.wait_answer(await alice.click(card, "Cancel"))
    assert answer.show_alert and "try again" in (answer.text or "").lower()
    (order,) = await _order(running, alice)
    assert order.status is OrderStatus.NUMBER_ISSUED and not order.refunded
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 100 - PRICE
    # Later the cancel goes through, and refunds once.
    palm.early_cancel_seconds = 0
    await alice.wait_answer(await alice.click(card, "Cancel"))
    await alice.wait_for("Cancelled")
    assert await running.app.wallet.balance(alice.id) == 100


async def test_another_code_and_done_on_server_one(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    card = await buy(alice, route="SMSPalm Server 1")
    (activation,) = palm.activations.values()
    assert activation.server == "serverone"
    palm.deliver_code(activation.id, "111111")
    await alice.wait_for("111111")
    card = await alice.wait_for(
        lambda m: m.message_id == card.message_id and "Another code" in str(m.button_texts)
    )
    await alice.wait_answer(await alice.click(card, "Another code"))
    assert activation.status == "retry"
    await _wait_for_request(palm, "getStatus")
    palm.deliver_code(activation.id, "222222")
    await alice.wait_for("222222")
    card = await alice.wait_for(lambda m: m.message_id == card.message_id and "222222" in m.plain)
    assert "111111" in card.plain  # every code stays in the order's history
    await alice.wait_answer(await alice.click(card, "Done"))
    await alice.wait_for("Completed")
    assert activation.status == "done"
    (order,) = await _order(running, alice)
    assert order.status is OrderStatus.COMPLETED and not order.refunded


async def _wait_for_request(palm: FakeSMSPalm, action: str) -> None:
    import asyncio

    seen = palm.count(action)
    for _ in range(200):
        if palm.count(action) > seen:
            return
        await asyncio.sleep(0.02)


async def test_expired_quote_charges_nothing(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(quote_ttl_seconds=1)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    await asyncio.sleep(1.5)
    answer = await alice.wait_answer(await alice.click(confirm, "Pay"))
    assert answer.show_alert and "expired" in (answer.text or "")
    assert palm.count("getNumber") == 0
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100


async def test_price_rise_asks_again_before_charging(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    palm.prices["servertwo"][(187, "wa")][0] = Decimal("400.00")  # upstream raised the price
    await alice.click(confirm, "Pay")
    again = await alice.wait_for("The price has changed")
    assert "Price: $0.52" in again.plain  # 400 × 0.001 × 1.3
    assert palm.count("getNumber") == 0
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 100
    await alice.click(again, "Pay $0.52")
    await alice.wait_for("Waiting for the SMS")
    assert await running.app.wallet.balance(alice.id) == 100 - 52


async def test_no_numbers_offers_the_next_cheapest_route(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)  # Server 2, $0.33
    palm.fail_next("getNumber", "NO_NUMBERS")
    await alice.click(confirm, "Pay")
    failed = await alice.wait_for("back on your balance")
    assert "SMSPalm Server 1 has numbers for $0.39" in failed.plain
    assert running.app is not None and await running.app.wallet.balance(alice.id) == 100
    await alice.click(failed, "Buy from SMSPalm Server 1 for $0.39")
    await alice.wait_for("Waiting for the SMS")
    assert [a.server for a in palm.activations.values()] == ["serverone"]
    assert await running.app.wallet.balance(alice.id) == 100 - 39
