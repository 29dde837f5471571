"""Sending SMS when things go wrong after the charge, and delivery reports from strangers.

* An error that is no provider error (the answer trips our parser) settles the send at once
  as "outcome unknown": refunded, flagged, the owners alerted; nothing stays charged.
* A send left in `sending` (its handler died mid-request) is settled by the scheduled sweep
  once the grace period is over, never before.
* A `failed` (or `delivered`) report is confirmed with `/smsdetails` before it counts: a forged
  report refunds nothing, a genuine failure still refunds once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.app import App
from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import start
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeUser, Message

NESTED = "[" * 5000  # valid JSON so far, nested deeper than Python's parser goes


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


async def rows(app: App, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await app.db.fetchall(sql, params)]


async def _funded(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    user: FakeUser,
    amount: str,
    **overrides: Any,
) -> App:
    harness = harness_factory(**sms_settings(smspm, **overrides))
    app = await harness.start()
    await start(admin)
    await start(user)
    await fund(admin, user, amount)
    return app


async def _compose(user: FakeUser, recipients: str, text: str = "Hi") -> Message:
    await user.send("/sms")
    await user.wait_for("Send SMS")
    await user.send(recipients)
    await user.wait_for("Now send the text")
    await user.send(text)
    return await user.wait_for("Confirm your SMS")


# -- item 4: unexpected errors after the charge ------------------------------------------------


async def test_unreadable_send_answer_settles_at_once_as_outcome_unknown(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045\n+44 7912 345678")
    smspm.garble_next("/", NESTED)  # SMSPM queues both, the answer trips our JSON parser
    await alice.click(confirm, "Send for $0.20")
    failed = await alice.wait_for("back on your balance")
    assert "$0.20 is back" in failed.plain
    assert "cannot tell whether your message went out" in failed.plain
    alert = await admin.wait_for("SMS send #1")
    assert "refunded $0.20" in alert.plain
    assert len(smspm.messages) == 2  # they did go out upstream: hence the flag
    assert await rows(app, "SELECT status, needs_attention FROM sms_sends") == [("failed", 1)]
    assert await app.wallet.balance(alice.id) == 100
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'") == [(2,)]
    assert app.sms is not None
    await app.sms.sweep()  # nothing left for the sweep
    assert await app.wallet.balance(alice.id) == 100


async def test_send_stuck_in_sending_is_settled_by_the_sweep_after_the_grace(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await _funded(harness_factory, smspm, admin, alice, "1")
    assert app.sms is not None
    confirm = await _compose(alice, "+372 5678 9045")
    smspm.delay_next("/", 0.5)
    await alice.click(confirm, "Send for $0.10")
    await eventually(lambda: smspm.count("/") == 1)
    await app.in_flight.cancel()  # the handler dies mid-request; the process lives on
    assert await rows(app, "SELECT status FROM sms_sends") == [("sending",)]
    assert await app.wallet.balance(alice.id) == 90

    await app.sms.sweep()  # within the grace period: it may still be in flight elsewhere
    assert await rows(app, "SELECT status FROM sms_sends") == [("sending",)]
    assert await app.wallet.balance(alice.id) == 90

    async with app.db.transaction() as tx:  # the grace period passes
        await tx.execute("UPDATE sms_sends SET charged_at = charged_at - 3600")
    job = app.jobs.scheduler.get_job("sms-sweeper")
    assert job is not None, "no scheduled SMS sweep"
    job.modify(next_run_time=datetime.now(UTC))
    alert = await admin.wait_for("SMS send #1")
    assert "refunded $0.10" in alert.plain
    await alice.wait_for(lambda m: "SMS #1" in m.plain and "Refunded: $0.10" in m.plain)
    assert await rows(app, "SELECT status, needs_attention FROM sms_sends") == [("failed", 1)]
    assert await app.wallet.balance(alice.id) == 100
    await app.sms.sweep()  # settled once
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'") == [(1,)]


# -- item 7: delivery reports are confirmed --------------------------------------------------


def _report_url(app: App) -> str:
    assert app.sms is not None and app.sms.report_url is not None
    return app.sms.report_url


async def _statuses(app: App) -> list[str]:
    return [r[0] for r in await rows(app, "SELECT status FROM sms_messages ORDER BY id")]


async def test_forged_failed_report_refunds_nothing(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await _funded(harness_factory, smspm, admin, alice, "1")
    smspm.send_reports = False  # the bot hears nothing from SMSPM itself
    confirm = await _compose(alice, "+372 5678 9045\n+44 7912 345678")
    await alice.click(confirm, "Send for $0.20")
    await alice.wait_for("SMS #1")
    delivered, queued = smspm.messages.values()
    smspm.set_status(delivered.id, "delivered")  # the other one is still queued upstream
    async with httpx.AsyncClient() as client:
        for sms in (delivered, queued):
            forged = {"id": sms.id, "status": "failed", "toNumber": sms.to_number}
            response = await client.post(_report_url(app), json=forged)
            assert response.status_code == 200
    # Each report was checked with /smsdetails: SMSPM says delivered and queued.
    await eventually(lambda: _statuses_are(app, ["delivered", "queued"]))
    await smspm.wait_idle()
    assert smspm.count("/smsdetails") == 2
    assert await app.wallet.balance(alice.id) == 80
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'") == [(0,)]


async def _statuses_are(app: App, wanted: list[str]) -> bool:
    return await _statuses(app) == wanted


async def test_genuine_failure_report_still_refunds_once(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = await _funded(harness_factory, smspm, admin, alice, "1")
    confirm = await _compose(alice, "+372 5678 9045")
    await alice.click(confirm, "Send for $0.10")
    status = await alice.wait_for("SMS #1")
    (sms,) = smspm.messages.values()
    smspm.set_status(sms.id, "failed")
    await alice.wait_for(lambda m: m.message_id == status.message_id and "Refunded" in m.plain)
    assert await app.wallet.balance(alice.id) == 100
    smspm.repeat_report(sms.id)  # SMSPM sends the same news again
    async with httpx.AsyncClient() as client:  # and someone replays it by hand
        await client.post(_report_url(app), json={"id": sms.id, "status": "failed"})
    await smspm.wait_idle()
    await eventually(lambda: all(a.done for a in smspm.reports_sent))
    assert await app.wallet.balance(alice.id) == 100
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'") == [(1,)]
    assert await _statuses(app) == ["failed"]
