"""What a purchase answer proves, per provider, on exact strings.

Only an answer that names a documented (or, for PapSMS, recognised) refusal proves that no
number was bought; a readable success is a number; anything else (a 5xx, a 524, an HTML page, an
unreadable 200, an error we cannot name) is PurchaseOutcomeUnknown, so the order service
refunds, flags the order and alerts the owners instead of treating it as "no number".
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from shop.providers import papsms, smspalm, smspool, spotsms
from shop.providers.base import (
    Activation,
    BadKey,
    BadService,
    BadStatus,
    CountryRef,
    EarlyCancelDenied,
    NoActivation,
    NoNumbers,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    UpstreamNoBalance,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget

HTML_502 = "<html><body><h1>502 Bad Gateway</h1></body></html>"
HTML_200 = "<!DOCTYPE html><html><body>We are down for maintenance</body></html>"
CLOUDFLARE_524 = "error code: 524"

# Answers that never prove a failure, whatever the provider.
UNCLEAR = [
    ("Internal Server Error", 500),
    (HTML_502, 502),
    ("<html><body>503 Service Temporarily Unavailable</body></html>", 503),
    (CLOUDFLARE_524, 524),
    (HTML_200, 200),
    ("", 200),
    ("OK", 200),
]


def _raises(parse: object, body: str, status: int) -> ProviderError:
    assert callable(parse)
    with pytest.raises(ProviderError) as info:
        parse(body, status)
    return info.value


# ---------------------------------------------------------------------------------- SMSPalm


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
    ],
)
@pytest.mark.parametrize("status", [200, 400, 500])
def test_smspalm_documented_errors_prove_failure(
    body: str, error: type[ProviderError], status: int
) -> None:
    assert type(_raises(smspalm.parse_number, body, status)) is error


@pytest.mark.parametrize(
    ("body", "status"),
    [
        *UNCLEAR,
        ("WHATEVER_NEW_STRING", 200),
        ("ACCESS_NUMBER:123", 200),
        ("ACCESS_NUMBER::14804343809", 200),
        ("no_numbers", 200),
        ("NO_NUMBERS: try later", 200),
        ("TOO_MANY_REQUESTS", 429),  # a rate limit the doc does not describe
    ],
)
def test_smspalm_unclear_answers_are_unknown(body: str, status: int) -> None:
    assert type(_raises(smspalm.parse_number, body, status)) is PurchaseOutcomeUnknown


@pytest.mark.parametrize("status", [200, 500])
def test_smspalm_a_number_is_a_number_whatever_the_status(status: int) -> None:
    assert smspalm.parse_number("ACCESS_NUMBER:50292409:14804343809", status) == Activation(
        "50292409", "14804343809"
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "Internal Server Error"), (524, CLOUDFLARE_524), (502, HTML_502), (200, HTML_200)],
)
async def test_smspalm_route_buy_reports_unknown_once(status: int, body: str) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = smspalm.SMSPalmClient(
            http, "http://palm.test/api", "secret-key", RequestBudget(10_000), (0, 0)
        )
        route = smspalm.SMSPalmRoute(client, smspalm.SERVER_TWO, Decimal(1))
        with pytest.raises(PurchaseOutcomeUnknown) as info:
            await route.buy("wa", CountryRef("187", "US"), ref="7")
    assert len(seen) == 1  # never retried
    assert "secret-key" not in str(info.value)


# ---------------------------------------------------------------------------------- SpotSMS

SPOT_DOC_NUMBER = (
    '{"code": 200, "data": "+12025551234", "rsId": "activation_id_here", "pidUsed": "0003"}'
)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"code": 401, "msg": "Invalid API key"}', BadKey),
        ('{"code": 402, "msg": "Insufficient balance"}', UpstreamNoBalance),
        ('{"code": 404, "msg": "No numbers available"}', NoNumbers),
        ('{"code": 404, "msg": "Service not found"}', NoNumbers),
        ('{"code": "402"}', UpstreamNoBalance),
    ],
)
@pytest.mark.parametrize("status", [200, 401, 402, 404])
def test_spotsms_documented_codes_prove_failure(
    body: str, error: type[ProviderError], status: int
) -> None:
    with pytest.raises(ProviderError) as info:
        spotsms.parse_purchase(body, status, "0948")
    assert type(info.value) is error


@pytest.mark.parametrize(
    ("body", "status"),
    [
        *UNCLEAR,
        ('{"code": 500, "msg": "Server error"}', 200),
        ('{"code": 500, "msg": "Server error"}', 500),
        ('{"code": 429, "msg": "Too many requests"}', 429),
        ('{"code": 418, "msg": "teapot"}', 200),
        ('{"code": 200}', 200),
        ('{"code": 200, "data": "+12025551234"}', 200),
        ('{"code": 200, "rsId": "rs1"}', 200),
        ('[{"code": 200}]', 200),
        ('{"msg": "no code"}', 200),
    ],
)
def test_spotsms_unclear_answers_are_unknown(body: str, status: int) -> None:
    with pytest.raises(ProviderError) as info:
        spotsms.parse_purchase(body, status, "0948")
    assert type(info.value) is PurchaseOutcomeUnknown


def test_spotsms_doc_number() -> None:
    assert spotsms.parse_purchase(SPOT_DOC_NUMBER, 200, "0003") == Activation(
        "activation_id_here|12025551234|0003", "12025551234"
    )


# ---------------------------------------------------------------------------------- PapSMS

PAP_DOC_PURCHASE = (
    '{"success": true, "data": {"activation_id": "12345678", "phone_number": "+14155550123",'
    ' "country": "us", "service": "whatsapp", "expires_at": "2026-04-19T15:30:00Z",'
    ' "cost": 0.80}}'
)


def _pap_error(code: str, message: str) -> str:
    return f'{{"success": false, "error": {{"code": "{code}", "message": "{message}"}}}}'


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (_pap_error("no_numbers", "No numbers available"), 409, NoNumbers),
        (_pap_error("insufficient_balance", "Insufficient balance"), 402, UpstreamNoBalance),
        (_pap_error("unauthorized", "Invalid API key"), 401, BadKey),
        (_pap_error("invalid_service", "Unknown service"), 400, BadService),
        ('{"success": false, "message": "Out of stock"}', 200, NoNumbers),
        (_pap_error("rate_limited", "Too many requests"), 429, RateLimited),
        ("Too Many Requests", 429, RateLimited),  # the doc: back off on 429
        ("<html><body>401 Authorization Required</body></html>", 401, BadKey),
    ],
)
def test_papsms_recognised_refusals_prove_failure(
    body: str, status: int, error: type[ProviderError]
) -> None:
    assert type(_raises(papsms.parse_purchase, body, status)) is error


@pytest.mark.parametrize(
    ("body", "status"),
    [
        *UNCLEAR,
        ("<html><body>504 Gateway Time-out</body></html>", 504),
        (_pap_error("internal", "Internal error"), 500),
        ('{"success": false, "error": {"code": "timeout"}}', 504),
        ('{"success": false, "message": "Service Unavailable"}', 503),
        (_pap_error("not_found", "x"), 404),
        ('{"status": "ok"}', 200),
        ("[]", 200),
        ('{"success": true, "data": {"activation_id": "1"}}', 200),
    ],
)
def test_papsms_unclear_answers_are_unknown(body: str, status: int) -> None:
    assert type(_raises(papsms.parse_purchase, body, status)) is PurchaseOutcomeUnknown


def test_papsms_doc_purchase() -> None:
    bought = papsms.parse_purchase(PAP_DOC_PURCHASE, 200)
    assert bought.activation == Activation("12345678", "14155550123")


# ---------------------------------------------------------------------------------- SMSPool

POOL_PURCHASED = (
    '{"success":1,"number":"123456789","order_id":"ABCDEFG","country":"United States",'
    '"service":"Service","pool":5,"expires_in":599,"message":""}'
)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            '{"success":0,"message":"This country is currently not available for this '
            'service, please try the following countries: "}',
            NoNumbers,
        ),
        (
            '{"success":0,"message":"Insufficient balance, the price is: 0.85 while you only '
            'have: 0.00"}',
            UpstreamNoBalance,
        ),
        (
            '{"success":0,"errors":[{"message":"Missing or invalid param: country"},'
            '{"message":"Missing or invalid param: service"},{"message":"Missing or invalid '
            'param: key","description":"Your API key which can be found on your settings page '
            'at /my/settings"}]}',
            BadKey,
        ),
        ('{"success":0,"message":"This service is not available for this country."}', NoNumbers),
        (
            '{"success":0,"message":"Something went horribly wrong, try again please!"}',
            UpstreamUnavailable,
        ),
        (
            '{"success":0,"errors":[{"message":"<b>Missing</b> or invalid param: max_price"}]}',
            UpstreamUnavailable,
        ),
    ],
)
@pytest.mark.parametrize("status", [200, 400, 500])
def test_smspool_documented_failures_prove_failure(
    body: str, error: type[ProviderError], status: int
) -> None:
    assert type(_raises(smspool.parse_purchase, body, status)) is error


@pytest.mark.parametrize(
    ("body", "status"),
    [
        *UNCLEAR,
        ('{"message":"Server Error"}', 500),
        ('{"success":0,"message":"Too many requests"}', 429),
        ('{"success":0,"message":"Something brand new"}', 200),
        ('{"success":0}', 200),
        ('{"success":1,"message":""}', 200),
        ('{"success":1,"order_id":"ABCDEFG"}', 200),
        ('{"price":"0.75"}', 200),
    ],
)
def test_smspool_unclear_answers_are_unknown(body: str, status: int) -> None:
    assert type(_raises(smspool.parse_purchase, body, status)) is PurchaseOutcomeUnknown


def test_smspool_doc_purchase() -> None:
    assert smspool.parse_purchase(POOL_PURCHASED) == smspool.Purchase("ABCDEFG", "123456789", 599)
