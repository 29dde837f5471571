"""Protection against abuse: a flooding user is slowed down politely (others are not), and a
customer who burns numbers by cancelling order after order has Buy paused for a while."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shop.models import USER_CANCEL, Order, OrderStatus
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

# A bucket of BURST tokens refilled so slowly that it cannot refill during a test.
BURST = 5
SLOW = {"throttle_per_second": 0.0001, "throttle_burst": BURST}
# Cancel tests send dozens of updates quickly; throttling is not what they are about.
UNTHROTTLED = {"throttle_burst": 10_000}
SLOW_DOWN = "too fast"
PAUSED = "buying is paused"
PRICE = 33  # 250 NGN × 0.001 × 1.3 rounded up, in cents


def _hi(user: FakeUser) -> Callable[[Message], bool]:
    return lambda m: f"Hi, {user.first_name}" in m.plain


def _count(user: FakeUser, predicate: Callable[[Message], bool]) -> int:
    return sum(1 for m in user.messages if predicate(m))


def _slow_downs(user: FakeUser) -> int:
    return _count(user, lambda m: SLOW_DOWN in m.plain.lower())


async def _settled(*users: FakeUser) -> None:
    """A later update of each user was answered. Counting is then safe: the bucket cannot
    refill during a test, so no later update could add a reply or a second notice."""
    for user in users:
        await user.send("/start")
        await user.wait_for(_hi(user))


async def test_a_flood_is_throttled_while_others_are_served(
    harness_factory: Callable[..., BotHarness],
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(**SLOW)
    await harness.start()
    for _ in range(30):
        await alice.send("/start")
    await bob.send("/start")
    await bob.wait_for(_hi(bob))  # not held up behind Alice's flood

    notice = await alice.wait_for(lambda m: SLOW_DOWN in m.plain.lower())
    assert "slow down" in notice.plain.lower()
    # The replies and the notice may come in either order (a shared throttle in Redis).
    for _ in range(1000):
        if _count(alice, _hi(alice)) >= BURST:
            break
        await asyncio.sleep(0.01)
    await _settled(bob)
    assert _count(alice, _hi(alice)) == BURST  # 25 of the 30 were dropped
    assert _slow_downs(alice) == 1  # one notice for the whole throttled period
    assert _slow_downs(bob) == 0 and _count(bob, _hi(bob)) == 2


async def test_flooded_callbacks_are_all_answered(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**SLOW)
    await harness.start()
    menu = await start(alice)  # one token
    queries = [await alice.click(menu, "Buy a number") for _ in range(20)]
    answers = [await alice.wait_answer(query) for query in queries]
    assert telegram.unanswered_callbacks() == []
    throttled = [a for a in answers if SLOW_DOWN in (a.text or "").lower()]
    assert len(throttled) == 20 - (BURST - 1)
    assert all(a.show_alert for a in throttled)
    assert _slow_downs(alice) == 0  # callbacks get an answer, not a message


async def test_an_admin_is_never_throttled(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(**SLOW)
    await harness.start()
    for _ in range(30):
        await admin.send("/start")
    for _ in range(30):
        await admin.wait_for(_hi(admin))
    assert _slow_downs(admin) == 0
    menu = admin.last
    assert menu is not None
    queries = [await admin.click(menu, "Buy a number") for _ in range(15)]
    answers = [await admin.wait_answer(query) for query in queries]
    assert not any(SLOW_DOWN in (a.text or "").lower() for a in answers)
    assert telegram.unanswered_callbacks() == []


async def _buy_and_cancel(user: FakeUser) -> None:
    card = await buy(user)
    await user.wait_answer(await user.click(card, "Cancel"))
    await user.wait_for("Cancelled")


async def _balance(harness: BotHarness, user: FakeUser) -> int:
    assert harness.app is not None
    return await harness.app.wallet.balance(user.id)


async def test_many_cancels_pause_buying(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(cancel_limit=3, cancel_pause_seconds=3600, **UNTHROTTLED)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    for _ in range(2):
        await _buy_and_cancel(alice)
    last = await buy(alice)
    # A price held before the pause begins must not get around it.
    held = await buy_to_confirm(alice)
    await alice.wait_answer(await alice.click(last, "Cancel"))
    await alice.wait_for("Cancelled")  # the third cancel within the hour

    numbers_bought = palm.count("getNumber")
    balance = await _balance(harness, alice)
    assert balance == 500

    await alice.click(held, "Pay")
    refused = await alice.wait_for(lambda m: PAUSED in m.plain)
    assert "You can buy again in 60 min" in refused.plain and "UTC" in refused.plain

    # Deeper paths (another route from the failure screen) hit the same rule in the service.
    await alice.wait_answer(await alice.click(refused, "Other routes"))
    routes = await alice.wait_for("Choose a route")
    answer = await alice.wait_answer(await alice.click(routes, "SMSPalm Server 2"))
    assert answer.show_alert and PAUSED in (answer.text or "")

    # Opening Buy says so up front, from the menu and from /buy.
    menu = await start(alice)
    await alice.click(menu, "Buy a number")
    notice = await alice.wait_for(lambda m: PAUSED in m.plain)
    assert notice.message_id == menu.message_id  # edited in place
    assert "Choose a service" not in notice.plain
    await alice.send("/buy")
    await alice.wait_for(lambda m: PAUSED in m.plain)

    assert palm.count("getNumber") == numbers_bought
    assert await _balance(harness, alice) == balance

    # Someone else is not affected.
    await start(bob)
    await fund(admin, bob, "1")
    await buy(bob)


async def test_timeouts_failures_and_admin_refunds_are_not_cancels(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(cancel_limit=1, order_timeout_seconds=2, **UNTHROTTLED)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")

    await buy(alice)
    await alice.wait_for("No code arrived in time", timeout=15)  # expired: not a cancel

    confirm = await buy_to_confirm(alice)
    palm.fail_next("getNumber", "NO_NUMBERS")
    await alice.click(confirm, "Pay")
    await alice.wait_for("back on your balance")  # failed upstream: not a cancel

    await buy(alice)
    assert harness.app is not None
    latest = (await _orders(harness, alice))[0]
    await admin.send(f"/refund {latest.id}")  # the owner's refund: not the customer's cancel
    # (The 2-second deadline may close it first; either way it is not the customer's cancel.)
    await admin.wait_for(lambda m: "refunded" in m.plain.lower())

    await buy(alice)  # with a limit of one cancel, any of those would have paused buying
    assert not any(o.error == USER_CANCEL for o in await _orders(harness, alice))
    assert await harness.app.orders.buy_paused_until(alice.id) is None


async def _orders(harness: BotHarness, user: FakeUser) -> list[Order]:
    assert harness.app is not None
    orders, _ = await harness.app.orders.page_for_user(user.id, 0, 20)
    return orders


async def test_cancel_limit_zero_never_pauses(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(cancel_limit=0, **UNTHROTTLED)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    for _ in range(5):  # the default limit
        await _buy_and_cancel(alice)
    await buy(alice)
    cancelled = [o for o in await _orders(harness, alice) if o.status is OrderStatus.CANCELLED]
    assert len(cancelled) == 5
    assert await _balance(harness, alice) == 500 - PRICE
