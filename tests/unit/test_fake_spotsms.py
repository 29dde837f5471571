"""Drive the SpotSMS fake over real HTTP and check it speaks the documented protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fakes.spotsms import AUTO_CODE, FIRST_SERIAL, TOO_MANY_REQUESTS, FakeSpotSMS


@pytest.fixture
async def spot() -> AsyncIterator[FakeSpotSMS]:
    async with FakeSpotSMS() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def call(
    http: httpx.AsyncClient, fake: FakeSpotSMS, action: str, **params: str
) -> httpx.Response:
    """GET the endpoint with the fake's key, ``action`` and extra params."""
    return await http.get(
        fake.base_url, params={"action": action, "apikey": fake.api_key, **params}
    )


async def answer(
    http: httpx.AsyncClient, fake: FakeSpotSMS, action: str, **params: str
) -> dict[str, Any]:
    """The JSON of a call that must be HTTP 200."""
    response = await call(http, fake, action, **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert isinstance(data, dict)
    return data


async def buy(
    http: httpx.AsyncClient, fake: FakeSpotSMS, pid: str = "0948", cuy: str = "us"
) -> dict[str, Any]:
    data = await answer(http, fake, "getNumber", pid=pid, cuy=cuy, num="1")
    assert data["code"] == 200, data
    return data


# ---------------------------------------------------------------------- lifecycle


async def test_base_url_shape(spot: FakeSpotSMS) -> None:
    assert spot.base_url.startswith("http://127.0.0.1:")
    assert spot.base_url.endswith("/api-data.php")


async def test_base_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeSpotSMS().base_url


async def test_start_twice_raises(spot: FakeSpotSMS) -> None:
    with pytest.raises(RuntimeError):
        await spot.start()


# ---------------------------------------------------------------------- catalog


async def test_services_in_the_doc_shape(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    data = await answer(http, spot, "services")
    assert data["code"] == 200
    assert data["data"][1] == {
        "id": "0003",
        "name": "Microsoft",
        "price": "0.0882",
        "operators": [{"pid": "0003", "price": "0.0882"}],
    }
    assert [(s["id"], s["name"]) for s in data["data"]] == [
        ("0948", "WhatsApp"),
        ("0003", "Microsoft"),
        ("0100", "Telegram"),
    ]


async def test_countries_per_service(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    data = await answer(http, spot, "countries", pid="0948")
    assert data["code"] == 200
    assert data["data"][0] == {
        "code": "us",
        "name": "United States",
        "count": 150,
        "flag": "https://flagcdn.com/w80/us.png",
    }
    assert [(c["code"], c["count"]) for c in data["data"]] == [("us", 150), ("tr", 80), ("gb", 0)]
    telegram = await answer(http, spot, "countries", pid="0100")
    assert [c["code"] for c in telegram["data"]] == ["tr", "gb"]


async def test_countries_unknown_or_empty(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    assert await answer(http, spot, "countries", pid="9999") == {
        "code": 404,
        "msg": "Service not found",
    }
    assert (await answer(http, spot, "countries"))["code"] == 404
    spot.countries["0003"] = []
    assert await answer(http, spot, "countries", pid="0003") == {
        "code": 404,
        "msg": "No countries available",
    }


async def test_balance(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    assert await answer(http, spot, "balance") == {"code": 200, "balance": "49.95"}
    spot.balance = Decimal("0.5")
    assert (await answer(http, spot, "balance"))["balance"] == "0.5"


@pytest.mark.parametrize("action", ["services", "countries", "getNumber", "getMsg", "balance"])
async def test_bad_or_missing_key(spot: FakeSpotSMS, http: httpx.AsyncClient, action: str) -> None:
    wrong = await http.get(spot.base_url, params={"action": action, "apikey": "nope"})
    assert wrong.status_code == 200
    assert wrong.json() == {"code": 401, "msg": "Invalid API key"}
    missing = await http.get(spot.base_url, params={"action": action})
    assert missing.json()["code"] == 401


async def test_unknown_action(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    assert await answer(http, spot, "getPrices") == {"code": 404, "msg": "Unknown action"}
    assert (await answer(http, spot, ""))["code"] == 404


async def test_error_status_can_mirror_the_code(http: httpx.AsyncClient) -> None:
    async with FakeSpotSMS(error_http_status=None) as fake:
        bad = await http.get(fake.base_url, params={"action": "balance", "apikey": "x"})
        assert bad.status_code == 401 and bad.json()["code"] == 401
        fake.balance = Decimal(0)
        poor = await call(http, fake, "getNumber", pid="0948", cuy="us", num="1")
        assert poor.status_code == 402 and poor.json()["code"] == 402
        assert (await call(http, fake, "balance")).status_code == 200


async def test_only_get_is_served(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    response = await http.post(spot.base_url, data={"action": "balance", "apikey": "x"})
    assert response.status_code == 405


# ---------------------------------------------------------------------- getNumber


async def test_get_number(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    data = await buy(http, spot)
    assert data == {
        "code": 200,
        "data": f"+1202555{FIRST_SERIAL % 10000:04d}",
        "rsId": f"rs{FIRST_SERIAL}",
        "pidUsed": "0948",
    }
    assert spot.balance == Decimal("49.95") - Decimal("0.0882")
    assert spot.stock("0948", "us") == 149
    activation = spot.activations[data["rsId"]]
    assert (activation.pid, activation.country, activation.cost) == (
        "0948",
        "us",
        Decimal("0.0882"),
    )
    second = await buy(http, spot, cuy="tr")
    assert second["rsId"] == f"rs{FIRST_SERIAL + 1}"
    assert second["data"].startswith("+90555") and len(second["data"]) == 13


async def test_get_number_reports_the_operator_used(
    spot: FakeSpotSMS, http: httpx.AsyncClient
) -> None:
    data = await buy(http, spot, pid="0100", cuy="gb")
    assert data["pidUsed"] == "0101"
    assert data["data"].startswith("+447700")
    assert spot.balance == Decimal("49.95") - Decimal("0.1500")


@pytest.mark.parametrize(
    ("pid", "cuy", "expected"),
    [
        ("9999", "us", {"code": 404, "msg": "Service not found"}),
        ("0948", "gb", {"code": 404, "msg": "No numbers available"}),  # count 0
        ("0948", "de", {"code": 404, "msg": "No numbers available"}),  # not listed
        ("0948", "US", {"code": 404, "msg": "No numbers available"}),  # codes are lower-case
        ("0948", "", {"code": 404, "msg": "No numbers available"}),
    ],
)
async def test_get_number_refusals(
    spot: FakeSpotSMS, http: httpx.AsyncClient, pid: str, cuy: str, expected: dict[str, Any]
) -> None:
    assert await answer(http, spot, "getNumber", pid=pid, cuy=cuy, num="1") == expected
    assert spot.balance == Decimal("49.95")
    assert spot.activations == {}


async def test_get_number_insufficient_balance(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.balance = Decimal("0.0881")
    data = await answer(http, spot, "getNumber", pid="0948", cuy="us", num="1")
    assert data == {"code": 402, "msg": "Insufficient balance"}
    assert spot.stock("0948", "us") == 150 and spot.activations == {}
    spot.balance = Decimal("0.0882")
    await buy(http, spot)
    assert spot.balance == 0


async def test_last_number_then_none(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.countries["0948"][0]["count"] = 1
    await buy(http, spot)
    assert spot.stock("0948", "us") == 0
    data = await answer(http, spot, "getNumber", pid="0948", cuy="us", num="1")
    assert data["code"] == 404


# ---------------------------------------------------------------------- getMsg


async def test_get_msg_waiting_then_code(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    number = await buy(http, spot)
    query = {"pn": number["data"], "pid": "0948", "rsid": number["rsId"]}
    assert await answer(http, spot, "getMsg", **query) == {"code": 404, "msg": "No SMS yet"}
    spot.deliver_code(number["rsId"], "123456")
    assert await answer(http, spot, "getMsg", **query) == {"code": 200, "data": "123456"}
    spot.deliver_code(number["rsId"], "Your WhatsApp code: 654-321")
    latest = await answer(http, spot, "getMsg", **query)
    assert latest == {"code": 200, "data": "Your WhatsApp code: 654-321"}


async def test_get_msg_matches_phone_and_pid(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    number = await buy(http, spot, pid="0100", cuy="tr")
    rs_id, phone = number["rsId"], number["data"]
    spot.deliver_code(rs_id, "55555")
    for pn in (phone, phone.lstrip("+")):
        for pid in ("0100", "0101"):
            data = await answer(http, spot, "getMsg", pn=pn, pid=pid, rsid=rs_id)
            assert data == {"code": 200, "data": "55555"}
    not_found = {"code": 404, "msg": "Activation not found"}
    assert await answer(http, spot, "getMsg", pn="+1000", pid="0100", rsid=rs_id) == not_found
    assert await answer(http, spot, "getMsg", pn=phone, pid="0948", rsid=rs_id) == not_found
    assert await answer(http, spot, "getMsg", pn=phone, pid="0100", rsid="rs1") == not_found
    assert await answer(http, spot, "getMsg", pid="0100", rsid=rs_id) == not_found


async def test_deliver_code_errors(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    with pytest.raises(KeyError):
        spot.deliver_code("rs1", "1234")
    number = await buy(http, spot)
    await answer(http, spot, "cancelRsActivation", rsid=number["rsId"])
    with pytest.raises(ValueError):
        spot.deliver_code(number["rsId"], "1234")


# ---------------------------------------------------------------------- cancelRsActivation


async def test_cancel_refunds_once(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    number = await buy(http, spot)
    rs_id = number["rsId"]
    cancelled = await answer(http, spot, "cancelRsActivation", rsid=rs_id)
    assert cancelled == {"code": 200, "msg": "Activation cancelled"}
    assert spot.balance == Decimal("49.95")
    assert spot.activations[rs_id].refunded
    again = await answer(http, spot, "cancelRsActivation", rsid=rs_id)
    assert again == {"code": 200, "msg": "Already cancelled"}
    assert spot.balance == Decimal("49.95")
    assert spot.stock("0948", "us") == 149  # stock is not given back
    query = {"pn": number["data"], "pid": "0948", "rsid": rs_id}
    assert await answer(http, spot, "getMsg", **query) == {
        "code": 404,
        "msg": "Activation cancelled",
    }


async def test_cancel_refusals(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    assert await answer(http, spot, "cancelRsActivation", rsid="rs1") == {
        "code": 404,
        "msg": "Activation not found",
    }
    number = await buy(http, spot)
    spot.deliver_code(number["rsId"], "1234")
    assert await answer(http, spot, "cancelRsActivation", rsid=number["rsId"]) == {
        "code": 404,
        "msg": "Activation is not active",
    }
    assert spot.balance == Decimal("49.95") - Decimal("0.0882")


async def test_cancel_after_the_refund_window(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.refund_window_seconds = 0.0
    number = await buy(http, spot)
    await asyncio.sleep(0.01)
    data = await answer(http, spot, "cancelRsActivation", rsid=number["rsId"])
    assert data["code"] == 200
    assert spot.activations[number["rsId"]].status == "cancelled"
    assert not spot.activations[number["rsId"]].refunded
    assert spot.balance == Decimal("49.95") - Decimal("0.0882")


# ---------------------------------------------------------------------- hooks


async def test_request_log_hides_the_key(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    await buy(http, spot)
    await answer(http, spot, "balance")
    assert [r.action for r in spot.requests] == ["getNumber", "balance"]
    first = spot.requests[0]
    assert first.params == {"action": "getNumber", "pid": "0948", "cuy": "us", "num": "1"}
    assert first.http_status == 200 and first.body is not None and "rsId" in first.body
    assert all("apikey" not in r.params for r in spot.requests)
    assert spot.count("getNumber") == 1 and spot.count("getMsg") == 0


async def test_fail_next_with_a_dict(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.fail_next("getNumber", {"code": 500, "msg": "Server error"}, http_status=500, times=2)
    for _ in range(2):
        response = await call(http, spot, "getNumber", pid="0948", cuy="us", num="1")
        assert response.status_code == 500
        assert response.json() == {"code": 500, "msg": "Server error"}
        assert response.headers["content-type"].startswith("application/json")
    assert spot.activations == {} and spot.balance == Decimal("49.95")  # no effect
    assert (await buy(http, spot))["code"] == 200


async def test_fail_next_with_a_string(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.fail_next("balance", "<html><body>502 Bad Gateway</body></html>", http_status=502)
    spot.fail_next("services", "maintenance")
    html = await call(http, spot, "balance")
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    text = await call(http, spot, "services")
    assert text.text == "maintenance"
    assert text.headers["content-type"].startswith("text/plain")
    assert (await answer(http, spot, "balance"))["code"] == 200


async def test_fail_next_comes_before_the_key_check(
    spot: FakeSpotSMS, http: httpx.AsyncClient
) -> None:
    spot.fail_next("balance", {"code": 200, "balance": "1.00"})
    response = await http.get(spot.base_url, params={"action": "balance", "apikey": "wrong"})
    assert response.json() == {"code": 200, "balance": "1.00"}


async def test_delayed_purchase_still_happens(spot: FakeSpotSMS) -> None:
    spot.delay_next("getNumber", 0.3)
    async with httpx.AsyncClient(timeout=0.05) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await call(impatient, spot, "getNumber", pid="0948", cuy="us", num="1")
    await spot.wait_idle()
    assert len(spot.activations) == 1
    assert spot.balance == Decimal("49.95") - Decimal("0.0882")
    assert spot.requests[0].http_status == 200


async def test_rate_limit(http: httpx.AsyncClient) -> None:
    async with FakeSpotSMS(rate_limit=2, window_seconds=60.0) as fake:
        fake.fail_next("balance", {"code": 500, "msg": "x"})
        assert (await call(http, fake, "balance")).json()["code"] == 500
        assert (await call(http, fake, "services")).status_code == 200
        limited = await call(http, fake, "balance")
        assert limited.status_code == 429
        assert limited.json() == TOO_MANY_REQUESTS == {"code": 429, "msg": "Too many requests"}
        assert fake.rejected_429 == 1
        assert fake.count("balance") == 2
        # Another key has its own window.
        other = await http.get(fake.base_url, params={"action": "balance", "apikey": "other"})
        assert other.json()["code"] == 401


async def test_rate_window_slides(http: httpx.AsyncClient) -> None:
    async with FakeSpotSMS(rate_limit=1, window_seconds=0.5) as fake:
        assert (await call(http, fake, "balance")).status_code == 200
        assert (await call(http, fake, "balance")).status_code == 429
        await asyncio.sleep(0.55)
        assert (await call(http, fake, "balance")).status_code == 200


async def test_auto_code(spot: FakeSpotSMS, http: httpx.AsyncClient) -> None:
    spot.auto_code_after = 1.0  # read at purchase time: this one is cancelled well before
    cancelled = await buy(http, spot)
    await answer(http, spot, "cancelRsActivation", rsid=cancelled["rsId"])
    spot.auto_code_after = 0.01
    number = await buy(http, spot)
    for _ in range(500):
        if spot.activations[number["rsId"]].codes:
            break
        await asyncio.sleep(0.01)
    assert spot.activations[number["rsId"]].codes == [AUTO_CODE]
    await asyncio.sleep(1.1)  # the cancelled one's delivery is due now, and skipped
    assert spot.activations[cancelled["rsId"]].codes == []
