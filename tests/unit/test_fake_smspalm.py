"""Drive the SMSPalm fake over real HTTP and check it speaks the upstream protocol."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from tests.fakes.smspalm import (
    AUTO_CODE,
    FIRST_ACTIVATION_ID,
    TOO_MANY_REQUESTS,
    FakeSMSPalm,
)


@pytest.fixture
async def palm() -> AsyncIterator[FakeSMSPalm]:
    async with FakeSMSPalm() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def call(
    http: httpx.AsyncClient, fake: FakeSMSPalm, action: str, **params: str
) -> httpx.Response:
    """GET the handler with the fake's key, ``action`` and extra params."""
    query = {"api_key": fake.api_key, "action": action, **params}
    return await http.get(fake.base_url, params=query)


async def text(http: httpx.AsyncClient, fake: FakeSMSPalm, action: str, **params: str) -> str:
    """The body of a call that must be HTTP 200."""
    response = await call(http, fake, action, **params)
    assert response.status_code == 200, response.text
    return response.text


async def buy(
    http: httpx.AsyncClient, fake: FakeSMSPalm, server: str = "servertwo", **params: str
) -> tuple[str, str]:
    """Buy a WhatsApp number in the US; return (activation id, phone)."""
    country = "US" if server == "servertwo" else "187"
    query = {"service": "wa", "country": country, "server": server, **params}
    body = await text(http, fake, "getNumber", **query)
    prefix, activation_id, phone = body.split(":")
    assert prefix == "ACCESS_NUMBER"
    return activation_id, phone


# ---------------------------------------------------------------------- catalog


async def test_base_url_shape(palm: FakeSMSPalm) -> None:
    assert palm.base_url.startswith("http://127.0.0.1:")
    assert palm.base_url.endswith("/api/v1/handler")


async def test_base_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = FakeSMSPalm().base_url


async def test_get_balance(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    response = await call(http, palm, "getBalance")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "ACCESS_BALANCE:50000.00"
    palm.balance = Decimal("124.94")
    assert await text(http, palm, "getBalance") == "ACCESS_BALANCE:124.94"


async def test_get_countries_both_servers(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    response = await call(http, palm, "getCountries")
    assert response.headers["content-type"].startswith("application/json")
    countries = response.json()
    assert {"id": 187, "eng": "United States"} in countries
    assert {c["id"] for c in countries} == {187, 16, 22, 6, 36}
    palm.countries["serverone"] = [{"id": 187, "eng": "United States"}]
    one = json.loads(await text(http, palm, "getCountries", server="serverone"))
    assert one == [{"id": 187, "eng": "United States"}]
    assert len(json.loads(await text(http, palm, "getCountries", server="servertwo"))) == 5


async def test_get_services_list(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    response = await call(http, palm, "getServicesList")
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["status"] == "success"
    assert payload["services"][:2] == [
        {"code": "wa", "name": "WhatsApp"},
        {"code": "tg", "name": "Telegram"},
    ]
    assert {"code": "att", "name": "AT&T <Verify>"} in payload["services"]
    one = json.loads(await text(http, palm, "getServicesList", server="serverone"))
    assert one == payload


async def test_get_prices_with_country(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    response = await call(http, palm, "getPrices", service="wa", country="US")
    assert response.headers["content-type"].startswith("application/json")
    assert response.text == '{"187": {"wa": {"cost": 250.00, "count": 345}}}'
    assert response.json() == {"187": {"wa": {"cost": 250.0, "count": 345}}}
    by_id = await text(http, palm, "getPrices", service="wa", country="187")
    assert by_id == response.text
    one = await text(http, palm, "getPrices", service="wa", country="187", server="serverone")
    assert one == '{"187": {"wa": {"cost": 300.00, "count": 12}}}'


async def test_get_prices_without_country(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    prices = json.loads(await text(http, palm, "getPrices", service="wa"))
    assert set(prices) == {"187", "16", "22", "6", "36"}
    assert all(set(entry) == {"wa"} for entry in prices.values())
    zero = json.loads(await text(http, palm, "getPrices", service="ig"))
    assert zero["187"]["ig"]["count"] == 0


async def test_get_prices_edge_cases(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    assert await text(http, palm, "getPrices", service="wa", country="ZZ") == "{}"
    assert await text(http, palm, "getPrices", service="ig", country="CA") == "{}"
    assert await text(http, palm, "getPrices", service="nope") == "BAD_SERVICE"
    assert await text(http, palm, "getPrices") == "BAD_SERVICE"


# ---------------------------------------------------------------------- purchase flows


async def test_purchase_deducts_and_records(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    body = await text(http, palm, "getNumber", service="wa", country="US", ref="order-7")
    assert body == f"ACCESS_NUMBER:{FIRST_ACTIVATION_ID}:14804342409"
    assert palm.balance == Decimal("49750.00")
    assert palm.prices["servertwo"][(187, "wa")] == [Decimal("250.00"), 344]
    activation = palm.activations[str(FIRST_ACTIVATION_ID)]
    assert (activation.server, activation.service, activation.country_id) == (
        "servertwo",
        "wa",
        187,
    )
    assert activation.ref == "order-7"
    assert activation.cost == Decimal("250.00")
    second, _ = await buy(http, palm)
    assert second == str(FIRST_ACTIVATION_ID + 1)


async def test_full_flow_serverone(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    activation_id, phone = await buy(http, palm, server="serverone")
    assert phone.startswith("1480434") and len(phone) == 11
    assert palm.balance == Decimal("49700.00")
    assert await text(http, palm, "setStatus", id=activation_id, status="1") == "ACCESS_READY"
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_WAIT_CODE"
    palm.deliver_code(activation_id, "739214", "Your WhatsApp code 739-214")
    assert activation_id in palm.code_delivered_at
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_OK:739214"
    done = await text(http, palm, "setStatus", id=activation_id, status="6")
    assert done == "ACCESS_ACTIVATION"
    assert palm.activations[activation_id].status == "done"
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_OK:739214"


async def test_retry_flow_serverone(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    activation_id, _ = await buy(http, palm, server="serverone")
    retry_too_soon = await text(http, palm, "setStatus", id=activation_id, status="3")
    assert retry_too_soon == "BAD_STATUS"
    palm.deliver_code(activation_id, "1234")
    retry = await text(http, palm, "setStatus", id=activation_id, status="3")
    assert retry == "ACCESS_RETRY_GET"
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_WAIT_RETRY:1234"
    palm.deliver_code(activation_id, "5678")
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_OK:5678"
    assert palm.activations[activation_id].codes == ["1234", "5678"]
    done = await text(http, palm, "setStatus", id=activation_id, status="6")
    assert done == "ACCESS_ACTIVATION"


async def test_servertwo_only_supports_cancel(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    activation_id, _ = await buy(http, palm)
    palm.deliver_code(activation_id, "739214")
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_OK:739214"
    for status in ("1", "3", "6"):
        answer = await text(http, palm, "setStatus", id=activation_id, status=status)
        assert answer == "BAD_STATUS"
    assert palm.activations[activation_id].status == "ok"


async def test_cancel_refunds_once(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    activation_id, _ = await buy(http, palm)
    assert palm.balance == Decimal("49750.00")
    assert await text(http, palm, "setStatus", id=activation_id, status="8") == "ACCESS_CANCEL"
    assert palm.balance == Decimal("50000.00")
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_CANCEL"
    assert await text(http, palm, "setStatus", id=activation_id, status="8") == "ACCESS_CANCEL"
    assert palm.balance == Decimal("50000.00")
    with pytest.raises(ValueError):
        palm.deliver_code(activation_id, "1111")


async def test_cancel_after_code_is_refused(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    activation_id, _ = await buy(http, palm)
    palm.deliver_code(activation_id, "739214")
    assert await text(http, palm, "setStatus", id=activation_id, status="8") == "BAD_STATUS"
    assert palm.balance == Decimal("49750.00")


async def test_early_cancel_denied(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    palm.early_cancel_seconds = 0.3
    activation_id, _ = await buy(http, palm)
    early = await text(http, palm, "setStatus", id=activation_id, status="8")
    assert early == "EARLY_CANCEL_DENIED"
    assert palm.balance == Decimal("49750.00")
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_WAIT_CODE"
    await asyncio.sleep(0.35)
    assert await text(http, palm, "setStatus", id=activation_id, status="8") == "ACCESS_CANCEL"
    assert palm.balance == Decimal("50000.00")


async def test_auto_code(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    palm.auto_code_after = 0.1
    activation_id, _ = await buy(http, palm)
    bought_at = palm.activations[activation_id].created_at
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_WAIT_CODE"
    await asyncio.sleep(0.2)
    assert await text(http, palm, "getStatus", id=activation_id) == f"STATUS_OK:{AUTO_CODE}"
    assert palm.code_delivered_at[activation_id] - bought_at >= 0.1


async def test_country_forms_per_server(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    by_id = await text(http, palm, "getNumber", service="wa", country="187")
    assert by_id.startswith("ACCESS_NUMBER:")
    by_iso = await text(http, palm, "getNumber", service="wa", country="GB", server="serverone")
    _, activation_id, phone = by_iso.split(":")
    assert phone.startswith("44")
    assert palm.activations[activation_id].server == "serverone"
    assert palm.activations[activation_id].cost == Decimal("400.00")


# ---------------------------------------------------------------------- error strings


async def test_no_numbers(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    assert await text(http, palm, "getNumber", service="ig", country="US") == "NO_NUMBERS"
    assert await text(http, palm, "getNumber", service="wa", country="ZZ") == "NO_NUMBERS"
    assert await text(http, palm, "getNumber", service="att", country="GB") == "NO_NUMBERS"
    assert await text(http, palm, "getNumber", service="wa") == "NO_NUMBERS"
    assert palm.activations == {}
    assert palm.balance == Decimal("50000.00")


async def test_no_balance(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    palm.balance = Decimal("249.99")
    assert await text(http, palm, "getNumber", service="wa", country="US") == "NO_BALANCE"
    assert palm.activations == {}
    assert palm.prices["servertwo"][(187, "wa")][1] == 345
    palm.balance = Decimal("250.00")
    await buy(http, palm)
    assert palm.balance == Decimal("0.00")


async def test_bad_service(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    assert await text(http, palm, "getNumber", service="xx", country="US") == "BAD_SERVICE"
    assert await text(http, palm, "getNumber", country="US") == "BAD_SERVICE"


async def test_bad_key(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    wrong = await http.get(palm.base_url, params={"api_key": "nope", "action": "getBalance"})
    assert wrong.text == "BAD_KEY"
    missing = await http.get(palm.base_url, params={"action": "getBalance"})
    assert missing.text == "BAD_KEY"
    assert all("api_key" not in request.params for request in palm.requests)


async def test_bad_action(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    assert await text(http, palm, "getEverything") == "BAD_ACTION"
    missing = await http.get(palm.base_url, params={"api_key": palm.api_key})
    assert missing.text == "BAD_ACTION"


async def test_no_activation_and_bad_status(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    assert await text(http, palm, "getStatus", id="1") == "NO_ACTIVATION"
    assert await text(http, palm, "getStatus") == "NO_ACTIVATION"
    assert await text(http, palm, "setStatus", id="1", status="8") == "NO_ACTIVATION"
    activation_id, _ = await buy(http, palm, server="serverone")
    for status in ("2", "x", ""):
        answer = await text(http, palm, "setStatus", id=activation_id, status=status)
        assert answer == "BAD_STATUS"


async def test_error_http_status(http: httpx.AsyncClient) -> None:
    async with FakeSMSPalm(error_http_status=400) as fake:
        bad_key = await http.get(fake.base_url, params={"api_key": "x", "action": "getBalance"})
        assert (bad_key.status_code, bad_key.text) == (400, "BAD_KEY")
        response = await call(http, fake, "getNumber", service="ig", country="US")
        assert (response.status_code, response.text) == (400, "NO_NUMBERS")
        assert (await call(http, fake, "getBalance")).status_code == 200
        activation_id, _ = await buy(http, fake)
        cancel = await call(http, fake, "setStatus", id=activation_id, status="8")
        assert (cancel.status_code, cancel.text) == (200, "ACCESS_CANCEL")
        status = await call(http, fake, "getStatus", id=activation_id)
        assert (status.status_code, status.text) == (200, "STATUS_CANCEL")


# ---------------------------------------------------------------------- injections


async def test_fail_next_html_502(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    html = "<html><body>502 Bad Gateway</body></html>"
    palm.fail_next("getNumber", html, 502, times=2)
    for _ in range(2):
        response = await call(http, palm, "getNumber", service="wa", country="US")
        assert (response.status_code, response.text) == (502, html)
        assert response.headers["content-type"].startswith("text/html")
    assert palm.activations == {}
    assert palm.balance == Decimal("50000.00")
    await buy(http, palm)
    assert palm.count("getNumber") == 3


async def test_fail_next_plain_strings(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    palm.fail_next("getNumber", "NO_NUMBERS")
    assert await text(http, palm, "getNumber", service="wa", country="US") == "NO_NUMBERS"
    activation_id, _ = await buy(http, palm)
    palm.fail_next("getStatus", "SOMETHING_NEW")
    assert await text(http, palm, "getStatus", id=activation_id) == "SOMETHING_NEW"
    assert await text(http, palm, "getStatus", id=activation_id) == "STATUS_WAIT_CODE"
    assert await text(http, palm, "getBalance") == "ACCESS_BALANCE:49750.00"


async def test_delay_next_slows_down(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    palm.delay_next("getBalance", 0.2)
    started = time.monotonic()
    assert await text(http, palm, "getBalance") == "ACCESS_BALANCE:50000.00"
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    await text(http, palm, "getBalance")
    assert time.monotonic() - started < 0.2


async def test_delayed_purchase_still_happens(palm: FakeSMSPalm) -> None:
    palm.delay_next("getNumber", 0.4)
    query = {"api_key": palm.api_key, "action": "getNumber", "service": "wa", "country": "US"}
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await impatient.get(palm.base_url, params=query)
    assert palm.activations == {}
    await palm.wait_idle()
    assert list(palm.activations) == [str(FIRST_ACTIVATION_ID)]
    assert palm.balance == Decimal("49750.00")
    assert palm.requests[-1].body == f"ACCESS_NUMBER:{FIRST_ACTIVATION_ID}:14804342409"


# ---------------------------------------------------------------------- transport


async def test_post_form_and_request_log(palm: FakeSMSPalm, http: httpx.AsyncClient) -> None:
    form = {"api_key": palm.api_key, "action": "getBalance"}
    response = await http.post(palm.base_url, data=form)
    assert response.text == "ACCESS_BALANCE:50000.00"
    mixed = await http.post(
        palm.base_url, params={"api_key": palm.api_key}, data={"action": "getServicesList"}
    )
    assert mixed.json()["status"] == "success"
    first = palm.requests[0]
    assert (first.action, first.params, first.http_status, first.method) == (
        "getBalance",
        {"action": "getBalance"},
        200,
        "POST",
    )
    assert palm.count("getBalance") == 1
    assert palm.count("getServicesList") == 1


async def test_rate_limit_429_and_recovery(http: httpx.AsyncClient) -> None:
    async with FakeSMSPalm(rate_limit=3, window_seconds=0.5) as fake:
        for _ in range(3):
            assert (await call(http, fake, "getBalance")).status_code == 200
        refused = await call(http, fake, "getBalance")
        assert (refused.status_code, refused.text) == (429, TOO_MANY_REQUESTS)
        assert (await call(http, fake, "getStatus", id="1")).status_code == 429
        assert fake.rejected_429 == 2
        assert fake.count("getBalance") == 4
        await asyncio.sleep(0.55)
        recovered = await call(http, fake, "getBalance")
        assert (recovered.status_code, recovered.text) == (200, "ACCESS_BALANCE:50000.00")
        assert fake.rejected_429 == 2
