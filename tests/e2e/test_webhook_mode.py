"""Webhook mode end to end: the real bot (SQLite, no Redis) behind its one HTTP listener, the
fake Bot API delivering updates by webhook as Telegram does (secret header, retries with the
same update_id), and requests of our own over real HTTP where a stranger or a retry is played."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import WebhookRefused
from tests.conftest import BotHarness, free_port, fund
from tests.e2e.helpers import buy, start
from tests.e2e.test_hardening_web import raw_request
from tests.e2e.test_topups import invoice_for
from tests.fakes.cryptopay import FakeCryptoPay
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import SECRET_HEADER, FakeTelegram, FakeUser

SECRET = "wh-Secret_0123456789"


def webhook_settings(**overrides: Any) -> dict[str, Any]:
    """Webhook mode: the fake delivers straight to the bot's listener on a free port."""
    port = free_port()
    values: dict[str, Any] = {
        "http_port": port,
        "webhook_base_url": f"http://127.0.0.1:{port}",
        "webhook_secret": SECRET,
    }
    values.update(overrides)
    return values


@pytest.fixture(autouse=True)
def quick_retries(telegram: FakeTelegram) -> None:
    telegram.webhook_retry_delay = 0.05
    telegram.webhook_retry_max = 0.5


@pytest.fixture
async def hooked(harness_factory: Callable[..., BotHarness]) -> BotHarness:
    harness = harness_factory(**webhook_settings())
    await harness.start()
    return harness


def url(harness: BotHarness, path: str = "/telegram/webhook") -> str:
    return f"http://127.0.0.1:{harness.settings.http_port}{path}"


def start_update(user: FakeUser, update_id: int) -> dict[str, Any]:
    """A `/start` message from `user`, as Telegram would POST it (not queued in the fake)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 700_000 + update_id,
            "from": user.user_json(),
            "chat": user.chat_json(),
            "date": int(time.time()),
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def post(
    harness: BotHarness, update: dict[str, Any], secret: str | None = SECRET
) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url(harness), json=update, headers=headers)


async def ledger_amounts(harness: BotHarness, user: FakeUser) -> list[int]:
    assert harness.app is not None
    rows = await harness.app.db.fetchall("SELECT amount FROM ledger WHERE user_id = ?", (user.id,))
    return [int(row[0]) for row in rows]


def greetings(user: FakeUser) -> int:
    return sum("👋 Hi" in m.plain for m in user.messages)


async def scrape(harness: BotHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as client:
        response = await client.get(url(harness, "/metrics"))
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def metric(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_purchase_works_by_webhook_and_polling_is_never_used(
    hooked: BotHarness,
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    app = hooked.app
    assert app is not None
    await start(alice)
    await fund(admin, alice, "10")
    card = await buy(alice)
    activation = next(iter(palm.activations.values()))
    palm.deliver_code(activation.id, "739214")
    await alice.wait_for("739214")
    await alice.wait_for(lambda m: m.message_id == card.message_id and "Code received" in m.plain)
    assert await app.wallet.balance(alice.id) == 967

    [call] = telegram.calls_to("setWebhook")
    assert call.params["url"] == f"http://127.0.0.1:{hooked.settings.http_port}/telegram/webhook"
    assert call.params["secret_token"] == SECRET
    assert sorted(call.params["allowed_updates"]) == sorted(app.dp.resolve_used_update_types())
    assert "drop_pending_updates" not in call.params
    assert telegram.calls_to("getUpdates") == []
    assert telegram.calls_to("deleteWebhook") == []
    assert telegram.deliveries and all(d.ok for d in telegram.deliveries)
    assert telegram.unanswered_callbacks() == []

    await hooked.stop()
    # The webhook stays set for the next start (and for other instances); still no polling.
    assert telegram.webhook is not None and telegram.calls_to("deleteWebhook") == []
    assert telegram.calls_to("getUpdates") == []


async def test_a_missing_or_wrong_secret_gets_401_and_changes_nothing(
    hooked: BotHarness, telegram: FakeTelegram, bob: FakeUser
) -> None:
    app = hooked.app
    assert app is not None
    update = start_update(bob, 5_000_001)
    for secret in (None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.lower()):
        assert (await post(hooked, update, secret)).status_code == 401, secret
    async with httpx.AsyncClient() as client:
        twice = [(SECRET_HEADER, SECRET), (SECRET_HEADER, SECRET)]
        response = await client.post(url(hooked), json=update, headers=twice)
        assert response.status_code == 401
    body = httpx.Request("POST", "http://x", json=update).read()
    port = hooked.settings.http_port
    for raw in ("ключ".encode(), SECRET.encode() + "é".encode(), b"\xff\xfe", b"s\xe9cret"):
        header = ((SECRET_HEADER.encode(), raw),)
        assert await raw_request(port, b"/telegram/webhook", header, body) == 401, raw
    assert bob.messages == []
    assert telegram.calls_to("sendMessage") == []
    assert await app.db.fetchval("SELECT COUNT(*) FROM users") == 0

    # The same update with the right secret is handled.
    assert (await post(hooked, update)).status_code == 200
    assert greetings(bob) == 1


async def test_a_repeated_update_is_handled_once(
    hooked: BotHarness, telegram: FakeTelegram, bob: FakeUser
) -> None:
    update = start_update(bob, 5_000_002)
    assert (await post(hooked, update)).status_code == 200
    assert (await post(hooked, update)).status_code == 200
    answers = await asyncio.gather(*(post(hooked, update) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert greetings(bob) == 1
    assert len(telegram.calls_to("sendMessage")) == 1


async def test_a_failed_update_answers_500_and_the_retry_is_handled_once(
    hooked: BotHarness, telegram: FakeTelegram, bob: FakeUser
) -> None:
    # The bot's reply fails (Telegram answers 500): the update failed, so the webhook
    # answers 500 and the fake (Telegram) delivers it again, with the same update_id.
    telegram.fail("sendMessage", 500, "Internal Server Error")
    await bob.send("/start")
    await bob.wait_for("👋 Hi")
    [update_id] = {d.update_id for d in telegram.deliveries}
    await telegram.wait_delivered(update_id)
    assert [d.status for d in telegram.deliveries_of(update_id)] == [500, 200]
    # A late repeat of the same update: 200 at once, nothing sent again.
    sent = len(telegram.calls_to("sendMessage"))
    assert (await post(hooked, {**start_update(bob, update_id)})).status_code == 200
    assert len(telegram.calls_to("sendMessage")) == sent
    assert greetings(bob) == 1


async def test_a_stars_payment_whose_first_delivery_fails_is_credited_once(
    hooked: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    app = hooked.app
    assert app is not None
    await start(alice)
    invoice = await invoice_for(alice, "$10.00")
    checkout = await alice.checkout(invoice)
    assert checkout.ok
    telegram.fail("sendMessage", 502, "Bad Gateway")  # the "credited" answer is lost
    paid = alice.complete(checkout)
    assert paid.message is not None
    await alice.wait_for("credited already")
    payment_update = max(d.update_id for d in telegram.deliveries)
    await telegram.wait_delivered(payment_update)
    assert [d.status for d in telegram.deliveries_of(payment_update)] == [500, 200]
    assert await app.wallet.balance(alice.id) == 1000
    assert await ledger_amounts(hooked, alice) == [1000]
    await hooked.check_ledger()


async def test_a_stars_payment_whose_instance_dies_before_answering_is_credited_once(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, alice: FakeUser
) -> None:
    harness = harness_factory(**webhook_settings())
    await harness.start()
    await start(alice)
    invoice = await invoice_for(alice, "$10.00")
    checkout = await alice.checkout(invoice)
    telegram.hold("sendMessage")  # the credit is written; its answer never comes back
    alice.complete(checkout)
    while not telegram.held:
        await asyncio.sleep(0.01)
    await harness.crash()  # cancels the update in flight: Telegram gets no answer
    telegram.release("sendMessage")  # the dead instance's message reaches the user anyway
    payment = max(d.update_id for d in telegram.deliveries)
    assert telegram.deliveries_of(payment)[-1].status is None  # connection cut, not a 200
    assert telegram.pending_updates == 1

    app = await harness.start()  # the same port: Telegram's retry reaches the new instance
    await telegram.wait_delivered(payment)
    await alice.wait_for("credited already")
    assert await app.wallet.balance(alice.id) == 1000
    assert await ledger_amounts(harness, alice) == [1000]
    assert sum("+$10.00 credited" in m.plain for m in alice.messages) == 1
    await harness.check_ledger()


async def test_health_readiness_and_metrics(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, bob: FakeUser
) -> None:
    harness = harness_factory(**webhook_settings())
    telegram.hold("setWebhook")  # start-up stops just before it serves updates
    starting = asyncio.create_task(harness.start())
    while not telegram.held:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(harness, "/healthz"))).status_code == 200
        ready = await client.get(url(harness, "/readyz"))
        assert ready.status_code == 503 and "not serving" in ready.text
        # An update before the instance serves: 503, Telegram delivers it again later.
        early = await client.post(
            url(harness), json=start_update(bob, 5_000_003), headers={SECRET_HEADER: SECRET}
        )
        assert early.status_code == 503
        telegram.release("setWebhook")
        await starting
        ready = await client.get(url(harness, "/readyz"))
        assert ready.status_code == 200 and ready.text == "ready"

        before = await scrape(harness)
        await bob.send("/start")
        await bob.wait_for("👋 Hi")
        await telegram.wait_webhook_idle()  # answered: counted
        assert (await post(harness, start_update(bob, 5_000_004), "wrong")).status_code == 401
        after = await scrape(harness)
    handled = ("numbot_updates_total", {"type": "message", "outcome": "handled"})
    assert metric(after, handled[0], **handled[1]) == metric(before, handled[0], **handled[1]) + 1
    for status, more in (("200", 1), ("401", 1)):
        name = "numbot_webhook_requests_total"
        assert metric(after, name, status=status) == metric(before, name, status=status) + more
    assert metric(after, "numbot_update_seconds_count", type="message") >= 1
    assert ("numbot_live_orders", ()) not in after  # no live orders: no series


async def test_orders_refunds_and_live_orders_in_metrics(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**webhook_settings())
    await harness.start()
    await start(alice)
    await fund(admin, alice, "10")
    before = await scrape(harness)
    card = await buy(alice)
    live = await scrape(harness)
    assert metric(live, "numbot_live_orders", route="smspalm2") == 1
    await alice.click(card, "Cancel")
    await alice.wait_for("refunded")
    after = await scrape(harness)
    route = "smspalm2"
    for name, labels in (
        ("numbot_orders_total", {"route": route, "outcome": "cancelled"}),
        ("numbot_refunds_total", {"route": route, "reason": "cancelled"}),
    ):
        assert metric(after, name, **labels) == metric(before, name, **labels) + 1, name
    assert metric(after, "numbot_live_orders", route=route) == 0
    assert metric(after, "numbot_job_lag_seconds_count", job="poll") >= 1
    assert metric(after, "numbot_job_lag_seconds_count", job="catalog") >= 1


async def test_readiness_fails_while_redis_is_unreachable(
    harness_factory: Callable[..., BotHarness],
) -> None:
    harness = harness_factory(
        http_port=free_port(), redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    await harness.start()
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(harness, "/healthz"))).status_code == 200
        ready = await client.get(url(harness, "/readyz"))
    assert ready.status_code == 503 and ready.text == "redis unreachable"


async def test_shutdown_finishes_updates_in_flight_and_loses_none(
    hooked: BotHarness, telegram: FakeTelegram, bob: FakeUser, alice: FakeUser
) -> None:
    telegram.hold("sendMessage")
    await bob.send("/start")
    while not telegram.held:
        await asyncio.sleep(0.01)
    stopping = asyncio.create_task(hooked.stop())
    app = hooked.app
    assert app is not None
    while app.readiness.serving:
        await asyncio.sleep(0.01)
    await alice.send("/start")  # arrives while the instance stops: not taken, not lost
    await asyncio.sleep(0.2)
    telegram.release("sendMessage")
    await stopping
    bobs = telegram.deliveries[0].update_id
    assert [d.status for d in telegram.deliveries_of(bobs)] == [200]  # answered after handling
    assert greetings(bob) == 1
    assert telegram.pending_updates == 1  # alice's waits for the next instance
    assert all(not d.ok for d in telegram.deliveries if d.update_id != bobs)

    await hooked.start()
    await alice.wait_for("👋 Hi")
    await telegram.wait_webhook_idle()


def test_webhook_settings_are_validated() -> None:
    from pydantic import ValidationError

    from bot.config import Settings
    from tests.conftest import TOKEN

    def make(**values: Any) -> Settings:
        return Settings(_env_file=None, bot_token=TOKEN, **values)  # type: ignore[call-arg]

    with pytest.raises(ValidationError, match="WEBHOOK_SECRET is required"):
        make(webhook_base_url="https://shop.example.com")
    for bad in ("has space", "ключ", "x" * 257, "semi;colon"):
        with pytest.raises(ValidationError, match="WEBHOOK_SECRET must be"):
            make(webhook_base_url="https://shop.example.com", webhook_secret=bad)
    for bad in ("shop.example.com", "ftp://shop.example.com", "https://x.com/?a=1", "https://"):
        with pytest.raises(ValidationError, match="http"):
            make(webhook_base_url=bad, webhook_secret="ok")
    with pytest.raises(ValidationError, match="HTTP_PORT=0"):
        make(webhook_base_url="https://shop.example.com", webhook_secret="ok", http_port=0)
    with pytest.raises(ValidationError, match="HTTP_PORT=0"):
        make(papsms_webhook=True, http_port=0)
    settings = make(webhook_base_url="https://shop.example.com/bot/", webhook_secret="A-z_9" * 50)
    assert settings.webhook_mode and settings.webhook_base_url == "https://shop.example.com/bot"
    assert "A-z_9" * 50 in settings.secrets()
    assert not make().webhook_mode and make().http_port == 8080


async def test_every_receiver_works_on_the_listener_shared_with_the_telegram_webhook(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    values = webhook_settings()
    port = values["http_port"]
    base = f"http://127.0.0.1:{port}"
    pap = FakePapSMS(rate_limit=None, webhook_url=f"{base}/papsms/webhook/pap-secret")
    await pap.start()
    try:
        harness = harness_factory(
            **values,
            public_base_url=base,
            smspm_hash=smspm.hash,
            smspm_token=smspm.token,
            smspm_base_url=smspm.base_url,
            smspm_rate_limit=6000,
            smspm_poll_seconds=600,  # only the report can tell the outcome quickly
            papsms_api_key=pap.api_key,
            papsms_base_url=pap.base_url,
            papsms_rate_limit=6000,
            papsms_webhook=True,
            papsms_webhook_secret="pap-secret",
            papsms_poll_seconds=600,  # only the webhook can deliver quickly
            cryptopay_token=cryptopay.token,
            cryptopay_base_url=cryptopay.base_url,
            cryptopay_poll_seconds=3600,
            cryptopay_webhook=True,
            cryptopay_webhook_secret="crypto-secret",
        )
        cryptopay.webhook_url = f"{base}/cryptopay/webhook/crypto-secret"
        app = await harness.start()
        await start(alice)

        # Crypto Pay: the signed invoice_paid webhook credits the top-up.
        await alice.send("/topup")
        screen = await alice.wait_for("Choose an amount")
        await alice.click(screen, "$10.00")
        methods = await alice.wait_for("How would you like to pay")
        await alice.click(methods, "Crypto")
        await alice.wait_for(lambda m: any("@CryptoBot" in t for t in m.button_texts))
        [invoice] = cryptopay.invoices.values()
        cryptopay.pay(invoice.invoice_id, asset="USDT")
        await alice.wait_for("added to your balance")
        assert await app.wallet.balance(alice.id) == 1000

        # PapSMS: the code comes by the webhook (polls are ten minutes apart).
        await buy(alice, route="PapSMS")
        [activation] = pap.activations.values()
        pap.deliver_code(activation.id, "246810", "Your code: 246810")
        await alice.wait_for("246810")

        # SMSPM: the report URL handed to SMSPM is under PUBLIC_BASE_URL, and reports arrive.
        await alice.send("/sms")
        await alice.wait_for("Send SMS")
        await alice.send("+372 5678 9045")
        await alice.wait_for("Now send the text")
        await alice.send("Hello")
        confirm = await alice.wait_for("Confirm your SMS")
        await alice.click(confirm, "Send for")
        status = await alice.wait_for("SMS #")
        [sms] = smspm.messages.values()
        assert sms.report_url is not None and sms.report_url.startswith(f"{base}/smspm/report/")
        smspm.set_status(sms.id, "delivered")
        await alice.wait_for(
            lambda m: m.message_id == status.message_id and "delivered" in m.plain
        )

        # Wrong secrets on the upstream paths: 404, as before.
        async with httpx.AsyncClient(base_url=base) as client:
            for path in ("/papsms/webhook/x", "/smspm/report/x", "/cryptopay/webhook/x"):
                assert (await client.post(path, json={})).status_code == 404, path
        assert telegram.calls_to("getUpdates") == []
        await harness.check_ledger()
    finally:
        await pap.stop()


async def test_set_webhook_is_tried_again_after_errors_and_a_refusal_stops_the_start(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, bob: FakeUser
) -> None:
    telegram.fail("setWebhook", 502, "Bad Gateway")
    telegram.flood("setWebhook", retry_after=1)
    harness = harness_factory(**webhook_settings())
    await harness.start()
    assert [call.ok for call in telegram.calls_to("setWebhook")] == [False, False, True]
    await bob.send("/start")
    await bob.wait_for("👋 Hi")
    await harness.stop()

    telegram.fail("setWebhook", 400, "Bad Request: bad webhook: An HTTPS URL must be provided")
    refused = harness_factory(**webhook_settings())
    with pytest.raises(WebhookRefused, match="An HTTPS URL must be provided"):
        await refused.start()


@pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")
async def test_an_update_of_a_type_the_bot_does_not_know_is_acknowledged(
    hooked: BotHarness,
) -> None:
    # A type from a newer Bot API: aiogram skips it; answering 500 would make Telegram repeat
    # it forever and hold up every update behind it.
    before = await scrape(hooked)
    future = {"update_id": 5_000_010, "some_future_update": {"id": 1}}
    assert (await post(hooked, future)).status_code == 200
    after = await scrape(hooked)
    name = "numbot_updates_total"
    labels = {"type": "unknown", "outcome": "unhandled"}
    assert metric(after, name, **labels) == metric(before, name, **labels) + 1
    # Garbage with the right secret: 400, nothing handled.
    async with httpx.AsyncClient() as client:
        for body in (b"not json", b"[]", b'{"update_id": "1"}', b'{"message": {}}'):
            response = await client.post(
                url(hooked), content=body, headers={SECRET_HEADER: SECRET}
            )
            assert response.status_code == 400, body


async def test_polling_updates_are_counted_too(
    harness_factory: Callable[..., BotHarness], bob: FakeUser
) -> None:
    harness = harness_factory(http_port=free_port())
    await harness.start()
    before = await scrape(harness)
    await bob.send("/start")
    await bob.wait_for("👋 Hi")
    name, labels = "numbot_updates_total", {"type": "message", "outcome": "handled"}
    for _ in range(100):  # counted once the handler returns, just after its reply
        after = await scrape(harness)
        if metric(after, name, **labels) > metric(before, name, **labels):
            break
        await asyncio.sleep(0.02)
    assert metric(after, name, **labels) == metric(before, name, **labels) + 1
    async with httpx.AsyncClient() as client:
        assert (await client.get(url(harness, "/readyz"))).status_code == 200
