"""The SMSPalm parsers against the exact strings of shared/upstream-docs/smspalm.txt."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from shop.providers import smspalm
from shop.providers.base import (
    Activation,
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
    StatusKind,
    UpstreamNoBalance,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget


def test_balance() -> None:
    assert smspalm.parse_balance("ACCESS_BALANCE:124.94") == Decimal("124.94")


def test_number() -> None:
    assert smspalm.parse_number("ACCESS_NUMBER:50292409:14804343809") == Activation(
        "50292409", "14804343809"
    )


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        ("STATUS_WAIT_CODE", StatusKind.WAITING, None),
        ("STATUS_WAIT_RETRY:1234", StatusKind.WAITING_RETRY, "1234"),
        ("STATUS_OK:739214", StatusKind.CODE, "739214"),
        ("STATUS_CANCEL", StatusKind.CANCELLED, None),
    ],
)
def test_status(body: str, kind: StatusKind, code: str | None) -> None:
    status = smspalm.parse_status(body)
    assert (status.kind, status.code) == (kind, code)


def test_status_no_activation() -> None:
    with pytest.raises(NoActivation):
        smspalm.parse_status("NO_ACTIVATION")


@pytest.mark.parametrize(
    ("status", "body"),
    [(1, "ACCESS_READY"), (3, "ACCESS_RETRY_GET"), (6, "ACCESS_ACTIVATION"), (8, "ACCESS_CANCEL")],
)
def test_set_status(status: int, body: str) -> None:
    smspalm.parse_set_status(body, status)


def test_early_cancel_denied_is_not_a_cancel() -> None:
    with pytest.raises(EarlyCancelDenied):
        smspalm.parse_set_status("EARLY_CANCEL_DENIED", 8)
    with pytest.raises(UpstreamUnavailable):
        smspalm.parse_set_status("ACCESS_CANCEL_PENDING", 8)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("BAD_KEY", BadKey),
        ("BAD_ACTION", UpstreamUnavailable),
        ("BAD_SERVICE", BadService),
        ("BAD_STATUS", BadStatus),
        ("NO_NUMBERS", NoNumbers),
        ("NO_ACTIVATION", NoActivation),
        ("NO_BALANCE", UpstreamNoBalance),
        ("EARLY_CANCEL_DENIED", EarlyCancelDenied),
        # Not a documented refusal: SMSPalm may have sold a number.
        ("<html><body>502 Bad Gateway</body></html>", PurchaseOutcomeUnknown),
        ("SOMETHING_NEW", PurchaseOutcomeUnknown),
        ("", PurchaseOutcomeUnknown),
        ("ACCESS_NUMBER:123", PurchaseOutcomeUnknown),
    ],
)
def test_number_errors(body: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        smspalm.parse_number(body)


def test_countries_services_prices() -> None:
    countries = smspalm.parse_countries(
        '[{"id": 187, "eng": "United States"}, {"id": 50, "eng": "Bangladesh"}]'
    )
    assert [(c.id, c.name) for c in countries] == [("187", "United States"), ("50", "Bangladesh")]
    services = smspalm.parse_services(
        '{"status": "success", "services": [{"code": "wa", "name": "WhatsApp"},'
        ' {"code": "tg", "name": "Telegram"}]}'
    )
    assert [(s.code, s.name) for s in services] == [("wa", "WhatsApp"), ("tg", "Telegram")]
    offers = smspalm.parse_prices('{"187": {"wa": {"cost": 250.00, "count": 345}}}', "wa")
    assert [(o.country_id, o.cost, o.stock) for o in offers] == [("187", Decimal("250.00"), 345)]
    assert smspalm.parse_prices("[]", "wa") == []
    with pytest.raises(UpstreamUnavailable):
        smspalm.parse_prices("<html>oops</html>", "wa")


def _client(handler: httpx.MockTransport) -> smspalm.SMSPalmClient:
    http = httpx.AsyncClient(transport=handler)
    return smspalm.SMSPalmClient(
        http, "http://palm.test/api", "secret-key", RequestBudget(10_000), retry_delays=(0, 0)
    )


async def test_error_body_is_read_before_the_status_code() -> None:
    client = _client(httpx.MockTransport(lambda r: httpx.Response(400, text="NO_NUMBERS")))
    route = smspalm.SMSPalmRoute(client, smspalm.SERVER_TWO, Decimal(1))
    with pytest.raises(NoNumbers):
        await route.buy("wa", CountryRef("187", "US"), ref="1")


async def test_http_errors_and_429() -> None:
    client = _client(httpx.MockTransport(lambda r: httpx.Response(503, text="<html>down</html>")))
    with pytest.raises(UpstreamUnavailable) as info:
        await client.balance()
    assert "secret-key" not in str(info.value)
    client = _client(httpx.MockTransport(lambda r: httpx.Response(429, text="slow down")))
    with pytest.raises(RateLimited):
        await client.balance()


async def test_purchase_timeout_is_unknown_and_not_retried() -> None:
    calls = []

    def timeout(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    client = _client(httpx.MockTransport(timeout))
    route = smspalm.SMSPalmRoute(client, smspalm.SERVER_TWO, Decimal(1))
    with pytest.raises(PurchaseOutcomeUnknown):
        await route.buy("wa", CountryRef("187", "US"), ref="7")
    assert len(calls) == 1
    assert calls[0].url.params["ref"] == "7"
    assert calls[0].url.params["country"] == "US"


async def test_reads_retry_on_network_errors() -> None:
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text="ACCESS_BALANCE:1.00")

    client = _client(httpx.MockTransport(flaky))
    assert await client.balance() == Decimal("1.00")
    assert len(calls) == 3


async def test_server_one_sends_numeric_country_and_supports_retry() -> None:
    seen = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, text="ACCESS_NUMBER:1:2")

    route = smspalm.SMSPalmRoute(_client(httpx.MockTransport(ok)), smspalm.SERVER_ONE, Decimal(1))
    await route.buy("wa", CountryRef("187", "US"), ref="1")
    assert seen[0]["country"] == "187" and seen[0]["server"] == "serverone"
    assert route.can_request_another and route.can_finish
    two = smspalm.SMSPalmRoute(_client(httpx.MockTransport(ok)), smspalm.SERVER_TWO, Decimal(1))
    assert not two.can_request_another and not two.can_finish
    assert Priority.PURCHASE < Priority.POLL
