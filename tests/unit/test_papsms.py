"""The PapSMS client, route and parsers: the doc's exact strings, then over HTTP to the fake."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shop.providers import papsms
from shop.providers.base import (
    Activation,
    ActivationStatus,
    BadKey,
    BadService,
    BadStatus,
    CountryRef,
    EarlyCancelDenied,
    NoActivation,
    NoNumbers,
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    Route,
    StatusKind,
    UpstreamCountry,
    UpstreamNoBalance,
    UpstreamOffer,
    UpstreamService,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget
from shop.providers.papsms import (
    Endpoint,
    PapSMSClient,
    PapSMSRoute,
    PurchasedNumber,
    WebhookEvent,
    parse_balance,
    parse_countries,
    parse_envelope,
    parse_finish,
    parse_prices,
    parse_purchase,
    parse_services,
    parse_status,
    parse_webhook,
)
from tests.fakes.papsms import FIRST_ACTIVATION_ID, FakePapSMS

# Verbatim from the doc, "Core API Endpoints".
DOC_PURCHASE = """{
"success": true,
"data": {
"activation_id": "12345678",
"phone_number": "+14155550123",
"country": "us",
"service": "whatsapp",
"expires_at": "2026-04-19T15:30:00Z",
"cost": 0.80
}
}"""
DOC_WAITING = """{
"success": true,
"data": {
"status": "waiting",
"sms": null
}
}"""
DOC_RECEIVED = """{
"success": true,
"data": {
"status": "received",
"sms": {
"code": "847291",
"full_text": "Your WhatsApp code: 847291",
"received_at": "2026-04-19T14:35:22Z"
}
}
}"""

US = CountryRef(upstream_id="us", iso="US")
CA = CountryRef(upstream_id="ca", iso="CA")
RATE_LIMITED = {
    "success": False,
    "error": {"code": "rate_limited", "message": "Too many requests"},
}


def exactly(error: type[ProviderError], exc: BaseException) -> bool:
    """RateLimited is an UpstreamUnavailable: check the precise class."""
    return type(exc) is error


def papsms_ok(data: Any) -> str:
    return json.dumps({"success": True, "data": data})


# ---------------------------------------------------------------------------- documented shapes


def test_doc_purchase() -> None:
    assert parse_purchase(DOC_PURCHASE, 200) == PurchasedNumber(
        Activation("12345678", "14155550123"), Decimal("0.80")
    )


def test_doc_status_waiting() -> None:
    assert parse_status(DOC_WAITING) == ActivationStatus(StatusKind.WAITING)


def test_doc_status_received() -> None:
    assert parse_status(DOC_RECEIVED) == ActivationStatus(
        StatusKind.CODE, code="847291", text="Your WhatsApp code: 847291"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"status": "cancelled", "sms": None}, ActivationStatus(StatusKind.CANCELLED)),
        ({"status": "canceled"}, ActivationStatus(StatusKind.CANCELLED)),
        ({"status": "expired", "sms": None}, ActivationStatus(StatusKind.CANCELLED)),
        ({"status": "Waiting", "sms": None}, ActivationStatus(StatusKind.WAITING)),
        (
            {"status": "completed", "sms": {"code": 12345, "full_text": "Code 12345"}},
            ActivationStatus(StatusKind.CODE, code="12345", text="Code 12345"),
        ),
        (
            {"status": "RECEIVED", "sms": {"code": "1111"}},
            ActivationStatus(StatusKind.CODE, code="1111", text=None),
        ),
    ],
)
def test_status_values(data: dict[str, Any], expected: ActivationStatus) -> None:
    assert parse_status(papsms_ok(data)) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"status": "processing", "sms": None},
        {"status": "received", "sms": None},
        {"status": "received", "sms": {"code": ""}},
        {"sms": None},
        None,
        ["waiting"],
    ],
)
def test_status_unknown_is_unavailable(data: Any) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        parse_status(papsms_ok(data))
    assert exactly(UpstreamUnavailable, info.value)


@pytest.mark.parametrize(
    "data",
    [
        {"activation_id": "1", "phone_number": ""},
        {"phone_number": "+14155550123"},
        {"activation_id": "1"},
        None,
        [],
    ],
)
def test_purchase_success_without_a_number_is_outcome_unknown(data: Any) -> None:
    # PapSMS says it sold a number we cannot follow: money may be gone.
    with pytest.raises(PurchaseOutcomeUnknown):
        parse_purchase(papsms_ok(data), 200)


def test_purchase_numeric_id_and_spaced_phone() -> None:
    body = papsms_ok({"activation_id": 99, "phone_number": "+44 7700 900123", "cost": "1.5"})
    assert parse_purchase(body, 200) == PurchasedNumber(
        Activation("99", "447700900123"), Decimal("1.5")
    )


def test_purchase_without_cost() -> None:
    body = papsms_ok({"activation_id": "7", "phone_number": "+1555"})
    assert parse_purchase(body, 200).cost is None


# ---------------------------------------------------------------------------- error mapping

READ, PURCHASE, ACTIVATION = Endpoint.READ, Endpoint.PURCHASE, Endpoint.ACTIVATION
OUTCOME_UNKNOWN = PurchaseOutcomeUnknown  # a purchase answer that proves nothing


@pytest.mark.parametrize(
    ("body", "http_status", "endpoint", "error"),
    [
        # no numbers / out of stock
        (
            '{"success": false, "error": {"code": "no_numbers", "message": "No numbers"}}',
            409,
            PURCHASE,
            NoNumbers,
        ),
        ('{"success": false, "error": {"code": "OUT_OF_STOCK"}}', 400, PURCHASE, NoNumbers),
        ('{"success": false, "message": "Out of stock"}', 200, PURCHASE, NoNumbers),
        ('{"success": false, "message": "No free numbers for US"}', 400, PURCHASE, NoNumbers),
        ('{"success": false, "message": "Country not supported"}', 400, PURCHASE, NoNumbers),
        # insufficient balance
        (
            '{"success": false, "error": {"code": "insufficient_balance", "message": "x"}}',
            402,
            PURCHASE,
            UpstreamNoBalance,
        ),
        ('{"success": false, "error": "insufficient_funds"}', 400, PURCHASE, UpstreamNoBalance),
        (
            '{"success": false, "message": "Insufficient balance, please top up"}',
            200,
            PURCHASE,
            UpstreamNoBalance,
        ),
        ('{"success": false}', 402, PURCHASE, UpstreamNoBalance),
        # unauthorized
        (
            '{"success": false, "error": {"code": "unauthorized", "message": "Invalid API key"}}',
            401,
            READ,
            BadKey,
        ),
        ('{"success": false, "message": "Unauthorized"}', 200, READ, BadKey),
        ('{"success": false, "message": "API key is invalid"}', 400, PURCHASE, BadKey),
        ('{"success": false, "error": {"code": "E1001", "message": "?"}}', 401, READ, BadKey),
        ('{"success": false, "message": "IP not whitelisted"}', 403, ACTIVATION, BadKey),
        ("<html><body>401 Authorization Required</body></html>", 401, READ, BadKey),
        # not found: the activation only on status/finish
        (
            '{"success": false, "error": {"code": "not_found", "message": "x"}}',
            404,
            ACTIVATION,
            NoActivation,
        ),
        ('{"success": false, "message": "Activation not found"}', 200, ACTIVATION, NoActivation),
        ('{"success": false, "error": {"code": "E404"}}', 404, ACTIVATION, NoActivation),
        ('{"success": false, "error": "activation_expired"}', 410, ACTIVATION, NoActivation),
        ('{"success": false, "error": {"code": "not_found"}}', 404, READ, UpstreamUnavailable),
        ('{"success": false, "error": {"code": "not_found"}}', 404, PURCHASE, OUTCOME_UNKNOWN),
        ("<html><h1>404 Not Found</h1></html>", 404, ACTIVATION, UpstreamUnavailable),
        # too early
        (
            '{"success": false, "error": {"code": "too_early", "message": "x"}}',
            409,
            ACTIVATION,
            EarlyCancelDenied,
        ),
        (
            '{"success": false, "message": "Too early to cancel, wait 2 minutes"}',
            400,
            ACTIVATION,
            EarlyCancelDenied,
        ),
        # service and status
        ('{"success": false, "error": {"code": "invalid_service"}}', 400, PURCHASE, BadService),
        ('{"success": false, "message": "Unknown service"}', 400, PURCHASE, BadService),
        (
            '{"success": false, "error": {"code": "invalid_status", "message": "No SMS yet"}}',
            409,
            ACTIVATION,
            BadStatus,
        ),
        # rate limits
        (
            '{"success": false, "error": {"code": "rate_limited", "message": "Too many"}}',
            429,
            READ,
            RateLimited,
        ),
        ('{"success": false, "message": "Rate limit exceeded"}', 200, READ, RateLimited),
        ('{"success": false}', 429, PURCHASE, RateLimited),
        ("Too Many Requests", 429, PURCHASE, RateLimited),
        # anything else
        ('{"success": false, "error": {"code": "internal"}}', 500, READ, UpstreamUnavailable),
        ('{"success": false, "message": "Service Unavailable"}', 503, READ, UpstreamUnavailable),
        ("<html><body>502 Bad Gateway</body></html>", 502, READ, UpstreamUnavailable),
        ("<html><body>Welcome</body></html>", 200, READ, UpstreamUnavailable),
        ("", 200, ACTIVATION, UpstreamUnavailable),
        ("[]", 200, READ, UpstreamUnavailable),
        ('{"status": "ok"}', 200, READ, UpstreamUnavailable),
        ("<html><body>502 Bad Gateway</body></html>", 502, PURCHASE, PurchaseOutcomeUnknown),
        # a gateway timeout on a purchase: the origin may have sold the number
        ("<html><body>504 Gateway Time-out</body></html>", 504, PURCHASE, PurchaseOutcomeUnknown),
        ("error code: 524", 524, PURCHASE, PurchaseOutcomeUnknown),
        ("<html><body>504 Gateway Time-out</body></html>", 504, READ, UpstreamUnavailable),
        ('{"success": false, "error": {"code": "timeout"}}', 504, PURCHASE, OUTCOME_UNKNOWN),
    ],
)
def test_error_mapping(
    body: str, http_status: int, endpoint: Endpoint, error: type[ProviderError]
) -> None:
    with pytest.raises(ProviderError) as info:
        parse_envelope(body, http_status, endpoint)
    assert exactly(error, info.value), info.value


def test_errors_keep_the_upstream_words_for_logs() -> None:
    body = '{"success": false, "error": {"code": "no_numbers", "message": "None left in US"}}'
    with pytest.raises(NoNumbers) as info:
        parse_envelope(body, 409, PURCHASE)
    assert "no_numbers" in str(info.value) and "None left in US" in str(info.value)
    assert info.value.user_message == NoNumbers.user_message


def test_success_is_trusted_whatever_the_status() -> None:
    assert parse_status(DOC_WAITING, 500).kind is StatusKind.WAITING
    assert parse_envelope('{"data": [1]}', 200) == [1]  # no "success" but data and no error


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ('{"success": true, "data": {"activation_id": "1", "status": "cancelled"}}', "cancelled"),
        ('{"success": true}', "completed"),
        ('{"success": false, "error": {"code": "already_cancelled"}}', "cancelled"),
        ('{"success": false, "message": "Activation already canceled"}', "cancelled"),
        ('{"success": false, "error": {"code": "already_completed"}}', "completed"),
        ('{"success": false, "message": "Already finished"}', "completed"),
    ],
)
def test_finish_done(body: str, wanted: papsms.FinishStatus) -> None:
    parse_finish(body, 200, wanted)  # no error


@pytest.mark.parametrize(
    ("body", "wanted", "error"),
    [
        ('{"success": false, "error": {"code": "already_completed"}}', "cancelled", BadStatus),
        ('{"success": false, "error": {"code": "already_cancelled"}}', "completed", BadStatus),
        ('{"success": false, "error": {"code": "not_found"}}', "cancelled", NoActivation),
        ('{"success": false, "error": {"code": "too_early"}}', "cancelled", EarlyCancelDenied),
        ("<html>oops</html>", "completed", UpstreamUnavailable),
    ],
)
def test_finish_errors(body: str, wanted: papsms.FinishStatus, error: type[ProviderError]) -> None:
    with pytest.raises(ProviderError) as info:
        parse_finish(body, 409, wanted)
    assert exactly(error, info.value)


# ---------------------------------------------------------------------------- assumed catalogue


def test_countries() -> None:
    body = papsms_ok(
        [
            {"code": "us", "name": "United States"},
            {"code": "UK", "name": "United Kingdom"},
            {"code": "xk1", "name": "Somewhere"},
            {"code": "ca"},
            {"name": "No code"},
            "junk",
        ]
    )
    assert parse_countries(body) == [
        UpstreamCountry("us", "United States", "US"),
        UpstreamCountry("uk", "United Kingdom", "GB"),
        UpstreamCountry("xk1", "Somewhere", None),
        UpstreamCountry("ca", "CA", "CA"),
    ]


def test_services_with_and_without_prices() -> None:
    body = papsms_ok(
        [
            {"service": "whatsapp", "name": "WhatsApp", "price": 0.80, "available": 120},
            {"service": "whatsapp", "name": "WhatsApp again"},
            {"code": "telegram"},
            {"name": "nameless"},
        ]
    )
    assert parse_services(body) == [
        UpstreamService("whatsapp", "WhatsApp"),
        UpstreamService("telegram", "telegram"),
    ]


def test_prices() -> None:
    body = (
        '{"success": true, "data": ['
        '{"country": "us", "price": 0.80, "available": 120},'
        '{"country": "GB", "price": "1.20", "available": "7"},'
        '{"country": "in", "price": 0.1, "available": null},'
        '{"country": "id", "price": 0, "available": 5},'
        '{"country": "ca", "price": "free", "available": 5},'
        '{"price": 1.0, "available": 5},'
        '{"country": "de", "service": "telegram", "price": 1.0, "available": 5},'
        '{"country": "fr", "price": 2.5, "available": -3}'
        "]}"
    )
    assert parse_prices(body, 200, "whatsapp") == [
        UpstreamOffer("us", Decimal("0.80"), 120),
        UpstreamOffer("gb", Decimal("1.20"), 7),
        UpstreamOffer("in", Decimal("0.1"), 0),
        UpstreamOffer("fr", Decimal("2.5"), 0),
    ]


def test_prices_are_exact_decimals() -> None:
    [offer] = parse_prices(papsms_ok([{"country": "us", "price": 0.1, "available": 1}]))
    assert offer.cost == Decimal("0.1")


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"balance": 12.50, "currency": "USD"}, Decimal("12.5")), (3, Decimal(3))],
)
def test_balance(data: Any, expected: Decimal) -> None:
    assert parse_balance(papsms_ok(data)) == expected


@pytest.mark.parametrize("data", [{"balance": "lots"}, {}, None, {"balance": -1}])
def test_balance_unreadable(data: Any) -> None:
    with pytest.raises(UpstreamUnavailable):
        parse_balance(papsms_ok(data))


# ---------------------------------------------------------------------------- webhook


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {
                "event_id": "evt_1",
                "activation_id": "12345678",
                "code": "847291",
                "full_text": "Your WhatsApp code: 847291",
                "received_at": "2026-04-19T14:35:22Z",
            },
            WebhookEvent("12345678", "847291", "Your WhatsApp code: 847291", "evt_1"),
        ),
        (
            {"id": 12345678, "code": 847291, "text": "Code 847291"},
            WebhookEvent("12345678", "847291", "Code 847291", "12345678:847291"),
        ),
        (
            {"activation_id": "9", "sms": {"code": "1", "full_text": "One"}},
            WebhookEvent("9", "1", "One", "9:1"),
        ),
        (
            {"data": {"activation_id": "9", "code": "2"}, "event_id": "e2"},
            WebhookEvent("9", "2", None, "e2"),
        ),
        ({"activation_id": "9"}, WebhookEvent("9", None, None, "9:")),
    ],
)
def test_parse_webhook(payload: dict[str, Any], expected: WebhookEvent) -> None:
    assert parse_webhook(payload) == expected


def test_webhook_redelivery_has_the_same_key() -> None:
    payload = {"activation_id": "5", "code": "42", "full_text": "42"}
    assert parse_webhook(payload).event_key == parse_webhook(dict(payload)).event_key


@pytest.mark.parametrize(
    "payload", [{}, {"code": "1"}, {"activation_id": ""}, {"id": None}, {"activation_id": True}]
)
def test_webhook_without_activation(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_webhook(payload)


# ---------------------------------------------------------------------------- over HTTP


class CountingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(per_minute=60000)
        self.acquired: list[int] = []

    async def acquire(self, priority: int) -> None:
        self.acquired.append(priority)
        await super().acquire(priority)


@pytest.fixture
async def fake() -> AsyncIterator[FakePapSMS]:
    async with FakePapSMS(rate_limit=None) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


@pytest.fixture
def budget() -> CountingBudget:
    return CountingBudget()


def make_client(
    http: httpx.AsyncClient, fake: FakePapSMS, budget: RequestBudget, key: str | None = None
) -> PapSMSClient:
    return PapSMSClient(
        http,
        fake.base_url,
        api_key=fake.api_key if key is None else key,
        budget=budget,
        backoff=(0.01, 0.02, 0.04),
    )


@pytest.fixture
def client(fake: FakePapSMS, http: httpx.AsyncClient, budget: CountingBudget) -> PapSMSClient:
    return make_client(http, fake, budget)


@pytest.fixture
def route(client: PapSMSClient) -> PapSMSRoute:
    return PapSMSRoute(client, Decimal("1"))


def test_route_attributes(route: PapSMSRoute) -> None:
    typed: Route = route  # the Protocol, checked by mypy
    assert (typed.key, typed.title, typed.account, typed.currency) == (
        "papsms",
        "PapSMS",
        "papsms",
        "USD",
    )
    assert (typed.can_request_another, typed.can_finish, typed.is_sandbox) == (
        False,
        True,
        False,
    )
    assert typed.rate == Decimal("1")


async def test_client_defaults(http: httpx.AsyncClient) -> None:
    budget = RequestBudget(60)  # the doc: 60 requests a minute (PAPSMS_RATE_LIMIT)
    client = PapSMSClient(http, api_key="k", budget=budget)
    assert client._base_url == "https://papsms.com/api/v1"
    assert client._http.retry_delays == (1.0, 2.0, 4.0)
    assert budget.spacing == pytest.approx(60 / (60 * 0.95))


async def test_catalogue(route: PapSMSRoute, fake: FakePapSMS) -> None:
    assert await route.balance() == Decimal("25.00")
    services = await route.services()
    assert UpstreamService("whatsapp", "WhatsApp") in services
    assert len(services) == len(fake.services)
    countries = await route.countries()
    assert countries[0] == UpstreamCountry("us", "United States", "US")
    offers = await route.offers("whatsapp", Priority.INTERACTIVE)
    assert UpstreamOffer("us", Decimal("0.80"), 120) in offers
    assert UpstreamOffer("ca", Decimal("0.90"), 0) in offers
    # One request for every country of a service.
    assert fake.count("/prices") == 1
    assert fake.requests[-1].query == {"service": "whatsapp"}


async def test_services_of_one_country(client: PapSMSClient, fake: FakePapSMS) -> None:
    services = await client.services("gb")
    assert [s.code for s in services] == ["whatsapp", "telegram", "google"]
    assert fake.requests[-1].query == {"country": "gb"}


async def test_price(route: PapSMSRoute, fake: FakePapSMS) -> None:
    assert await route.price("telegram", US) == UpstreamOffer("us", Decimal("1.50"), 60)
    assert fake.requests[-1].query == {"service": "telegram", "country": "us"}
    assert await route.price("google", CountryRef("id", "ID")) is None
    assert await route.price("whatsapp", CountryRef("zz", None)) is None


async def test_priorities(route: PapSMSRoute, budget: CountingBudget) -> None:
    await route.offers("whatsapp", Priority.INTERACTIVE)
    await route.price("whatsapp", US)
    await route.countries()
    assert budget.acquired == [Priority.INTERACTIVE, Priority.PURCHASE, Priority.BACKGROUND]


async def test_buy_poll_finish(route: PapSMSRoute, fake: FakePapSMS) -> None:
    activation = await route.buy("whatsapp", US, ref="42")
    assert activation == Activation(str(FIRST_ACTIVATION_ID), "14155555678")
    purchase = fake.requests[-1]
    assert (purchase.method, purchase.path, purchase.json) == (
        "POST",
        "/numbers/purchase",
        {"country": "us", "service": "whatsapp"},
    )
    assert purchase.bearer_ok
    assert fake.balance == Decimal("24.20")
    assert await route.status(activation.activation_id) == ActivationStatus(StatusKind.WAITING)
    fake.deliver_code(activation.activation_id, "847291")
    assert await route.status(activation.activation_id) == ActivationStatus(
        StatusKind.CODE, code="847291", text="Your WhatsApp code: 847291"
    )
    await route.finish(activation.activation_id)
    assert fake.activations[activation.activation_id].status == "completed"
    assert fake.requests[-1].json == {"status": "completed"}
    await route.finish(activation.activation_id)  # harmless again
    assert (await route.status(activation.activation_id)).code == "847291"
    assert all(request.bearer_ok for request in fake.requests)


async def test_cancel_refunds(route: PapSMSRoute, fake: FakePapSMS) -> None:
    activation = await route.buy("google", US, ref="1")
    assert fake.balance == Decimal("24.50")
    await route.cancel(activation.activation_id)
    assert fake.requests[-1].path == f"/numbers/finish/{activation.activation_id}"
    assert fake.requests[-1].json == {"status": "cancelled"}
    assert fake.balance == Decimal("25.00")
    assert (await route.status(activation.activation_id)).kind is StatusKind.CANCELLED
    await route.cancel(activation.activation_id)  # already cancelled: done, no second refund
    assert fake.balance == Decimal("25.00")


async def test_expired_reads_cancelled(route: PapSMSRoute, fake: FakePapSMS) -> None:
    activation = await route.buy("google", US, ref="1")
    fake.expire(activation.activation_id)
    assert (await route.status(activation.activation_id)).kind is StatusKind.CANCELLED


async def test_request_another_is_not_supported(route: PapSMSRoute, fake: FakePapSMS) -> None:
    with pytest.raises(BadStatus):
        await route.request_another("12345678")
    assert fake.requests == []
    await route.close()


async def test_buy_max_cost_is_checked_after(
    route: PapSMSRoute, fake: FakePapSMS, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "shop.providers.papsms"):
        activation = await route.buy("whatsapp", US, ref="77", max_cost=Decimal("0.50"))
    assert activation.activation_id in fake.activations
    assert "above the cap" in caplog.text and "ref 77" in caplog.text


async def test_id_in_the_path_is_escaped(route: PapSMSRoute, fake: FakePapSMS) -> None:
    with pytest.raises(UpstreamUnavailable):
        await route.status("../balance")
    assert fake.requests[-1].path == "/numbers/status/../balance"


# ---------------------------------------------------------------------------- errors via HTTP


async def test_no_numbers(route: PapSMSRoute, fake: FakePapSMS) -> None:
    with pytest.raises(NoNumbers):
        await route.buy("whatsapp", CA, ref="1")  # stock 0
    with pytest.raises(NoNumbers):
        await route.buy("whatsapp", CountryRef("zz", None), ref="1")
    assert fake.count("/numbers/purchase") == 2 and fake.activations == {}


async def test_no_balance(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.balance = Decimal("0.10")
    with pytest.raises(UpstreamNoBalance):
        await route.buy("whatsapp", US, ref="1")
    assert fake.balance == Decimal("0.10")


async def test_bad_service(route: PapSMSRoute) -> None:
    with pytest.raises(BadService):
        await route.buy("myspace", US, ref="1")
    with pytest.raises(BadService):
        await route.offers("myspace", Priority.BACKGROUND)


async def test_bad_key(fake: FakePapSMS, http: httpx.AsyncClient, budget: CountingBudget) -> None:
    route = PapSMSRoute(make_client(http, fake, budget, key="wrong"), Decimal(1))
    with pytest.raises(BadKey) as info:
        await route.countries()
    assert "wrong" not in str(info.value)
    with pytest.raises(BadKey):
        await route.buy("whatsapp", US, ref="1")
    assert fake.count() == 2  # a bad key is not retried
    assert not any(request.bearer_ok for request in fake.requests)


async def test_no_activation(route: PapSMSRoute) -> None:
    with pytest.raises(NoActivation):
        await route.status("999")
    with pytest.raises(NoActivation):
        await route.cancel("999")
    with pytest.raises(NoActivation):
        await route.finish("999")


async def test_too_early(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.too_early_cancel_seconds = 3600
    activation = await route.buy("whatsapp", US, ref="1")
    with pytest.raises(EarlyCancelDenied):
        await route.cancel(activation.activation_id)
    assert fake.activations[activation.activation_id].status == "waiting"


async def test_finish_before_a_code(route: PapSMSRoute, fake: FakePapSMS) -> None:
    activation = await route.buy("whatsapp", US, ref="1")
    with pytest.raises(BadStatus):
        await route.finish(activation.activation_id)
    fake.deliver_code(activation.activation_id, "1")
    with pytest.raises(BadStatus):
        await route.cancel(activation.activation_id)


@pytest.mark.parametrize(
    ("body", "http_status", "error"),
    [
        ({"success": False, "message": "Out of stock"}, 200, NoNumbers),
        (
            {"success": False, "error": {"code": "no_balance", "message": "x"}},
            400,
            UpstreamNoBalance,
        ),
        ({"success": False, "message": "Unauthorized"}, 401, BadKey),
        # Pages that do not prove the purchase failed: PapSMS may have sold a number.
        ("<html><body>Internal Server Error</body></html>", 500, PurchaseOutcomeUnknown),
        ("<html><body>Maintenance</body></html>", 200, PurchaseOutcomeUnknown),
    ],
)
async def test_injected_purchase_errors(
    route: PapSMSRoute,
    fake: FakePapSMS,
    body: Any,
    http_status: int,
    error: type[ProviderError],
) -> None:
    fake.fail_next("/numbers/purchase", body, http_status)
    with pytest.raises(ProviderError) as info:
        await route.buy("whatsapp", US, ref="1")
    assert exactly(error, info.value)
    assert fake.count("/numbers/purchase") == 1  # never retried
    assert fake.activations == {}


async def test_already_cancelled_is_done(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next(
        "/numbers/finish",
        {"success": False, "error": {"code": "already_cancelled", "message": "Already cancelled"}},
        409,
    )
    await route.cancel("12345678")


# ---------------------------------------------------------------------------- retries


async def test_429_backoff_then_success(
    route: PapSMSRoute, fake: FakePapSMS, budget: CountingBudget
) -> None:
    activation = await route.buy("whatsapp", US, ref="1")
    fake.fail_next("/numbers/status", RATE_LIMITED, 429, times=3)
    assert (await route.status(activation.activation_id)).kind is StatusKind.WAITING
    assert fake.count("/numbers/status") == 4
    assert budget.acquired.count(Priority.POLL) == 4  # every attempt within the budget


async def test_429_backoff_exhausted(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next("/countries", RATE_LIMITED, 429, times=10)
    with pytest.raises(RateLimited):
        await route.countries()
    assert fake.count("/countries") == 4  # one try and the three backoff delays


async def test_429_on_finish_is_retried(route: PapSMSRoute, fake: FakePapSMS) -> None:
    activation = await route.buy("whatsapp", US, ref="1")
    fake.fail_next("/numbers/finish", "Too Many Requests", 429, times=2)
    await route.cancel(activation.activation_id)
    assert fake.activations[activation.activation_id].status == "cancelled"
    assert fake.count("/numbers/finish") == 3


async def test_429_on_purchase_is_never_retried(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next("/numbers/purchase", RATE_LIMITED, 429, times=5)
    with pytest.raises(RateLimited):
        await route.buy("whatsapp", US, ref="1")
    assert fake.count("/numbers/purchase") == 1
    assert fake.activations == {} and fake.balance == Decimal("25.00")


async def test_the_fakes_own_rate_limit(http: httpx.AsyncClient, budget: CountingBudget) -> None:
    async with FakePapSMS(rate_limit=2) as limited:
        route = PapSMSRoute(make_client(http, limited, budget), Decimal(1))
        await route.countries()
        await route.services()
        with pytest.raises(RateLimited):
            await route.balance()
        assert limited.rejected_429 == 4
        with pytest.raises(RateLimited):
            await route.buy("whatsapp", US, ref="1")
        assert limited.rejected_429 == 5 and limited.activations == {}


async def test_5xx_retried_for_reads(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next("/countries", "<html><body>502 Bad Gateway</body></html>", 502)
    assert await route.countries()
    assert fake.count("/countries") == 2


async def test_definite_errors_are_not_retried(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next("/countries", {"success": False, "error": {"code": "weird"}}, 400)
    with pytest.raises(UpstreamUnavailable):
        await route.countries()
    assert fake.count("/countries") == 1


async def test_gateway_timeout_on_purchase(route: PapSMSRoute, fake: FakePapSMS) -> None:
    fake.fail_next("/numbers/purchase", "<html><body>504 Gateway Time-out</body></html>", 504)
    with pytest.raises(PurchaseOutcomeUnknown):
        await route.buy("whatsapp", US, ref="1")
    assert fake.count("/numbers/purchase") == 1


async def test_timeout_after_sending_a_purchase(fake: FakePapSMS, budget: CountingBudget) -> None:
    fake.delay_next("/numbers/purchase", 0.5)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        route = PapSMSRoute(make_client(impatient, fake, budget), Decimal(1))
        with pytest.raises(PurchaseOutcomeUnknown):
            await route.buy("whatsapp", US, ref="1")
    await fake.wait_idle()
    assert len(fake.activations) == 1  # it was bought after all
    assert fake.count("/numbers/purchase") == 1


async def test_timeout_on_status_is_retried(fake: FakePapSMS, budget: CountingBudget) -> None:
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        route = PapSMSRoute(make_client(impatient, fake, budget), Decimal(1))
        activation = await route.buy("whatsapp", US, ref="1")
        fake.delay_next("/numbers/status", 0.5)
        assert (await route.status(activation.activation_id)).kind is StatusKind.WAITING
    assert fake.count("/numbers/status") == 2
    await fake.wait_idle()


async def test_unreachable(http: httpx.AsyncClient, budget: CountingBudget) -> None:
    async with FakePapSMS() as gone:
        base_url = gone.base_url
    client = PapSMSClient(http, base_url, api_key="k", budget=budget, backoff=(0.01,))
    route = PapSMSRoute(client, Decimal(1))
    with pytest.raises(UpstreamUnavailable) as info:
        await route.buy("whatsapp", US, ref="1")  # nothing reached PapSMS
    assert exactly(UpstreamUnavailable, info.value)
    with pytest.raises(UpstreamUnavailable):
        await route.status("1")
    assert len(budget.acquired) == 1 + 2  # the purchase once, the status twice


async def test_the_key_never_leaks(
    fake: FakePapSMS, route: PapSMSRoute, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"success": False, "message": f"Unknown thing for Bearer {fake.api_key}"}
    fake.fail_next("/balance", echo, 500, times=10)
    with caplog.at_level(logging.DEBUG), pytest.raises(UpstreamUnavailable) as info:
        await route.balance()
    assert fake.api_key not in str(info.value) and "***" in str(info.value)
    assert fake.api_key not in caplog.text
    assert "retry 3" in caplog.text
