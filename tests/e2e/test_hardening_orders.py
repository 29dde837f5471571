"""Issue 12, the order path: an admin refund racing a code, a number bought for an order that
closed meanwhile, an unexpected error after the charge, and live orders of a provider that was
removed from the config. Every test ends with each balance equal to its ledger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.app import App, build_app
from shop.models import Order, OrderStatus
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser, Message

PRICE = 33  # 250 NGN × 0.001 × 1.3 rounded up, in cents
# Held requests must not time out on the bot's side while a test acts.
PATIENT = {"http_timeout_seconds": 30}


async def eventually(check: Callable[[], bool | Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _orders(app: App, user: FakeUser) -> list[Order]:
    orders, _ = await app.orders.page_for_user(user.id, 0, 20)
    return orders


async def _order(app: App, order_id: int) -> Order:
    order = await app.orders.get(order_id)
    assert order is not None
    return order


async def _refunds(app: App, order_id: int) -> int:
    return int(
        await app.db.fetchval(
            "SELECT COUNT(*) FROM ledger WHERE order_id = ? AND kind = 'refund'", (order_id,)
        )
    )


def _about(order_id: int) -> Callable[[Message], bool]:
    return lambda m: f"#{order_id}" in m.plain


async def harness_check(app: App) -> None:
    assert await app.wallet.ledger.mismatches() == []


# -- item 1: /refund races a code ----------------------------------------------------------------


async def test_admin_refund_loses_the_race_to_a_code(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await harness_factory(**PATIENT).start()
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (order,) = await _orders(app, alice)
    (activation,) = palm.activations.values()

    cancel = palm.hold_next("setStatus")
    await admin.send(f"/refund {order.id}")
    await eventually(lambda: palm.count("setStatus") == 1)  # the upstream cancel is in flight
    palm.deliver_code(activation.id, "777888")
    await alice.wait_for("777888")  # a poll recorded and delivered it meanwhile
    cancel.set()

    reply = await admin.wait_for(_about(order.id))
    assert "code arrived" in reply.plain and "Refunded" not in reply.plain
    order = await _order(app, order.id)
    assert order.status is OrderStatus.CODE_RECEIVED and not order.refunded
    assert not order.needs_attention  # the upstream refused the cancel because of the code
    assert activation.status == "ok" and activation.codes == ["777888"]
    assert await _refunds(app, order.id) == 0
    assert await app.wallet.balance(alice.id) == 100 - PRICE
    await harness_check(app)


# -- item 2: a bought number can be lost ---------------------------------------------------------


async def test_admin_refund_refuses_a_purchase_in_progress(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await harness_factory(**PATIENT).start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    purchase = palm.hold_next("getNumber")
    await alice.click(confirm, "Pay")
    await eventually(lambda: palm.count("getNumber") == 1)
    (order,) = await _orders(app, alice)
    assert order.status is OrderStatus.CREATED

    await admin.send(f"/refund {order.id}")
    reply = await admin.wait_for(_about(order.id))
    assert "in progress" in reply.plain and "Refunded" not in reply.plain
    purchase.set()
    await alice.wait_for("Waiting for the SMS")
    order = await _order(app, order.id)
    assert order.status is OrderStatus.NUMBER_ISSUED and not order.refunded
    assert await app.wallet.balance(alice.id) == 100 - PRICE
    await harness_check(app)


async def _taken_for_gone(app: App) -> None:
    """As if `app`'s process froze past its heartbeat's TTL: another instance may start on the
    database (without Redis only one may run), while this one is still there."""
    registry = app.instances
    async with app.db.transaction() as tx:
        await registry.repo.add(tx, replace(registry.instance, seen_at=0))


async def _close_by_another_process(harness: BotHarness) -> None:
    """What a second bot process on the same database does at its start: settle every order
    caught in `created` as "outcome unknown" (refund, flag, alert, tell the customer)."""
    assert harness.app is not None
    await _taken_for_gone(harness.app)
    other = await build_app(harness.settings)
    try:
        await other.orders.recover()
    finally:
        await other.close()


async def test_number_bought_for_an_order_closed_meanwhile_is_cancelled_upstream(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**PATIENT)
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    purchase = palm.hold_next("getNumber")
    await alice.click(confirm, "Pay")
    await eventually(lambda: palm.count("getNumber") == 1)
    (order,) = await _orders(app, alice)

    await _close_by_another_process(harness)
    await alice.wait_for("back on your balance")
    await admin.wait_for("the bot stopped during the purchase")
    purchase.set()  # the upstream sells the number after all

    await eventually(lambda: len(palm.activations) == 1)
    (activation,) = palm.activations.values()
    alert = await admin.wait_for(lambda m: activation.id in m.plain)
    assert f"#{order.id}" in alert.plain and "cancelled upstream" in alert.plain
    await eventually(lambda: activation.status == "cancelled")
    screen = await alice.wait_for(lambda m: m.message_id == confirm.message_id and "❌" in m.plain)
    assert "back on your balance" in screen.plain
    order = await _order(app, order.id)
    assert order.status is OrderStatus.FAILED and order.refunded
    assert await _refunds(app, order.id) == 1
    assert await app.wallet.balance(alice.id) == 100
    await harness_check(app)


async def test_number_bought_for_a_closed_order_is_flagged_when_the_cancel_fails(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**PATIENT)
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    purchase = palm.hold_next("getNumber")
    await alice.click(confirm, "Pay")
    await eventually(lambda: palm.count("getNumber") == 1)
    (order,) = await _orders(app, alice)
    await _close_by_another_process(harness)
    await alice.wait_for("back on your balance")

    palm.early_cancel_seconds = 3600  # the upstream refuses to cancel a fresh number
    purchase.set()
    await eventually(lambda: len(palm.activations) == 1)
    (activation,) = palm.activations.values()
    alert = await admin.wait_for(lambda m: activation.id in m.plain)
    assert f"#{order.id}" in alert.plain and "by hand" in alert.plain
    await eventually(lambda: palm.count("setStatus") == 1)
    assert activation.status == "wait"
    await eventually(lambda: _flagged_with(app, order.id, activation.id))
    order = await _order(app, order.id)
    assert order.status is OrderStatus.FAILED and order.refunded
    assert await app.wallet.balance(alice.id) == 100
    await harness_check(app)


async def _flagged_with(app: App, order_id: int, activation_id: str) -> bool:
    order = await _order(app, order_id)
    return order.needs_attention and order.activation_id == activation_id


# -- item 4: an unexpected error after the charge ------------------------------------------------


async def test_unexpected_error_during_the_purchase_settles_at_once(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    app = running.app
    assert app is not None
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    # An answer httpx cannot even decode (a charset that is not a text encoding): a TypeError
    # out of the client, not a ProviderError.
    palm.fail_next("getNumber", "ACCESS_NUMBER:1:2", content_type="text/plain; charset=rot13")
    await alice.click(confirm, "Pay")
    failed = await alice.wait_for("back on your balance")
    assert "$0.33 is back" in failed.plain
    (order,) = await _orders(app, alice)
    alert = await admin.wait_for(_about(order.id))
    assert f"ref={order.id}" in alert.plain
    assert order.status is OrderStatus.FAILED and order.refunded and order.needs_attention
    assert palm.count("getNumber") == 1  # never retried
    assert await app.wallet.balance(alice.id) == 100
    await harness_check(app)


async def test_sweeper_settles_a_purchase_left_in_created(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await harness_factory(**PATIENT).start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    purchase = palm.hold_next("getNumber")
    await alice.click(confirm, "Pay")
    await eventually(lambda: palm.count("getNumber") == 1)
    await app.in_flight.cancel()  # the purchase dies mid-request; the bot keeps running
    (order,) = await _orders(app, alice)
    assert order.status is OrderStatus.CREATED
    assert await app.wallet.balance(alice.id) == 100 - PRICE

    await app.jobs.sweep()  # within the grace period: a purchase may still be under way
    assert (await _order(app, order.id)).status is OrderStatus.CREATED
    async with app.db.transaction() as tx:  # an hour later
        await tx.execute(
            "UPDATE orders SET created_at = created_at - 3600, updated_at = updated_at - 3600 "
            "WHERE id = ?",
            (order.id,),
        )
    await app.jobs.sweep()
    notice = await alice.wait_for("back on your balance")
    assert f"#{order.id}" in notice.plain
    alert = await admin.wait_for(_about(order.id))
    assert f"ref={order.id}" in alert.plain
    order = await _order(app, order.id)
    assert order.status is OrderStatus.FAILED and order.refunded and order.needs_attention
    assert await app.wallet.balance(alice.id) == 100
    await app.jobs.sweep()  # once only
    assert await _refunds(app, order.id) == 1
    purchase.set()
    await palm.wait_idle()
    (activation,) = palm.activations.values()
    assert activation.ref == str(order.id)  # what the owner looks for upstream
    await harness_check(app)


# -- item 5: a provider removed from the config --------------------------------------------------

UNSET_PALM = {"smspalm_api_key": None, "smspalm_rate": None}


async def test_orders_of_a_removed_provider_are_closed_and_refunded_on_start(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory()
    app = await harness.start()
    await start(alice)
    await start(bob)
    await fund(admin, alice, "1")
    await fund(admin, bob, "1")
    card = await buy(alice)
    (waiting,) = await _orders(app, alice)
    await buy(bob)
    (coded,) = await _orders(app, bob)
    palm.deliver_code(str(coded.activation_id), "135790")
    await bob.wait_for("135790")
    await harness.stop()

    removed = harness_factory(**UNSET_PALM)  # the same database, SMSPalm's key unset
    app = await removed.start()
    notice = await alice.wait_for("back on your balance")
    assert f"#{waiting.id}" in notice.plain
    alert = await admin.wait_for(_about(waiting.id))
    assert str(waiting.activation_id) in alert.plain and "smspalm2" in alert.plain
    assert f"#{coded.id}" not in alert.plain  # it got its code: nothing to refund
    order = await _order(app, waiting.id)
    assert order.status is OrderStatus.CANCELLED and order.refunded and order.needs_attention
    done = await _order(app, coded.id)
    assert done.status is OrderStatus.COMPLETED and not done.refunded
    assert await app.wallet.balance(alice.id) == 100
    assert await app.wallet.balance(bob.id) == 100 - PRICE

    answer = await alice.wait_answer(await alice.click_data(card, f"o:{waiting.id}:cancel"))
    assert "already closed" in (answer.text or "")
    await admin.send(f"/refund {waiting.id}")
    reply = await admin.wait_for(_about(waiting.id))
    assert "already refunded" in reply.plain

    await removed.restart()  # nothing more to settle
    app = removed.app
    assert app is not None
    assert sum("back on your balance" in m.plain for m in alice.messages) == 1
    assert await _refunds(app, waiting.id) == 1
    assert await app.wallet.balance(alice.id) == 100
    await harness_check(app)


async def test_a_removed_providers_order_met_at_runtime_is_settled(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    full = harness_factory()  # another process that still sells SMSPalm (never polls Telegram)
    removed = harness_factory(**UNSET_PALM)
    app = await removed.start()
    await start(alice)
    await fund(admin, alice, "1")

    await _taken_for_gone(app)
    # The other process stays up (holding its orders' leases) while the customer and the
    # owner meet them here: a clean stop would hand the orders over at once, and this
    # process would settle them by itself first.
    other = await build_app(full.settings)
    try:
        await other.catalog.refresh()
        whatsapp = await other.catalog.find_service("WhatsApp")
        assert whatsapp is not None
        bought = []
        for _ in range(2):
            view = await other.orders.quote(alice.id, "smspalm2", whatsapp.id, "US")
            bought.append(await other.orders.confirm(alice.id, view.quote.id))
        first, second = bought
        assert await app.wallet.balance(alice.id) == 100 - 2 * PRICE

        # The customer's Cancel on an order this process cannot reach upstream.
        await alice.send("/orders")
        listing = await alice.wait_for(lambda m: f"#{first.id}" in m.plain)
        await alice.click(listing, f"#{first.id}")
        card = await alice.wait_for(
            lambda m: f"Order #{first.id}" in m.plain and "Cancel" in str(m.button_texts)
        )
        answer = await alice.wait_answer(await alice.click(card, "Cancel"))
        assert "money is back" in (answer.text or "")
        alert = await admin.wait_for(_about(first.id))
        assert str(first.activation_id) in alert.plain

        # The owner's /refund on the other one.
        await admin.send(f"/refund {second.id}")
        reply = await admin.wait_for(
            lambda m: f"#{second.id}" in m.plain and "Refunded" in m.plain
        )
        assert "$0.33" in reply.plain
        for order_id in (first.id, second.id):
            order = await _order(app, order_id)
            assert order.status is OrderStatus.CANCELLED
            assert order.refunded and order.needs_attention
            assert await _refunds(app, order_id) == 1
        assert await app.wallet.balance(alice.id) == 100
        await harness_check(app)
    finally:
        await other.close()
