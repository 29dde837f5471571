"""What an answer to the SMSPM send request proves (issue 12, loose end of items 3 and 4).

Only SMSPM's documented error answers (`shared/upstream-docs/smspm.txt`: "Token is required",
"Invalid phone number", "Sender number is required", "Bad sender") prove a send failed. Any
other answer (an HTML page, a 5xx or 524, an unknown 200, an error in words the doc does not
use, a listed message we cannot follow) may hide messages that went out: the send is "outcome
unknown", exactly like a send that got no answer: the customer is refunded for what SMSPM did
not prove it accepted, the send is flagged and the owners are alerted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.app import App
from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import start
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeUser, Message

EE, GB = "37256789045", "447912345678"
HTML = "<!DOCTYPE html><html><body><h1>Welcome to SMSPM</h1></body></html>"


async def rows(app: App, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await app.db.fetchall(sql, params)]


async def _ready(
    harness_factory: Callable[..., BotHarness], smspm: FakeSMSPM, admin: FakeUser, alice: FakeUser
) -> tuple[BotHarness, App, Message]:
    harness = harness_factory(**sms_settings(smspm))
    app = await harness.start()
    await start(admin)
    await start(alice)
    await fund(admin, alice, "1")
    await alice.send("/sms")
    await alice.wait_for("Send SMS")
    await alice.send("+372 5678 9045\n+44 7912 345678")
    await alice.wait_for("Now send the text")
    await alice.send("Hi")
    return harness, app, await alice.wait_for("Confirm your SMS")


@pytest.mark.parametrize(
    ("knob", "body", "http_status"),
    [
        ("garble", HTML, 200),  # both went out; SMSPM's answer is a web page
        ("garble", '{"status": "ok"}', 200),  # both went out; JSON we do not know
        ("garble", '{"messages": null}', 200),
        ("fail", "<html><body><h1>502 Bad Gateway</h1></body></html>", 502),
        ("fail", "error code: 524", 524),  # the proxy gave up; SMSPM may have sent
        ("fail", '{"message": "Server Error"}', 500),
        ("fail", "Too Many Requests", 429),  # the doc names no rate limit
        ("fail", '{"error": "Invalid credentials"}', 401),  # words the doc does not use
        ("fail", '{"error": "Internal error"}', 500),
        ("fail", "", 200),
    ],
)
async def test_an_answer_that_proves_nothing_is_outcome_unknown(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
    knob: str,
    body: str,
    http_status: int,
) -> None:
    harness, app, confirm = await _ready(harness_factory, smspm, admin, alice)
    inject = smspm.garble_next if knob == "garble" else smspm.fail_next
    inject("/", body, http_status)
    await alice.click(confirm, "Send for $0.20")
    failed = await alice.wait_for("back on your balance")
    assert "$0.20 is back" in failed.plain
    assert "cannot tell whether your message went out" in failed.plain
    assert await rows(app, "SELECT status, needs_attention FROM sms_sends") == [("failed", 1)]
    alert = await admin.wait_for("SMS send #1")
    assert "did not give a clear answer" in alert.plain and "refunded $0.20" in alert.plain
    assert smspm.token not in alert.plain
    assert len(smspm.messages) == (2 if knob == "garble" else 0)
    assert await app.wallet.balance(alice.id) == 100
    assert await rows(app, "SELECT COUNT(*) FROM ledger WHERE kind = 'refund'") == [(2,)]
    assert app.sms is not None
    await app.sms.sweep()  # settled once: nothing left to refund
    assert await app.wallet.balance(alice.id) == 100
    await harness.check_ledger()


async def test_a_listed_message_we_cannot_follow_is_unknown_the_rest_is_kept(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness, app, confirm = await _ready(harness_factory, smspm, admin, alice)
    answer = {
        "messages": [
            {"id": "m-ee", "toNumber": EE, "status": "Added to queue"},
            {"toNumber": GB, "status": "Added to queue"},  # queued, but without an id
        ]
    }
    smspm.fail_next("/", json.dumps(answer), 200)
    await alice.click(confirm, "Send for $0.20")
    alert = await admin.wait_for("SMS send #1")
    assert "did not give a clear answer" in alert.plain and "refunded $0.10" in alert.plain
    assert await rows(app, "SELECT status, needs_attention FROM sms_sends") == [("sent", 1)]
    assert await rows(
        app, "SELECT to_number, status, upstream_id FROM sms_messages ORDER BY id"
    ) == [(EE, "queued", "m-ee"), (GB, "failed", None)]
    assert await app.wallet.balance(alice.id) == 90  # the EE message is followed, GB refunded
    await harness.check_ledger()


@pytest.mark.parametrize("http_status", [200, 400, 500])
async def test_a_documented_refusal_is_a_plain_failure(
    harness_factory: Callable[..., BotHarness],
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
    http_status: int,
) -> None:
    harness, app, confirm = await _ready(harness_factory, smspm, admin, alice)
    smspm.fail_next("/", '{"error": "Invalid phone number"}', http_status)
    await alice.click(confirm, "Send for $0.20")
    failed = await alice.wait_for("back on your balance")
    assert "refused a phone number" in failed.plain
    assert await rows(app, "SELECT status, needs_attention FROM sms_sends") == [("failed", 0)]
    assert await app.wallet.balance(alice.id) == 100
    await harness.check_ledger()
    assert not [m for m in admin.messages if "SMS send #1" in m.plain]
