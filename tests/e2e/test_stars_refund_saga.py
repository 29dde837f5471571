"""The Stars refund saga lives in TopupService: debit, ask Telegram (through the Telegram
adapter of its `StarsGateway` port), undo when Telegram refuses. Driven here through the
service itself against the fake Bot API, then through /refundstars for what the admin reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bot.app import App
from shop.errors import AppError
from shop.services.topups import StarsRefundOutcome
from tests.conftest import BotHarness
from tests.e2e.test_topups import balance_of, menu, rows, stars_topup
from tests.fakes.telegram import FakeTelegram, FakeUser


def app_of(harness: BotHarness) -> App:
    assert harness.app is not None
    return harness.app


async def test_refused_refund_is_undone_by_the_service(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    result = await app_of(running).topups.refund_stars(admin.id, charge)
    assert result.outcome is StarsRefundOutcome.REFUSED
    assert "CHARGE_NOT_FOUND" in result.detail
    assert await balance_of(running, alice) == 500
    ledger = await rows(running, "SELECT kind, amount FROM ledger ORDER BY id")
    assert [tuple(r) for r in ledger] == [
        ("topup", 500),
        ("topup_refund", -500),
        ("adjustment", 500),
    ]
    (topup,) = await rows(running, "SELECT status FROM topups")
    assert topup["status"] == "paid"


async def test_lost_answer_keeps_the_debit_and_a_retry_finishes(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    telegram.fail("refundStarPayment", 500, "Internal Server Error")
    result = await app_of(running).topups.refund_stars(admin.id, charge)
    assert result.outcome is StarsRefundOutcome.NO_ANSWER
    assert await balance_of(running, alice) == 0  # the user never holds both
    assert not telegram.charges[charge].refunded

    await admin.send(f"/refundstars {charge}")  # the retry asks Telegram again
    await admin.wait_for("Stars refund of")
    assert telegram.charges[charge].refunded
    assert await balance_of(running, alice) == 0
    again = await app_of(running).topups.refund_stars(admin.id, charge)
    assert again.outcome is StarsRefundOutcome.ALREADY_REFUNDED


async def test_refund_tells_the_customer_once(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    result = await app_of(running).topups.refund_stars(admin.id, charge)
    assert result.outcome is StarsRefundOutcome.REFUNDED
    assert result.refund is not None and result.refund.amount == 500
    notice = await alice.wait_for("was refunded")
    assert "$5.00 debited" in notice.plain


async def test_stars_off_is_the_service_s_rule(
    harness_factory: Callable[..., BotHarness], alice: FakeUser
) -> None:
    """A shop in EUR without STARS_RATE offers no Stars: no button, and no invoice however
    the request arrives."""
    harness = harness_factory(currency="EUR", markup_percent=30)
    await harness.start()
    screen = await menu(alice)
    await alice.click(screen, "Balance")
    await alice.click(await alice.wait_for("Your balance"), "Top up")
    amounts = await alice.wait_for("Choose an amount")
    await alice.click(amounts, amounts.button_texts[0])
    methods = await alice.wait_for(lambda m: "◀ Back" in m.button_texts)
    assert not any("Stars" in text for text in methods.button_texts)
    with pytest.raises(AppError, match="Telegram Stars are not available"):
        await app_of(harness).topups.open_stars(alice.id, 500)
    answer = await alice.wait_answer(await alice.click_data(methods, "tp:stars:500"))
    assert answer.show_alert and "Telegram Stars are not available" in (answer.text or "")


async def _until_waiting_on_a_lock(harness: BotHarness) -> None:
    for _ in range(200):
        (row,) = await rows(
            harness,
            "SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'",
        )
        if row["n"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the refund never waited for the payer's lock")


async def test_payment_transactions_lock_the_payer_before_the_top_up(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    """PostgreSQL: a payment (`pay_stars`) locks the payer, then the top-up; a refund of the
    same top-up must take them in the same order, or the two deadlock and one is lost."""
    app = app_of(running)
    if app.db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: no row locks to order")
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    (topup,) = await rows(running, "SELECT id FROM topups")
    async with app.db.transaction() as payment:  # a payment of alice's, under way
        await payment.lock_user(alice.id)
        refund = asyncio.create_task(app.topups.refund_stars(admin.id, charge))
        await _until_waiting_on_a_lock(running)
        # The refund waits for the payer and holds nothing the payment needs next.
        async with app.db.transaction() as tx:
            await tx.fetchone(
                "SELECT id FROM topups WHERE id = :id FOR UPDATE NOWAIT", {"id": topup["id"]}
            )
    result = await asyncio.wait_for(refund, 10)
    assert result.outcome is StarsRefundOutcome.REFUNDED
    assert await balance_of(running, alice) == 0
