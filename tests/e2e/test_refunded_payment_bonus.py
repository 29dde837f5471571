"""When Telegram refunds a Stars payment by itself (`refunded_payment`), the admins' alert says
what happened to the inviter's referral bonus on that top-up: taken back (amount and inviter),
or left with the inviter because they had spent it already."""

from __future__ import annotations

from tests.conftest import BotHarness
from tests.e2e.test_topups import balance_of, menu, stars_topup
from tests.fakes.telegram import FakeTelegram, FakeUser


async def _referred_topup(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> str:
    """Bob joins through Alice's link and tops up $10.00: Alice earns $0.50."""
    await menu(admin)
    await menu(alice)
    await bob.send(f"/start ref_{alice.id}")
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    charge = await stars_topup(bob, "$10.00")
    await alice.wait_for("+$0.50")
    return charge


async def test_refunded_payment_alert_names_the_bonus_taken_back(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    charge = await _referred_topup(running, telegram, admin, alice, bob)
    telegram.refund_payment(charge)
    alert = await admin.wait_for(lambda m: charge in m.plain)
    assert "the top-up of $10.00 was taken back" in alert.plain
    assert f"The referral bonus of $0.50 was taken back from user {alice.id}." in alert.plain
    assert await balance_of(running, alice) == 0
    assert await balance_of(running, bob) == 0
    await running.check_ledger()


async def test_refunded_payment_alert_says_a_spent_bonus_stayed(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    charge = await _referred_topup(running, telegram, admin, alice, bob)
    assert running.app is not None
    await running.app.wallet.adjust(alice.id, -50, "spent")
    await running.app.wallet.adjust(bob.id, -400, "spent")
    telegram.refund_payment(charge)
    alert = await admin.wait_for(lambda m: charge in m.plain)
    assert "$4.00 could not be taken back" in alert.plain
    assert (
        f"User {alice.id} had spent the referral bonus of $0.50 already; it stays with them."
        in alert.plain
    )
    assert await balance_of(running, alice) == 0
    assert await balance_of(running, bob) == 0
    await running.check_ledger()


async def test_refunded_payment_alert_without_a_referrer_says_nothing_of_bonuses(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    charge = await stars_topup(alice, "$10.00")
    telegram.refund_payment(charge)
    alert = await admin.wait_for(lambda m: charge in m.plain)
    assert "referral" not in alert.plain
    assert not alert.plain.endswith(" ")
