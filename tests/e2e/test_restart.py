"""Nothing depends on memory: stop the bot mid-order, change the world, start it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shop.models import OrderStatus
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser


async def test_code_that_arrived_while_down_is_delivered_after_restart(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory()
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    card = await buy(alice)
    await harness.stop()

    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "424242")
    await harness.start()
    await alice.wait_for("424242")
    updated = await alice.wait_for(
        lambda m: m.message_id == card.message_id and "424242" in m.plain
    )
    assert "Code received" in updated.plain
    assert harness.app is not None
    (order,) = (await harness.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.CODE_RECEIVED and not order.refunded


async def test_order_past_its_deadline_is_refunded_on_start(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(order_timeout_seconds=1)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    palm.early_cancel_seconds = 3600  # keeps the first bot from closing it before we stop
    await buy(alice)
    await harness.stop()
    await asyncio.sleep(1.2)
    palm.early_cancel_seconds = 0

    await harness.start()
    await alice.wait_for("No code arrived in time", timeout=15)
    assert harness.app is not None
    assert await harness.app.wallet.balance(alice.id) == 100
    (order,) = (await harness.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.EXPIRED and order.refunded


async def test_crash_during_purchase_refunds_once_and_flags(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(http_timeout_seconds=30)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)
    palm.delay_next("getNumber", 5)
    await alice.click(confirm, "Pay")
    deadline = time.monotonic() + 10
    while palm.count("getNumber") == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await harness.crash()  # the purchase is in flight: its outcome is unknown

    await harness.start()
    await asyncio.sleep(0.5)
    assert harness.app is not None
    (order,) = (await harness.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.FAILED and order.refunded and order.needs_attention
    assert await harness.app.wallet.balance(alice.id) == 100
    await harness.restart()  # a second restart refunds nothing more
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100
