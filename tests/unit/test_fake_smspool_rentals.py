"""The SMSPool rental client against the SMSPool fake over real HTTP, and the fake's rental
answers in the doc's shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shop.providers.base import (
    BadKey,
    ExtendOutcomeUnknown,
    InvalidRentalDays,
    PurchaseOutcomeUnknown,
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
from shop.providers.smspool_rentals import SMSPoolRentals
from tests.fakes.smspool import (
    ALREADY_REFUNDED,
    EXTEND_FAILED,
    EXTENDED,
    INVALID_DAYS,
    NO_RENTAL,
    REFUND_DENIED,
    RENTAL_REFUNDED,
    RENTALS_FILL_IN,
    SERVICE_NOT_AVAILABLE,
    FakeSMSPool,
    RentalRow,
)

DAY = 86400
HOUR = 3600


@pytest.fixture
async def pool() -> AsyncIterator[FakeSMSPool]:
    async with FakeSMSPool() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


RentalsFactory = Callable[..., SMSPoolRentals]


@pytest.fixture
def make_rentals(pool: FakeSMSPool, http: httpx.AsyncClient) -> RentalsFactory:
    def make(http_client: httpx.AsyncClient = http, api_key: str | None = None) -> SMSPoolRentals:
        client = SMSPoolClient(
            http_client,
            pool.base_url,
            api_key=api_key if api_key is not None else pool.api_key,
            budget=RequestBudget(100_000),
            retry_delays=(0, 0),
        )
        return SMSPoolRentals(client)

    return make


@pytest.fixture
def rentals(make_rentals: RentalsFactory) -> SMSPoolRentals:
    return make_rentals()


@pytest.fixture
async def impatient() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.2) as client:
        yield client


def at(pool: FakeSMSPool, offset: float = 0.0) -> datetime:
    return datetime.fromtimestamp(pool.clock() + offset, UTC)


async def raw(http: httpx.AsyncClient, pool: FakeSMSPool, path: str, **params: str) -> Any:
    response = await http.post(f"{pool.base_url}/{path}", data={"key": pool.api_key, **params})
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------- retrieve_all


async def test_offers_by_kind(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    extendable = await rentals.offers(extendable=True)
    plain = await rentals.offers(extendable=False)
    assert extendable and plain
    assert all(o.extendable for o in extendable) and not any(o.extendable for o in plain)
    ids = [o.id for o in extendable + plain]
    assert sorted(ids) == sorted(row.id for row in pool.rental_offers)
    us = next(o for o in extendable if o.id == "0")
    assert (us.country, us.region) == ("United States", "Americas")
    assert us.pricing == {7: Decimal(18), 14: Decimal(25), 30: Decimal(30)}


async def test_offers_follow_the_configured_list(
    pool: FakeSMSPool, rentals: SMSPoolRentals
) -> None:
    pool.rental_offers = [
        RentalRow("42", "Canada", "Americas", True, {3: Decimal("4.50"), 60: Decimal(40)})
    ]
    [offer] = await rentals.offers(extendable=True)
    assert (offer.id, offer.days, offer.price(3)) == ("42", (3, 60), Decimal("4.50"))
    assert await rentals.offers(extendable=False) == []


async def test_retrieve_all_raw_shape(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    answer = await raw(http, pool, "rental/retrieve_all", type="1")
    assert answer["0"] == {
        "name": "United States",
        "region": "Americas",
        "pricing": '{"7":18,"14":25,"30":30}',
    }
    # key optional; type may come in the query string
    response = await http.get(f"{pool.base_url}/rental/retrieve_all", params={"type": "0"})
    assert response.status_code == 200 and "0" not in response.json()
    assert await raw(http, pool, "rental/retrieve_all") == {
        "success": 0,
        "message": RENTALS_FILL_IN,
    }


# ---------------------------------------------------------------------- purchase


async def test_buy(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    before = pool.balance
    purchase = await rentals.purchase("0", 7)
    assert purchase.days == 7 and purchase.phone.isdigit()
    assert purchase.expiry is not None
    assert abs(purchase.expiry - at(pool, 7 * DAY)) < timedelta(seconds=2)
    assert pool.balance == before - 18
    rental = pool.rentals[purchase.rental_code]
    assert (rental.number, rental.paid, rental.offer.id) == (purchase.phone, Decimal(18), "0")
    status = await rentals.status(purchase.rental_code)
    assert status.available and status.phone == purchase.phone
    assert status.expiry == purchase.expiry and not status.ended(at(pool))
    assert await rentals.messages(purchase.rental_code) == []


async def test_purchase_raw_shape(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    answer = await raw(http, pool, "purchase/rental", id="1", days="30")
    assert set(answer) == {"success", "message", "phonenumber", "days", "rental_code", "expiry"}
    assert answer["success"] == 1 and answer["message"] == "" and answer["days"] == 30
    assert isinstance(answer["expiry"], str) and answer["expiry"].isdigit()
    assert len(answer["rental_code"]) == 7


async def test_single_service_line_at_half_price(
    pool: FakeSMSPool, rentals: SMSPoolRentals
) -> None:
    before = pool.balance
    purchase = await rentals.purchase("0", 30, service_id="1012")
    assert pool.balance == before - 15
    assert pool.rentals[purchase.rental_code].service_id == "1012"
    # only US extendable rentals, and only known services
    with pytest.raises(RentalUnavailable):
        await rentals.purchase("1", 7, service_id="1012")
    with pytest.raises(RentalUnavailable):
        await rentals.purchase("0", 7, service_id="99999")
    assert pool.balance == before - 15


async def test_purchase_refusals(
    pool: FakeSMSPool, rentals: SMSPoolRentals, make_rentals: RentalsFactory
) -> None:
    with pytest.raises(InvalidRentalDays) as days:
        await rentals.purchase("0", 3)
    assert days.value.available_days == (7, 14, 30)
    with pytest.raises(RentalUnavailable):
        await rentals.purchase("nope", 7)
    with pytest.raises(BadKey):
        await make_rentals(api_key="wrong").purchase("0", 7)
    pool.balance = Decimal("17.99")
    with pytest.raises(UpstreamNoBalance):
        await rentals.purchase("0", 7)
    assert pool.balance == Decimal("17.99")
    assert not pool.rentals


async def test_purchase_refusal_raw_words(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    answer = await raw(http, pool, "purchase/rental", id="0", days="3")
    assert answer == {"success": 0, "message": INVALID_DAYS + "7 14 30 "}
    pool.balance = Decimal(0)
    answer = await raw(http, pool, "purchase/rental", id="0", days="7")
    assert answer["message"] == (
        "You do not have enough balance, please top up your account with 18.00 dollars in "
        "order to purchase this rental."
    )
    answer = await raw(http, pool, "purchase/rental", id="1", days="7", service_id="1012")
    assert answer == {"success": 0, "message": SERVICE_NOT_AVAILABLE}


async def test_a_timed_out_purchase_is_unknown_and_did_happen(
    pool: FakeSMSPool, make_rentals: RentalsFactory, impatient: httpx.AsyncClient
) -> None:
    before = pool.balance
    pool.delay_next("purchase/rental", 1.0)
    with pytest.raises(PurchaseOutcomeUnknown):
        await make_rentals(impatient).purchase("0", 7)
    await pool.wait_idle()
    assert pool.count("purchase/rental") == 1  # never retried
    assert len(pool.rentals) == 1 and pool.balance == before - 18


@pytest.mark.parametrize(
    ("body", "http_status"),
    [
        ("<html><body>502 Bad Gateway</body></html>", 502),
        ("<html>error</html>", 200),
        ("Internal Server Error", 500),
        ("garbage", 200),
        ('{"success":0,"message":"Something brand new"}', 200),
        ('{"success":1}', 200),
    ],
)
async def test_a_purchase_answer_that_proves_nothing_is_unknown(
    pool: FakeSMSPool, rentals: SMSPoolRentals, body: str, http_status: int
) -> None:
    pool.garble_next("purchase/rental", body, http_status)  # bought, answer lost
    with pytest.raises(PurchaseOutcomeUnknown):
        await rentals.purchase("0", 7)
    assert len(pool.rentals) == 1
    assert pool.count("purchase/rental") == 1


async def test_a_refused_connection_buys_nothing(pool: FakeSMSPool) -> None:
    port = pool.port
    await pool.stop()
    async with httpx.AsyncClient(timeout=1.0) as http:
        client = SMSPoolClient(
            http, f"http://127.0.0.1:{port}", api_key="k", budget=RequestBudget(100_000)
        )
        with pytest.raises(UpstreamUnavailable) as info:
            await SMSPoolRentals(client).purchase("0", 7)
    assert not isinstance(info.value, PurchaseOutcomeUnknown)
    await pool.start()


# ---------------------------------------------------------------------- messages


async def test_receive_messages_each_once(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    pool.deliver_rental_message(code, "Google", "G-111111 is your code", at=pool.clock() - 30)
    pool.deliver_rental_message(code, None, "hello", at=pool.clock() - 20)
    first = await rentals.poll(code)
    assert first.status.available
    assert [(m.sender, m.text) for m in first.messages] == [
        ("Google", "G-111111 is your code"),
        (None, "hello"),
    ]
    pool.deliver_rental_message(code, "WhatsApp", "Your code: 222-333", at=pool.clock() - 10)
    second = await rentals.poll(code)
    seen = {m.key for m in first.messages}
    new = [m for m in second.messages if m.key not in seen]
    assert [m.text for m in new] == ["Your code: 222-333"]
    assert len(second.messages) == 3
    # the doc's order: status before messages, every time
    paths = [r.path for r in pool.requests if r.path.startswith("rental/retrieve_")]
    assert paths == ["rental/retrieve_status", "rental/retrieve_messages"] * 2


async def test_messages_raw_shape(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    rental = pool.place_rental("0", 7)
    empty = await raw(http, pool, "rental/retrieve_messages", rental_code=rental.rental_code)
    assert empty["success"] == 1 and empty["messages"] == []
    when = datetime(2022, 5, 11, 16, 39, 54, tzinfo=UTC).timestamp()  # 18:39:54 at UTC+2
    pool.deliver_rental_message(rental.rental_code, None, "Message 1", at=when)
    pool.deliver_rental_message(rental.rental_code, None, "Message 2", at=when + 60)
    answer = await raw(http, pool, "rental/retrieve_messages", rental_code=rental.rental_code)
    assert answer["source"] == str(rental.serial)
    assert answer["messages"] == {
        "0": {
            "ID": rental.serial,
            "sender": None,
            "message": "Message 2",
            "timestamp": "11 May 2022 18:40:54",
        },
        "1": {
            "ID": rental.serial,
            "sender": None,
            "message": "Message 1",
            "timestamp": "11 May 2022 18:39:54",
        },
    }
    assert await raw(http, pool, "rental/retrieve_messages", rental_code="NOPE") == {
        "success": 0,
        "message": NO_RENTAL,
    }


async def test_status_raw_shape(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    rental = pool.place_rental("0", 7)
    answer = await raw(http, pool, "rental/retrieve_status.php", rental_code=rental.rental_code)
    assert answer == {
        "success": 1,
        "status": {
            "expiry": int(rental.expires_at),
            "available": 1,
            "phonenumber": rental.number,
            "activeFor": pool.rental_active_for,
        },
    }
    # the documented URL only
    response = await http.post(f"{pool.base_url}/rental/retrieve_status", data={})
    assert response.status_code == 404


async def test_unknown_rental(rentals: SMSPoolRentals) -> None:
    with pytest.raises(UnknownRental):
        await rentals.status("NOPE")
    with pytest.raises(UnknownRental):
        await rentals.messages("NOPE")
    with pytest.raises(UnknownRental):
        await rentals.extend("NOPE", 7)
    with pytest.raises(UnknownRental):
        await rentals.refund("NOPE")


# ---------------------------------------------------------------------- extend


async def test_extend(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    purchase = await rentals.purchase("0", 7)
    assert purchase.expiry is not None
    before = pool.balance
    result = await rentals.extend(purchase.rental_code, 14)
    assert (result.rental_code, result.days) == (purchase.rental_code, 14)
    assert pool.balance == before - 25
    status = await rentals.status(purchase.rental_code)
    assert status.expiry == purchase.expiry + timedelta(days=14)
    assert pool.rentals[purchase.rental_code].paid == Decimal(18 + 25)


async def test_extend_refusals(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    before = pool.balance
    with pytest.raises(InvalidRentalDays) as days:
        await rentals.extend(code, 5)
    assert days.value.available_days == (7, 14, 30)
    pool.fail_extend_next()
    with pytest.raises(RentalExtendFailed):
        await rentals.extend(code, 7)
    plain = (await rentals.purchase("2", 7)).rental_code  # not extendable
    spent = before - pool.balance
    with pytest.raises(RentalExtendFailed):
        await rentals.extend(plain, 7)
    pool.balance = Decimal("1.00")
    with pytest.raises(UpstreamNoBalance):
        await rentals.extend(code, 7)
    assert pool.balance == Decimal("1.00")
    assert spent == pool.rentals[plain].paid
    assert pool.rentals[code].paid == Decimal(18)


async def test_extend_raw_words(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    rental = pool.place_rental("0", 7)
    code = rental.rental_code
    assert await raw(http, pool, "rental/extend.php", rental_code=code, days="7") == {
        "success": 1,
        "message": EXTENDED,
    }
    pool.fail_extend_next()
    assert await raw(http, pool, "rental/extend.php", rental_code=code, days="7") == {
        "success": 0,
        "message": EXTEND_FAILED,
    }


async def test_a_timed_out_extension_is_unknown_and_did_happen(
    pool: FakeSMSPool, make_rentals: RentalsFactory, impatient: httpx.AsyncClient
) -> None:
    rental = pool.place_rental("0", 7)
    expires = rental.expires_at
    pool.delay_next("rental/extend.php", 1.0)
    with pytest.raises(ExtendOutcomeUnknown):
        await make_rentals(impatient).extend(rental.rental_code, 7)
    await pool.wait_idle()
    assert pool.count("rental/extend") == 1
    assert rental.expires_at == expires + 7 * DAY


async def test_garbage_extend_answer_is_unknown(
    pool: FakeSMSPool, rentals: SMSPoolRentals
) -> None:
    rental = pool.place_rental("0", 7)
    pool.fail_next("rental/extend", "<html>503 Service Unavailable</html>", 503)
    with pytest.raises(ExtendOutcomeUnknown):
        await rentals.extend(rental.rental_code, 7)
    assert pool.rentals[rental.rental_code].paid == Decimal(18)  # fail_next: nothing happened


# ---------------------------------------------------------------------- refund


async def test_refund_inside_the_window(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    start = pool.balance
    code = (await rentals.purchase("0", 7)).rental_code
    await rentals.extend(code, 7)
    pool.advance(11 * HOUR)
    result = await rentals.refund(code)
    assert result.rental_code == code
    assert pool.balance == start  # everything paid for the rental comes back
    status = await rentals.status(code)
    assert not status.available and status.ended(at(pool))
    with pytest.raises(RentalAlreadyRefunded):
        await rentals.refund(code)
    assert pool.balance == start
    with pytest.raises(RentalExtendFailed):
        await rentals.extend(code, 7)
    with pytest.raises(ValueError):
        pool.deliver_rental_message(code, None, "too late")


async def test_refund_outside_the_window(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    before = pool.balance
    pool.advance(12 * HOUR + 1)
    with pytest.raises(RentalRefundDenied):
        await rentals.refund(code)
    assert pool.balance == before and not pool.rentals[code].refunded


async def test_refund_refused_after_a_message(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    before = pool.balance
    pool.deliver_rental_message(code, "Bank", "1234")
    with pytest.raises(RentalRefundDenied):
        await rentals.refund(code)
    assert pool.balance == before


async def test_refund_raw_words(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    rental = pool.place_rental("0", 7)
    code = rental.rental_code
    assert await raw(http, pool, "rental/refund.php", rental_code=code) == {
        "success": 1,
        "message": RENTAL_REFUNDED,
    }
    assert (await raw(http, pool, "rental/refund.php", rental_code=code))["message"] == (
        ALREADY_REFUNDED
    )
    other = pool.place_rental("1", 7)
    pool.deliver_rental_message(other.rental_code, None, "hi")
    assert (await raw(http, pool, "rental/refund.php", rental_code=other.rental_code))[
        "message"
    ] == REFUND_DENIED


async def test_a_lost_refund_can_be_asked_again(
    pool: FakeSMSPool, rentals: SMSPoolRentals
) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    start = pool.balance
    pool.garble_next("rental/refund.php", "<html>502</html>", 502)
    with pytest.raises(RefundOutcomeUnknown):
        await rentals.refund(code)
    assert pool.balance == start + 18  # it went through upstream
    with pytest.raises(RentalAlreadyRefunded):
        await rentals.refund(code)
    assert pool.balance == start + 18


# ---------------------------------------------------------------------- expiry


async def test_expiry_by_the_clock(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    pool.deliver_rental_message(code, None, "one")
    pool.advance(7 * DAY)
    status = await rentals.status(code)
    assert status.ended(at(pool)) and not status.available
    assert [m.text for m in await rentals.messages(code)] == ["one"]  # history stays
    with pytest.raises(ValueError):
        pool.deliver_rental_message(code, None, "late")
    with pytest.raises(RentalExtendFailed):
        await rentals.extend(code, 7)
    with pytest.raises(RentalRefundDenied):
        await rentals.refund(code)


async def test_expire_knob(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("1", 7)).rental_code
    pool.expire_rental(code)
    status = await rentals.status(code)
    assert status.ended(at(pool)) and not status.available
    assert pool.rentals[code].expired


# ---------------------------------------------------------------------- failures and counters


async def test_reads_retry_through_failures(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    code = (await rentals.purchase("0", 7)).rental_code
    pool.fail_next("rental/retrieve_status.php", "<html>502</html>", 502)
    assert (await rentals.status(code)).available
    assert pool.count("rental/retrieve_status.php") == 2
    pool.fail_next("rental/retrieve_messages", "garbage", 200, times=2)
    with pytest.raises(UpstreamUnavailable):
        await rentals.messages(code)
    assert pool.count("rental/retrieve_messages") == 2
    pool.fail_next("rental/retrieve_all", json.dumps({"success": 0, "message": "down"}), 500)
    assert await rentals.offers(extendable=True)


async def test_timeout_on_a_read_is_unavailable(
    pool: FakeSMSPool, make_rentals: RentalsFactory, impatient: httpx.AsyncClient
) -> None:
    rental = pool.place_rental("0", 7)
    pool.delay_next("rental/retrieve_status.php", 1.0, times=2)
    with pytest.raises(UpstreamUnavailable):
        await make_rentals(impatient).status(rental.rental_code)
    await pool.wait_idle()


async def test_counters_per_endpoint(pool: FakeSMSPool, rentals: SMSPoolRentals) -> None:
    await rentals.offers(extendable=True)
    code = (await rentals.purchase("0", 7)).rental_code
    await rentals.poll(code)
    await rentals.poll(code)
    await rentals.extend(code, 7)
    await rentals.refund(code)
    assert pool.counts() == {
        "rental/retrieve_all": 1,
        "purchase/rental": 1,
        "rental/retrieve_status": 2,
        "rental/retrieve_messages": 2,
        "rental/extend": 1,
        "rental/refund": 1,
    }
    assert pool.count("rental/refund.php") == pool.count("rental/refund") == 1
    assert all("key" not in r.params for r in pool.requests)


async def test_place_rental_without_http(pool: FakeSMSPool) -> None:
    rental = pool.place_rental("0", 14)
    assert rental.days == 14 and pool.balance == Decimal("75.00")
    with pytest.raises(ValueError, match="invalid amount of days"):
        pool.place_rental("0", 1)
    with pytest.raises(KeyError):
        pool.deliver_rental_message("NOPE", None, "x")
