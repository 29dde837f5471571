"""SMSPool: the parsers on the doc's exact strings, the client's HTTP, and the route against the
fake over real HTTP (batch polling, cancels, and purchases whose answer was lost)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shop.providers import smspool
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
from shop.providers.smspool import SMSPoolClient, SMSPoolRoute
from tests.fakes.smspool import FakeSMSPool

US = CountryRef("1", "US")
GB = CountryRef("2", "GB")
WHATSAPP = "1012"

# ---------------------------------------------------------------------- the doc's strings

BALANCE = '{"balance":"1.00"}'
COUNTRIES = '[{"ID":"1","name":"United States","region":"Americas"}]'
SERVICES = '[{"ID":"1","name":"1688"},{"ID":"2","name":"1Q"}]'
ACTIVE = (
    '[{"timestamp":"2022-05-24 21:20:07","order_code":"ABCDEFGH","phonenumber":"123456789",'
    '"code":"0","full_code":"0","short_name":"US","service":"Service","status":"pending",'
    '"expiry":"1653420607"}]'
)
PRICE = '{"price":"0.75"}'
FILL_IN = '{"success":0,"message":"Fill in all params!"}'
NO_PRICE = '{"success":0,"message":"No price was found for this query.","price":0}'
SUGGESTED = (
    '[{"pool":1,"country_id":1,"name":"United States","short_name":"US","price":"0.31"},'
    '{"pool":7,"country_id":2,"name":"United Kingdom","short_name":"GB","price":"0.10"}]'
)
PURCHASED = (
    '{"success":1,"number":"123456789","order_id":"ABCDEFG","country":"United States",'
    '"service":"Service","pool":5,"expires_in":599,"message":""}'
)
NOT_AVAILABLE = (
    '{"success":0,"message":"This country is currently not available for this service, '
    'please try the following countries: "}'
)
INSUFFICIENT = (
    '{"success":0,"message":"Insufficient balance, the price is: 0.85 while you only have: 0.00"}'
)
MISSING_PARAMS = (
    '{"success":0,"errors":[{"message":"Missing or invalid param: country"},'
    '{"message":"Missing or invalid param: service"},{"message":"Missing or invalid param: '
    'key","description":"Your API key which can be found on your settings page at '
    '/my/settings"}]}'
)
SERVICE_NOT_HERE = '{"success":0,"message":"This service is not available for this country."}'
HORRIBLY = '{"success":0,"message":"Something went horribly wrong, try again please!"}'
NOT_FOUND = '{"success":0,"message":"We could not find this order!"}'
RESENT = '{"success":1,"message":"Number has been requested again","resend":0}'
NOT_RESENT = (
    '{"success":0,"message":"Phonenumber could not be requested again, try later again.",'
    '"resend":0}'
)


def test_balance_countries_services() -> None:
    assert smspool.parse_balance(BALANCE) == Decimal("1.00")
    assert smspool.parse_balance('{"balance": 12.5}') == Decimal("12.5")
    assert smspool.parse_countries(COUNTRIES) == [UpstreamCountry("1", "United States", None)]
    assert smspool.parse_countries(
        '[{"ID":"2","name":"United Kingdom","region":"Europe","short_name":"GB"}]'
    ) == [UpstreamCountry("2", "United Kingdom", "GB")]
    assert smspool.parse_services(SERVICES) == [
        UpstreamService("1", "1688"),
        UpstreamService("2", "1Q"),
    ]


def test_price() -> None:
    assert smspool.parse_price(PRICE) == Decimal("0.75")
    assert smspool.parse_price('{"price": 0.75}') == Decimal("0.75")
    assert smspool.parse_price(NO_PRICE) is None
    with pytest.raises(UpstreamUnavailable):
        smspool.parse_price(FILL_IN)


def test_suggested_countries() -> None:
    assert smspool.parse_suggested(SUGGESTED) == [
        UpstreamOffer("1", Decimal("0.31"), smspool.LISTED_STOCK),
        UpstreamOffer("2", Decimal("0.10"), smspool.LISTED_STOCK),
    ]
    two_pools = '[{"pool":1,"country_id":1,"price":"0.31"},{"pool":2,"country_id":1,"price":0.2}]'
    assert smspool.parse_suggested(two_pools) == [UpstreamOffer("1", Decimal("0.2"), 100)]
    assert smspool.parse_suggested("[]") == []


def test_purchase() -> None:
    assert smspool.parse_purchase(PURCHASED) == smspool.Purchase("ABCDEFG", "123456789", 599)
    assert smspool.parse_purchase(
        '{"success":1,"number":14155550100,"order_id":"XYZ","expires_in":"600"}'
    ) == smspool.Purchase("XYZ", "14155550100", 600)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (NOT_AVAILABLE, NoNumbers),
        (INSUFFICIENT, UpstreamNoBalance),
        (MISSING_PARAMS, BadKey),
        (SERVICE_NOT_HERE, NoNumbers),
        (HORRIBLY, UpstreamUnavailable),
        ('{"success":0,"errors":[{"message":"Missing or invalid param: service"}]}', BadService),
        ('{"success":0,"errors":[{"message":"Missing or invalid param: country"}]}', NoNumbers),
        # Nothing proves these purchases failed: SMSPool may have sold a number.
        ('{"success":0,"message":"Something brand new"}', PurchaseOutcomeUnknown),
        ('{"success":1,"message":""}', PurchaseOutcomeUnknown),
        ("<html><body>Bad Gateway</body></html>", PurchaseOutcomeUnknown),
        ("", PurchaseOutcomeUnknown),
    ],
)
def test_purchase_errors(body: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        smspool.parse_purchase(body)
    assert type(info.value) is error


def test_html_message_on_4xx_is_stripped() -> None:
    body = '{"success":0,"errors":[{"message":"<b>Missing</b> or invalid param: key"}]}'
    with pytest.raises(BadKey) as info:
        smspool.parse_balance(body, 401)
    assert "<b>" not in str(info.value) and "Missing or invalid param: key" in str(info.value)
    with pytest.raises(UpstreamUnavailable) as unknown:
        smspool.parse_balance('{"message":"<p>Forbidden &amp; <i>gone</i></p>"}', 403)
    assert "Forbidden & gone" in str(unknown.value)


def test_status_codes_after_the_body() -> None:
    with pytest.raises(RateLimited):
        smspool.parse_balance('{"success":0,"message":"slow down"}', 429)
    with pytest.raises(RateLimited):
        smspool.parse_balance("<html>429</html>", 429)
    with pytest.raises(UpstreamNoBalance):  # the body decides first
        smspool.parse_purchase(INSUFFICIENT, 500)
    with pytest.raises(UpstreamUnavailable):
        smspool.parse_balance("<html>oops</html>", 500)
    # A proxy that gave up on a purchase: SMSPool may have gone on.
    with pytest.raises(PurchaseOutcomeUnknown):
        smspool.parse_purchase("<html>504 Gateway Time-out</html>", 504)
    with pytest.raises(PurchaseOutcomeUnknown):
        smspool.parse_purchase("<html>503</html>", 503)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"status":1,"message":"pending","resend":0,"expiration":1669382268}',
            ActivationStatus(StatusKind.WAITING),
        ),
        (
            '{"status":2,"message":"expired","resend":0,"expiration":1669382268}',
            ActivationStatus(StatusKind.CANCELLED),
        ),
        (
            '{"status":3,"sms":"00000","full_sms":"full SMS","expiration":1669382268}',
            ActivationStatus(StatusKind.CODE, "00000", "full SMS"),
        ),
        (
            '{"status":4,"message":"resend","resend":0,"expiration":1669382268}',
            ActivationStatus(StatusKind.WAITING_RETRY, "last"),
        ),
        (
            '{"status":5,"message":"cancelled","resend":0,"expiration":1669382268}',
            ActivationStatus(StatusKind.CANCELLED),
        ),
        (
            '{"status":6,"message":"refunded","resend":0,"expiration":1669382268}',
            ActivationStatus(StatusKind.CANCELLED),
        ),
    ],
)
def test_check(body: str, expected: ActivationStatus) -> None:
    check = smspool.parse_check(body)
    assert check.expiration == 1669382268
    assert smspool.check_status(check, last_code="last") == expected


def test_check_errors() -> None:
    with pytest.raises(NoActivation):
        smspool.parse_check(NOT_FOUND)
    with pytest.raises(UpstreamUnavailable):
        smspool.parse_check('{"status":9}')


def test_resend_and_cancel() -> None:
    smspool.parse_resend(RESENT)
    with pytest.raises(BadStatus, match="could not be requested again"):
        smspool.parse_resend(NOT_RESENT)
    smspool.parse_cancel('{"success":1}')
    with pytest.raises(EarlyCancelDenied):
        smspool.parse_cancel('{"success":0}')
    with pytest.raises(EarlyCancelDenied):
        smspool.parse_cancel('{"success":0,"message":"You cannot cancel this order yet."}')
    with pytest.raises(NoActivation):
        smspool.parse_cancel(NOT_FOUND)
    with pytest.raises(UpstreamUnavailable):
        smspool.parse_cancel(HORRIBLY)
    with pytest.raises(UpstreamUnavailable):
        smspool.parse_cancel('{"success":0,"message":"down"}', 503)


def test_active() -> None:
    [order] = smspool.parse_active(ACTIVE)
    assert order == smspool.ActiveOrder(
        order_code="ABCDEFGH",
        phonenumber="123456789",
        code="0",
        full_code="0",
        short_name="US",
        service="Service",
        status="pending",
        timestamp="2022-05-24 21:20:07",
        expiry=1653420607,
    )
    assert not order.has_code
    assert smspool.parse_active("[]") == []
    # The doc's sample timestamp is not UTC: read as UTC it falls after its own expiry.
    assert smspool.parse_timestamp(order.timestamp) == 1653420607 - 600 + 7200


# ---------------------------------------------------------------------- the client's HTTP


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> SMSPoolClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return SMSPoolClient(
        http,
        "http://pool.test/",
        api_key="secret-key-0123456789",
        budget=RequestBudget(100_000),
        retry_delays=(0, 0),
    )


def form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode()))


async def test_every_call_is_a_post_form_and_the_key_stays_out_of_urls() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        bodies = {
            "/request/balance": BALANCE,
            "/country/retrieve_all": COUNTRIES,
            "/request/suggested_countries": SUGGESTED,
            "/purchase/sms": PURCHASED,
        }
        return httpx.Response(200, text=bodies[request.url.path])

    client = mock_client(answer)
    assert await client.balance() == Decimal("1.00")
    await client.countries()
    await client.suggested_countries("1012", Priority.INTERACTIVE)
    await client.purchase("1012", "1", max_price=Decimal("0.50"))
    assert {r.method for r in seen} == {"POST"}
    assert all("secret" not in str(r.url) for r in seen)
    assert form(seen[0]) == {"key": "secret-key-0123456789"}
    assert "key" not in form(seen[1]) and form(seen[2]) == {"service": "1012"}
    assert form(seen[3]) == {
        "country": "1",
        "service": "1012",
        "pricing_option": "1",
        "max_price": "0.50",
        "key": "secret-key-0123456789",
    }


async def test_purchase_lost_answer_is_unknown_and_sent_once() -> None:
    calls = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(PurchaseOutcomeUnknown) as info:
        await mock_client(timeout).purchase("1012", "1")
    assert len(calls) == 1
    assert "secret" not in str(info.value)


async def test_purchase_connect_error_is_unavailable() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamUnavailable) as info:
        await mock_client(refused).purchase("1012", "1")
    assert not isinstance(info.value, PurchaseOutcomeUnknown)


async def test_reads_retry_writes_do_not() -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return httpx.Response(200, text=BALANCE)

    client = mock_client(flaky)
    assert await client.balance() == Decimal("1.00")
    assert calls == ["/request/balance"] * 3

    cancels: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        cancels.append(request.url.path)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(UpstreamUnavailable):
        await mock_client(down).cancel("ABCDEFG")
    assert cancels == ["/sms/cancel"]


async def test_the_key_is_redacted_from_error_details() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, text=json.dumps({"success": 0, "message": form(request)["key"]})
        )

    with pytest.raises(UpstreamUnavailable) as info:
        await mock_client(echo).balance()
    assert "secret-key" not in str(info.value)


# ---------------------------------------------------------------------- the route on the fake


@pytest.fixture
async def pool() -> AsyncIterator[FakeSMSPool]:
    async with FakeSMSPool() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


RouteFactory = Callable[..., SMSPoolRoute]


@pytest.fixture
async def make_route(pool: FakeSMSPool, http: httpx.AsyncClient) -> AsyncIterator[RouteFactory]:
    routes: list[SMSPoolRoute] = []

    def make(http_client: httpx.AsyncClient = http, **kwargs: Any) -> SMSPoolRoute:
        client = SMSPoolClient(
            http_client,
            pool.base_url,
            api_key=kwargs.pop("api_key", pool.api_key),
            budget=RequestBudget(100_000),
            retry_delays=(0, 0),
        )
        route = SMSPoolRoute(client, Decimal("1600"), **kwargs)
        routes.append(route)
        return route

    yield make
    for route in routes:
        await route.close()


async def test_route_identity(make_route: RouteFactory) -> None:
    route: Route = make_route()  # mypy checks the protocol here
    assert (route.key, route.title, route.account, route.currency) == (
        "smspool",
        "SMSPool",
        "smspool",
        "USD",
    )
    assert route.can_request_another and not route.can_finish and not route.is_sandbox
    assert route.rate == Decimal("1600")
    with pytest.raises(BadStatus):
        await route.finish("ABCDEFG")


async def test_catalog(make_route: RouteFactory) -> None:
    route = make_route()
    assert await route.balance() == Decimal("100.00")
    services = await route.services()
    assert services[0] == UpstreamService("1012", "WhatsApp")
    countries = await route.countries()
    assert countries[1] == UpstreamCountry("2", "United Kingdom", "GB")
    offers = await route.offers(WHATSAPP, Priority.BACKGROUND)
    assert [(o.country_id, o.cost, o.stock) for o in offers] == [
        ("1", Decimal("0.31"), 100),
        ("2", Decimal("0.10"), 100),
        ("4", Decimal("0.12"), 100),
    ]
    assert await route.price(WHATSAPP, GB) == UpstreamOffer("2", Decimal("0.10"), 100)
    assert await route.price("828", US) is None


async def test_buy(pool: FakeSMSPool, make_route: RouteFactory) -> None:
    route = make_route()
    activation = await route.buy(WHATSAPP, US, ref="41", max_cost=Decimal("0.31"))
    order = pool.orders[activation.activation_id]
    assert activation == Activation(order.order_id, order.number)
    assert activation.phone.isdigit()
    params = pool.requests[-1].params
    assert (params["country"], params["service"], params["max_price"]) == ("1", "1012", "0.31")
    assert params["pricing_option"] == "1" and "ref" not in params
    with pytest.raises(NoNumbers):
        await route.buy(WHATSAPP, US, ref="42", max_cost=Decimal("0.30"))
    with pytest.raises(NoNumbers):
        await route.buy(WHATSAPP, CountryRef("3", "IN"), ref="43")
    pool.balance = Decimal("0.05")
    with pytest.raises(UpstreamNoBalance):
        await route.buy(WHATSAPP, US, ref="44")
    with pytest.raises(BadKey):
        await make_route(api_key="wrong").buy(WHATSAPP, US, ref="45")
    assert pool.count("purchase/sms") == 5


async def test_status_through_an_order_life(pool: FakeSMSPool, make_route: RouteFactory) -> None:
    route = make_route(snapshot_max_age=0.0)
    order_id = (await route.buy(WHATSAPP, US, ref="1")).activation_id
    assert await route.status(order_id) == ActivationStatus(StatusKind.WAITING)
    pool.deliver_code(order_id, "123456", "Your WhatsApp code: 123-456")
    assert await route.status(order_id) == ActivationStatus(
        StatusKind.CODE, "123456", "Your WhatsApp code: 123-456"
    )
    await route.request_another(order_id)
    assert await route.status(order_id) == ActivationStatus(StatusKind.WAITING_RETRY, "123456")
    pool.deliver_code(order_id, "654321")
    status = await route.status(order_id)
    assert (status.kind, status.code) == (StatusKind.CODE, "654321")
    assert pool.count("sms/check") == 0  # all from request/active
    pool.expire(order_id)
    # No longer listed: one sms/check, which still shows the code.
    status = await route.status(order_id)
    assert (status.kind, status.code) == (StatusKind.CODE, "654321")
    assert pool.count("sms/check") == 1


async def test_status_falls_back_to_check(pool: FakeSMSPool, make_route: RouteFactory) -> None:
    route = make_route(snapshot_max_age=0.0)
    gone = pool.place_order()
    pool.expire(gone.order_id)
    assert await route.status(gone.order_id) == ActivationStatus(StatusKind.CANCELLED)
    with pytest.raises(NoActivation):
        await route.status("NOSUCHX")
    # A listed order in a state the doc does not show is asked about.
    odd = pool.place_order()
    row = {"order_code": odd.order_id, "code": "0", "status": "processing", "short_name": "US"}
    pool.fail_next("request/active", [row])
    assert await route.status(odd.order_id) == ActivationStatus(StatusKind.WAITING)
    assert pool.count("sms/check") == 3


async def test_resend_from_check_keeps_the_last_code(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    route = make_route(snapshot_max_age=0.0)
    order_id = (await route.buy(WHATSAPP, US, ref="1")).activation_id
    pool.deliver_code(order_id, "777")
    assert (await route.status(order_id)).code == "777"
    await route.request_another(order_id)
    pool.fail_next("request/active", [])  # not listed: sms/check says 4 without an sms
    assert await route.status(order_id) == ActivationStatus(StatusKind.WAITING_RETRY, "777")


async def test_200_concurrent_polls_make_one_active_call(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    pool.prices[(WHATSAPP, "1")].stock = 500
    pool.balance = Decimal("1000")
    orders = [pool.place_order().order_id for _ in range(200)]
    for order_id in orders[::2]:
        pool.deliver_code(order_id, f"C{order_id}")
    pool.delay_next("request/active", 0.2)  # every caller arrives while the fetch is out
    route = make_route()
    statuses = await asyncio.gather(*(route.status(order_id) for order_id in orders))
    assert pool.count("request/active") == 1
    assert pool.count("sms/check") == 0
    expected = [
        ActivationStatus(StatusKind.CODE, f"C{order_id}", f"Your code is C{order_id}")
        if index % 2 == 0
        else ActivationStatus(StatusKind.WAITING)
        for index, order_id in enumerate(orders)
    ]
    assert statuses == expected
    # A fresh snapshot serves the next callers too (default max age 2 s).
    await route.status(orders[0])
    assert pool.count("request/active") == 1


async def test_a_stale_snapshot_is_fetched_again(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    route = make_route(snapshot_max_age=0.0)
    order = pool.place_order()
    await route.status(order.order_id)
    await route.status(order.order_id)
    assert pool.count("request/active") == 2


async def test_a_failed_fetch_fails_every_caller_then_recovers(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    route = make_route()
    order = pool.place_order()
    pool.fail_next("request/active", "<html>502</html>", http_status=502, times=2)
    pool.delay_next("request/active", 0.1)
    results = await asyncio.gather(
        *(route.status(order.order_id) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(result, UpstreamUnavailable) for result in results)
    assert pool.count("request/active") == 2  # one fetch, retried once
    assert await route.status(order.order_id) == ActivationStatus(StatusKind.WAITING)
    assert pool.count("sms/check") == 0


async def test_cancel(pool: FakeSMSPool, make_route: RouteFactory) -> None:
    route = make_route()
    order_id = (await route.buy(WHATSAPP, US, ref="1")).activation_id
    await route.cancel(order_id)
    assert pool.orders[order_id].status == 5
    assert pool.balance == Decimal("100.00")
    # Already cancelled: SMSPool says {"success":0}; sms/check says 5, so the cancel is done.
    await route.cancel(order_id)
    expired = pool.place_order()
    pool.expire(expired.order_id)
    await route.cancel(expired.order_id)
    with pytest.raises(NoActivation):
        await route.cancel("NOSUCHX")


async def test_cancel_too_early_or_after_a_code(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    route = make_route()
    pool.too_early_cancel_seconds = 120
    order_id = (await route.buy(WHATSAPP, US, ref="1")).activation_id
    with pytest.raises(EarlyCancelDenied):
        await route.cancel(order_id)
    assert pool.orders[order_id].status == 1
    pool.deliver_code(order_id, "999")
    with pytest.raises(BadStatus):
        await route.cancel(order_id)


async def test_request_another_refused(pool: FakeSMSPool, make_route: RouteFactory) -> None:
    route = make_route()
    order_id = (await route.buy(WHATSAPP, US, ref="1")).activation_id
    with pytest.raises(BadStatus, match="could not be requested again"):
        await route.request_another(order_id)
    with pytest.raises(NoActivation):
        await route.request_another("NOSUCHX")


# ---------------------------------------------------------------------- lost purchase answers


@pytest.fixture
async def impatient() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.15) as client:
        yield client


async def test_lost_purchase_is_found_in_the_active_list(
    pool: FakeSMSPool, make_route: RouteFactory, impatient: httpx.AsyncClient
) -> None:
    route = make_route(impatient, reconcile_delays=(0.0, 0.5))
    claimed = await route.buy(WHATSAPP, US, ref="1")  # returned before: never ours again
    older = pool.place_order()  # bought by nobody we know, five minutes ago
    older.created_at -= 300
    older.expires_at -= 300
    other_offer = pool.place_order(WHATSAPP, "2")
    pool.delay_next("purchase/sms", 0.3)  # answers after the client gave up, still buys
    activation = await route.buy(WHATSAPP, US, ref="2")
    assert pool.count("purchase/sms") == 2  # never retried
    new = {o for o in pool.orders} - {claimed.activation_id, older.order_id, other_offer.order_id}
    [order_id] = new
    assert activation == Activation(order_id, pool.orders[order_id].number)
    # A second lost purchase that never lands must not return an order this route returned.
    pool.delay_next("purchase/sms", 5.0)
    with pytest.raises(PurchaseOutcomeUnknown, match="no matching order"):
        await route.buy(WHATSAPP, US, ref="3")


async def test_lost_purchase_uses_learned_timestamps(
    pool: FakeSMSPool, make_route: RouteFactory, impatient: httpx.AsyncClient
) -> None:
    pool.timestamp_utc_offset_hours = -5
    route = make_route(impatient, reconcile_delays=(0.0, 0.5), snapshot_max_age=0.0)
    first = await route.buy(WHATSAPP, US, ref="1")
    await route.status(first.activation_id)
    assert route.timestamp_offset == -5 * 3600
    older = pool.place_order()
    older.created_at -= 300  # its timestamp says five minutes ago; expiry alone would not
    pool.delay_next("purchase/sms", 0.3)
    activation = await route.buy(WHATSAPP, US, ref="2")
    assert activation.activation_id not in (first.activation_id, older.order_id)


async def test_lost_purchase_with_two_candidates_stays_unknown(
    pool: FakeSMSPool, make_route: RouteFactory, impatient: httpx.AsyncClient
) -> None:
    route = make_route(impatient, reconcile_delays=(0.5,))
    stranger = pool.place_order()  # same offer, just now, not ours to know
    pool.delay_next("purchase/sms", 0.3)
    with pytest.raises(PurchaseOutcomeUnknown, match="several orders"):
        await route.buy(WHATSAPP, US, ref="1")
    assert len(pool.orders) == 2 and stranger.order_id in pool.orders
    assert pool.count("purchase/sms") == 1
    # Another lost purchase of the same offer soon after cannot tell those orders from its own.
    pool.expire(stranger.order_id)
    pool.delay_next("purchase/sms", 0.3)
    with pytest.raises(PurchaseOutcomeUnknown, match="earlier lost purchase"):
        await route.buy(WHATSAPP, US, ref="2")
    # A different offer is not affected.
    pool.delay_next("purchase/sms", 0.3)
    activation = await route.buy(WHATSAPP, GB, ref="3")
    assert pool.orders[activation.activation_id].short_name == "GB"


async def test_lost_purchase_not_found_stays_unknown(
    pool: FakeSMSPool, make_route: RouteFactory, impatient: httpx.AsyncClient
) -> None:
    route = make_route(impatient, reconcile_delays=(0.0, 0.1))
    pool.delay_next("purchase/sms", 1.0)
    with pytest.raises(PurchaseOutcomeUnknown, match="no matching order"):
        await route.buy(WHATSAPP, US, ref="1")
    assert pool.count("request/active") == 2
    assert pool.count("purchase/sms") == 1


async def test_concurrent_lost_purchases_of_one_offer_stay_unknown(
    pool: FakeSMSPool, make_route: RouteFactory, impatient: httpx.AsyncClient
) -> None:
    route = make_route(impatient, reconcile_delays=(0.0, 0.5))
    pool.delay_next("purchase/sms", 0.3, times=2)
    results = await asyncio.gather(
        route.buy(WHATSAPP, US, ref="1"), route.buy(WHATSAPP, US, ref="2"), return_exceptions=True
    )
    assert all(isinstance(result, PurchaseOutcomeUnknown) for result in results)


async def test_close_cancels_a_fetch_in_flight(
    pool: FakeSMSPool, make_route: RouteFactory
) -> None:
    route = make_route()
    order = pool.place_order()
    pool.delay_next("request/active", 5.0)
    poll = asyncio.create_task(route.status(order.order_id))
    while pool.count("request/active") == 0:
        await asyncio.sleep(0.01)
    await route.close()
    with pytest.raises(asyncio.CancelledError):
        await poll
