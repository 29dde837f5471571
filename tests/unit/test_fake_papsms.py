"""Drive the PapSMS fake over real HTTP and check it speaks the documented (and assumed) API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from shop.providers.papsms import WebhookEvent, parse_webhook
from tests.fakes.papsms import FIRST_ACTIVATION_ID, FakePapSMS


@pytest.fixture
async def pap() -> AsyncIterator[FakePapSMS]:
    async with FakePapSMS(rate_limit=None) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def auth(fake: FakePapSMS) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.api_key}"}


async def get(
    http: httpx.AsyncClient, fake: FakePapSMS, path: str, **params: str
) -> httpx.Response:
    return await http.get(fake.base_url + path, params=params, headers=auth(fake))


async def post(
    http: httpx.AsyncClient, fake: FakePapSMS, path: str, payload: Any
) -> httpx.Response:
    return await http.post(fake.base_url + path, json=payload, headers=auth(fake))


async def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is True
    return body["data"]


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["success"] is False and body["error"]["message"]
    return response.status_code, body["error"]["code"]


async def buy(
    http: httpx.AsyncClient, fake: FakePapSMS, service: str = "whatsapp", country: str = "us"
) -> dict[str, Any]:
    result = await data(
        await post(http, fake, "/numbers/purchase", {"country": country, "service": service})
    )
    assert isinstance(result, dict)
    return result


# ---------------------------------------------------------------------- lifecycle and auth


async def test_base_url(pap: FakePapSMS) -> None:
    assert pap.base_url.startswith("http://127.0.0.1:")
    assert pap.base_url.endswith("/api/v1")


async def test_base_url_before_start() -> None:
    with pytest.raises(RuntimeError):
        _ = FakePapSMS().base_url


@pytest.mark.parametrize("header", [None, "Bearer wrong", "pap-test-key", "bearer pap-test-key"])
async def test_bearer_required(
    pap: FakePapSMS, http: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await http.get(pap.base_url + "/countries", headers=headers)
    assert error_of(response) == (401, "unauthorized")
    assert pap.requests[-1].bearer_ok is False


async def test_request_log_has_no_key(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    await buy(http, pap)
    await get(http, pap, "/countries")
    assert [(r.method, r.path) for r in pap.requests] == [
        ("POST", "/numbers/purchase"),
        ("GET", "/countries"),
    ]
    assert pap.requests[0].json == {"country": "us", "service": "whatsapp"}
    assert all(r.bearer_ok for r in pap.requests)
    assert pap.api_key not in repr(pap.requests)


async def test_unknown_path_and_method(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    response = await get(http, pap, "/numbers/list")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    outside = await http.get(f"http://127.0.0.1:{pap.port}/health")
    assert outside.status_code == 404
    assert error_of(await get(http, pap, "/numbers/purchase")) == (405, "method_not_allowed")
    response = await post(http, pap, "/countries", {})
    assert error_of(response) == (405, "method_not_allowed")


# ---------------------------------------------------------------------- assumed catalogue


async def test_countries(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    countries = await data(await get(http, pap, "/countries"))
    assert countries[0] == {"code": "us", "name": "United States"}
    assert {c["code"] for c in countries} >= {"us", "gb", "in", "id"}


async def test_services(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    services = await data(await get(http, pap, "/services"))
    assert services[0] == {"service": "whatsapp", "name": "WhatsApp"}
    assert {s["service"] for s in services} >= {"whatsapp", "telegram", "google"}


async def test_services_of_a_country(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    response = await get(http, pap, "/services", country="us")
    assert '"price": 0.80, "available": 120' in response.text  # two decimals, as in the doc
    rows = await data(response)
    assert rows[0] == {"service": "whatsapp", "name": "WhatsApp", "price": 0.8, "available": 120}
    gb = await data(await get(http, pap, "/services", country="gb"))
    assert {"service": "telegram", "name": "Telegram", "price": 2.0, "available": 0} in gb
    assert await data(await get(http, pap, "/services", country="zz")) == []


async def test_prices(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    rows = await data(await get(http, pap, "/prices", service="whatsapp"))
    assert rows[0] == {"country": "us", "price": 0.8, "available": 120}
    assert {"country": "ca", "price": 0.9, "available": 0} in rows
    assert len(rows) == 5
    one = await data(await get(http, pap, "/prices", service="whatsapp", country="gb"))
    assert one == [{"country": "gb", "price": 1.2, "available": 40}]
    assert await data(await get(http, pap, "/prices", service="whatsapp", country="zz")) == []


async def test_prices_errors(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    assert error_of(await get(http, pap, "/prices")) == (400, "invalid_request")
    assert error_of(await get(http, pap, "/prices", service="myspace")) == (
        400,
        "invalid_service",
    )


async def test_balance(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    response = await get(http, pap, "/balance")
    assert '"balance": 25.00' in response.text
    assert await data(response) == {"balance": 25.0, "currency": "USD"}


# ---------------------------------------------------------------------- purchase


async def test_purchase_as_documented(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    response = await post(http, pap, "/numbers/purchase", {"country": "us", "service": "whatsapp"})
    assert '"cost": 0.80' in response.text
    result = await data(response)
    assert set(result) == {
        "activation_id",
        "phone_number",
        "country",
        "service",
        "expires_at",
        "cost",
    }
    assert result["activation_id"] == str(FIRST_ACTIVATION_ID) == "12345678"
    assert result["phone_number"] == "+14155555678"
    assert (result["country"], result["service"], result["cost"]) == ("us", "whatsapp", 0.8)
    assert result["expires_at"].endswith("Z") and "T" in result["expires_at"]
    assert pap.balance == Decimal("24.20")
    assert pap.prices[("whatsapp", "us")][1] == 119
    second = await buy(http, pap, "google", "gb")
    assert second["activation_id"] == "12345679"
    assert second["phone_number"].startswith("+447700")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"country": "us"}, (400, "invalid_request")),
        ({"country": "us", "service": 5}, (400, "invalid_request")),
        ([], (400, "invalid_request")),
        ({"country": "us", "service": "myspace"}, (400, "invalid_service")),
        ({"country": "ca", "service": "whatsapp"}, (409, "no_numbers")),  # stock 0
        ({"country": "zz", "service": "whatsapp"}, (409, "no_numbers")),
        ({"country": "id", "service": "google"}, (409, "no_numbers")),  # no price row
    ],
)
async def test_purchase_errors(
    pap: FakePapSMS, http: httpx.AsyncClient, payload: Any, expected: tuple[int, str]
) -> None:
    assert error_of(await post(http, pap, "/numbers/purchase", payload)) == expected
    assert pap.activations == {} and pap.balance == Decimal("25.00")


async def test_purchase_bad_json(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    response = await http.post(
        pap.base_url + "/numbers/purchase", content=b"{nope", headers=auth(pap)
    )
    assert error_of(response) == (400, "invalid_request")


async def test_purchase_insufficient_balance(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    pap.balance = Decimal("0.79")
    response = await post(http, pap, "/numbers/purchase", {"country": "us", "service": "whatsapp"})
    assert error_of(response) == (402, "insufficient_balance")
    assert pap.balance == Decimal("0.79") and pap.prices[("whatsapp", "us")][1] == 120


# ---------------------------------------------------------------------- status and finish


async def test_status_as_documented(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    response = await get(http, pap, f"/numbers/status/{activation_id}")
    assert response.json() == {"success": True, "data": {"status": "waiting", "sms": None}}
    pap.deliver_code(activation_id, "847291")
    status = await data(await get(http, pap, f"/numbers/status/{activation_id}"))
    assert status["status"] == "received"
    assert set(status["sms"]) == {"code", "full_text", "received_at"}
    assert status["sms"]["code"] == "847291"
    assert status["sms"]["full_text"] == "Your WhatsApp code: 847291"
    assert status["sms"]["received_at"].endswith("Z")


async def test_status_not_found(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    assert error_of(await get(http, pap, "/numbers/status/1")) == (404, "not_found")
    response = await post(http, pap, "/numbers/finish/1", {"status": "cancelled"})
    assert error_of(response) == (404, "not_found")


async def test_complete(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    path = f"/numbers/finish/{activation_id}"
    assert error_of(await post(http, pap, path, {"status": "completed"})) == (
        409,
        "invalid_status",
    )
    pap.deliver_code(activation_id, "1234", full_text="Code 1234")
    done = await data(await post(http, pap, path, {"status": "completed"}))
    assert done == {"activation_id": activation_id, "status": "completed"}
    assert await data(await post(http, pap, path, {"status": "completed"})) == done
    status = await data(await get(http, pap, f"/numbers/status/{activation_id}"))
    assert status["status"] == "completed" and status["sms"]["full_text"] == "Code 1234"
    assert error_of(await post(http, pap, path, {"status": "cancelled"})) == (
        409,
        "invalid_status",
    )
    assert pap.balance == Decimal("24.20")  # a used number is paid for


async def test_cancel_refunds_once(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    path = f"/numbers/finish/{activation_id}"
    done = await data(await post(http, pap, path, {"status": "cancelled"}))
    assert done == {"activation_id": activation_id, "status": "cancelled"}
    assert pap.balance == Decimal("25.00")
    assert await data(await post(http, pap, path, {"status": "cancelled"})) == done
    assert pap.balance == Decimal("25.00")
    status = await data(await get(http, pap, f"/numbers/status/{activation_id}"))
    assert status == {"status": "cancelled", "sms": None}
    assert error_of(await post(http, pap, path, {"status": "completed"})) == (
        409,
        "invalid_status",
    )
    with pytest.raises(ValueError):
        pap.deliver_code(activation_id, "1")


async def test_cancel_after_a_code(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    pap.deliver_code(activation_id, "1")
    response = await post(http, pap, f"/numbers/finish/{activation_id}", {"status": "cancelled"})
    assert error_of(response) == (409, "invalid_status")


@pytest.mark.parametrize("payload", [{}, {"status": "done"}, None])
async def test_finish_needs_a_status(
    pap: FakePapSMS, http: httpx.AsyncClient, payload: Any
) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    response = await post(http, pap, f"/numbers/finish/{activation_id}", payload)
    assert error_of(response) == (400, "invalid_request")


async def test_too_early_cancel(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    pap.too_early_cancel_seconds = 3600
    activation_id = (await buy(http, pap))["activation_id"]
    response = await post(http, pap, f"/numbers/finish/{activation_id}", {"status": "cancelled"})
    assert error_of(response) == (409, "too_early")
    assert pap.activations[activation_id].status == "waiting"
    pap.too_early_cancel_seconds = 0
    await data(await post(http, pap, f"/numbers/finish/{activation_id}", {"status": "cancelled"}))


async def test_expiry(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    first = (await buy(http, pap))["activation_id"]
    pap.expire(first)
    assert pap.balance == Decimal("25.00")
    status = await data(await get(http, pap, f"/numbers/status/{first}"))
    assert status == {"status": "expired", "sms": None}
    pap.lifetime_seconds = 0
    second = (await buy(http, pap))["activation_id"]
    status = await data(await get(http, pap, f"/numbers/status/{second}"))
    assert status["status"] == "expired"
    assert pap.balance == Decimal("25.00")
    cancel = await post(http, pap, f"/numbers/finish/{second}", {"status": "cancelled"})
    assert (await data(cancel))["status"] == "expired"


async def test_deliver_code_errors(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    with pytest.raises(KeyError):
        pap.deliver_code("404", "1")
    activation_id = (await buy(http, pap))["activation_id"]
    assert pap.deliver_code(activation_id, "1") is None  # no webhook_url
    pap.deliver_code(activation_id, "2")  # a later SMS replaces the first
    sms = pap.activations[activation_id].sms
    assert sms is not None and sms["code"] == "2"


# ---------------------------------------------------------------------- knobs


async def test_rate_limit(http: httpx.AsyncClient) -> None:
    async with FakePapSMS(rate_limit=3) as fake:
        for _ in range(3):
            await data(await get(http, fake, "/countries"))
        response = await get(http, fake, "/balance")
        assert response.status_code == 429
        assert response.json() == {
            "success": False,
            "error": {"code": "rate_limited", "message": "Too many requests"},
        }
        assert fake.rejected_429 == 1
        assert fake.count("/balance") == 1 and fake.count() == 4
        # Another key has its own window (and here gets 401).
        other = await http.get(fake.base_url + "/countries", headers={"Authorization": "x"})
        assert other.status_code == 401


async def test_rate_limit_window_slides(http: httpx.AsyncClient) -> None:
    async with FakePapSMS(rate_limit=1, window_seconds=0.2) as fake:
        await data(await get(http, fake, "/countries"))
        assert (await get(http, fake, "/countries")).status_code == 429
        await asyncio.sleep(0.25)
        await data(await get(http, fake, "/countries"))


async def test_default_rate_limit_is_the_docs() -> None:
    fake = FakePapSMS()
    assert (fake.rate_limit, fake.window_seconds) == (60, 60.0)


async def test_rejected_requests_use_no_injection(http: httpx.AsyncClient) -> None:
    async with FakePapSMS(rate_limit=1) as fake:
        fake.fail_next("/countries", "<html>oops</html>", 500)
        await data(await get(http, fake, "/balance"))
        assert (await get(http, fake, "/countries")).status_code == 429
        fake.rate_limit = None
        assert (await get(http, fake, "/countries")).status_code == 500


async def test_fail_next(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    pap.fail_next("/api/v1/numbers/purchase", "<html><body>502</body></html>", 502, times=2)
    for _ in range(2):
        response = await post(
            http, pap, "/numbers/purchase", {"country": "us", "service": "whatsapp"}
        )
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
    assert pap.activations == {}  # no effect
    await buy(http, pap)


async def test_fail_next_mapping_and_prefixes(pap: FakePapSMS, http: httpx.AsyncClient) -> None:
    activation_id = (await buy(http, pap))["activation_id"]
    pap.fail_next("numbers", {"success": False, "message": "Broad"}, 500)
    pap.fail_next("/numbers/status", {"success": False, "message": "Narrow"}, 503)
    narrow = await get(http, pap, f"/numbers/status/{activation_id}")
    assert (narrow.status_code, narrow.json()["message"]) == (503, "Narrow")
    broad = await get(http, pap, f"/numbers/status/{activation_id}")
    assert (broad.status_code, broad.json()["message"]) == (500, "Broad")
    await data(await get(http, pap, f"/numbers/status/{activation_id}"))
    assert pap.count("/numbers/status") == 3 and pap.count("/numbers") == 4


async def test_delay_next_still_takes_effect(pap: FakePapSMS) -> None:
    pap.delay_next("/numbers/purchase", 0.5)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await post(impatient, pap, "/numbers/purchase", {"country": "us", "service": "google"})
    await pap.wait_idle()
    assert len(pap.activations) == 1
    assert pap.requests[0].http_status == 200


# ---------------------------------------------------------------------- webhooks


class WebhookSink:
    """A tiny aiohttp server that records the webhooks it receives."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, Any], str]] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.content_type))
        self.arrived.set()
        return web.Response(status=self.status, text="ok")

    async def __aenter__(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post("/papsms/webhook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/papsms/webhook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_webhook_is_posted(http: httpx.AsyncClient) -> None:
    async with WebhookSink() as sink, FakePapSMS(webhook_url=sink.url) as fake:
        activation_id = (await buy(http, fake))["activation_id"]
        payload = fake.deliver_code(activation_id, "847291")
        await asyncio.wait_for(sink.arrived.wait(), 5)
        await fake.wait_webhooks()
        [(body, content_type)] = sink.received
        assert content_type == "application/json"
        assert body == payload
        assert set(body) == {"event_id", "activation_id", "code", "full_text", "received_at"}
        assert (body["activation_id"], body["code"]) == (activation_id, "847291")
        assert body["full_text"] == "Your WhatsApp code: 847291"
        [attempt] = fake.webhooks_sent
        assert (attempt.payload, attempt.http_status, attempt.error) == (payload, 200, None)
        # The state changed as well, for clients that poll.
        status = await data(await get(http, fake, f"/numbers/status/{activation_id}"))
        assert status["sms"]["code"] == "847291"


async def test_webhook_redelivery_and_new_events(http: httpx.AsyncClient) -> None:
    async with WebhookSink(status=500) as sink, FakePapSMS(webhook_url=sink.url) as fake:
        activation_id = (await buy(http, fake))["activation_id"]
        first = fake.deliver_code(activation_id, "1")
        again = fake.repeat_webhook()
        second = fake.deliver_code(activation_id, "2")
        await fake.wait_webhooks()
        assert first is not None and second is not None
        assert again == first
        assert first["event_id"] != second["event_id"]
        assert sorted(json.dumps(b, sort_keys=True) for b, _ in sink.received) == sorted(
            json.dumps(p, sort_keys=True) for p in (first, first, second)
        )
        assert [a.http_status for a in fake.webhooks_sent] == [500, 500, 500]
        # The bot's parser sees the redelivery as the same event, the new SMS as another.
        keys = [parse_webhook(p).event_key for p in (first, again, second)]
        assert keys[0] == keys[1] != keys[2]
        assert parse_webhook(second) == WebhookEvent(
            activation_id, "2", "Your WhatsApp code: 2", second["event_id"]
        )


async def test_webhook_can_be_skipped(http: httpx.AsyncClient) -> None:
    async with WebhookSink() as sink, FakePapSMS(webhook_url=sink.url) as fake:
        activation_id = (await buy(http, fake))["activation_id"]
        assert fake.deliver_code(activation_id, "1", webhook=False) is None
        await fake.wait_webhooks()
        assert sink.received == [] and fake.webhooks_sent == []
        with pytest.raises(RuntimeError):
            fake.repeat_webhook()


async def test_webhook_to_nowhere_is_recorded(http: httpx.AsyncClient) -> None:
    async with WebhookSink() as sink:
        url = sink.url
    async with FakePapSMS(webhook_url=url) as fake:
        activation_id = (await buy(http, fake))["activation_id"]
        fake.deliver_code(activation_id, "1")
        await fake.wait_webhooks()
        [attempt] = fake.webhooks_sent
        assert attempt.http_status is None and attempt.error
