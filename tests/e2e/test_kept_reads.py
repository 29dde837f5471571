"""What the process keeps of a user's orders (`storage.orders.UserOrderReads`) and of their
FSM data is never older than their last change: Buy shows a purchase as a recent pick at
once, My orders shows a new order and its code, a cancel that reaches the limit pauses Buy on
the very next tap, and leaving a form's data for the main menu forgets that data."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser, Message

UNTHROTTLED = {"throttle_burst": 10_000}
PAUSED = "buying is paused"
NO_ORDERS = "You have no number orders yet"
BUY_AGAIN = "🔁 Buy again: WhatsApp 🇺🇸 · SMSPalm Server 2"
RECENT = "🕘 WhatsApp · 🇺🇸 United States"


def _kept(harness: BotHarness) -> None:
    """Without Redis (one process) the reads are kept, and these tests prove that they are
    dropped in time; with it (several instances) nothing is kept."""
    assert harness.app is not None
    one_process = harness.app.settings.redis_url is None
    assert (harness.app.orders.orders.kept is not None) == one_process


async def _buy_screen(user: FakeUser) -> Message:
    menu = await start(user)
    await user.click(menu, "Buy a number")
    return await user.wait_for(lambda m: "Choose a service" in m.plain or PAUSED in m.plain)


async def _my_orders(user: FakeUser) -> Message:
    menu = await start(user)
    await user.click(menu, "My orders")
    return await user.wait_for(lambda m: NO_ORDERS in m.plain or "Your orders" in m.plain)


async def test_a_purchase_shows_on_buy_and_my_orders_at_once(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    _kept(running)
    await start(alice)
    await fund(admin, alice, "2")
    # Read (and kept) before the purchase: no recent picks, no orders.
    for _ in range(2):
        services = await _buy_screen(alice)
        assert BUY_AGAIN not in services.button_texts and RECENT not in services.button_texts
        assert NO_ORDERS in (await _my_orders(alice)).plain

    await buy(alice)
    services = await _buy_screen(alice)
    assert BUY_AGAIN in services.button_texts and RECENT in services.button_texts
    orders = await _my_orders(alice)
    assert "Waiting for the SMS" in orders.plain and "WhatsApp" in orders.plain

    # A code moves the order on: the kept first page is not shown any more.
    activation = next(iter(palm.activations.values()))
    palm.deliver_code(activation.id, "739214")
    await alice.wait_for("739214")
    orders = await _my_orders(alice)
    assert "Code received" in orders.plain and "739214" in orders.plain

    # Buy again from the kept picks buys the same pair; the second order shows at once too.
    await alice.click(services, "Buy again")
    confirm = await alice.wait_for("Confirm your purchase")
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
    orders = await _my_orders(alice)
    assert orders.plain.count("WhatsApp") == 2


async def test_a_cancel_reaching_the_limit_pauses_the_next_tap(
    harness_factory: Callable[..., BotHarness], admin: FakeUser, alice: FakeUser
) -> None:
    harness = harness_factory(cancel_limit=2, cancel_pause_seconds=3600, **UNTHROTTLED)
    await harness.start()
    _kept(harness)
    await start(alice)
    await fund(admin, alice, "5")
    for _ in range(2):
        card = await buy(alice)
        # Buy was opened (and its pause check kept) below the limit: not paused.
        assert PAUSED not in (await _buy_screen(alice)).plain
        await alice.wait_answer(await alice.click(card, "Cancel"))
        await alice.wait_for("Cancelled")
        orders = await _my_orders(alice)
        assert "Cancelled" in orders.plain and "refunded" in orders.plain
    # The second cancel reached the limit: the next tap says so, without a restart.
    notice = await _buy_screen(alice)
    assert PAUSED in notice.plain and "Choose a service" not in notice.plain


async def test_a_held_price_after_the_pause_began_is_refused(
    harness_factory: Callable[..., BotHarness], admin: FakeUser, alice: FakeUser
) -> None:
    """The pause is enforced where the purchase starts, whatever the screens kept."""
    harness = harness_factory(cancel_limit=1, cancel_pause_seconds=3600, **UNTHROTTLED)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    card = await buy(alice)
    held = await buy_to_confirm(alice)  # Buy opened and its check kept: not paused yet
    await alice.wait_answer(await alice.click(card, "Cancel"))
    await alice.wait_for("Cancelled")
    await alice.click(held, "Pay")
    await alice.wait_for(lambda m: PAUSED in m.plain)
