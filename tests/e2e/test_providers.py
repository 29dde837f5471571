"""SMSPool, SpotSMS and PapSMS beside SMSPalm: each one's purchase, code, timeout and cancel,
PapSMS webhooks, SMSPool batch polling, and one provider down while the others sell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shop.models import OrderStatus
from tests.conftest import BotHarness, free_port, fund
from tests.e2e.helpers import buy, start
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.spotsms import FakeSpotSMS
from tests.fakes.telegram import FakeUser


@dataclass
class Upstreams:
    pool: FakeSMSPool
    spot: FakeSpotSMS
    pap: FakePapSMS
    webhook_port: int

    def settings(self, only: str | None = None, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {
            "smspool_api_key": self.pool.api_key,
            "smspool_base_url": self.pool.base_url,
            "smspool_rate_limit": 6000,
            "spotsms_api_key": self.spot.api_key,
            "spotsms_base_url": self.spot.base_url,
            "spotsms_rate_limit": 6000,
            "papsms_api_key": self.pap.api_key,
            "papsms_base_url": self.pap.base_url,
            "papsms_rate_limit": 6000,
            "http_port": self.webhook_port,
            "papsms_webhook": True,
            "papsms_webhook_secret": "hook-secret-123",
        }
        if only is not None:
            for prefix in ("smspool", "spotsms", "papsms"):
                if prefix != only:
                    values = {k: v for k, v in values.items() if not k.startswith(prefix)}
            values["smspalm_api_key"] = None
            values["smspalm_rate"] = None
        values.update(overrides)
        return values

    def webhook_url(self, secret: str = "hook-secret-123") -> str:
        return f"http://127.0.0.1:{self.webhook_port}/papsms/webhook/{secret}"


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    port = free_port()
    pool, spot = FakeSMSPool(), FakeSpotSMS()
    pap = FakePapSMS(
        rate_limit=None, webhook_url=f"http://127.0.0.1:{port}/papsms/webhook/hook-secret-123"
    )
    for fake in (pool, spot, pap):
        await fake.start()
    yield Upstreams(pool, spot, pap, port)
    for fake in (pool, spot, pap):
        await fake.stop()


def _latest(upstreams: Upstreams, provider: str) -> Any:
    if provider == "smspool":
        return list(upstreams.pool.orders.values())[-1]
    if provider == "spotsms":
        return list(upstreams.spot.activations.values())[-1]
    return list(upstreams.pap.activations.values())[-1]


def _deliver(upstreams: Upstreams, provider: str, code: str) -> None:
    item = _latest(upstreams, provider)
    if provider == "smspool":
        upstreams.pool.deliver_code(item.order_id, code)
    elif provider == "spotsms":
        upstreams.spot.deliver_code(item.rs_id, code)
    else:
        upstreams.pap.deliver_code(item.id, code, webhook=False)


def _cancelled(upstreams: Upstreams, provider: str) -> bool:
    item = _latest(upstreams, provider)
    if provider == "smspool":
        return item.status in (5, 6)
    return item.status == "cancelled"


TITLES = {"smspool": "SMSPool", "spotsms": "SpotSMS", "papsms": "PapSMS"}
PROVIDERS = list(TITLES)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_purchase_and_code(
    provider: str,
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**upstreams.settings(provider, papsms_webhook=False))
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    card = await buy(alice, route=TITLES[provider])
    assert TITLES[provider] in card.plain
    _deliver(upstreams, provider, "246810")
    await alice.wait_for("246810", timeout=15)
    assert harness.app is not None
    (order,) = (await harness.app.orders.page_for_user(alice.id, 0, 5))[0]
    assert order.status is OrderStatus.CODE_RECEIVED and order.route == provider


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_timeout_refund(
    provider: str,
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(
        **upstreams.settings(provider, papsms_webhook=False), order_timeout_seconds=2
    )
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    await buy(alice, route=TITLES[provider])
    await alice.wait_for("No code arrived in time", timeout=20)
    assert _cancelled(upstreams, provider)
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 500


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cancel_refunds(
    provider: str,
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**upstreams.settings(provider, papsms_webhook=False))
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    card = await buy(alice, route=TITLES[provider])
    await alice.wait_answer(await alice.click(card, "Cancel"))
    await alice.wait_for("Cancelled")
    assert _cancelled(upstreams, provider)
    assert harness.app is not None and await harness.app.wallet.balance(alice.id) == 500


async def test_papsms_webhook_delivers_once_and_forgeries_change_nothing(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    # Polls are slow, so only the webhook can deliver quickly.
    harness = harness_factory(**upstreams.settings("papsms", papsms_poll_seconds=600))
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    await buy(alice, route="PapSMS")
    activation = _latest(upstreams, "papsms")
    async with httpx.AsyncClient() as client:
        forged = {"activation_id": activation.id, "code": "999999", "full_text": "fake"}
        assert (await client.post(upstreams.webhook_url("wrong"), json=forged)).status_code == 404
        # Right secret, but upstream has no such code: the status call finds nothing.
        assert (await client.post(upstreams.webhook_url(), json=forged)).status_code == 200
    upstreams.pap.deliver_code(activation.id, "135790", "Your WhatsApp code: 135790")
    message = await alice.wait_for("135790", timeout=5)
    assert "999999" not in message.plain
    upstreams.pap.repeat_webhook()
    await upstreams.pap.wait_webhooks()
    await asyncio.sleep(0.3)
    assert sum("135790" in m.plain and "📩" in m.plain for m in alice.messages) == 1
    assert harness.app is not None
    codes = await harness.app.orders.codes(
        (await harness.app.orders.page_for_user(alice.id, 0, 5))[0][0].id
    )
    assert [c.code for c in codes] == ["135790"]


async def test_smspool_polls_many_orders_with_one_request_per_tick(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    harness = harness_factory(**upstreams.settings("smspool"), poll_interval_seconds=0.5)
    await harness.start()
    await start(alice)
    await fund(admin, alice, "20")
    app = harness.app
    assert app is not None
    service = await app.catalog.find_service("WhatsApp")
    assert service is not None
    for _ in range(15):
        view = await app.orders.quote(alice.id, "smspool", service.id, "US")
        await app.orders.confirm(alice.id, view.quote.id, alice.id)
    before = upstreams.pool.count("request/active")
    checks_before = upstreams.pool.count("sms/check")
    await asyncio.sleep(3.0)  # about six ticks
    active_calls = upstreams.pool.count("request/active") - before
    assert 3 <= active_calls <= 8, active_calls  # one per tick, not one per order
    assert upstreams.pool.count("sms/check") == checks_before
    codes = [f"7{order.order_id[:5]}" for order in list(upstreams.pool.orders.values())[:5]]
    for order, code in zip(list(upstreams.pool.orders.values())[:5], codes, strict=True):
        upstreams.pool.deliver_code(order.order_id, code)
    for _ in range(200):
        if all(any(code in m.plain for m in alice.messages) for code in codes):
            break
        await asyncio.sleep(0.05)
    assert all(any(code in m.plain for m in alice.messages) for code in codes)


async def test_one_provider_down_while_the_others_sell(
    harness_factory: Callable[..., BotHarness],
    upstreams: Upstreams,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    upstreams.spot.fail_next(
        "services", "<html>502 Bad Gateway</html>", http_status=502, times=100
    )
    harness = harness_factory(**upstreams.settings(papsms_webhook=False))
    await harness.start()
    await start(alice)
    await fund(admin, alice, "5")
    menu = await start(alice)
    await alice.click(menu, "Buy a number")
    services = await alice.wait_for("Choose a service")
    await alice.click(services, "WhatsApp")
    countries = await alice.wait_for("Choose a country")
    await alice.click(countries, "United States")
    routes = await alice.wait_for("Choose a route")
    titles = " ".join(routes.button_texts)
    assert "SpotSMS" not in titles
    for title in ("SMSPalm Server 2", "SMSPool", "PapSMS"):
        assert title in titles
    # Cheapest first: SMSPalm ($0.33) before SMSPool ($0.41).
    assert titles.index("SMSPalm Server 2") < titles.index("SMSPool")
    await alice.click(routes, "SMSPool")
    confirm = await alice.wait_for("Confirm your purchase")
    await alice.click(confirm, "Pay")
    await alice.wait_for("Waiting for the SMS")
