"""The SpotSMS client, parsers and route, on the doc's exact strings and against the fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shop.countries import resolve
from shop.providers.base import (
    Activation,
    ActivationStatus,
    BadKey,
    BadStatus,
    CountryRef,
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
from shop.providers.spotsms import (
    DEFAULT_BASE_URL,
    ActivationRef,
    SpotCountry,
    SpotService,
    SpotSMSClient,
    SpotSMSRoute,
    balance_from,
    cancel_from,
    code_in,
    countries_from,
    number_from,
    parse_envelope,
    services_from,
    sms_from,
)
from tests.fakes.spotsms import FakeSpotSMS

KEY = "spot-secret-key-123"

# Verbatim from the doc.
DOC_SERVICES = """{
"code": 200,
"data": [
{
"id": "0003",
"name": "Microsoft",
"price": "0.0882",
"operators": [{"pid": "0003", "price": "0.0882"}]
}
]
}"""
DOC_COUNTRIES = """{
"code": 200,
"data": [
{
"code": "us",
"name": "United States",
"count": 150,
"flag": "https://flagcdn.com/w80/us.png"
}
]
}"""
DOC_NUMBER = """{
"code": 200,
"data": "+12025551234",
"rsId": "activation_id_here",
"pidUsed": "0003"
}"""
DOC_SMS = """{
"code": 200,
"data": "123456"
}"""
DOC_WAITING = """{
"code": 404,
"msg": "No SMS yet"
}"""
DOC_BALANCE = """{
"code": 200,
"balance": "49.95"
}"""


def env(body: str, http_status: int = 200) -> dict[str, Any]:
    return parse_envelope(body, http_status)


# ---------------------------------------------------------------------------------- parsing


def test_doc_services() -> None:
    assert services_from(env(DOC_SERVICES)) == [
        SpotService("0003", "Microsoft", Decimal("0.0882"))
    ]


def test_doc_countries() -> None:
    assert countries_from(env(DOC_COUNTRIES)) == [SpotCountry("us", "United States", 150)]


def test_doc_number() -> None:
    activation = number_from(env(DOC_NUMBER), "0003")
    assert activation == Activation("activation_id_here|12025551234|0003", "12025551234")
    ref = ActivationRef.decode(activation.activation_id)
    assert ref == ActivationRef("activation_id_here", "12025551234", "0003")


def test_doc_sms_and_waiting() -> None:
    assert sms_from(env(DOC_SMS)) == ActivationStatus(StatusKind.CODE, code="123456")
    assert sms_from(env(DOC_WAITING)) == ActivationStatus(StatusKind.WAITING)


def test_doc_balance() -> None:
    balance = balance_from(env(DOC_BALANCE))
    assert balance == Decimal("49.95") and str(balance) == "49.95"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"code": 401, "msg": "Invalid API key"}', BadKey),
        ('{"code": 402, "msg": "Insufficient balance"}', UpstreamNoBalance),
        ('{"code": 500, "msg": "Server error"}', UpstreamUnavailable),
        ('{"code": "500"}', UpstreamUnavailable),
        ('{"code": 418, "msg": "teapot"}', UpstreamUnavailable),  # not in the doc
        ('{"code": 429, "msg": "Too many requests"}', RateLimited),
        ('{"code": true}', UpstreamUnavailable),
        ('{"code": "abc"}', UpstreamUnavailable),
        ('{"msg": "no code"}', UpstreamUnavailable),
        ('[{"code": 200}]', UpstreamUnavailable),
        ("<html><body>502 Bad Gateway</body></html>", UpstreamUnavailable),
        ("", UpstreamUnavailable),
        ("OK", UpstreamUnavailable),
    ],
)
@pytest.mark.parametrize("http_status", [200, 400, 401, 500, 502])
def test_envelope_errors_any_status(
    body: str, error: type[ProviderError], http_status: int
) -> None:
    with pytest.raises(error) as info:
        parse_envelope(body, http_status)
    assert type(info.value) is error


@pytest.mark.parametrize("http_status", [200, 404, 500])
def test_the_body_decides_before_the_status(http_status: int) -> None:
    assert parse_envelope(DOC_BALANCE, http_status)["code"] == 200
    assert parse_envelope(DOC_WAITING, http_status)["code"] == 404
    assert parse_envelope('{"code": "200", "balance": "1"}', http_status)["code"] == 200


def test_http_429_without_json_is_rate_limited() -> None:
    with pytest.raises(RateLimited):
        parse_envelope("Too Many Requests", 429)
    with pytest.raises(RateLimited):
        parse_envelope("<html>slow down</html>", 429)


def test_msg_only_reaches_the_log_detail() -> None:
    with pytest.raises(BadKey) as info:
        parse_envelope('{"code": 401, "msg": "Key abc disabled by admin"}', 401)
    assert "Key abc disabled by admin" in str(info.value)
    assert "abc" not in info.value.user_message
    assert info.value.user_message == BadKey.user_message


def test_404_per_action() -> None:
    not_found = env('{"code": 404, "msg": "Resource not found"}')
    with pytest.raises(NoNumbers):
        countries_from(not_found)
    with pytest.raises(NoNumbers):
        number_from(env('{"code": 404, "msg": "No numbers available"}'), "0948")
    assert sms_from(not_found) == ActivationStatus(StatusKind.WAITING)
    with pytest.raises(NoActivation):
        cancel_from(not_found)
    with pytest.raises(UpstreamUnavailable):
        services_from(not_found)
    with pytest.raises(UpstreamUnavailable):
        balance_from(not_found)


def test_cancel_answers() -> None:
    cancel_from(env('{"code": 200}'))
    cancel_from(env('{"code": 200, "msg": "Activation cancelled"}'))


def test_services_skip_malformed_entries() -> None:
    body = json.dumps(
        {
            "code": 200,
            "data": [
                {"id": "0948", "name": "WhatsApp", "price": "0.0882"},
                {"id": "0100", "price": 0.15},
                {"id": "", "name": "Nothing", "price": "1"},
                {"id": "0200", "name": "No price"},
                {"id": "0300", "name": "Bad price", "price": "abc"},
                {"id": "0400", "name": "Negative", "price": "-1"},
                "0500",
            ],
        }
    )
    assert services_from(env(body)) == [
        SpotService("0948", "WhatsApp", Decimal("0.0882")),
        SpotService("0100", "0100", Decimal("0.15")),
    ]
    with pytest.raises(UpstreamUnavailable):
        services_from(env('{"code": 200, "data": {}}'))


def test_price_is_exact() -> None:
    [service] = services_from(env('{"code": 200, "data": [{"id": "1", "price": 0.1}]}'))
    assert str(service.price) == "0.1"


def test_countries_lenient_fields() -> None:
    body = json.dumps(
        {
            "code": 200,
            "data": [
                {"code": "TR", "name": "Turkey", "count": "80"},
                {"code": "gb", "count": -3},
                {"code": "de", "name": "Germany"},
                {"name": "No code", "count": 5},
            ],
        }
    )
    assert countries_from(env(body)) == [
        SpotCountry("tr", "Turkey", 80),
        SpotCountry("gb", "GB", 0),
        SpotCountry("de", "Germany", 0),
    ]
    assert countries_from(env('{"code": 200, "data": []}')) == []
    with pytest.raises(UpstreamUnavailable):
        countries_from(env('{"code": 200}'))


@pytest.mark.parametrize(
    "body",
    [
        '{"code": 200, "rsId": "r1", "pidUsed": "0003"}',
        '{"code": 200, "data": "", "rsId": "r1"}',
        '{"code": 200, "data": "+12025551234"}',
        '{"code": 200, "data": "+12025551234", "rsId": ""}',
        '{"code": 200, "data": "+12025551234", "rsId": "r1", "pidUsed": "00|03"}',
    ],
)
def test_a_success_we_cannot_follow_is_an_unknown_outcome(body: str) -> None:
    with pytest.raises(PurchaseOutcomeUnknown):
        number_from(env(body), "0003")


def test_number_defaults_and_formats() -> None:
    body = '{"code": 200, "data": "+44 7700 900123", "rsId": 98765}'
    activation = number_from(env(body), "0948")
    assert activation == Activation("98765|447700900123|0948", "447700900123")


@pytest.mark.parametrize(
    ("rs_id", "phone", "pid"),
    [
        ("activation_id_here", "12025551234", "0003"),
        ("a|b|c", "905551234567", "0948"),  # an rsId may hold the separator
        ("7301001", "1", "x"),
    ],
)
def test_activation_id_round_trip(rs_id: str, phone: str, pid: str) -> None:
    encoded = ActivationRef(rs_id, phone, pid).encode()
    assert ActivationRef.decode(encoded) == ActivationRef(rs_id, phone, pid)


@pytest.mark.parametrize(
    "activation_id",
    ["", "50292409", "rs1|12025551234", "|12025551234|0003", "rs1||0003", "rs1|+1202|0003"],
)
def test_malformed_activation_ids(activation_id: str) -> None:
    with pytest.raises(NoActivation):
        ActivationRef.decode(activation_id)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('"123456"', ActivationStatus(StatusKind.CODE, code="123456")),
        ("123456", ActivationStatus(StatusKind.CODE, code="123456")),
        ('" 0042 "', ActivationStatus(StatusKind.CODE, code="0042")),
        ('"G-123456"', ActivationStatus(StatusKind.CODE, code="G-123456")),
        (
            '"Your WhatsApp code is 482913. Do not share it."',
            ActivationStatus(
                StatusKind.CODE,
                code="482913",
                text="Your WhatsApp code is 482913. Do not share it.",
            ),
        ),
        (
            '"Your WhatsApp code: 654-321 (ref 99887766)"',
            ActivationStatus(
                StatusKind.CODE, code="654321", text="Your WhatsApp code: 654-321 (ref 99887766)"
            ),
        ),
        (
            '"Telegram code 12345 from +905551234567"',
            ActivationStatus(
                StatusKind.CODE, code="12345", text="Telegram code 12345 from +905551234567"
            ),
        ),
        (
            '"Welcome to Microsoft, no code today"',
            ActivationStatus(
                StatusKind.CODE,
                code="Welcome to Microsoft, no code today",
                text="Welcome to Microsoft, no code today",
            ),
        ),
        ('""', ActivationStatus(StatusKind.WAITING)),
        ("null", ActivationStatus(StatusKind.WAITING)),
    ],
)
def test_sms_data(data: str, expected: ActivationStatus) -> None:
    assert sms_from(env(f'{{"code": 200, "data": {data}}}')) == expected


def test_code_in_text() -> None:
    assert code_in("code 123 then 4567") == "4567"
    assert code_in("123456789 is too long, 2468 is not") == "2468"
    assert code_in("123 456 is yours") == "123456"
    assert code_in("nothing") == "nothing"


# ---------------------------------------------------------------------------------- client


Responder = Callable[[httpx.Request], httpx.Response]


def mock_client(
    handler: Responder, seen: list[httpx.Request] | None = None
) -> tuple[httpx.AsyncClient, SpotSMSClient]:
    def record(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return http, SpotSMSClient(http, "https://spot.test/api-data.php", KEY, retry_delays=(0, 0))


def raising(exc: Exception) -> Responder:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def test_client_needs_a_key() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValueError):
            SpotSMSClient(http)


async def test_client_defaults_to_the_doc_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=DOC_BALANCE)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = SpotSMSClient(http, api_key=KEY, budget=RequestBudget(60))
        assert await client.balance() == Decimal("49.95")
    assert DEFAULT_BASE_URL == "https://spotsms.com/api-data.php"
    assert str(seen[0].url).startswith("https://spotsms.com/api-data.php?action=balance")


async def test_query_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=DOC_NUMBER)

    http, client = mock_client(handler, seen)
    async with http:
        activation = await client.get_number("0948", "tr")
    [request] = seen
    assert request.method == "GET"
    assert request.url.path == "/api-data.php"
    assert dict(request.url.params) == {
        "action": "getNumber",
        "pid": "0948",
        "cuy": "tr",
        "num": "1",
        "apikey": KEY,
    }
    assert activation.phone == "12025551234"


async def test_get_msg_sends_all_three() -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(lambda r: httpx.Response(200, text=DOC_WAITING), seen)
    async with http:
        status = await client.get_message(ActivationRef("a|b", "905551234567", "0101"))
    assert status.kind is StatusKind.WAITING
    params = dict(seen[0].url.params)
    assert params["pn"] == "+905551234567"
    assert (params["pid"], params["rsid"], params["action"]) == ("0101", "a|b", "getMsg")
    assert "pn=%2B905551234567" in str(seen[0].url)  # as in the doc's cURL example


async def test_connect_error_on_purchase_is_plain_unavailable() -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(raising(httpx.ConnectError("refused")), seen)
    async with http:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.get_number("0948", "us")
    assert not isinstance(info.value, PurchaseOutcomeUnknown)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.WriteError("w")],
)
async def test_purchase_sent_without_answer_is_unknown(exc: Exception) -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(raising(exc), seen)
    async with http:
        with pytest.raises(PurchaseOutcomeUnknown) as info:
            await client.get_number("0948", "us")
    assert len(seen) == 1
    assert KEY not in str(info.value)
    assert info.value.__context__ is None and info.value.__cause__ is None


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text='{"code": 500, "msg": "Server error"}'),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(429, text="slow down"),
    ],
)
async def test_purchase_is_never_retried(answer: httpx.Response) -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(lambda r: answer, seen)
    async with http:
        with pytest.raises(PurchaseOutcomeUnknown):  # none of them proves it failed
            await client.get_number("0948", "us")
    assert len(seen) == 1


async def test_reads_are_retried_then_succeed() -> None:
    answers = [
        httpx.Response(500, text='{"code": 500, "msg": "Server error"}'),
        httpx.Response(429, text="Too Many Requests"),
        httpx.Response(200, text=DOC_BALANCE),
    ]
    seen: list[httpx.Request] = []
    http, client = mock_client(lambda r: answers[len(seen) - 1], seen)
    async with http:
        assert await client.balance() == Decimal("49.95")
    assert len(seen) == 3


async def test_reads_give_up_after_their_retries() -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(raising(httpx.ReadTimeout("slow")), seen)
    async with http:
        with pytest.raises(UpstreamUnavailable) as info:
            await client.services(Priority.BACKGROUND)
    assert not isinstance(info.value, PurchaseOutcomeUnknown)
    assert len(seen) == 3
    assert KEY not in str(info.value)


@pytest.mark.parametrize("body", ['{"code": 401}', '{"code": 402}', DOC_WAITING])
async def test_reads_do_not_retry_answers(body: str) -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(lambda r: httpx.Response(200, text=body), seen)
    async with http:
        with pytest.raises(ProviderError):
            await client.balance()
    assert len(seen) == 1


async def test_polls_and_cancels_are_not_retried() -> None:
    seen: list[httpx.Request] = []
    http, client = mock_client(lambda r: httpx.Response(503, text="busy"), seen)
    async with http:
        with pytest.raises(UpstreamUnavailable):
            await client.get_message(ActivationRef("r", "1", "p"))
        with pytest.raises(UpstreamUnavailable):
            await client.cancel("r")
    assert len(seen) == 2


# ---------------------------------------------------------------------------------- route


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def spot() -> AsyncIterator[FakeSpotSMS]:
    async with FakeSpotSMS() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(spot: FakeSpotSMS, http: httpx.AsyncClient) -> SpotSMSClient:
    return SpotSMSClient(
        http, spot.base_url, spot.api_key, RequestBudget(60000), retry_delays=(0, 0)
    )


@pytest.fixture
def route(client: SpotSMSClient, clock: Clock) -> SpotSMSRoute:
    return SpotSMSRoute(client, Decimal("1600"), clock=clock)


US = CountryRef("us", "US")
TR = CountryRef("tr", "TR")
GB = CountryRef("gb", "GB")


def test_route_attributes(route: SpotSMSRoute) -> None:
    typed: Route = route  # the protocol, checked by mypy
    assert (typed.key, typed.title, typed.account, typed.currency) == (
        "spotsms",
        "SpotSMS",
        "spotsms",
        "USD",
    )
    assert typed.rate == Decimal("1600")
    assert not (typed.can_request_another or typed.can_finish or typed.is_sandbox)


async def test_services_and_balance(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    assert await route.services() == [
        UpstreamService("0948", "WhatsApp"),
        UpstreamService("0003", "Microsoft"),
        UpstreamService("0100", "Telegram"),
    ]
    assert await route.balance() == Decimal("49.95")


async def test_countries_cover_every_offer(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    before = await route.countries()
    assert spot.requests == []  # no request: ISO codes are known without asking
    by_id = {c.id: c for c in before}
    assert by_id["us"] == UpstreamCountry("us", "United States", "US")
    assert by_id["tr"].iso == "TR" and by_id["xk"].iso == "XK"
    for service in ("0948", "0003", "0100"):
        for offer in await route.offers(service, Priority.INTERACTIVE):
            assert offer.country_id in by_id
    # The catalog maps countries by name: each name must resolve to the id's own country.
    for country in before:
        assert resolve(country.name).code == country.iso


async def test_upstream_names_and_other_codes(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    spot.countries["0948"] = [
        {"code": "tr", "name": "Turkey", "count": 3, "flag": ""},
        {"code": "us", "name": "USA", "count": 2, "flag": ""},
        {"code": "uk", "name": "United Kingdom", "count": 1, "flag": ""},
        {"code": "gb", "name": "Nowhere Land", "count": 1, "flag": ""},
    ]
    offers = await route.offers("0948", Priority.INTERACTIVE)
    assert [o.country_id for o in offers] == ["tr", "us", "uk", "gb"]
    by_id = {c.id: c for c in await route.countries()}
    assert by_id["tr"] == UpstreamCountry("tr", "Turkey", "TR")
    assert by_id["us"] == UpstreamCountry("us", "USA", "US")
    # A non-ISO code is known once seen, and resolves by its name.
    assert by_id["uk"] == UpstreamCountry("uk", "United Kingdom", None)
    # A name that would map elsewhere is replaced so the catalog maps the id right.
    assert by_id["gb"].iso == "GB" and resolve(by_id["gb"].name).code == "GB"


async def test_non_iso_code_replaces_its_iso_twin(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    spot.countries["0003"] = [{"code": "uk", "name": "United Kingdom", "count": 4, "flag": ""}]
    await route.offers("0003", Priority.INTERACTIVE)
    ids = [c.id for c in await route.countries()]
    assert "uk" in ids and "gb" not in ids
    assert ids == sorted(ids) and len(ids) == len(set(ids))


async def test_offers(route: SpotSMSRoute) -> None:
    assert await route.offers("0948", Priority.INTERACTIVE) == [
        UpstreamOffer("us", Decimal("0.0882"), 150),
        UpstreamOffer("tr", Decimal("0.0882"), 80),
        UpstreamOffer("gb", Decimal("0.0882"), 0),
    ]
    assert await route.offers("0100", Priority.BACKGROUND) == [
        UpstreamOffer("tr", Decimal("0.1500"), 12),
        UpstreamOffer("gb", Decimal("0.1500"), 30),
    ]


async def test_offers_cache_prices_for_ten_minutes(
    route: SpotSMSRoute, spot: FakeSpotSMS, clock: Clock
) -> None:
    await route.offers("0948", Priority.INTERACTIVE)
    spot.services[0]["price"] = "0.1000"
    clock.now += 599
    cached = await route.offers("0948", Priority.INTERACTIVE)
    assert cached[0].cost == Decimal("0.0882")
    assert spot.count("services") == 1 and spot.count("countries") == 2
    clock.now += 1
    fresh = await route.offers("0948", Priority.INTERACTIVE)
    assert fresh[0].cost == Decimal("0.1000")
    assert spot.count("services") == 2


async def test_services_refresh_the_price_cache(
    route: SpotSMSRoute, spot: FakeSpotSMS, clock: Clock
) -> None:
    await route.services()
    await route.offers("0003", Priority.INTERACTIVE)
    assert spot.count("services") == 1


async def test_a_new_service_is_fetched_at_once(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    await route.offers("0948", Priority.INTERACTIVE)
    spot.services.append({"id": "0777", "name": "Viber", "price": "0.05", "operators": []})
    spot.countries["0777"] = [{"code": "us", "name": "United States", "count": 9, "flag": ""}]
    assert await route.offers("0777", Priority.INTERACTIVE) == [
        UpstreamOffer("us", Decimal("0.05"), 9)
    ]


async def test_offers_for_gone_or_empty_services(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    assert await route.offers("9999", Priority.INTERACTIVE) == []
    assert spot.count("countries") == 0
    spot.countries["0003"] = []
    assert await route.offers("0003", Priority.INTERACTIVE) == []


async def test_price_is_always_fresh(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    await route.offers("0948", Priority.INTERACTIVE)
    spot.services[0]["price"] = "0.0990"
    spot.countries["0948"][1]["count"] = 7
    assert await route.price("0948", TR) == UpstreamOffer("tr", Decimal("0.0990"), 7)
    assert spot.count("services") == 2
    assert await route.price("0948", GB) == UpstreamOffer("gb", Decimal("0.0990"), 0)
    assert await route.price("0948", CountryRef("de", "DE")) is None
    assert await route.price("9999", US) is None
    spot.countries["0003"] = []
    assert await route.price("0003", US) is None


async def test_buy_poll_code_round_trip(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    activation = await route.buy("0948", US, ref="order-1", max_cost=Decimal("0.09"))
    [stored] = spot.activations.values()
    assert activation.phone == stored.phone.lstrip("+")
    assert activation.activation_id == f"{stored.rs_id}|{activation.phone}|0948"
    request = spot.requests[-1]
    assert request.params == {"action": "getNumber", "pid": "0948", "cuy": "us", "num": "1"}

    assert await route.status(activation.activation_id) == ActivationStatus(StatusKind.WAITING)
    spot.deliver_code(stored.rs_id, "Your WhatsApp code is 482-913")
    assert await route.status(activation.activation_id) == ActivationStatus(
        StatusKind.CODE, code="482913", text="Your WhatsApp code is 482-913"
    )
    poll = spot.requests[-1].params
    assert poll["pn"] == stored.phone and poll["rsid"] == stored.rs_id and poll["pid"] == "0948"


async def test_status_uses_the_operator_pid_after_a_restart(
    client: SpotSMSClient, spot: FakeSpotSMS, clock: Clock
) -> None:
    first = SpotSMSRoute(client, Decimal(1), clock=clock)
    activation = await first.buy("0100", TR, ref="r")
    assert activation.activation_id.endswith("|0101")
    rs_id = next(iter(spot.activations))
    spot.deliver_code(rs_id, "77889")
    restarted = SpotSMSRoute(client, Decimal(1), clock=clock)  # no memory carried over
    status = await restarted.status(activation.activation_id)
    assert status == ActivationStatus(StatusKind.CODE, code="77889")
    assert spot.requests[-1].params["pid"] == "0101"


async def test_buy_refusals(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    with pytest.raises(NoNumbers):
        await route.buy("0948", GB, ref="r")
    with pytest.raises(NoNumbers):
        await route.buy("9999", US, ref="r")
    spot.balance = Decimal("0.01")
    with pytest.raises(UpstreamNoBalance):
        await route.buy("0948", US, ref="r")
    assert spot.activations == {}


async def test_bad_key(http: httpx.AsyncClient, spot: FakeSpotSMS) -> None:
    wrong = SpotSMSRoute(SpotSMSClient(http, spot.base_url, "wrong-key"), Decimal(1))
    with pytest.raises(BadKey):
        await wrong.services()
    with pytest.raises(BadKey):
        await wrong.buy("0948", US, ref="r")
    assert spot.count("services") == 1  # a 401 is not retried


async def test_timeout_on_get_number_is_an_unknown_outcome(spot: FakeSpotSMS) -> None:
    spot.delay_next("getNumber", 0.5)
    async with httpx.AsyncClient(timeout=0.05) as impatient:
        route = SpotSMSRoute(SpotSMSClient(impatient, spot.base_url, spot.api_key), Decimal(1))
        with pytest.raises(PurchaseOutcomeUnknown) as info:
            await route.buy("0948", US, ref="r")
    assert spot.count("getNumber") == 1
    assert spot.api_key not in str(info.value)
    await spot.wait_idle()
    assert len(spot.activations) == 1  # the number was bought after all


async def test_unreachable_upstream(http: httpx.AsyncClient) -> None:
    async with FakeSpotSMS() as gone:
        url = gone.base_url
    route = SpotSMSRoute(SpotSMSClient(http, url, "k", retry_delays=(0, 0)), Decimal(1))
    with pytest.raises(UpstreamUnavailable) as info:
        await route.buy("0948", US, ref="r")
    assert not isinstance(info.value, PurchaseOutcomeUnknown)


@pytest.mark.parametrize(
    ("body", "http_status", "error"),
    [
        # Only the doc's refusals prove that no number was bought.
        ({"code": 500, "msg": "Server error"}, 200, PurchaseOutcomeUnknown),
        ({"code": 500, "msg": "Server error"}, 500, PurchaseOutcomeUnknown),
        ("<html><body>502 Bad Gateway</body></html>", 502, PurchaseOutcomeUnknown),
        ("Service Unavailable", 503, PurchaseOutcomeUnknown),
        ({"code": 401, "msg": "Invalid API key"}, 401, BadKey),
        ({"code": 402, "msg": "Insufficient balance"}, 402, UpstreamNoBalance),
        ({"code": 404, "msg": "No numbers available"}, 404, NoNumbers),
        ({"code": 418, "msg": "?"}, 200, PurchaseOutcomeUnknown),
        ({"code": 429, "msg": "Too many requests"}, 429, PurchaseOutcomeUnknown),
        ("rate limited", 429, PurchaseOutcomeUnknown),
    ],
)
async def test_get_number_code_mapping(
    route: SpotSMSRoute,
    spot: FakeSpotSMS,
    body: dict[str, Any] | str,
    http_status: int,
    error: type[ProviderError],
) -> None:
    spot.fail_next("getNumber", body, http_status)
    with pytest.raises(error) as info:
        await route.buy("0948", US, ref="r")
    assert type(info.value) is error
    assert spot.count("getNumber") == 1


async def test_status_mapping(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    activation = await route.buy("0948", US, ref="r")
    spot.fail_next("getMsg", {"code": 500, "msg": "Server error"})
    with pytest.raises(UpstreamUnavailable):
        await route.status(activation.activation_id)
    spot.fail_next("getMsg", {"code": 401, "msg": "Invalid API key"}, 401)
    with pytest.raises(BadKey):
        await route.status(activation.activation_id)
    spot.fail_next("getMsg", {"code": 200, "data": "4321"}, 500)  # the body decides
    assert (await route.status(activation.activation_id)).code == "4321"
    with pytest.raises(NoActivation):
        await route.status("not-a-spotsms-id")
    assert spot.count("getMsg") == 3


async def test_cancel(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    activation = await route.buy("0948", US, ref="r")
    await route.cancel(activation.activation_id)
    assert spot.balance == Decimal("49.95")
    assert spot.requests[-1].params["rsid"] == next(iter(spot.activations))
    await route.cancel(activation.activation_id)  # again: no error, no second refund
    assert spot.balance == Decimal("49.95")
    # A cancelled number without SMS is still "waiting" to us: the deadline handles it.
    assert await route.status(activation.activation_id) == ActivationStatus(StatusKind.WAITING)


async def test_cancel_mapping(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    with pytest.raises(NoActivation):
        await route.cancel("rs1|12025550000|0948")
    activation = await route.buy("0948", US, ref="r")
    spot.fail_next("cancelRsActivation", {"code": 500, "msg": "Server error"})
    with pytest.raises(UpstreamUnavailable):
        await route.cancel(activation.activation_id)
    spot.fail_next("cancelRsActivation", "<html>oops</html>", 200)
    with pytest.raises(UpstreamUnavailable):
        await route.cancel(activation.activation_id)
    assert spot.count("cancelRsActivation") == 3  # never retried
    spot.deliver_code(next(iter(spot.activations)), "1234")
    with pytest.raises(NoActivation):
        await route.cancel(activation.activation_id)
    with pytest.raises(NoActivation):
        await route.cancel("garbage")


async def test_unsupported_actions(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    activation = await route.buy("0948", US, ref="r")
    with pytest.raises(BadStatus):
        await route.request_another(activation.activation_id)
    with pytest.raises(BadStatus):
        await route.finish(activation.activation_id)
    assert spot.count("getNumber") == len(spot.requests)
    await route.close()


async def test_rate_limited_by_the_fake(http: httpx.AsyncClient) -> None:
    async with FakeSpotSMS(rate_limit=1) as fake:
        client = SpotSMSClient(http, fake.base_url, fake.api_key, retry_delays=(0, 0))
        route = SpotSMSRoute(client, Decimal(1))
        assert await route.balance() == Decimal("49.95")
        with pytest.raises(RateLimited):
            await route.status("rs1|12025550000|0948")
        with pytest.raises(RateLimited):
            await route.balance()  # retried twice, still limited
        assert fake.rejected_429 == 4


async def test_balance_answers(route: SpotSMSRoute, spot: FakeSpotSMS) -> None:
    spot.fail_next("balance", {"code": 200, "balance": 12.5})
    assert await route.balance() == Decimal("12.5")
    spot.fail_next("balance", {"code": 200})
    with pytest.raises(UpstreamUnavailable):
        await route.balance()
    assert spot.count("balance") == 2  # a readable answer without a balance is not retried
