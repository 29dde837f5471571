"""Top-ups with Telegram Stars end to end: amounts, invoices, pre-checkout, crediting once,
restarts, Stars refunds by the admin, and the runtime limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import BotHarness
from tests.fakes.telegram import FakeTelegram, FakeUser, Message


def is_invoice(message: Message) -> bool:
    return message.invoice is not None


async def menu(user: FakeUser) -> Message:
    await user.send("/start")
    return await user.wait_for(lambda m: "💰 Balance" in m.button_texts)


async def invoice_for(user: FakeUser, amount_button: str) -> Message:
    """/topup -> a preset -> Telegram Stars: the invoice message."""
    await user.send("/topup")
    screen = await user.wait_for("Choose an amount")
    await user.click(screen, amount_button)
    methods = await user.wait_for("How would you like to pay")
    await user.click(methods, "Telegram Stars")
    return await user.wait_for(is_invoice)


async def stars_topup(user: FakeUser, amount_button: str) -> str:
    """A whole Stars top-up; returns the charge id."""
    invoice = await invoice_for(user, amount_button)
    result = await user.pay(invoice)
    assert result.ok, result.error_message
    await user.wait_for("credited")
    assert result.charge_id is not None
    return result.charge_id


async def pre_checkout(
    telegram: FakeTelegram, user: FakeUser, invoice: Message, **override: Any
) -> tuple[bool, str | None]:
    """Push a pre_checkout_query for the invoice (fields overridable) and wait for the verdict."""
    assert invoice.invoice is not None
    query_id = telegram.new_query_id()
    query = {
        "id": query_id,
        "from": user.user_json(),
        "currency": invoice.invoice["currency"],
        "total_amount": invoice.invoice["total_amount"],
        "invoice_payload": invoice.invoice["payload"],
        **override,
    }
    telegram.pre_checkouts[query_id] = None
    telegram.push_update({"pre_checkout_query": query})
    for _ in range(1000):
        verdict = telegram.pre_checkouts.get(query_id)
        if verdict is not None:
            return verdict
        await asyncio.sleep(0.01)
    raise AssertionError("pre-checkout not answered")


def payment_update(telegram: FakeTelegram, user: FakeUser, invoice: Message) -> dict[str, Any]:
    """The successful_payment message Telegram sends after a payment (records the charge)."""
    assert invoice.invoice is not None
    charge = telegram.new_charge(user.id, invoice.invoice)
    return {
        "message": {
            "message_id": 900_000 + len(telegram.charges),
            "from": user.user_json(),
            "chat": user.chat_json(),
            "date": int(time.time()),
            "successful_payment": {
                "currency": charge.currency,
                "total_amount": charge.total_amount,
                "invoice_payload": charge.invoice_payload,
                "telegram_payment_charge_id": charge.charge_id,
                "provider_payment_charge_id": f"provider-{charge.charge_id}",
            },
        }
    }


async def balance_of(harness: BotHarness, user: FakeUser) -> int:
    assert harness.app is not None
    return await harness.app.wallet.balance(user.id)


async def rows(harness: BotHarness, sql: str, *params: Any) -> list[Any]:
    assert harness.app is not None
    return list(await harness.app.db.fetchall(sql, params))


async def execute(harness: BotHarness, sql: str, *params: Any) -> None:
    assert harness.app is not None
    async with harness.app.db.transaction() as tx:
        await tx.execute(sql, params)


# -- tests ------------------------------------------------------------------------------------


async def test_stars_topup_from_a_preset_on_the_balance_screen(
    running: BotHarness, alice: FakeUser
) -> None:
    main = await menu(alice)
    await alice.click(main, "Balance")
    balance = await alice.wait_for("Your balance")
    await alice.click(balance, "Top up")
    screen = await alice.wait_for("Choose an amount")
    assert {"$5.00", "$10.00", "$25.00", "$50.00"} <= set(screen.button_texts)
    await alice.click(screen, "$5.00")
    methods = await alice.wait_for("How would you like to pay")
    assert "💎 Crypto" not in methods.button_texts  # no Crypto Pay configured
    await alice.click(methods, "Telegram Stars")
    invoice = await alice.wait_for(is_invoice)
    assert invoice.invoice is not None
    assert invoice.invoice["currency"] == "XTR"
    assert invoice.invoice["total_amount"] == 385  # ceil(5 / 0.013)
    assert "385" in invoice.invoice["description"] and "$5.00" in invoice.invoice["description"]
    assert invoice.invoice["payload"] == "t:1"

    result = await alice.pay(invoice)
    assert result.ok
    done = await alice.wait_for("credited")
    assert "+$5.00" in done.plain and "$5.00" in done.plain
    assert await balance_of(running, alice) == 500
    (topup,) = await rows(running, "SELECT * FROM topups")
    assert (topup["status"], topup["charge_id"], topup["pay_amount"]) == (
        "paid",
        result.charge_id,
        "385",
    )
    ledger = await rows(running, "SELECT kind, amount, topup_id FROM ledger")
    assert [tuple(r) for r in ledger] == [("topup", 500, 1)]


async def test_typed_amount_and_invalid_amounts_change_nothing(
    harness_factory: Callable[..., BotHarness], alice: FakeUser
) -> None:
    running = harness_factory(throttle_per_second=100, throttle_burst=100)
    await running.start()
    await menu(alice)
    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount")
    await alice.click(screen, "Other amount")
    await alice.wait_for("Send the amount")
    for bad in ("0", "-1", "abc", "1.234", "1000.01", "0.99"):
        await alice.send(bad)
        reply = await alice.wait_for(lambda m: "between $1.00 and $1,000.00" in m.plain)
        assert "✖ Cancel" in reply.button_texts
    assert await rows(running, "SELECT * FROM topups") == []
    await alice.send("12.50")
    methods = await alice.wait_for("Top up $12.50")
    await alice.click(methods, "Telegram Stars")
    invoice = await alice.wait_for(is_invoice)
    assert invoice.invoice is not None and invoice.invoice["total_amount"] == 962
    assert (await alice.pay(invoice)).ok
    await alice.wait_for("+$12.50 credited")
    assert await balance_of(running, alice) == 1250
    # The form is over: text now goes elsewhere, and no top-up opens.
    assert len(await rows(running, "SELECT * FROM topups")) == 1


async def test_forged_preset_outside_the_limits_is_refused(
    running: BotHarness, alice: FakeUser
) -> None:
    main = await menu(alice)
    answer = await alice.wait_answer(await alice.click_data(main, "ta:100001"))
    assert answer.show_alert and "between" in (answer.text or "")
    answer = await alice.wait_answer(await alice.click_data(main, "tp:stars:0"))
    assert answer.show_alert and "between" in (answer.text or "")
    assert await rows(running, "SELECT * FROM topups") == []


async def test_duplicated_successful_payment_credits_once(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await menu(alice)
    invoice = await invoice_for(alice, "$10.00")
    result = await alice.pay(invoice)
    assert result.ok and result.message is not None
    await alice.wait_for("+$10.00 credited")
    telegram.push_update({"message": telegram.message_json(result.message)})
    await alice.wait_for("credited already")
    assert await balance_of(running, alice) == 1000
    assert len(await rows(running, "SELECT * FROM ledger WHERE kind = 'topup'")) == 1


async def test_restart_between_pre_checkout_and_payment_credits_once(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await menu(alice)
    invoice = await invoice_for(alice, "$5.00")
    assert await pre_checkout(telegram, alice, invoice) == (True, None)
    await running.restart()
    update = payment_update(telegram, alice, invoice)
    telegram.push_update(update)
    await alice.wait_for("+$5.00 credited")
    telegram.push_update(update)  # and Telegram delivers it again
    await alice.wait_for("credited already")
    await running.restart()
    telegram.push_update(update)
    await alice.wait_for("credited already")
    assert await balance_of(running, alice) == 500


async def test_pre_checkout_refusals(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser, bob: FakeUser
) -> None:
    await menu(alice)
    await menu(bob)
    invoice = await invoice_for(alice, "$5.00")
    bob_invoice = await invoice_for(bob, "$5.00")
    assert bob_invoice.invoice is not None

    ok, error = await pre_checkout(telegram, alice, invoice, total_amount=1)
    assert not ok and "amount does not match" in (error or "")
    ok, error = await pre_checkout(telegram, alice, invoice, currency="USD")
    assert not ok and "amount does not match" in (error or "")
    ok, error = await pre_checkout(telegram, alice, invoice, invoice_payload="t:999")
    assert not ok and "not valid" in (error or "")
    ok, error = await pre_checkout(telegram, alice, invoice, invoice_payload="x" * 20)
    assert not ok and "not valid" in (error or "")
    ok, error = await pre_checkout(  # bob's invoice, paid by alice
        telegram, alice, invoice, invoice_payload=bob_invoice.invoice["payload"]
    )
    assert not ok and "not valid" in (error or "")

    await execute(running, "UPDATE users SET is_banned = 1 WHERE id = ?", bob.id)
    result = await bob.pay(bob_invoice)
    assert not result.ok and "blocked" in (result.error_message or "")

    await execute(running, "UPDATE topups SET expires_at = ? WHERE id = 1", int(time.time()) - 1)
    result = await alice.pay(invoice)
    assert not result.ok and "expired" in (result.error_message or "")
    assert await balance_of(running, alice) == 0
    assert await balance_of(running, bob) == 0
    assert telegram.charges == {}


async def test_paid_invoice_is_credited_even_if_it_expired_meanwhile(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await menu(alice)
    invoice = await invoice_for(alice, "$5.00")
    assert await pre_checkout(telegram, alice, invoice) == (True, None)
    await execute(running, "UPDATE topups SET status = 'expired', expires_at = 0")
    telegram.push_update(payment_update(telegram, alice, invoice))
    await alice.wait_for("+$5.00 credited")
    assert await balance_of(running, alice) == 500


async def test_refund_stars_by_the_admin(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")

    await admin.send(f"/refundstars {charge}")
    done = await admin.wait_for("Refunded 385 ⭐")
    assert "$5.00 debited" in done.plain
    notice = await alice.wait_for("was refunded")
    assert "385 ⭐" in notice.plain and "$0.00" in notice.plain
    assert telegram.charges[charge].refunded
    assert await balance_of(running, alice) == 0
    (topup,) = await rows(running, "SELECT status FROM topups")
    assert topup["status"] == "refunded"
    audit = await rows(running, "SELECT actor_id, action, target FROM audit_log")
    assert [tuple(r) for r in audit] == [(admin.id, "refundstars", charge)]

    await admin.send(f"/refundstars {charge}")  # again: nothing more is debited
    await admin.wait_for("refunded already")
    assert await balance_of(running, alice) == 0

    await admin.send("/refundstars stxNOPE")
    await admin.wait_for("No Stars payment with that charge id")
    await admin.send("/refundstars")
    await admin.wait_for("Usage: /refundstars")


async def test_refund_stars_refused_when_the_balance_is_spent(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    assert running.app is not None
    await running.app.wallet.adjust(alice.id, -100, "spent")
    await admin.send(f"/refundstars {charge}")
    await admin.wait_for("no longer covers $5.00")
    assert await balance_of(running, alice) == 400
    assert not telegram.charges[charge].refunded
    assert telegram.calls_to("refundStarPayment") == []
    (topup,) = await rows(running, "SELECT status FROM topups")
    assert topup["status"] == "paid"


async def test_refund_stars_refused_by_telegram_is_reversed(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    await admin.send(f"/refundstars {charge}")
    await admin.wait_for("Telegram refused the refund")
    assert await balance_of(running, alice) == 500
    kinds = await rows(running, "SELECT kind, amount FROM ledger ORDER BY id")
    assert [tuple(r) for r in kinds] == [
        ("topup", 500),
        ("topup_refund", -500),
        ("adjustment", 500),
    ]
    (topup,) = await rows(running, "SELECT status FROM topups")
    assert topup["status"] == "paid"
    actions = [r["action"] for r in await rows(running, "SELECT action FROM audit_log")]
    assert actions == ["refundstars", "refundstars_failed"]


async def test_non_admin_cannot_refund_or_change_limits(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await menu(alice)
    charge = await stars_topup(alice, "$5.00")
    for command in (f"/refundstars {charge}", "/setmintopup 0.01", "/setstarsrate 1"):
        await alice.send(command)
        await alice.wait_for("Unknown command")
    assert await balance_of(running, alice) == 500
    assert not telegram.charges[charge].refunded
    assert await rows(running, "SELECT * FROM audit_log") == []


async def test_admin_changes_min_top_up_and_stars_rate(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    await admin.send("/setmintopup 7.50")
    await admin.wait_for("Minimum top-up: $7.50")
    await admin.send("/setstarsrate 0.02")
    await admin.wait_for("1 ⭐ = 0.02 USD")
    await admin.send("/setmintopup abc")
    await admin.wait_for("Usage: /setmintopup")
    await admin.send("/setstarsrate -1")
    await admin.wait_for("positive number")

    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount ($7.50 to $1,000.00)")
    assert "$5.00" not in screen.button_texts
    await alice.click(screen, "Other amount")
    await alice.wait_for("Send the amount")
    await alice.send("7")
    await alice.wait_for("between $7.50 and")
    await alice.send("10")
    methods = await alice.wait_for("Top up $10.00")
    await alice.click(methods, "Telegram Stars")
    invoice = await alice.wait_for(is_invoice)
    assert invoice.invoice is not None and invoice.invoice["total_amount"] == 500

    audit = await rows(running, "SELECT action, detail FROM audit_log ORDER BY id")
    assert [r["action"] for r in audit] == ["setmintopup", "setstarsrate"]
    # They outlive a restart (kept in the database).
    await running.restart()
    await alice.send("/topup")
    await alice.wait_for("Choose an amount ($7.50 to $1,000.00)")
