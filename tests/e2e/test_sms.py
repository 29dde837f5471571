"""Send SMS through SMSPM: pricing per segment, one request, delivery reports, refunds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import start
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

EE = [f"+372 5{i:07d}" for i in range(1000100, 1000200)]  # 100 valid Estonian mobiles


async def _sms_harness(
    harness_factory: Callable[..., BotHarness], smspm: FakeSMSPM, **overrides: object
) -> BotHarness:
    harness = harness_factory(**sms_settings(smspm, **overrides))
    await harness.start()
    return harness


async def _funded(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    user: FakeUser,
    amount: str,
    **overrides: object,
) -> BotHarness:
    """The bot with SMS on, and `user` registered with `amount` on their balance."""
    harness = await _sms_harness(harness_factory, smspm, **overrides)
    await start(user)
    await fund(admin, user, amount)
    return harness


async def _compose(user: FakeUser, recipients: str, text: str) -> Message:
    await user.send("/sms")
    await user.wait_for("Send SMS")
    await user.send(recipients)
    await user.wait_for("Now send the text")
    await user.send(text)
    return await user.wait_for("Confirm your SMS")


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


async def test_one_recipient_delivered(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
    telegram: FakeTelegram,
) -> None:
    harness = await _sms_harness(harness_factory, smspm)
    menu = await start(alice)
    assert "✉️ Send SMS" in menu.button_texts
    await fund(admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045", "Hello from Numbot")
    assert "1 segment per message (GSM-7)" in confirm.plain
    assert "Total: $0.10" in confirm.plain and "$1.00 → $0.90" in confirm.plain
    assert "+37256789045" in confirm.plain
    await alice.click(confirm, "Send for $0.10")
    status = await alice.wait_for("SMS #")
    assert "queued" in status.plain
    assert smspm.count("/") == 1
    (sms,) = smspm.messages.values()
    assert sms.to_number == "37256789045" and sms.sender == "SMSPM.com"

    smspm.set_status(sms.id, "delivered")
    await alice.wait_for(lambda m: m.message_id == status.message_id and "delivered" in m.plain)
    assert harness.app is not None
    assert await harness.app.wallet.balance(alice.id) == 90
    assert telegram.unanswered_callbacks() == []


async def test_hundred_recipients_some_failed_refunds_exactly(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await _funded(harness_factory, smspm, admin, alice, "20")
    confirm = await _compose(alice, "\n".join(EE), "Sale today")
    assert "100 recipients" in confirm.plain and "Total: $10.00" in confirm.plain
    await alice.click(confirm, "Send for $10.00")
    status = await alice.wait_for("SMS #")
    assert smspm.count("/") == 1  # one request for all 100
    messages = list(smspm.messages.values())
    assert len(messages) == 100
    failed = messages[:7]
    for sms in messages:
        smspm.set_status(sms.id, "failed" if sms in failed else "delivered")
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=20
    )
    final = alice.get(status.message_id)
    assert final is not None and "Refunded: $0.70" in final.plain
    assert harness.app is not None
    assert await harness.app.wallet.balance(alice.id) == 2000 - 1000 + 70
    # A repeated failure report refunds nothing more.
    smspm.set_status(failed[0].id, "failed")
    await asyncio.sleep(0.3)
    assert await harness.app.wallet.balance(alice.id) == 1070
    await admin.send("/stats")
    stats = await admin.wait_for("SMS total")
    assert "1 sends · revenue $9.30" in stats.plain  # $10.00 charged, 7 × $0.10 refunded


async def test_invalid_numbers_are_refused_before_any_charge(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await _funded(harness_factory, smspm, admin, alice, "1")
    await alice.send("/sms")
    await alice.wait_for("Send SMS")
    await alice.send("56789045, +372 5678 9045, 12")
    refused = await alice.wait_for("can't be used")
    assert "56789045" in refused.plain and "country code" in refused.plain
    assert smspm.count("/") == 0
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100


async def test_unicode_text_is_priced_as_ucs2(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045", "Привет! " * 9 + "👋")  # 72+2 units
    assert "2 segments per message (UCS-2)" in confirm.plain
    assert "Total: $0.20" in confirm.plain


async def test_forged_report_without_the_secret_changes_nothing(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045", "Hi")
    await alice.click(confirm, "Send for")
    await alice.wait_for("SMS #")
    (sms,) = smspm.messages.values()
    port = harness.settings.http_port
    async with httpx.AsyncClient() as client:
        for path in ("/smspm/report/wrong-secret", "/smspm/report/", "/smspm/report"):
            response = await client.post(
                f"http://127.0.0.1:{port}{path}",
                json={"id": sms.id, "status": "failed", "toNumber": sms.to_number},
            )
            assert response.status_code == 404
    assert harness.app is not None and harness.app.sms is not None
    (view,) = [
        await harness.app.sms.view(alice.id, s.id) for s in await harness.app.sms.recent(alice.id)
    ]
    assert [m.status for m in view.messages] == ["queued"]
    assert await harness.app.wallet.balance(alice.id) == 90


async def test_upstream_error_refunds_and_says_why(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045", "Hi")
    smspm.fail_next("/", '{"error": "Bad sender"}', http_status=400)
    await alice.click(confirm, "Send for")
    failed = await alice.wait_for("back on your balance")
    assert "$0.10 is back" in failed.plain
    assert smspm.token not in failed.plain
    alert = await admin.wait_for("SMSPM refused our configuration")
    assert "SmsBadSender" in alert.plain
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 100


async def test_restart_mid_send_still_resolves_and_refunds_once(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = await _funded(harness_factory, smspm, admin, alice, "1", smspm_poll_seconds=0.5)
    confirm = await _compose(alice, "+372 5678 9045\n+44 7912 345678", "Hi")
    await alice.click(confirm, "Send for $0.20")
    status = await alice.wait_for("SMS #")
    await harness.stop()
    first, second = smspm.messages.values()
    smspm.set_status(first.id, "delivered")  # the reports find nobody listening
    smspm.set_status(second.id, "failed")
    await harness.start()
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=20
    )
    assert harness.app is not None
    assert await harness.app.wallet.balance(alice.id) == 100 - 20 + 10
    await harness.restart()
    await asyncio.sleep(1.0)
    assert await harness.app.wallet.balance(alice.id) == 90


async def test_orders_list_shows_sms_and_admin_sets_prices(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    await _funded(harness_factory, smspm, admin, alice, "1")
    await admin.send("/smsprice EE 0.08")
    await admin.wait_for("$0.08 per segment")
    await alice.send("/smsprice EE 0.01")
    await alice.wait_for("Unknown command")
    confirm = await _compose(alice, "+372 5678 9045, +44 7912 345678", "Hi")
    assert "Total: $0.18" in confirm.plain  # EE 0.08 + GB default 0.10
    await alice.click(confirm, "Send for")
    await alice.wait_for("SMS #")
    await admin.send("/stats")
    stats = await admin.wait_for("SMS total")
    assert "1 sends · revenue $0.18" in stats.plain
    await alice.send("/orders")
    orders = await alice.wait_for("SMS sends")
    assert "✉️ SMS #" in orders.plain
    assert any(t.startswith("✉️ #") for t in orders.button_texts)


async def test_last_status_is_shown_when_it_lands_during_a_slow_edit(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    """The final state arrives while the previous status edit is still on its way to Telegram
    (a slow edit outlasting the render delay): it must still reach the chat."""
    await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5100 0100, +372 5100 0101", "Hi")
    await alice.click(confirm, "Send for $0.20")
    status = await alice.wait_for("SMS #")
    first, second = list(smspm.messages.values())
    edits = len(telegram.calls_to("editMessageText"))
    telegram.hold("editMessageText")
    smspm.set_status(first.id, "delivered")
    for _ in range(100):  # the render of "one delivered" is on its way and held
        if len(telegram.calls_to("editMessageText")) > edits:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no status edit after the first report")
    smspm.set_status(second.id, "delivered")
    await asyncio.sleep(2.5)  # past the render delay while the first edit is still held
    telegram.release("editMessageText")
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=10
    )


async def test_reports_confirmed_at_once_finish_the_send(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    """Every message of a send is confirmed at the same moment: the send still ends. (On
    PostgreSQL each confirmation must see the others' final statuses before it counts what is
    still pending, or none of them would close the send and "Finished" would never show.)"""
    harness = await _funded(harness_factory, smspm, admin, alice, "2")
    confirm = await _compose(alice, "\n".join(EE[:20]), "Hi")
    await alice.click(confirm, "Send for $2.00")
    status = await alice.wait_for("SMS #")
    messages = list(smspm.messages.values())
    smspm.delay_next("/smsdetails", 0.5, times=len(messages))  # the answers come together
    for sms in messages:
        smspm.set_status(sms.id, "delivered")
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=10
    )
    assert harness.app is not None
    assert await harness.app.wallet.balance(alice.id) == 0


async def test_a_failed_status_edit_is_made_again(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    """The edit that shows the final state fails (Telegram answers 500): it is made again,
    since no later report would ever draw the message once the send is finished."""
    await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045", "Hi")
    await alice.click(confirm, "Send for $0.10")
    status = await alice.wait_for("SMS #")
    telegram.fail("editMessageText", 500, "Internal Server Error")
    (sms,) = smspm.messages.values()
    smspm.set_status(sms.id, "delivered")
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "Finished" in m.plain, timeout=10
    )
    assert len(telegram.calls_to("editMessageText")) >= 2
