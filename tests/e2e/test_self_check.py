"""Issue 12, item 14: the scheduled self-check of balances against the ledger and of every
order's ledger rows against its state, its alert and its line in /stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bot.app import App
from shop.models import OrderStatus
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser, Message

PRICE = 33


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _stats(admin: FakeUser) -> Message:
    await admin.send("/stats")
    return await admin.wait_for("📊 Stats")


async def _stats_say(admin: FakeUser, words: str) -> Message:
    """/stats until it says `words` (the check runs every second in these tests)."""
    deadline = time.monotonic() + 15
    while True:
        stats = await _stats(admin)
        if words in stats.plain:
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"/stats never said {words!r}: {stats.plain}")
        await asyncio.sleep(0.2)


def _self_check_alert(m: Message) -> bool:
    return "Self-check" in m.plain and m.plain.startswith("⚠️")


async def test_a_clean_shop_passes_and_stats_show_it(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(self_check_seconds=1)
    app = await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "246810")
    await alice.wait_for("246810")
    await buy(alice)  # and one still waiting
    stats = await _stats_say(admin, "Self-check passed")
    assert "mismatch" not in stats.plain
    assert not any(_self_check_alert(m) for m in admin.messages)
    await harness.check_ledger()
    assert app.settings.self_check_seconds == 1


async def test_a_corrupted_ledger_alerts_the_admins_with_the_ids(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(self_check_seconds=1)
    app = await harness.start()
    await start(alice)
    await start(bob)
    await fund(admin, alice, "1")
    await fund(admin, bob, "1")
    await buy(alice)
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    palm.deliver_code(str(order.activation_id), "975311")
    await alice.wait_for("975311")
    await _stats_say(admin, "Self-check passed")

    now = int(time.time())
    async with app.db.transaction() as tx:
        # A refund for an order whose code was delivered (the balance moved with it) ...
        refund = await tx.insert(
            "INSERT INTO ledger (user_id, amount, kind, reason, order_id, created_at) "
            "VALUES (?, ?, 'refund', 'forged', ?, ?)",
            (alice.id, PRICE, order.id, now),
        )
        await tx.execute("UPDATE users SET balance = balance + ? WHERE id = ?", (PRICE, alice.id))
        # ... and a ledger row that Bob's balance never saw.
        credit = await tx.insert(
            "INSERT INTO ledger (user_id, amount, kind, reason, created_at) "
            "VALUES (?, 500, 'credit', 'forged', ?)",
            (bob.id, now),
        )

    first = await admin.wait_for(_self_check_alert)
    second = await admin.wait_for(_self_check_alert)
    (balances,) = [m for m in (first, second) if "balance(s)" in m.plain]
    (orders,) = [m for m in (first, second) if "order(s)" in m.plain]
    assert f"user {bob.id}: balance $1.00, ledger $6.00" in balances.plain
    assert f"user {alice.id}" not in balances.plain  # her balance moved with the forged refund
    assert f"#{order.id} (code_received" in orders.plain and "refunded although" in orders.plain

    # Throttled: the same findings are not sent again at every run.
    runs = await _runs(app)
    await eventually(lambda: _more_runs(app, runs + 2))
    assert sum(_self_check_alert(m) for m in admin.messages) == 2
    stats = await _stats(admin)
    assert "Self-check failed" in stats.plain

    async with app.db.transaction() as tx:  # repair, so the shop passes again
        await tx.execute("DELETE FROM ledger WHERE id IN (?, ?)", (refund, credit))
        await tx.execute("UPDATE users SET balance = balance - ? WHERE id = ?", (PRICE, alice.id))
    await _stats_say(admin, "Self-check passed")
    order = await app.orders.get(order.id)
    assert order is not None and order.status is OrderStatus.CODE_RECEIVED
    await harness.check_ledger()


async def _runs(app: App) -> int:
    value = await app.db.fetchval("SELECT value FROM kv WHERE key = 'selfcheck:runs'")
    return int(value or 0)


async def _more_runs(app: App, at_least: int) -> bool:
    return await _runs(app) >= at_least
