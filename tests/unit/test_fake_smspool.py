"""Drive the SMSPool fake over real HTTP and check it answers in the doc's shapes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fakes.smspool import (
    COUNTRY_UNAVAILABLE,
    NOT_FOR_COUNTRY,
    ORDER_NOT_FOUND,
    RESEND_REFUSED,
    FakeSMSPool,
)


@pytest.fixture
async def pool() -> AsyncIterator[FakeSMSPool]:
    async with FakeSMSPool() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def call(
    http: httpx.AsyncClient, fake: FakeSMSPool, path: str, key: bool = True, **params: str
) -> httpx.Response:
    """POST a form to ``path``, with the fake's key unless ``key`` is False."""
    form = {"key": fake.api_key, **params} if key else params
    return await http.post(f"{fake.base_url}/{path}", data=form)


async def ok(
    http: httpx.AsyncClient, fake: FakeSMSPool, path: str, key: bool = True, **params: str
) -> Any:
    """The JSON of a call that must be HTTP 200."""
    response = await call(http, fake, path, key, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


async def buy(
    http: httpx.AsyncClient, fake: FakeSMSPool, service: str = "1012", country: str = "1"
) -> dict[str, Any]:
    answer = await ok(http, fake, "purchase/sms", service=service, country=country)
    assert answer["success"] == 1, answer
    return answer


# ---------------------------------------------------------------------- catalog


async def test_base_url(pool: FakeSMSPool) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", pool.base_url)
    with pytest.raises(RuntimeError):
        _ = FakeSMSPool().base_url


async def test_countries_and_services_need_no_key(
    pool: FakeSMSPool, http: httpx.AsyncClient
) -> None:
    countries = await ok(http, pool, "country/retrieve_all", key=False)
    assert countries[0] == {
        "ID": "1",
        "name": "United States",
        "region": "Americas",
        "short_name": "US",
    }
    assert {c["short_name"] for c in countries} >= {"US", "GB", "IN"}
    services = await ok(http, pool, "service/retrieve_all", key=False)
    assert services[:2] == [{"ID": "1012", "name": "WhatsApp"}, {"ID": "1011", "name": "Telegram"}]
    assert await ok(http, pool, "country/retrieve_all", key=False, country="gb") == [countries[1]]
    in_uk = await ok(http, pool, "service/retrieve_all", key=False, country="2")
    assert [s["name"] for s in in_uk] == ["WhatsApp", "Google"]


async def test_get_works_too(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{pool.base_url}/request/balance", params={"key": pool.api_key})
    assert response.json() == {"balance": "100.00"}
    assert pool.requests[-1].method == "GET"


async def test_balance_and_key_errors(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    assert await ok(http, pool, "request/balance") == {"balance": "100.00"}
    pool.balance = Decimal("1.5")
    assert await ok(http, pool, "request/balance") == {"balance": "1.50"}
    for form in ({}, {"key": "wrong"}):
        response = await http.post(f"{pool.base_url}/request/balance", data=form)
        assert response.status_code == 401
        body = response.json()
        assert body["success"] == 0
        assert body["errors"][0]["message"] == "<b>Missing</b> or invalid param: key"
        assert "settings" in body["errors"][0]["description"]


async def test_price(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    assert await ok(http, pool, "request/price", service="1012", country="1") == {"price": "0.31"}
    assert await ok(http, pool, "request/price", service="whatsapp", country="US") == {
        "price": "0.31"
    }
    assert await ok(http, pool, "request/price", service="828", country="1") == {
        "success": 0,
        "message": "No price was found for this query.",
        "price": 0,
    }
    assert await ok(http, pool, "request/price", service="1012") == {
        "success": 0,
        "message": "Fill in all params!",
    }


async def test_suggested_countries(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    rows = await ok(http, pool, "request/suggested_countries", key=False, service="1012")
    assert rows[0] == {
        "pool": 1,
        "country_id": 1,
        "name": "United States",
        "short_name": "US",
        "price": "0.31",
    }
    assert [r["short_name"] for r in rows] == ["US", "GB", "ID"]  # India has no stock
    assert await ok(http, pool, "request/suggested_countries", key=False, service="9") == []
    missing = await ok(http, pool, "request/suggested_countries", key=False)
    assert missing == {"success": 0, "message": "Fill in all params!"}


# ---------------------------------------------------------------------- purchase


async def test_purchase_success_shape(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    answer = await buy(http, pool)
    assert set(answer) == {
        "success",
        "number",
        "order_id",
        "country",
        "service",
        "pool",
        "expires_in",
        "message",
    }
    assert re.fullmatch(r"[A-Z]{7}", answer["order_id"])
    assert re.fullmatch(r"1201\d{7}", answer["number"])
    assert (answer["country"], answer["service"], answer["pool"]) == (
        "United States",
        "WhatsApp",
        1,
    )
    assert answer["expires_in"] in (599, 600) and answer["message"] == ""
    assert pool.balance == Decimal("99.69")
    assert pool.prices[("1012", "1")].stock == 49
    order = pool.orders[answer["order_id"]]
    assert order.status == 1 and order.cost == Decimal("0.31")
    params = pool.requests[-1].params
    assert "key" not in params and params["service"] == "1012"


async def test_purchase_by_name_and_short_name(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    answer = await buy(http, pool, service="Telegram", country="in")
    assert answer["country"] == "India" and answer["number"].startswith("91")


async def test_purchase_failures(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    assert await ok(http, pool, "purchase/sms", service="828", country="1") == {
        "success": 0,
        "message": NOT_FOR_COUNTRY,
    }
    out_of_stock = await ok(http, pool, "purchase/sms", service="1012", country="3")
    assert out_of_stock == {"success": 0, "message": COUNTRY_UNAVAILABLE}
    too_dear = await ok(http, pool, "purchase/sms", service="1012", country="1", max_price="0.30")
    assert too_dear["message"] == COUNTRY_UNAVAILABLE
    pool.balance = Decimal("0")
    assert await ok(http, pool, "purchase/sms", service="1012", country="1") == {
        "success": 0,
        "message": "Insufficient balance, the price is: 0.31 while you only have: 0.00",
    }
    assert not pool.orders


async def test_purchase_param_errors(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    response = await http.post(f"{pool.base_url}/purchase/sms", data={})
    assert response.status_code == 401
    errors = response.json()["errors"]
    assert [e["message"] for e in errors] == [
        "<b>Missing</b> or invalid param: key",
        "<b>Missing</b> or invalid param: country",
        "<b>Missing</b> or invalid param: service",
    ]
    response = await call(http, pool, "purchase/sms", service="1012", country="Atlantis")
    assert response.status_code == 400
    assert response.json() == {
        "success": 0,
        "errors": [{"message": "<b>Missing</b> or invalid param: country"}],
    }
    response = await call(
        http, pool, "purchase/sms", service="1012", country="1", max_price="cheap"
    )
    assert response.status_code == 400


async def test_max_price_allows_a_purchase_at_the_limit(
    pool: FakeSMSPool, http: httpx.AsyncClient
) -> None:
    answer = await ok(http, pool, "purchase/sms", service="1012", country="1", max_price="0.31")
    assert answer["success"] == 1
    assert pool.requests[-1].params["max_price"] == "0.31"


# ---------------------------------------------------------------------- orders


async def test_check_shapes(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    order_id = (await buy(http, pool))["order_id"]
    expiration = int(pool.orders[order_id].expires_at)
    assert await ok(http, pool, "sms/check", orderid=order_id) == {
        "status": 1,
        "message": "pending",
        "resend": 0,
        "expiration": expiration,
    }
    pool.deliver_code(order_id, "12345", "Your WhatsApp code is 123-45")
    assert await ok(http, pool, "sms/check", orderid=order_id) == {
        "status": 3,
        "sms": "12345",
        "full_sms": "Your WhatsApp code is 123-45",
        "expiration": expiration,
    }
    await ok(http, pool, "sms/resend", orderid=order_id)
    assert (await ok(http, pool, "sms/check", orderid=order_id))["message"] == "resend"
    pool.orders[order_id].status = 6
    check = await ok(http, pool, "sms/check", orderid=order_id)
    assert (check["status"], check["message"]) == (6, "refunded")
    assert await ok(http, pool, "sms/check", orderid="NOSUCHX") == {
        "success": 0,
        "message": ORDER_NOT_FOUND,
    }


async def test_resend(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    order_id = (await buy(http, pool))["order_id"]
    assert await ok(http, pool, "sms/resend", orderid=order_id) == {
        "success": 0,
        "message": RESEND_REFUSED,
        "resend": 0,
    }
    pool.deliver_code(order_id, "111111")
    assert await ok(http, pool, "sms/resend", orderid=order_id) == {
        "success": 1,
        "message": "Number has been requested again",
        "resend": 0,
    }
    assert pool.orders[order_id].status == 4
    pool.deliver_code(order_id, "222222")
    check = await ok(http, pool, "sms/check", orderid=order_id)
    assert (check["status"], check["sms"]) == (3, "222222")


async def test_cancel(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    order_id = (await buy(http, pool))["order_id"]
    assert await ok(http, pool, "sms/cancel", orderid=order_id) == {"success": 1}
    assert pool.balance == Decimal("100.00")
    assert (await ok(http, pool, "sms/check", orderid=order_id))["status"] == 5
    assert await ok(http, pool, "sms/cancel", orderid=order_id) == {"success": 0}
    assert pool.balance == Decimal("100.00")  # no second refund
    assert await ok(http, pool, "sms/cancel", orderid="NOSUCHX") == {
        "success": 0,
        "message": ORDER_NOT_FOUND,
    }


async def test_cancel_too_early_or_after_a_code(
    pool: FakeSMSPool, http: httpx.AsyncClient
) -> None:
    pool.too_early_cancel_seconds = 60
    order_id = (await buy(http, pool))["order_id"]
    assert await ok(http, pool, "sms/cancel", orderid=order_id) == {"success": 0}
    assert pool.orders[order_id].status == 1
    pool.too_early_cancel_seconds = 0
    pool.deliver_code(order_id, "1234")
    assert await ok(http, pool, "sms/cancel", orderid=order_id) == {"success": 0}
    assert pool.balance == Decimal("99.69")


async def test_active_list(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    assert await ok(http, pool, "request/active") == []
    first = (await buy(http, pool))["order_id"]
    second = (await buy(http, pool, service="395", country="2"))["order_id"]
    pool.deliver_code(second, "55555", "G-55555 is your code")
    rows = await ok(http, pool, "request/active")
    assert [r["order_code"] for r in rows] == [first, second]
    row = rows[0]
    assert set(row) == {
        "timestamp",
        "order_code",
        "phonenumber",
        "code",
        "full_code",
        "short_name",
        "service",
        "status",
        "expiry",
    }
    assert (row["code"], row["full_code"], row["status"]) == ("0", "0", "pending")
    assert (row["short_name"], row["service"]) == ("US", "WhatsApp")
    assert row["phonenumber"] == pool.orders[first].number
    assert isinstance(row["expiry"], str) and int(row["expiry"]) == int(
        pool.orders[first].expires_at
    )
    # The timestamp is wall-clock time at UTC+2 and the lifetime 600 s, as in the doc's sample.
    naive = datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(naive.timestamp() - 7200 - (int(row["expiry"]) - 600)) <= 2
    assert (rows[1]["code"], rows[1]["full_code"], rows[1]["status"]) == (
        "55555",
        "G-55555 is your code",
        "completed",
    )
    await ok(http, pool, "sms/cancel", orderid=first)
    assert [r["order_code"] for r in await ok(http, pool, "request/active")] == [second]


async def test_expire(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    waiting = (await buy(http, pool))["order_id"]
    with_code = (await buy(http, pool))["order_id"]
    pool.deliver_code(with_code, "4242")
    pool.expire(waiting)
    pool.expire(with_code)
    assert pool.balance == Decimal("99.69")  # the order without an SMS is refunded
    assert (await ok(http, pool, "sms/check", orderid=waiting))["status"] == 2
    assert (await ok(http, pool, "sms/check", orderid=with_code))["status"] == 3
    assert await ok(http, pool, "request/active") == []
    with pytest.raises(ValueError):
        pool.deliver_code(waiting, "1")
    with pytest.raises(KeyError):
        pool.deliver_code("NOSUCHX", "1")


async def test_orders_expire_by_themselves(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    pool.lifetime_seconds = 0
    order_id = (await buy(http, pool))["order_id"]
    assert (await ok(http, pool, "sms/check", orderid=order_id))["status"] == 2
    assert pool.balance == Decimal("100.00")


def test_place_order_without_http() -> None:
    fake = FakeSMSPool()
    order = fake.place_order("1011", "IN")
    assert fake.orders[order.order_id].short_name == "IN"
    with pytest.raises(ValueError, match="not available"):
        fake.place_order("828", "1")


# ---------------------------------------------------------------------- knobs


async def test_fail_next(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    horribly = {"success": 0, "message": "Something went horribly wrong, try again please!"}
    pool.fail_next("purchase/sms", horribly, times=2)
    pool.fail_next("/request/balance", "<html>502 Bad Gateway</html>", http_status=502)
    for _ in range(2):
        assert await ok(http, pool, "purchase/sms", service="1012", country="1") == horribly
    assert not pool.orders and pool.balance == Decimal("100.00")
    await buy(http, pool)
    response = await call(http, pool, "request/balance")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


async def test_delay_next_still_takes_effect(pool: FakeSMSPool) -> None:
    pool.delay_next("purchase/sms", 0.3)
    async with httpx.AsyncClient(timeout=0.05) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(
                f"{pool.base_url}/purchase/sms",
                data={"key": pool.api_key, "service": "1012", "country": "1"},
            )
    await pool.wait_idle()
    assert len(pool.orders) == 1
    assert pool.count("purchase/sms") == 1
    assert json.loads(pool.requests[0].body or "{}")["success"] == 1


async def test_rate_limit(http: httpx.AsyncClient) -> None:
    async with FakeSMSPool(rate_limit=2, window_seconds=60) as fake:
        fake.fail_next("request/balance", {"success": 0, "message": "boom"})
        assert (await call(http, fake, "request/balance")).json()["message"] == "boom"
        await call(http, fake, "request/balance")
        response = await call(http, fake, "request/balance")
        assert response.status_code == 429
        assert response.json() == {"success": 0, "message": "Too many requests"}
        assert fake.rejected_429 == 1
        assert fake.count("request/balance") == 3
        # Another key has its own window.
        response = await http.post(f"{fake.base_url}/request/balance", data={"key": "other"})
        assert response.status_code == 401


async def test_request_log_never_keeps_the_key(pool: FakeSMSPool, http: httpx.AsyncClient) -> None:
    await buy(http, pool)
    await ok(http, pool, "request/active")
    assert all("key" not in request.params for request in pool.requests)
    assert [r.path for r in pool.requests] == ["purchase/sms", "request/active"]
    assert pool.requests[-1].http_status == 200
