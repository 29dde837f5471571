"""The SMSPM client and parsers against the exact strings of shared/upstream-docs/smspm.txt."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from shop.providers import smspm
from shop.providers.base import (
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    UpstreamUnavailable,
)
from shop.providers.budget import RequestBudget
from shop.providers.smspm import (
    SentSms,
    SmsBadSender,
    SmsDetails,
    SmsInvalidNumber,
    SmsOutcomeUnknown,
    SmsRateLimited,
    SmsReport,
    SmsSenderRequired,
    SmsStatus,
    SmsTokenRequired,
    SmsUnavailable,
    parse_details,
    parse_report,
    parse_send,
)

BASE = "https://api.smspm.com"
HASH = "52248aec022c6d53eabe30"
TOKEN = "A1B2-C3D4-E5F6-G7H8"

# Verbatim from the doc, section 3.
DOC_SUCCESS = """{
"messages": [
{
"id": "a7b3c4d5-e6f7-8a9b-0c1d-2e3f4a5b6c7d",
"toNumber": "37256789045",
"status": "Added to queue"
}
]
}"""
DOC_ERROR = """{
"error": "Token is required"
}"""
DOC_ID = "a7b3c4d5-e6f7-8a9b-0c1d-2e3f4a5b6c7d"


# ---------------------------------------------------------------------------------- parse_send


def test_doc_success() -> None:
    assert parse_send(DOC_SUCCESS, 200) == [SentSms(DOC_ID, "37256789045", "Added to queue")]


def test_doc_error_token_required() -> None:
    with pytest.raises(SmsTokenRequired) as info:
        parse_send(DOC_ERROR, 200)
    assert info.value.user_message == "Sending is temporarily unavailable."


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Token is required", SmsTokenRequired),
        ("Invalid phone number", SmsInvalidNumber),
        ("Sender number is required", SmsSenderRequired),
        ("Bad sender", SmsBadSender),
        ("bad sender ", SmsBadSender),  # case and surrounding space do not matter
        # Words the doc does not use prove nothing about a send: it may have gone out.
        ("Invalid credentials", SmsOutcomeUnknown),
        ("Too many recipients", SmsOutcomeUnknown),
        ("", SmsOutcomeUnknown),
    ],
)
@pytest.mark.parametrize("http_status", [200, 400, 401, 500])
def test_error_strings_any_status(
    message: str, error: type[ProviderError], http_status: int
) -> None:
    # The body is judged first: the doc gives no status codes.
    with pytest.raises(error):
        parse_send(json.dumps({"error": message}), http_status)


@pytest.mark.parametrize(
    ("body", "http_status", "error"),
    [
        # Only the doc's error strings prove a send failed: anything else may hide a send.
        ("<html><body>502 Bad Gateway</body></html>", 502, SmsOutcomeUnknown),
        ("<html><body>Welcome</body></html>", 200, SmsOutcomeUnknown),
        ("error code: 524", 524, SmsOutcomeUnknown),
        ("", 200, SmsOutcomeUnknown),
        ("OK", 200, SmsOutcomeUnknown),
        ("[]", 200, SmsOutcomeUnknown),
        ('{"messages": "queued"}', 200, SmsOutcomeUnknown),
        ('{"error": {"code": 5}}', 400, SmsOutcomeUnknown),
        ("Too Many Requests", 429, SmsOutcomeUnknown),
    ],
)
def test_unexpected_answers(body: str, http_status: int, error: type[ProviderError]) -> None:
    with pytest.raises(error) as info:
        parse_send(body, http_status)
    assert isinstance(info.value, SmsOutcomeUnknown) and info.value.accepted == ()


def test_error_types_fit_the_shared_hierarchy() -> None:
    assert issubclass(SmsUnavailable, UpstreamUnavailable)
    assert issubclass(SmsRateLimited, RateLimited) and issubclass(SmsRateLimited, SmsUnavailable)
    assert issubclass(SmsOutcomeUnknown, PurchaseOutcomeUnknown)
    for error in (SmsTokenRequired, SmsInvalidNumber, SmsSenderRequired, SmsBadSender):
        assert issubclass(error, smspm.SmsError) and issubclass(error, ProviderError)
        assert error.user_message and error.user_message != ProviderError.user_message
    # The shop's own settings are wrong: one class to alert on, one plain message.
    for error in (SmsTokenRequired, SmsSenderRequired, SmsBadSender):
        assert issubclass(error, smspm.SmsConfigError)
        assert error.user_message == "Sending is temporarily unavailable."
    assert not issubclass(SmsInvalidNumber, smspm.SmsConfigError)


def test_multiple_recipients_and_fewer_accepted() -> None:
    body = json.dumps(
        {
            "messages": [
                {"id": "m1", "toNumber": "37256789045", "status": "Added to queue"},
                {"id": "m3", "toNumber": "+372 5888 7766", "status": "Added to queue"},
            ]
        }
    )
    # Three were asked; two come back, returned as is (the caller refunds the third).
    assert parse_send(body, 200) == [
        SentSms("m1", "37256789045", "Added to queue"),
        SentSms("m3", "37258887766", "Added to queue"),
    ]
    assert parse_send('{"messages": []}', 200) == []


def test_entries_we_cannot_follow_make_the_send_unknown() -> None:
    body = json.dumps(
        {
            "messages": [
                {"toNumber": "37256789045", "status": "Added to queue"},
                {"id": "", "toNumber": "37257788990"},
                "m9",
                {"id": 77, "toNumber": 37258887766},
            ]
        }
    )
    # Listed means queued: those we cannot follow may go out, so the outcome is unknown; the
    # ones we can follow are carried along to be kept.
    with pytest.raises(SmsOutcomeUnknown) as info:
        parse_send(body, 200)
    assert info.value.accepted == (SentSms("77", "37258887766", ""),)


def test_listed_messages_win_over_status_and_error() -> None:
    # Queued messages cost money: a 500 or an extra error field does not undo them.
    assert parse_send(DOC_SUCCESS, 500)[0].id == DOC_ID
    both = json.dumps({"messages": [{"id": "m1", "toNumber": "1"}], "error": "partial"})
    assert [s.id for s in parse_send(both, 200)] == ["m1"]


# ---------------------------------------------------------------------------------- details


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"id": "x", "status": "delivered", "price": "0.045", "carrier": "Telia"}',
            SmsDetails(SmsStatus.DELIVERED, Decimal("0.045"), "Telia"),
        ),
        (
            '{"status": "queued", "price": 0.045, "carrier": "Elisa"}',
            SmsDetails(SmsStatus.QUEUED, Decimal("0.045"), "Elisa"),
        ),
        ('{"status": "submitted", "price": 1}', SmsDetails(SmsStatus.SUBMITTED, Decimal(1), None)),
        ('{"status": "failed"}', SmsDetails(SmsStatus.FAILED, None, None)),
        (
            '{"status": "Delivered", "price": null, "carrier": ""}',
            SmsDetails(SmsStatus.DELIVERED, None, None),
        ),
        ('{"status": "expired", "price": "abc"}', SmsDetails(SmsStatus.UNKNOWN, None, None)),
        ('{"status": "", "price": "-1"}', SmsDetails(SmsStatus.UNKNOWN, None, None)),
        ('{"status": "delivered", "price": "NaN"}', SmsDetails(SmsStatus.DELIVERED, None, None)),
        ('{"status": "delivered", "price": true}', SmsDetails(SmsStatus.DELIVERED, None, None)),
    ],
)
def test_details(body: str, expected: SmsDetails) -> None:
    assert parse_details(body) == expected


def test_details_price_is_exact() -> None:
    details = parse_details('{"status": "delivered", "price": 0.1}')
    assert details.price == Decimal("0.1") and str(details.price) == "0.1"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"error": "Token is required"}', SmsTokenRequired),
        ('{"error": "Message not found"}', SmsUnavailable),
        ('{"id": "x"}', SmsUnavailable),
        ('{"status": 3}', SmsUnavailable),
        ("<html>oops</html>", SmsUnavailable),
        ("", SmsUnavailable),
    ],
)
def test_details_errors(body: str, error: type[ProviderError]) -> None:
    with pytest.raises(error):
        parse_details(body)


def test_statuses() -> None:
    assert [s.value for s in SmsStatus] == [
        "queued",
        "submitted",
        "delivered",
        "failed",
        "unknown",
    ]
    assert SmsStatus.parse(" FAILED ") is SmsStatus.FAILED
    assert SmsStatus.parse(None) is SmsStatus.UNKNOWN
    assert SmsStatus.parse("unknown") is SmsStatus.UNKNOWN
    assert [s for s in SmsStatus if s.is_final] == [SmsStatus.DELIVERED, SmsStatus.FAILED]


# ---------------------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"id": "m1", "toNumber": "37256789045", "status": "delivered"},
            SmsReport("m1", SmsStatus.DELIVERED, "37256789045"),
        ),
        ({"smsId": "m1", "status": "FAILED"}, SmsReport("m1", SmsStatus.FAILED, None)),
        ({"MessageID": 12, "Status": "Submitted"}, SmsReport("12", SmsStatus.SUBMITTED, None)),
        ({"SMS_ID": "m1", "STATUS": "queued"}, SmsReport("m1", SmsStatus.QUEUED, None)),
        ({"message-id": "m1", "status": "delivered"}, SmsReport("m1", SmsStatus.DELIVERED, None)),
        (
            {"ID": " m1 ", "status": "bounced", "TONUMBER": "+372 5678 9045", "extra": [1]},
            SmsReport("m1", SmsStatus.UNKNOWN, "37256789045"),
        ),
        # `id` comes first when several id fields are present.
        (
            {"messageId": "b", "id": "a", "status": "delivered"},
            SmsReport("a", SmsStatus.DELIVERED, None),
        ),
        (
            {"id": "", "smsId": "b", "status": "delivered"},
            SmsReport("b", SmsStatus.DELIVERED, None),
        ),
    ],
)
def test_report(payload: dict[str, Any], expected: SmsReport) -> None:
    assert parse_report(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"status": "delivered"},
        {"id": "", "status": "delivered"},
        {"id": True, "status": "delivered"},
        {"id": None, "status": "delivered"},
        {"id": "m1"},
        {"id": "m1", "status": ""},
        {"id": "m1", "status": 2},
        {"number": "m1", "state": "delivered"},
    ],
)
def test_report_without_id_or_status(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_report(payload)


# ---------------------------------------------------------------------------------- client

Handler = Callable[[httpx.Request], httpx.Response]


class RecordingBudget(RequestBudget):
    def __init__(self) -> None:
        super().__init__(per_minute=10_000)
        self.priorities: list[int] = []

    async def acquire(self, priority: int) -> None:
        self.priorities.append(priority)


def make_client(
    handler: Handler, budget: RequestBudget | None = None
) -> tuple[smspm.SMSPMClient, list[httpx.Request]]:
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    client = smspm.SMSPMClient(http, BASE, HASH, TOKEN, budget, retry_delays=(0,))
    return client, calls


def answer(body: str, status: int = 200) -> Handler:
    return lambda request: httpx.Response(status, text=body)


async def test_send_one_is_the_doc_request() -> None:
    budget = RecordingBudget()
    client, calls = make_client(answer(DOC_SUCCESS), budget)
    sent = await client.send(["37256789045"], "Hello from my app!", "SMSPM.com", None)
    assert sent == [SentSms(DOC_ID, "37256789045", "Added to queue")]
    (request,) = calls
    assert request.method == "POST"
    assert str(request.url) in (BASE, BASE + "/")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "hash": HASH,
        "token": TOKEN,
        "toNumber": "37256789045",
        "text": "Hello from my app!",
        "fromNumber": "SMSPM.com",
    }
    assert budget.priorities == [Priority.PURCHASE]


async def test_send_many_with_report() -> None:
    numbers = ["37256789045", "37257788990", "37258887766"]
    body = json.dumps(
        {
            "messages": [
                {"id": f"m{i}", "toNumber": n, "status": "Added to queue"}
                for i, n in enumerate(numbers)
            ]
        }
    )
    client, calls = make_client(answer(body))
    sent = await client.send(
        numbers, "Message to everyone!", "SMSPM.com", "https://yourdomain.com/sms-callback"
    )
    assert [s.to_number for s in sent] == numbers
    sent_json = json.loads(calls[0].content)
    assert sent_json["toNumber"] == numbers
    assert sent_json["report"] == "https://yourdomain.com/sms-callback"


async def test_send_refuses_bad_recipient_counts_locally() -> None:
    client, calls = make_client(answer(DOC_SUCCESS))
    with pytest.raises(ValueError):
        await client.send([], "x", "SMSPM.com", None)
    with pytest.raises(ValueError):
        await client.send([f"3725{n:07d}" for n in range(101)], "x", "SMSPM.com", None)
    assert calls == []


async def test_send_error_body_before_status() -> None:
    client, _ = make_client(answer('{"error": "Bad sender"}', 400))
    with pytest.raises(SmsBadSender):
        await client.send(["37256789045"], "x", "Shop", None)
    client, calls = make_client(answer("<html>503 Service Unavailable</html>", 503))
    with pytest.raises(SmsOutcomeUnknown):
        await client.send(["37256789045"], "x", "SMSPM.com", None)
    assert len(calls) == 1  # never retried


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError],
)
async def test_send_without_answer_is_unknown_and_not_retried(exc: type[Exception]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("no answer", request=request)  # type: ignore[call-arg]

    client, calls = make_client(fail)
    with pytest.raises(SmsOutcomeUnknown) as info:
        await client.send(["37256789045"], "x", "SMSPM.com", None)
    assert len(calls) == 1
    assert info.value.__cause__ is None


@pytest.mark.parametrize("exc", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_send_not_connected_is_unavailable(exc: type[Exception]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("refused", request=request)  # type: ignore[call-arg]

    client, calls = make_client(fail)
    with pytest.raises(SmsUnavailable):
        await client.send(["37256789045"], "x", "SMSPM.com", None)
    assert len(calls) == 1  # a send is never retried, even when nothing went out


async def test_details_request_and_answer() -> None:
    budget = RecordingBudget()
    body = '{"id": "m1", "status": "delivered", "price": "0.045", "carrier": "Telia"}'
    client, calls = make_client(answer(body), budget)
    details = await client.details("m1")
    assert details == SmsDetails(SmsStatus.DELIVERED, Decimal("0.045"), "Telia")
    (request,) = calls
    assert (request.method, str(request.url)) == ("POST", BASE + "/smsdetails")
    assert json.loads(request.content) == {"id": "m1", "hash": HASH}  # the doc sends no token
    assert budget.priorities == [Priority.POLL]
    await client.details("m1", priority=Priority.INTERACTIVE)
    assert budget.priorities[-1] == Priority.INTERACTIVE


async def test_details_url_with_trailing_slash() -> None:
    calls: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, text='{"status": "queued"}')

    http = httpx.AsyncClient(transport=httpx.MockTransport(ok))
    client = smspm.SMSPMClient(http, BASE + "/", HASH, TOKEN)
    await client.details("m1")
    assert str(calls[0].url) == BASE + "/smsdetails"


async def test_details_retries_network_errors_twice_in_all() -> None:
    attempts = 0

    def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, text='{"status": "submitted"}')

    client, calls = make_client(flaky)
    assert (await client.details("m1")).status is SmsStatus.SUBMITTED
    assert len(calls) == 2

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, calls = make_client(down)
    with pytest.raises(SmsUnavailable):
        await client.details("m1")
    assert len(calls) == 2


async def test_details_retries_html_5xx_but_not_json_errors() -> None:
    answers = [httpx.Response(502, text="<html>bad gateway</html>")] * 2
    client, calls = make_client(lambda request: answers.pop(0))
    with pytest.raises(SmsUnavailable):
        await client.details("m1")
    assert len(calls) == 2

    client, calls = make_client(answer('{"error": "Token is required"}', 500))
    with pytest.raises(SmsTokenRequired):
        await client.details("m1")
    assert len(calls) == 1

    answers = [
        httpx.Response(429, text="slow down"),
        httpx.Response(200, text='{"status": "failed"}'),
    ]
    client, calls = make_client(lambda request: answers.pop(0))
    assert (await client.details("m1")).status is SmsStatus.FAILED
    assert len(calls) == 2


# ---------------------------------------------------------------------------------- secrets


def _echo_secrets(template: str, status: int) -> Handler:
    return answer(template.replace("TOKEN", TOKEN).replace("HASH", HASH), status)


LEAKY_ANSWERS = [
    ('{"error": "Token TOKEN is not valid for hash HASH"}', 401),
    ('{"error": "Token is required", "token": "TOKEN"}', 400),
    ("<html><pre>token=TOKEN&hash=HASH</pre></html>", 500),
    ("token=TOKEN", 200),
    ('{"status": 5, "token": "TOKEN"}', 200),
    ("TOKEN", 429),
]


def _assert_clean(error: BaseException) -> None:
    seen: BaseException | None = error
    while seen is not None:
        for text in (str(seen), repr(seen), getattr(seen, "user_message", "")):
            assert TOKEN not in text and HASH not in text
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize(("template", "status"), LEAKY_ANSWERS)
async def test_token_never_in_exception_messages(template: str, status: int) -> None:
    client, _ = make_client(_echo_secrets(template, status))
    with pytest.raises(ProviderError) as sent:
        await client.send(["37256789045"], "x", "SMSPM.com", None)
    _assert_clean(sent.value)
    with pytest.raises(ProviderError) as read:
        await client.details("m1")
    _assert_clean(read.value)


@pytest.mark.parametrize("exc", [httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError])
async def test_token_never_in_network_error_messages(exc: type[Exception]) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc(f"failed {request.content.decode()}", request=request)  # type: ignore[call-arg]

    client, _ = make_client(fail)
    with pytest.raises(ProviderError) as sent:
        await client.send(["37256789045"], "x", "SMSPM.com", None)
    _assert_clean(sent.value)
    with pytest.raises(ProviderError) as read:
        await client.details("m1")
    _assert_clean(read.value)


def test_user_messages_never_name_secrets_or_upstream_words() -> None:
    errors = [
        smspm.SmsError,
        smspm.SmsConfigError,
        SmsTokenRequired,
        SmsInvalidNumber,
        SmsSenderRequired,
        SmsBadSender,
        SmsUnavailable,
        SmsRateLimited,
        SmsOutcomeUnknown,
    ]
    for error in errors:
        instance = error(f"detail with {TOKEN}")
        assert TOKEN not in instance.user_message
        assert "Token is required" not in instance.user_message
