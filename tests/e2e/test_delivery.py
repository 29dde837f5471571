"""Telegram trouble while delivering codes: blocked users, flood limits; and the sandbox."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser


async def test_flood_limit_is_waited_out(
    running: BotHarness,
    palm: FakeSMSPalm,
    telegram: FakeTelegram,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (activation,) = palm.activations.values()
    telegram.flood("sendMessage", retry_after=1)
    palm.deliver_code(activation.id, "808080")
    await alice.wait_for("808080", timeout=15)


async def test_blocked_user_does_not_break_polling(
    running: BotHarness,
    palm: FakeSMSPalm,
    telegram: FakeTelegram,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    for user in (alice, bob):
        await start(user)
        await fund(admin, user, "1")
        await buy(user)
    alice_activation, bob_activation = palm.activations.values()
    telegram.block(alice.id)
    palm.deliver_code(alice_activation.id, "111000")
    palm.deliver_code(bob_activation.id, "222000")
    await bob.wait_for("222000")
    app = running.app
    assert app is not None
    for _ in range(100):
        user = await app.users.get(alice.id)
        if user is not None and not user.is_active:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert user is not None and not user.is_active
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    codes = await app.orders.codes(order.id)
    assert [c.code for c in codes] == ["111000"]  # kept in the order's history


async def test_sandbox_sells_a_made_up_number(
    harness_factory: Callable[..., BotHarness], admin: FakeUser, alice: FakeUser
) -> None:
    harness = harness_factory(sandbox=True, smspalm_api_key=None, smspalm_rate=None)
    await harness.start()
    menu = await start(alice)
    assert "Sandbox mode" in menu.plain
    await fund(admin, alice, "1")
    card = await buy(alice, route="Sandbox")
    assert "Sandbox" in card.plain
    assert harness.app is not None
    route = harness.app.routes["sandbox"]
    route.code_after = 0.5  # type: ignore[attr-defined]
    await alice.wait_for("(sandbox)", timeout=15)
