"""SMSPool rentals: the parsers on the doc's exact strings, the error mapping, and the client's
HTTP rules (reads retry; purchase and extend are sent once and a lost answer is "unknown")."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from shop.providers import smspool_rentals as rentals
from shop.providers.base import (
    BadKey,
    ExtendOutcomeUnknown,
    InvalidRentalDays,
    NoActivation,
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    RefundOutcomeUnknown,
    RentalAlreadyRefunded,
    RentalExtendFailed,
    RentalRefundDenied,
    RentalUnavailable,
    UnknownRental,
    UpstreamNoBalance,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget
from shop.providers.smspool import SMSPoolClient
from shop.providers.smspool_rentals import (
    ExtendResult,
    RefundResult,
    RentalMessage,
    RentalOffer,
    RentalPurchase,
    RentalStatus,
    SMSPoolRentals,
)

# ---------------------------------------------------------------------- the doc's strings

RETRIEVE_ALL = (
    r'{"0":{"name":"United States","region":"Americas","pricing":"{\"7\":18,\"14\":25,'
    r'\"30\":30}"}}'
)
FILL_IN = '{"success":0,"message":"Fill in all params! [GET: type, key (optional)]"}'
PURCHASED = (
    '{"success":1, "message": "", "phonenumber": "123456789", "days": 30, '
    '"rental_code":"ABCDEFG", "expiry":"1653758381"}'
)
SERVICE_NOT_AVAILABLE = '{"success":0,"message":"The service you entered is not available!"}'
NO_BALANCE = (
    '{"success":0,"message":"You do not have enough balance, please top up your account with '
    '0.00 dollars in order to purchase this rental."}'
)
GONE_WRONG = '{"success":0,"message":"Something has gone wrong, please try later again."}'
INVALID_DAYS = (
    '{"success":0,"message":"You selected a invalid amount of days! The following days are '
    'available: 7 14 30 "}'
)
MESSAGES = (
    '{"success":1,"messages":{"0":{"ID":6,"sender":null,"message":"Message 1",'
    '"timestamp":"11 May 2022 18:39:54"},"1":{"ID":6,"sender":null,"message":"Message 2",'
    '"timestamp":"11 May 2022 01:11:35"}},"source":"6"}'
)
NO_RENTAL = '{"success":0,"message":"No rental was found!"}'
STATUS = (
    '{"success":1,"status":{"expiry":1654495533,"available":1,"phonenumber":"123456789",'
    '"activeFor":90}}'
)
REFUNDED = '{"success":1,"message":"Your rental has been refunded!"}'
ALREADY_REFUNDED = (
    '{"success":0,"message":"This number could not be refunded as you already have refunded it."}'
)
REFUND_DENIED = (
    '{"success":0,"message":"TYou cannot refund a rental after 12 hours or after receiving one '
    'message."}'
)
EXTENDED = '{"success":1,"message":"Your rental has been succesfully extended!"}'
EXTEND_FAILED = (
    '{"success":0,"message":"Something went wrong on extending your rental, you have NOT been '
    'charged!"}'
)
BAD_KEY = (
    '{"success":0,"errors":[{"message":"<b>Missing</b> or invalid param: key",'
    '"description":"Your API key which can be found on your settings page at /my/settings"}]}'
)


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# ---------------------------------------------------------------------- retrieve_all


def test_offers_on_the_doc_string() -> None:
    [offer] = rentals.parse_offers(RETRIEVE_ALL, extendable=True)
    assert offer == RentalOffer(
        id="0",
        country="United States",
        region="Americas",
        extendable=True,
        pricing={7: Decimal(18), 14: Decimal(25), 30: Decimal(30)},
    )
    assert offer.days == (7, 14, 30)
    assert offer.price(14) == Decimal(25)
    assert offer.price(3) is None
    assert offer.stock is None and offer.iso is None
    [plain] = rentals.parse_offers(RETRIEVE_ALL, extendable=False)
    assert not plain.extendable


def test_offers_other_shapes() -> None:
    # pricing as an object, decimals, stock and short_name where given, days sorted
    body = (
        '{"12":{"name":"United Kingdom","region":"Europe","short_name":"gb","stock":"4",'
        '"pricing":{"30":35.5,"7":"12.25"}}}'
    )
    [offer] = rentals.parse_offers(body, extendable=True)
    assert offer.id == "12" and offer.iso == "GB" and offer.stock == 4
    assert list(offer.pricing.items()) == [(7, Decimal("12.25")), (30, Decimal("35.5"))]
    # a PHP list is keyed by position unless its rows carry an ID
    listed = rentals.parse_offers(
        '[{"name":"A","pricing":"{\\"7\\":1}"},{"ID":9,"name":"B","pricing":{"7":2}}]',
        extendable=False,
    )
    assert [(o.id, o.country) for o in listed] == [("0", "A"), ("9", "B")]
    # nothing for sale
    assert rentals.parse_offers("{}", extendable=True) == []
    assert rentals.parse_offers("[]", extendable=True) == []
    # a row without a usable price table cannot be bought: skipped
    skipped = '{"1":{"name":"X","pricing":"nonsense"},"2":{"name":"Y","pricing":"{\\"0\\":5}"}}'
    assert rentals.parse_offers(skipped, extendable=True) == []


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (FILL_IN, 200, UpstreamUnavailable),
        (BAD_KEY, 401, BadKey),
        ("<html>502 Bad Gateway</html>", 502, UpstreamUnavailable),
        ("<html>slow down</html>", 429, RateLimited),
        ("", 200, UpstreamUnavailable),
        ('{"message":"hello"}', 200, UpstreamUnavailable),
        ('"just a string"', 200, UpstreamUnavailable),
    ],
)
def test_offers_errors(body: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_offers(body, status, extendable=True)
    assert type(info.value) is error


# ---------------------------------------------------------------------- purchase/rental


def test_purchase_on_the_doc_string() -> None:
    assert rentals.parse_purchase(PURCHASED, days=30) == RentalPurchase(
        rental_code="ABCDEFG", phone="123456789", days=30, expiry=utc(1653758381)
    )
    # days falls back to the request's; expiry may be a number or absent
    assert rentals.parse_purchase(
        '{"success":1,"phonenumber":"+1 (234) 567","rental_code":"X","expiry":1653758381}',
        days=7,
    ) == RentalPurchase("X", "1234567", 7, utc(1653758381))
    assert (
        rentals.parse_purchase('{"success":1,"phonenumber":"1","rental_code":"X"}', days=7).expiry
        is None
    )


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (SERVICE_NOT_AVAILABLE, 200, RentalUnavailable),
        (NO_BALANCE, 200, UpstreamNoBalance),
        (GONE_WRONG, 200, UpstreamUnavailable),
        (INVALID_DAYS, 200, InvalidRentalDays),
        (NO_RENTAL, 200, UnknownRental),
        (BAD_KEY, 401, BadKey),
        (
            '{"success":0,"errors":[{"message":"Missing or invalid param: days"}]}',
            400,
            InvalidRentalDays,
        ),
        (
            '{"success":0,"errors":[{"message":"Missing or invalid param: id"}]}',
            400,
            RentalUnavailable,
        ),
        # the body decides before the status: a documented refusal proves nothing was bought
        (NO_BALANCE, 500, UpstreamNoBalance),
        # nothing proves these failed: a rental may have been bought
        ('{"success":0,"message":"Something brand new"}', 200, PurchaseOutcomeUnknown),
        ('{"success":0}', 200, PurchaseOutcomeUnknown),
        ('{"success":1,"message":""}', 200, PurchaseOutcomeUnknown),
        ('{"success":1,"rental_code":"X","phonenumber":""}', 200, PurchaseOutcomeUnknown),
        ("<html><body>Bad Gateway</body></html>", 502, PurchaseOutcomeUnknown),
        ("<html>504 Gateway Time-out</html>", 504, PurchaseOutcomeUnknown),
        ('{"success":0,"message":"Too many requests"}', 429, PurchaseOutcomeUnknown),
        ("", 200, PurchaseOutcomeUnknown),
        ("garbage", 200, PurchaseOutcomeUnknown),
        ("[]", 200, PurchaseOutcomeUnknown),
    ],
)
def test_purchase_errors(body: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_purchase(body, status, days=30)
    assert type(info.value) is error


def test_invalid_days_lists_the_available_days() -> None:
    with pytest.raises(InvalidRentalDays) as info:
        rentals.parse_purchase(INVALID_DAYS, days=3)
    assert info.value.available_days == (7, 14, 30)
    with pytest.raises(InvalidRentalDays) as extend:
        rentals.parse_extend(INVALID_DAYS)
    assert extend.value.available_days == (7, 14, 30)
    assert rentals.available_days("The following days are available: ") == ()


def test_success_with_an_error_status_is_still_a_purchase() -> None:
    assert rentals.parse_purchase(PURCHASED, 500, days=30).rental_code == "ABCDEFG"


# ---------------------------------------------------------------------- messages and status


def test_messages_on_the_doc_string() -> None:
    messages = rentals.parse_messages(MESSAGES)
    # oldest first; the doc's IDs are positional (both 6): never a key
    assert messages == [
        RentalMessage(
            sender=None,
            text="Message 2",
            timestamp="11 May 2022 01:11:35",
            sent_at=datetime(2022, 5, 11, 1, 11, 35),
        ),
        RentalMessage(
            sender=None,
            text="Message 1",
            timestamp="11 May 2022 18:39:54",
            sent_at=datetime(2022, 5, 11, 18, 39, 54),
        ),
    ]
    assert messages[0].key == ("11 May 2022 01:11:35", "", "Message 2")


def test_messages_are_deduplicated_on_timestamp_sender_and_text() -> None:
    row = '{"ID":1,"sender":"Google","message":"G-123456","timestamp":"11 May 2022 18:39:54"}'
    other = '{"ID":1,"sender":"Google","message":"G-654321","timestamp":"11 May 2022 18:39:54"}'
    body = f'{{"success":1,"messages":[{row},{row},{other}],"source":"1"}}'
    messages = rentals.parse_messages(body)
    assert [m.text for m in messages] == ["G-123456", "G-654321"]
    assert messages[0].sender == "Google"


def test_messages_other_shapes() -> None:
    assert rentals.parse_messages('{"success":1,"messages":[],"source":"6"}') == []
    assert rentals.parse_messages('{"success":1,"messages":{}}') == []
    # a numeric sender is a string; an unreadable timestamp keeps SMSPool's order
    body = (
        '{"success":1,"messages":{"0":{"sender":12345,"message":"b","timestamp":"later"},'
        '"1":{"sender":"X","message":"a","timestamp":"11 May 2022 01:11:35"}}}'
    )
    messages = rentals.parse_messages(body)
    assert [(m.sender, m.text, m.sent_at) for m in messages] == [
        ("12345", "b", None),
        ("X", "a", datetime(2022, 5, 11, 1, 11, 35)),
    ]


@pytest.mark.parametrize(
    "text",
    ["11 May 2022 18:39:54", "11 may 2022 18:39:54", "1 September 2022 7:05:09"],
)
def test_message_timestamps(text: str) -> None:
    assert rentals.parse_message_time(text) is not None
    assert rentals.parse_message_time("11 Foo 2022 18:39:54") is None
    assert rentals.parse_message_time("") is None


def test_status_on_the_doc_string() -> None:
    status = rentals.parse_status(STATUS)
    assert status == RentalStatus(
        expiry=utc(1654495533), available=True, phone="123456789", active_for=90
    )
    assert status.ended(utc(1654495533))
    assert not status.ended(utc(1654495532))
    closed = rentals.parse_status(
        '{"success":1,"status":{"expiry":"1654495533","available":0,"phonenumber":"1"}}'
    )
    assert not closed.available and closed.active_for is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (NO_RENTAL, UnknownRental),
        ('{"success":1,"status":{"available":1}}', UpstreamUnavailable),
        ('{"success":1}', UpstreamUnavailable),
        ("<html>oops</html>", UpstreamUnavailable),
    ],
)
def test_status_errors(body: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_status(body)
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (NO_RENTAL, UnknownRental),
        ('{"success":1,"messages":"none"}', UpstreamUnavailable),
        ('{"messages":[]}', UpstreamUnavailable),
        ("garbage", UpstreamUnavailable),
    ],
)
def test_messages_errors(body: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_messages(body)
    assert type(info.value) is error


def test_unknown_rental_is_a_no_activation() -> None:
    assert issubclass(UnknownRental, NoActivation)


# ---------------------------------------------------------------------- extend and refund


def test_extend_and_refund_on_the_doc_strings() -> None:
    assert rentals.parse_extend(EXTENDED) == "Your rental has been succesfully extended!"
    assert rentals.parse_refund(REFUNDED) == "Your rental has been refunded!"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (EXTEND_FAILED, 200, RentalExtendFailed),
        (NO_BALANCE, 200, UpstreamNoBalance),
        (INVALID_DAYS, 200, InvalidRentalDays),
        (NO_RENTAL, 200, UnknownRental),
        (BAD_KEY, 401, BadKey),
        ('{"success":0,"message":"Something brand new"}', 200, ExtendOutcomeUnknown),
        ('{"message":"ok"}', 200, ExtendOutcomeUnknown),
        ("<html>500</html>", 500, ExtendOutcomeUnknown),
        ("", 200, ExtendOutcomeUnknown),
    ],
)
def test_extend_errors(body: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_extend(body, status)
    assert type(info.value) is error


def test_extend_outcome_unknown_is_a_purchase_outcome_unknown() -> None:
    assert issubclass(ExtendOutcomeUnknown, PurchaseOutcomeUnknown)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (ALREADY_REFUNDED, 200, RentalAlreadyRefunded),
        (REFUND_DENIED, 200, RentalRefundDenied),
        (NO_RENTAL, 200, UnknownRental),
        (BAD_KEY, 401, BadKey),
        ('{"success":0,"message":"Something brand new"}', 200, RefundOutcomeUnknown),
        ("<html>502</html>", 502, RefundOutcomeUnknown),
        ("nope", 200, RefundOutcomeUnknown),
    ],
)
def test_refund_errors(body: str, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        rentals.parse_refund(body, status)
    assert type(info.value) is error


def test_every_rental_error_is_a_provider_error_with_plain_words() -> None:
    for error in (
        InvalidRentalDays,
        RentalRefundDenied,
        RentalAlreadyRefunded,
        UnknownRental,
        RentalUnavailable,
        RentalExtendFailed,
        ExtendOutcomeUnknown,
        RefundOutcomeUnknown,
    ):
        assert issubclass(error, ProviderError)
        assert "SMSPool" not in error.user_message


# ---------------------------------------------------------------------- the client's HTTP

Handler = Callable[[httpx.Request], httpx.Response]
KEY = "secret-key-0123456789"


def mock_rentals(handler: Handler) -> SMSPoolRentals:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = SMSPoolClient(
        http,
        "http://pool.test/",
        api_key=KEY,
        budget=RequestBudget(100_000),
        retry_delays=(0, 0),
    )
    return SMSPoolRentals(client)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(httpx.QueryParams(request.content.decode()))


async def test_every_endpoint_is_a_post_form_at_its_documented_path() -> None:
    seen: list[httpx.Request] = []
    bodies = {
        "/rental/retrieve_all": RETRIEVE_ALL,
        "/purchase/rental": PURCHASED,
        "/rental/retrieve_status.php": STATUS,
        "/rental/retrieve_messages": MESSAGES,
        "/rental/extend.php": EXTENDED,
        "/rental/refund.php": REFUNDED,
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=bodies[request.url.path])

    client = mock_rentals(answer)
    [offer] = await client.offers(extendable=True)
    assert offer.extendable and offer.id == "0"
    purchase = await client.purchase("0", 30, service_id="1012")
    assert purchase.rental_code == "ABCDEFG"
    poll = await client.poll("ABCDEFG")
    assert poll.status.available and [m.text for m in poll.messages] == ["Message 2", "Message 1"]
    assert await client.extend("ABCDEFG", 14) == ExtendResult(
        "ABCDEFG", 14, "Your rental has been succesfully extended!"
    )
    assert await client.refund("ABCDEFG") == RefundResult(
        "ABCDEFG", "Your rental has been refunded!"
    )
    assert {r.method for r in seen} == {"POST"}
    assert all(KEY not in str(r.url) for r in seen)
    paths = [r.url.path for r in seen]
    # the doc: status before messages, every time
    assert paths == [
        "/rental/retrieve_all",
        "/purchase/rental",
        "/rental/retrieve_status.php",
        "/rental/retrieve_messages",
        "/rental/extend.php",
        "/rental/refund.php",
    ]
    # retrieve_all's own error names its params as GET ones: `type` goes in the query as well
    assert seen[0].url.params["type"] == "1"
    assert form(seen[0]) == {"type": "1", "key": KEY}
    assert form(seen[1]) == {"id": "0", "days": "30", "service_id": "1012", "key": KEY}
    assert form(seen[2]) == {"rental_code": "ABCDEFG", "key": KEY}
    assert form(seen[4]) == {"rental_code": "ABCDEFG", "days": "14", "key": KEY}
    assert form(seen[5]) == {"rental_code": "ABCDEFG", "key": KEY}


async def test_offers_of_non_extendable_rentals_send_type_0() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=RETRIEVE_ALL)

    [offer] = await mock_rentals(answer).offers(extendable=False, priority=Priority.BACKGROUND)
    assert not offer.extendable
    assert form(seen[0])["type"] == "0"


@pytest.mark.parametrize(
    ("method", "unknown"),
    [("purchase", PurchaseOutcomeUnknown), ("extend", ExtendOutcomeUnknown)],
)
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.Response(502, text="<html>Bad Gateway</html>"),
        httpx.Response(200, text="garbage"),
        httpx.Response(200, text='{"success":0,"message":"Something brand new"}'),
    ],
)
async def test_money_moving_calls_are_sent_once_and_a_lost_answer_is_unknown(
    method: str, unknown: type[Exception], failure: Exception | httpx.Response
) -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if isinstance(failure, Exception):
            raise type(failure)(str(failure), request=request)  # type: ignore[call-arg]
        return failure

    client = mock_rentals(answer)
    with pytest.raises(unknown) as info:
        if method == "purchase":
            await client.purchase("0", 7)
        else:
            await client.extend("ABCDEFG", 7)
    assert type(info.value) is unknown
    assert len(calls) == 1
    assert KEY not in str(info.value)


async def test_a_refund_is_sent_once_and_a_lost_answer_is_unknown() -> None:
    calls: list[httpx.Request] = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(RefundOutcomeUnknown):
        await mock_rentals(timeout).refund("ABCDEFG")
    assert len(calls) == 1


@pytest.mark.parametrize("method", ["purchase", "extend", "refund"])
async def test_a_write_that_never_left_is_unavailable_not_unknown(method: str) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = mock_rentals(refused)
    with pytest.raises(UpstreamUnavailable):
        if method == "purchase":
            await client.purchase("0", 7)
        elif method == "extend":
            await client.extend("ABCDEFG", 7)
        else:
            await client.refund("ABCDEFG")


async def test_reads_retry() -> None:
    calls: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return httpx.Response(200, text=RETRIEVE_ALL)

    assert len(await mock_rentals(flaky).offers(extendable=True)) == 1
    assert calls == ["/rental/retrieve_all"] * 3

    polls: list[str] = []

    def down(request: httpx.Request) -> httpx.Response:
        polls.append(request.url.path)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(UpstreamUnavailable):
        await mock_rentals(down).status("ABCDEFG")
    assert polls == ["/rental/retrieve_status.php"] * 2  # a poll retries once


async def test_an_unknown_rental_is_not_retried() -> None:
    calls: list[str] = []

    def missing(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(200, text=NO_RENTAL)

    with pytest.raises(UnknownRental):
        await mock_rentals(missing).messages("NOPE")
    assert calls == ["/rental/retrieve_messages"]


async def test_the_key_is_redacted_from_error_details() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, text=json.dumps({"success": 0, "message": form(request)["key"]})
        )

    client = mock_rentals(echo)
    for call in (
        client.offers(extendable=True),
        client.purchase("0", 7),
        client.status("A"),
        client.extend("A", 7),
        client.refund("A"),
    ):
        with pytest.raises(ProviderError) as info:
            await call
        assert "secret-key" not in str(info.value)


async def test_bad_arguments_are_refused_before_sending() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent")

    client = mock_rentals(never)
    with pytest.raises(ValueError):
        await client.purchase("0", 0)
    with pytest.raises(ValueError):
        await client.extend("", 7)
    with pytest.raises(ValueError):
        await client.refund(" ")
