"""Top-ups through Crypto Pay end to end: the real bot against the fake Bot API and the fake
Crypto Pay (real HTTP both ways, webhooks included). A user walks /topup -> amount -> Crypto,
pays in the fake, and is credited once by the signed webhook or by polling; restarts, forged
webhooks, expired invoices and a createInvoice timeout change nothing they should not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bot.app import App
from tests.conftest import BotHarness, free_port
from tests.e2e.helpers import start
from tests.fakes.cryptopay import FakeCryptoPay, FakeInvoice, sign
from tests.fakes.telegram import FakeUser, Message

SECRET = "cryptopay-hook-path-secret"
CREDITED = "added to your balance"


def crypto_settings(
    fake: FakeCryptoPay, webhook: bool = True, poll: float = 3600, **overrides: Any
) -> dict[str, Any]:
    """Settings that turn Crypto Pay on against the fake (the first poll runs at start)."""
    values: dict[str, Any] = {
        "cryptopay_token": fake.token,
        "cryptopay_base_url": fake.base_url,
        "cryptopay_assets": "USDT,TON,BTC",
        "cryptopay_poll_seconds": poll,
    }
    if webhook:
        port = free_port()
        values.update(http_port=port, cryptopay_webhook=True, cryptopay_webhook_secret=SECRET)
        fake.webhook_url = f"http://127.0.0.1:{port}/cryptopay/webhook/{SECRET}"
    values.update(overrides)
    return values


async def crypto_screen(user: FakeUser, amount_button: str = "$10.00") -> Message:
    """/topup -> a preset -> Crypto: the screen with the "Pay in @CryptoBot" link."""
    await user.send("/topup")
    screen = await user.wait_for("Choose an amount")
    await user.click(screen, amount_button)
    methods = await user.wait_for("How would you like to pay")
    await user.click(methods, "Crypto")
    return await user.wait_for(lambda m: any("@CryptoBot" in t for t in m.button_texts))


def invoice_of(fake: FakeCryptoPay, screen: Message) -> FakeInvoice:
    """The fake invoice behind the screen's URL button."""
    url = next(target for row in screen.buttons for text, target in row if "@CryptoBot" in text)
    [invoice] = [
        i for i in fake.invoices.values() if url == f"https://t.me/CryptoBot?start={i.hash}"
    ]
    return invoice


async def rows(app: App, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await app.db.fetchall(sql, params)]


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait until `check()` holds (the poll job runs on its own schedule)."""
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.05)


def credited_messages(user: FakeUser) -> list[Message]:
    return [m for m in user.messages if CREDITED in m.plain]


async def test_topup_paid_and_credited_once_by_the_webhook(
    harness_factory: Callable[..., BotHarness], cryptopay: FakeCryptoPay, alice: FakeUser
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay))
    app = await harness.start()
    await start(alice)
    screen = await crypto_screen(alice)
    assert "$10.00" in screen.plain

    invoice = invoice_of(cryptopay, screen)
    sent = next(r.params for r in cryptopay.requests if r.method == "createInvoice")
    assert (sent["currency_type"], sent["fiat"], sent["amount"]) == ("fiat", "USD", "10.00")
    assert sent["accepted_assets"] == "USDT,TON,BTC"
    assert sent["expires_in"] == app.settings.invoice_ttl_seconds
    assert "$10.00" in sent["description"]
    topup_id = int(sent["payload"])
    assert await rows(app, "SELECT user_id, method, amount, status, external_id FROM topups") == [
        (alice.id, "crypto", 1000, "pending", str(invoice.invoice_id))
    ]

    cryptopay.pay(invoice.invoice_id, asset="TON")
    await cryptopay.wait_webhooks()
    assert cryptopay.webhooks_sent[-1].http_status == 200
    notice = await alice.wait_for(CREDITED)
    assert "$10.00" in notice.plain and "Balance: $10.00" in notice.plain
    assert await app.wallet.balance(alice.id) == 1000

    # Crypto Pay redelivers the same update: answered 200, credited once.
    cryptopay.repeat_webhook()
    await cryptopay.wait_webhooks()
    assert cryptopay.webhooks_sent[-1].http_status == 200
    assert await app.wallet.balance(alice.id) == 1000
    assert await rows(app, "SELECT kind, amount FROM ledger WHERE topup_id = ?", topup_id) == [
        ("topup", 1000)
    ]
    assert await rows(app, "SELECT status FROM topups") == [("paid",)]
    await alice.send("/balance")
    await alice.wait_for("$10.00")
    assert len(credited_messages(alice)) == 1


async def test_polling_credits_when_no_webhook_is_configured(
    harness_factory: Callable[..., BotHarness],
    cryptopay: FakeCryptoPay,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay, webhook=False, poll=0.2))
    app = await harness.start()
    await start(alice)
    await start(bob)
    first = invoice_of(cryptopay, await crypto_screen(alice, "$5.00"))
    second = invoice_of(cryptopay, await crypto_screen(bob, "$25.00"))

    cryptopay.pay(first.invoice_id, asset="USDT")
    cryptopay.pay(second.invoice_id, asset="BTC")
    assert "Balance: $5.00" in (await alice.wait_for(CREDITED)).plain
    assert "Balance: $25.00" in (await bob.wait_for(CREDITED)).plain
    assert cryptopay.webhooks_sent == []

    # Both pending invoices were asked about in one batched getInvoices call.
    batches = [r.params["invoice_ids"] for r in cryptopay.requests if r.method == "getInvoices"]
    both = f"{first.invoice_id},{second.invoice_id}"
    assert both in batches

    await eventually(lambda: _no_pending(app))
    # Another poll (as the job keeps making) credits nothing more and asks nothing.
    polls = cryptopay.count("getInvoices")
    assert app.crypto is not None
    assert await app.crypto.poll() == 0
    assert cryptopay.count("getInvoices") == polls
    assert await app.wallet.balance(alice.id) == 500
    assert await app.wallet.balance(bob.id) == 2500
    assert len(credited_messages(alice)) == len(credited_messages(bob)) == 1


async def _no_pending(app: App) -> bool:
    return not await rows(app, "SELECT id FROM topups WHERE status = 'pending'")


async def test_invoice_paid_while_the_bot_was_down_is_credited_after_restart(
    harness_factory: Callable[..., BotHarness], cryptopay: FakeCryptoPay, alice: FakeUser
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay, webhook=True, poll=3600))
    await harness.start()
    await start(alice)
    invoice = invoice_of(cryptopay, await crypto_screen(alice))
    await harness.stop()

    cryptopay.pay(invoice.invoice_id, asset="USDT")  # the webhook finds nobody listening
    await cryptopay.wait_webhooks()
    assert cryptopay.webhooks_sent[-1].http_status is None

    app = await harness.start()  # the first poll runs at start
    notice = await alice.wait_for(CREDITED)
    assert "Balance: $10.00" in notice.plain
    assert await app.wallet.balance(alice.id) == 1000
    assert await rows(app, "SELECT status FROM topups") == [("paid",)]

    # A late redelivery of the webhook after the poll credited it: still once.
    cryptopay.repeat_webhook()
    await cryptopay.wait_webhooks()
    assert cryptopay.webhooks_sent[-1].http_status == 200
    assert await app.wallet.balance(alice.id) == 1000


async def test_forged_and_garbage_webhooks_change_nothing(
    harness_factory: Callable[..., BotHarness],
    cryptopay: FakeCryptoPay,
    alice: FakeUser,
    admin: FakeUser,
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay, webhook=True, poll=3600))
    app = await harness.start()
    await start(admin)
    await start(alice)
    invoice = invoice_of(cryptopay, await crypto_screen(alice))
    unpaid = invoice.to_json()
    forged_paid = {**unpaid, "status": "paid", "paid_asset": "USDT", "paid_amount": "10"}
    url = cryptopay.webhook_url
    assert url is not None

    cryptopay.forge_next = True  # signed with the wrong key
    cryptopay.send_update("invoice_paid", forged_paid)
    body = b'{"update_id": 1, "update_type": "invoice_paid", "payload": {}}'
    cryptopay.post_webhook(body, None)  # no signature at all
    cryptopay.post_webhook(body, sign(cryptopay.token, body))  # signed, but not an update
    cryptopay.post_webhook(b"<html>nonsense</html>", sign(cryptopay.token, b"<html>"))
    cryptopay.post_webhook(b"\x00\xff", sign(cryptopay.token, b"\x00\xff"))
    await cryptopay.wait_webhooks()
    assert [a.http_status for a in cryptopay.webhooks_sent] == [401, 401, 400, 401, 400]
    async with httpx.AsyncClient() as client:
        wrong_path = url.replace(SECRET, "guessed")
        signed = cryptopay.webhooks_sent[2].body
        response = await client.post(
            wrong_path,
            content=signed,
            headers={"crypto-pay-api-signature": sign(cryptopay.token, signed)},
        )
    assert response.status_code == 404

    # Signed by Crypto Pay, but not what we asked for (another amount): not credited, the
    # owner is alerted.
    paid = cryptopay.pay(invoice.invoice_id, webhook=False)
    cryptopay.send_update("invoice_paid", {**paid, "amount": "1000"})
    cryptopay.send_update("invoice_paid", {**paid, "payload": "999"})
    await cryptopay.wait_webhooks()
    assert [a.http_status for a in cryptopay.webhooks_sent[-2:]] == [200, 200]
    await admin.wait_for("does not match")

    assert await app.wallet.balance(alice.id) == 0
    assert await rows(app, "SELECT status FROM topups") == [("pending",)]
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'topup'") == [(0,)]
    assert credited_messages(alice) == []

    # The genuine update still credits it.
    cryptopay.send_update("invoice_paid", paid)
    await cryptopay.wait_webhooks()
    assert cryptopay.webhooks_sent[-1].http_status == 200
    await alice.wait_for(CREDITED)
    assert await app.wallet.balance(alice.id) == 1000


async def test_expired_invoices_are_closed_and_never_credited(
    harness_factory: Callable[..., BotHarness], cryptopay: FakeCryptoPay, alice: FakeUser
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay, webhook=True, poll=0.2))
    app = await harness.start()
    await start(alice)
    lapsed = invoice_of(cryptopay, await crypto_screen(alice, "$5.00"))
    overdue = invoice_of(cryptopay, await crypto_screen(alice, "$25.00"))
    lapsed_topup = int(lapsed.payload or 0)
    overdue_topup = int(overdue.payload or 0)

    # Crypto Pay expires the first; the second is past our own expiry while still payable.
    cryptopay.expire(lapsed.invoice_id)
    async with app.db.transaction() as tx:
        await tx.execute("UPDATE topups SET expires_at = 0 WHERE id = ?", (overdue_topup,))

    async def closed() -> bool:
        statuses = dict(await rows(app, "SELECT id, status FROM topups"))
        return statuses == {lapsed_topup: "expired", overdue_topup: "expired"}

    await eventually(closed)
    await eventually(lambda: _deleted(cryptopay, overdue.invoice_id))
    assert cryptopay.count("deleteInvoice") >= 2  # both, best effort
    with pytest.raises(ValueError):
        cryptopay.pay(lapsed.invoice_id)
    assert overdue.deleted  # can no longer be paid upstream
    assert await app.wallet.balance(alice.id) == 0
    assert credited_messages(alice) == []
    assert await rows(app, "SELECT COUNT(*) FROM ledger") == [(0,)]


async def _deleted(fake: FakeCryptoPay, invoice_id: int) -> bool:
    return fake.invoice(invoice_id).deleted


async def test_create_invoice_timeout_closes_the_topup_and_asks_to_try_again(
    harness_factory: Callable[..., BotHarness], cryptopay: FakeCryptoPay, alice: FakeUser
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay, webhook=False, poll=0.2))
    app = await harness.start()
    await start(alice)
    cryptopay.delay_next("createInvoice", 3.0)  # longer than HTTP_TIMEOUT_SECONDS=2

    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount")
    await alice.click(screen, "$10.00")
    methods = await alice.wait_for("How would you like to pay")
    await alice.click(methods, "Crypto")
    await alice.wait_for("Crypto payments are unavailable")
    assert await rows(app, "SELECT status, external_id FROM topups") == [("expired", None)]
    assert cryptopay.count("createInvoice") == 1  # never retried

    # Crypto Pay did create it after all; nobody was shown it and nothing is pending.
    await cryptopay.wait_idle()
    [late] = cryptopay.invoices.values()
    polls = cryptopay.count("getInvoices")
    cryptopay.reject_next("createInvoice", "UNAUTHORIZED", 401)
    await alice.click(methods, "Crypto")
    await alice.wait_for("Crypto payments are unavailable")
    assert cryptopay.count("getInvoices") == polls
    cryptopay.pay(late.invoice_id)
    assert await app.wallet.balance(alice.id) == 0

    # Crypto Pay answers again: the next try works.
    await alice.click(methods, "Crypto")
    fresh = invoice_of(
        cryptopay,
        await alice.wait_for(lambda m: any("@CryptoBot" in t for t in m.button_texts)),
    )
    cryptopay.pay(fresh.invoice_id)
    await alice.wait_for(CREDITED)
    assert await app.wallet.balance(alice.id) == 1000


async def test_crypto_is_off_for_a_currency_crypto_pay_cannot_price(
    harness_factory: Callable[..., BotHarness],
    cryptopay: FakeCryptoPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.factory.services")
    harness = harness_factory(**crypto_settings(cryptopay, webhook=False, currency="JPY"))
    app = await harness.start()
    assert app.crypto is None
    assert "Crypto Pay cannot price invoices in JPY" in caplog.text
    assert cryptopay.token not in caplog.text
