"""Bad input from strangers (issue 12, items 10 and 11).

Item 10: numbers in callback data and commands are ASCII digits within SQLite's range; a huge
or exotic number gets the specific answer ("not found", the usage line), never the apology.

Item 11: what a user's taps store or ask upstream is capped per user (open quotes, SMS drafts,
unpaid invoices, stock watches), a watch is taken only for a combination that is sold out, and
expired quotes and drafts are purged by a scheduled job (never a quote an order points to).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bot.app import App
from shop.services.catalog import MAX_WATCHES, service_slug
from shop.services.orders import MAX_OPEN_QUOTES
from shop.services.sms import MAX_OPEN_DRAFTS
from shop.services.topups import MAX_OPEN_INVOICES
from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.e2e.test_crypto_topups import crypto_settings
from tests.fakes.cryptopay import FakeCryptoPay
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser

BIG = str(10**20)
APOLOGY = "something went wrong"


def _no_apology(*users: FakeUser) -> None:
    for user in users:
        assert not [m.plain for m in user.messages if APOLOGY in m.plain], user
        assert not [a.text for a in user.answers if APOLOGY in (a.text or "")], user


async def _tap(user: FakeUser, data: str) -> str:
    """Tap forged callback data on the user's last message; the answer's text."""
    assert user.last is not None
    answer = await user.wait_answer(await user.click_data(user.last, data))
    return answer.text or ""


async def test_forged_callbacks_with_huge_or_exotic_numbers(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    settings: dict[str, Any] = {**sms_settings(smspm), **crypto_settings(cryptopay)}
    harness = harness_factory(**settings)
    app = await harness.start()
    await start(alice)
    await start(admin)
    await fund(admin, alice, "1")
    await buy(alice)
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]

    for action in ("show", "cancel", "another", "done", "refresh"):
        text = await _tap(alice, f"o:{BIG}:{action}")
        assert "not found" in text.lower(), (action, text)
    assert "not available" in await _tap(alice, f"q:{BIG}")

    # Pages far past the end show the last page, as a page just past the end does.
    await _tap(alice, f"op:{BIG}")
    await alice.wait_for(lambda m: "Your orders" in m.plain and f"#{order.id}" in m.plain)
    await _tap(alice, f"wl:hist:{BIG}")
    await alice.wait_for(lambda m: "Wallet history (page 1," in m.plain and "Purchase" in m.plain)
    await _tap(alice, f"sp:{BIG}:")
    await alice.wait_for("Choose a service")

    for data in (
        f"s:{BIG}:0",
        f"c:{BIG}:US",
        f"r:{BIG}:US:smspalm2",
        f"w:{BIG}:US",
        f"sm:{BIG}:show",
        f"sm:{BIG}:send",
        f"sm:{BIG}:cancel",
    ):
        text = await _tap(alice, data)
        assert APOLOGY not in text, (data, text)

    text = await _tap(alice, f"ta:{BIG}")
    assert APOLOGY not in text
    for method in ("stars", "crypto"):
        text = await _tap(alice, f"tp:{method}:{BIG}")
        assert APOLOGY not in text

    # Digits int() would take or refuse, but that are not plain ASCII: a forged button.
    for data in ("o:²:show", "o:١٢:show", "o:-1:show", "o:+5:show", "op:²", "wl:hist:-1"):
        assert "no longer valid" in await _tap(alice, data), data

    for data in (f"adm:audit:{BIG}", f"adm:recon:{BIG}", f"bc:{BIG}:send", f"bc:{BIG}:stop"):
        text = await _tap(admin, data)
        assert APOLOGY not in text, (data, text)

    _no_apology(alice, admin)
    assert telegram.unanswered_callbacks() == []
    assert await app.wallet.balance(alice.id) == 67


async def test_commands_with_huge_or_exotic_numbers(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await start(admin)
    await fund(admin, alice, "1")

    for command in (f"/order {BIG}", f"/order #{BIG}"):
        await admin.send(command)
        await admin.wait_for("No such order")
    await admin.send(f"/refund {BIG}")
    await admin.wait_for(f"Order #{BIG} does not exist")
    for command in (
        "/order ²",
        "/refund ²",
        "/order ١٢",
        "/refund -1",
        "/audit ²",
        "/reconcile ³",
    ):
        await admin.send(command)
        await admin.wait_for("Usage:")
    await admin.send(f"/reconcile {BIG}")
    await admin.wait_for("Usage: /reconcile")
    await admin.send(f"/audit {BIG}")
    await admin.wait_for("addbalance")  # the last page of the log
    for command in (
        f"/user {BIG}",
        "/user ²",
        f"/addbalance {BIG} 1",
        "/addbalance ² 1",
        f"/subbalance {BIG} 1 test",
        f"/ban {BIG}",
        "/unban ²",
    ):
        await admin.send(command)
        await admin.wait_for("No user")
    for command in ("/newpromo GIFT 1 ²", f"/newpromo GIFT 1 {BIG}"):
        await admin.send(command)
        await admin.wait_for("Usage: /newpromo")

    await alice.send("/start ref_١٢")
    await alice.wait_for("👋 Hi")

    _no_apology(admin, alice)
    assert running.app is not None
    assert await running.app.wallet.balance(alice.id) == 100


# -- item 11 ------------------------------------------------------------------------------------


async def _refused(user: FakeUser, data: str, text: str) -> None:
    """Tap forged data; the refusal comes as the tap's alert or, once the tap was answered,
    as a message."""
    assert user.last is not None
    answer = await user.wait_answer(await user.click_data(user.last, data))
    if text not in (answer.text or ""):
        await user.wait_for(text)


async def _count(app: App, sql: str, *params: Any) -> int:
    return int(await app.db.fetchval(sql, params))


async def _service_id(app: App, name: str) -> int:
    service = await app.catalog.repo.service_by_slug(service_slug(name))
    assert service is not None
    return service.id


async def test_open_quotes_are_capped_and_expired_ones_purged(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(quote_ttl_seconds=3)
    app = await harness.start()
    await start(admin)
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)  # a consumed quote, referenced by the order
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]

    screen = await buy_to_confirm(alice)
    sid = await _service_id(app, "WhatsApp")
    taps = MAX_OPEN_QUOTES + 5
    for _ in range(taps):  # the route button tapped over and over
        await alice.click_data(screen, f"r:{sid}:US:smspalm2")
        await alice.wait_for("Confirm your purchase")
    open_quotes = "SELECT COUNT(*) FROM quotes WHERE user_id = ? AND consumed_at IS NULL"
    assert await _count(app, open_quotes, alice.id) == MAX_OPEN_QUOTES
    oldest = await _count(app, "SELECT MIN(id) FROM quotes WHERE consumed_at IS NULL")
    assert "not available" in await _tap(alice, f"q:{oldest - 1}")  # an evicted one
    # The newest screen still pays.
    latest = alice.last
    assert latest is not None and "Confirm your purchase" in latest.plain
    await alice.click(latest, "Pay")
    await alice.wait_for("Waiting for the SMS")

    assert "purge" in {job.id for job in app.jobs.scheduler.get_jobs()}
    newest = await _count(app, "SELECT MAX(expires_at) FROM quotes")
    while time.time() <= newest:
        await asyncio.sleep(0.1)
    await app.purge_expired()
    assert await _count(app, open_quotes, alice.id) == 0
    # Both consumed quotes stay: each is referenced by its order.
    assert await _count(app, "SELECT COUNT(*) FROM quotes") == 2
    assert await _count(app, "SELECT quote_id FROM orders WHERE id = ?", order.id) > 0
    await harness.check_ledger()


async def test_sms_drafts_are_capped_and_expired_ones_purged(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**sms_settings(smspm, quote_ttl_seconds=3))
    app = await harness.start()
    await start(admin)
    await start(alice)
    await fund(admin, alice, "5")
    recipients = "\n".join(f"+372 5{i:07d}" for i in range(1000100, 1000150))
    for n in range(MAX_OPEN_DRAFTS + 2):
        await alice.send("/sms")
        await alice.wait_for("Send SMS")
        await alice.send(recipients)
        await alice.wait_for("Now send the text")
        await alice.send(f"Draft number {n}")
        confirm = await alice.wait_for("Confirm your SMS")
    drafts = "SELECT COUNT(*) FROM sms_sends WHERE user_id = ? AND status = 'draft'"
    draft_rows = (
        "SELECT COUNT(*) FROM sms_messages m JOIN sms_sends s ON s.id = m.send_id "
        "WHERE s.status = 'draft'"
    )
    assert await _count(app, drafts, alice.id) == MAX_OPEN_DRAFTS
    assert await _count(app, draft_rows) == MAX_OPEN_DRAFTS * 50
    assert await _count(app, "SELECT COUNT(*) FROM sms_messages") == MAX_OPEN_DRAFTS * 50
    await alice.click(confirm, "Send for")  # the newest draft still sends
    await alice.wait_for("SMS #")

    newest = await _count(app, "SELECT MAX(quote_expires_at) FROM sms_sends")
    while time.time() <= newest:
        await asyncio.sleep(0.1)
    await app.purge_expired()
    assert await _count(app, drafts, alice.id) == 0
    assert await _count(app, draft_rows) == 0
    assert await _count(app, "SELECT COUNT(*) FROM sms_sends") == 1  # the one sent stays
    assert await _count(app, "SELECT COUNT(*) FROM sms_messages") == 50
    await harness.check_ledger()


async def test_unpaid_crypto_invoice_is_reused_and_open_invoices_capped(
    harness_factory: Callable[..., BotHarness],
    cryptopay: FakeCryptoPay,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**crypto_settings(cryptopay))
    await harness.start()
    await start(alice)
    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount")

    async def crypto(cents: int) -> str:
        await alice.click_data(screen, f"tp:crypto:{cents}")
        shown = await alice.wait_for(
            lambda m: (
                f"Top up ${cents / 100:.2f} with crypto" in m.plain
                and any("@CryptoBot" in t for t in m.button_texts)
            )
        )
        return next(url for row in shown.buttons for text, url in row if "@CryptoBot" in text)

    first = await crypto(1000)
    second = await crypto(1100)
    assert await crypto(1000) == first  # the same unpaid invoice, not a new one
    assert len(cryptopay.invoices) == 2
    urls = {first, second}
    for cents in range(1200, 1000 + 100 * MAX_OPEN_INVOICES, 100):
        urls.add(await crypto(cents))
    assert len(urls) == len(cryptopay.invoices) == MAX_OPEN_INVOICES
    await _refused(alice, "tp:crypto:2500", f"{MAX_OPEN_INVOICES} unpaid invoices")
    assert len(cryptopay.invoices) == MAX_OPEN_INVOICES
    assert await crypto(1100) == second  # showing an open one again is still fine at the cap


async def test_unpaid_stars_invoices_are_capped(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await start(alice)
    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount")
    for n in range(MAX_OPEN_INVOICES):
        await alice.click_data(screen, f"tp:stars:{500 + n}")
        await alice.wait_for(lambda m: m.invoice is not None)
    await _refused(alice, "tp:stars:600", f"{MAX_OPEN_INVOICES} unpaid invoices")
    assert len(telegram.calls_to("sendInvoice")) == MAX_OPEN_INVOICES


async def test_stock_watches_only_for_sold_out_combinations_and_capped(
    harness_factory: Callable[..., BotHarness], palm: FakeSMSPalm, alice: FakeUser
) -> None:
    for server, table in palm.prices.items():
        for key, entry in table.items():
            if (server, key) != ("servertwo", (187, "wa")):
                entry[1] = 0  # sold out everywhere but WhatsApp in the United States
    palm.prices["servertwo"][(22, "att")] = [Decimal("50.00"), 0]
    harness = harness_factory()
    app = await harness.start()
    await start(alice)
    wa = await _service_id(app, "WhatsApp")

    assert "in stock right now" in await _tap(alice, f"w:{wa}:US")
    assert "country is no longer offered" in await _tap(alice, f"w:{wa}:ZZ")
    assert "service is no longer offered" in await _tap(alice, f"w:{BIG}:US")
    ig = await _service_id(app, "Instagram")
    assert "not offered in this country" in await _tap(alice, f"w:{ig}:GB")  # no route has it
    assert await app.catalog.routing.watches() == []

    sold_out = []
    for service, countries in (
        ("WhatsApp", ["GB", "IN", "ID", "CA"]),
        ("Telegram", ["US", "GB", "IN", "ID", "CA"]),
        ("Google", ["US", "GB", "CA"]),
        ("Instagram", ["US", "IN"]),
        ("AT&T <Verify>", ["US", "IN"]),
    ):
        sid = await _service_id(app, service)
        sold_out += [(sid, cc) for cc in countries]
    assert len(sold_out) > MAX_WATCHES
    for sid, cc in sold_out[:MAX_WATCHES]:
        assert "message you once" in await _tap(alice, f"w:{sid}:{cc}")
    assert "message you once" in await _tap(alice, f"w:{sold_out[0][0]}:{sold_out[0][1]}")
    sid, cc = sold_out[MAX_WATCHES]
    assert f"{MAX_WATCHES} services" in await _tap(alice, f"w:{sid}:{cc}")
    assert len(await app.catalog.routing.watches()) == MAX_WATCHES
    _no_apology(alice)
