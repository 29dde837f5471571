"""Telegram Stars charges end to end: every charge Telegram reports is recorded and ends either
credited or refunded, and Telegram's own `refunded_payment` takes back what its top-up credited,
once, never below zero.

* One invoice checked out twice and paid twice: the first payment is credited, the second is
  refunded with refundStarPayment at once, recorded by its charge id and the admins alerted.
* If Telegram refuses or does not answer that refund, the charge stays on record: a scheduled
  job retries what got no answer, and `/refundstars <charge>` finishes what was refused.
* A `refunded_payment` message debits the top-up (what there is, alerting about the rest),
  once however often it arrives; the echo of our own refunds debits nothing more.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.app import App
from tests.conftest import BotHarness
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

STARS_5 = 385  # ceil(5 / 0.013): the invoice for $5.00


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


def app_of(harness: BotHarness) -> App:
    assert harness.app is not None
    return harness.app


async def rows(harness: BotHarness, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await app_of(harness).db.fetchall(sql, params)]


async def balance(harness: BotHarness, user: FakeUser) -> int:
    return await app_of(harness).wallet.balance(user.id)


async def menu(user: FakeUser) -> None:
    await user.send("/start")
    await user.wait_for(lambda m: "💰 Balance" in m.button_texts)


async def invoice_for(user: FakeUser, amount_button: str = "$5.00") -> Message:
    await user.send("/topup")
    screen = await user.wait_for("Choose an amount")
    await user.click(screen, amount_button)
    methods = await user.wait_for("How would you like to pay")
    await user.click(methods, "Telegram Stars")
    return await user.wait_for(lambda m: m.invoice is not None)


async def paid_twice(user: FakeUser) -> tuple[str, str, Message]:
    """One invoice, two approved checkouts, two payments: (first, second charge, 2nd message)."""
    invoice = await invoice_for(user)
    first, second = await user.checkout(invoice), await user.checkout(invoice)
    assert first.ok and second.ok  # Telegram asks before either payment completes
    paid = user.complete(first)
    await user.wait_for("+$5.00 credited")
    again = user.complete(second)
    assert paid.charge_id and again.charge_id and again.message
    return paid.charge_id, again.charge_id, again.message


async def charges(harness: BotHarness) -> list[tuple[Any, ...]]:
    return await rows(
        harness, "SELECT charge_id, status, reason, topup_id FROM star_charges ORDER BY created_at"
    )


# -- one invoice paid twice ------------------------------------------------------------------


async def test_second_payment_of_one_invoice_is_refunded_recorded_and_reported(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    first, second, message = await paid_twice(alice)
    notice = await alice.wait_for("paid this invoice twice")
    assert f"{STARS_5} ⭐" in notice.plain and "returned" in notice.plain
    alert = await admin.wait_for(second)
    assert "refunded" in alert.plain and str(alice.id) in alert.plain
    assert telegram.charges[second].refunded and not telegram.charges[first].refunded
    assert await charges(running) == [
        (first, "credited", None, 1),
        (second, "refunded", "duplicate", 1),
    ]
    assert await balance(running, alice) == 500

    # Telegram delivers the second payment again: nothing more happens.
    telegram.push_update({"message": telegram.message_json(message)})
    await alice.wait_for("returned to you already")
    assert len(telegram.calls_to("refundStarPayment")) == 1
    assert await balance(running, alice) == 500
    assert await rows(running, "SELECT COUNT(*) FROM ledger WHERE kind = 'topup'") == [(1,)]


async def test_refused_duplicate_refund_is_flagged_and_refundstars_finishes_it(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    telegram.fail("refundStarPayment", 400, "Bad Request: REFUND_FAILED")
    _, second, _ = await paid_twice(alice)
    alert = await admin.wait_for(lambda m: second in m.plain and "refused" in m.plain)
    assert f"/refundstars {second}" in alert.plain
    await alice.wait_for("will be returned")
    assert not telegram.charges[second].refunded
    assert (second, "refund_failed", "duplicate", 1) in await charges(running)

    await admin.send(f"/refundstars {second}")
    done = await admin.wait_for("never credited")
    assert f"Refunded {STARS_5} ⭐" in done.plain
    assert telegram.charges[second].refunded
    assert (second, "refunded", "duplicate", 1) in await charges(running)
    assert await balance(running, alice) == 500  # the wallet is not touched: never credited


async def test_duplicate_refund_without_an_answer_is_retried_by_the_job(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    telegram.fail("refundStarPayment", 500, "Internal Server Error")
    _, second, _ = await paid_twice(alice)
    await admin.wait_for(lambda m: second in m.plain and "did not answer" in m.plain)
    assert (second, "refund_due", "duplicate", 1) in await charges(running)
    async with app_of(running).db.transaction() as tx:  # a while later
        await tx.execute("UPDATE star_charges SET created_at = created_at - 3600")
    job = app_of(running).jobs.scheduler.get_job("stars-refunds")
    assert job is not None
    job.modify(next_run_time=datetime.now(UTC))
    await alice.wait_for("could not be used for a top-up, so it was returned to you")
    assert telegram.charges[second].refunded
    assert (second, "refunded", "duplicate", 1) in await charges(running)
    assert await balance(running, alice) == 500


# -- Telegram's refunded_payment -------------------------------------------------------------


async def test_refunded_payment_debits_the_top_up_once(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    invoice = await invoice_for(alice)
    paid = await alice.pay(invoice)
    assert paid.charge_id is not None
    await alice.wait_for("+$5.00 credited")

    message = telegram.refund_payment(paid.charge_id)
    await alice.wait_for("was refunded")
    alert = await admin.wait_for(paid.charge_id)
    assert "$5.00" in alert.plain
    assert await balance(running, alice) == 0
    assert await rows(running, "SELECT status FROM topups") == [("refunded",)]
    assert await rows(running, "SELECT charge_id, debited, shortfall FROM star_refunds") == [
        (paid.charge_id, 500, 0)
    ]
    await app_of(running).wallet.adjust(alice.id, 300, "goodwill")
    telegram.push_update({"message": telegram.message_json(message)})  # delivered again
    await eventually(lambda: telegram.pending_updates == 0)
    await admin.send(f"/refundstars {paid.charge_id}")  # and the admin tries too
    await admin.wait_for("refunded already")
    assert await balance(running, alice) == 300
    assert await rows(running, "SELECT COUNT(*) FROM ledger WHERE kind = 'topup_refund'") == [(1,)]


async def test_refunded_payment_with_the_balance_spent_takes_what_there_is_and_alerts(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    paid = await alice.pay(await invoice_for(alice))
    assert paid.charge_id is not None
    await alice.wait_for("+$5.00 credited")
    await app_of(running).wallet.adjust(alice.id, -300, "spent on numbers")

    telegram.refund_payment(paid.charge_id)
    alert = await admin.wait_for(lambda m: paid.charge_id in m.plain and "$3.00" in m.plain)
    assert "$2.00" in alert.plain
    notice = await alice.wait_for("Telegram returned")
    assert "$2.00" in notice.plain
    assert await balance(running, alice) == 0
    assert await rows(running, "SELECT debited, shortfall FROM star_refunds") == [(200, 300)]


async def test_refunded_payment_echo_of_our_own_refunds_takes_nothing_more(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    telegram.announce_refunds = True  # Telegram tells us about refunds we made ourselves
    await menu(admin)
    await menu(alice)
    await admin.send(f"/addbalance {alice.id} 10")
    await admin.wait_for("Credited")
    first, second, _ = await paid_twice(alice)  # the duplicate is refunded (and echoed)
    await alice.wait_for("paid this invoice twice")
    await admin.send(f"/refundstars {first}")  # the admin refunds the credited one
    await admin.wait_for(f"Refunded {STARS_5} ⭐")
    await eventually(lambda: _count(running, "SELECT COUNT(*) FROM star_refunds", 2))
    await eventually(lambda: telegram.pending_updates == 0)
    assert await balance(running, alice) == 1000
    assert await rows(running, "SELECT debited, shortfall FROM star_refunds") == [(0, 0), (0, 0)]
    assert await rows(running, "SELECT COUNT(*) FROM ledger WHERE kind = 'topup_refund'") == [(1,)]
    assert (second, "refunded", "duplicate", 1) in await charges(running)


async def _count(harness: BotHarness, sql: str, wanted: int) -> bool:
    return (await rows(harness, sql)) == [(wanted,)]


async def test_refunded_payment_of_a_banned_user_still_counts(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    paid = await alice.pay(await invoice_for(alice))
    assert paid.charge_id is not None
    await alice.wait_for("+$5.00 credited")
    await admin.send(f"/ban {alice.id} chargeback")
    await admin.wait_for("Banned Alice")
    telegram.refund_payment(paid.charge_id)
    await admin.wait_for(lambda m: paid.charge_id in m.plain and "taken back" in m.plain)
    assert await balance(running, alice) == 0
