"""Drive the SMSPM fake over real HTTP and check it speaks the documented protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from shop.providers.smspm import (
    SmsBadSender,
    SmsInvalidNumber,
    SmsOutcomeUnknown,
    SMSPMClient,
    SmsSenderRequired,
    SmsStatus,
    SmsTokenRequired,
    SmsUnavailable,
    parse_report,
)
from tests.fakes.smspm import (
    ADDED_TO_QUEUE,
    BAD_SENDER,
    INVALID_CREDENTIALS,
    INVALID_PHONE,
    MESSAGE_NOT_FOUND,
    SENDER_REQUIRED,
    TEXT_REQUIRED,
    TOKEN_REQUIRED,
    TOO_MANY,
    FakeSMSPM,
)

EE = "37256789045"
EE2 = "37257788990"
EE3 = "37258887766"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSMSPM]:
    async with FakeSMSPM() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


class Receiver:
    """A tiny callback endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.got = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.got.set()
        return web.Response(text="ok", status=self.status)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/sms-callback", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/sms-callback"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def body(fake: FakeSMSPM, **fields: Any) -> dict[str, Any]:
    """The doc's send body with the fake's credentials, overridden by ``fields``."""
    base: dict[str, Any] = {
        "hash": fake.hash,
        "token": fake.token,
        "toNumber": EE,
        "text": "Hello from my app!",
        "fromNumber": "SMSPM.com",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


async def send(http: httpx.AsyncClient, fake: FakeSMSPM, **fields: Any) -> httpx.Response:
    return await http.post(fake.base_url, json=body(fake, **fields))


def client_for(fake: FakeSMSPM, http: httpx.AsyncClient, **kwargs: Any) -> SMSPMClient:
    args = {"hash_": fake.hash, "token": fake.token, **kwargs}
    return SMSPMClient(http, fake.base_url, retry_delays=(0,), **args)


# ---------------------------------------------------------------------- sending


async def test_send_one_like_the_doc(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    response = await send(http, fake)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    (entry,) = response.json()["messages"]
    assert (entry["toNumber"], entry["status"]) == (EE, ADDED_TO_QUEUE)
    message = fake.messages[entry["id"]]
    assert (message.to_number, message.text, message.sender, message.status) == (
        EE,
        "Hello from my app!",
        "SMSPM.com",
        "queued",
    )
    assert message.report_url is None
    assert len(entry["id"]) == 36  # a uuid4


async def test_send_many(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    response = await send(http, fake, toNumber=[EE, EE2, EE3], text="Message to everyone!")
    messages = response.json()["messages"]
    assert [m["toNumber"] for m in messages] == [EE, EE2, EE3]
    assert len({m["id"] for m in messages}) == 3
    assert len(fake.messages) == 3


async def test_browser_get_example(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    query = {
        "hash": fake.hash,
        "toNumber": EE,
        "text": "Hello World",
        "fromNumber": "SMSPM.com",
        "token": fake.token,
    }
    response = await http.get(fake.base_url, params=query)
    assert response.json()["messages"][0]["toNumber"] == EE
    repeated = await http.get(fake.base_url, params=[*query.items(), ("toNumber", EE2)])
    assert [m["toNumber"] for m in repeated.json()["messages"]] == [EE, EE2]
    assert fake.requests[0].method == "GET"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"token": None}, TOKEN_REQUIRED),
        ({"token": ""}, TOKEN_REQUIRED),
        ({"token": "nope"}, INVALID_CREDENTIALS),
        ({"hash": "nope"}, INVALID_CREDENTIALS),
        ({"hash": None}, INVALID_CREDENTIALS),
        ({"fromNumber": None}, SENDER_REQUIRED),
        ({"fromNumber": " "}, SENDER_REQUIRED),
        ({"fromNumber": "MyShop"}, BAD_SENDER),
        ({"text": ""}, TEXT_REQUIRED),
        ({"toNumber": None}, INVALID_PHONE),
        ({"toNumber": []}, INVALID_PHONE),
        ({"toNumber": "+37256789045"}, INVALID_PHONE),
        ({"toNumber": "+372 5678 9045"}, INVALID_PHONE),
        ({"toNumber": "5678904"}, INVALID_PHONE),
        ({"toNumber": 37256789045}, INVALID_PHONE),
        ({"toNumber": [EE, "56789"]}, INVALID_PHONE),  # one bad number refuses all
        ({"toNumber": f"{EE},{EE2}"}, INVALID_PHONE),
        ({"toNumber": [EE] * 101}, TOO_MANY),
    ],
)
async def test_send_errors(
    fake: FakeSMSPM, http: httpx.AsyncClient, fields: dict[str, Any], error: str
) -> None:
    response = await send(http, fake, **fields)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert fake.messages == {}


async def test_error_order_and_sender_case(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    # No token beats everything else; the doc writes both SMSPM.com and smspm.com.
    response = await send(http, fake, token=None, fromNumber=None, toNumber="+1")
    assert response.json() == {"error": TOKEN_REQUIRED}
    assert (await send(http, fake, fromNumber="smspm.com")).status_code == 200
    fake.approved_senders.add("MyShop")
    assert (await send(http, fake, fromNumber="MyShop")).status_code == 200


async def test_exactly_one_hundred(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    numbers = [f"3725{n:07d}" for n in range(100)]
    response = await send(http, fake, toNumber=numbers)
    assert len(response.json()["messages"]) == 100


async def test_malformed_body(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    for content in (b"{not json", b"[1, 2]"):
        response = await http.post(
            fake.base_url, content=content, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()) == (400, {"error": "Invalid request"})


async def test_request_log_drops_the_token(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    await send(http, fake)
    await http.post(fake.base_url + "/smsdetails", json={"id": "x", "hash": fake.hash})
    first, second = fake.requests
    assert "token" not in first.params and first.params["hash"] == fake.hash
    assert fake.token not in json.dumps([first.params, second.params])
    assert (first.path, first.method, first.http_status) == ("/", "POST", 200)
    assert (fake.count("/"), fake.count("/smsdetails"), fake.count("/smsdetails/")) == (1, 1, 1)


# ---------------------------------------------------------------------- details


async def test_details(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    sms_id = (await send(http, fake)).json()["messages"][0]["id"]
    url = fake.base_url + "/smsdetails"
    details = await http.post(url, json={"id": sms_id, "hash": fake.hash})
    assert details.json() == {
        "id": sms_id,
        "status": "queued",
        "price": "0.045",
        "carrier": "Telia",
    }
    fake.set_status(sms_id, "delivered")
    assert (await http.post(url, json={"id": sms_id, "hash": fake.hash})).json()[
        "status"
    ] == "delivered"
    fake.price = None
    fake.carrier = None
    bare = await http.post(url, json={"id": sms_id, "hash": fake.hash})
    assert bare.json() == {"id": sms_id, "status": "delivered"}
    missing = await http.post(url, json={"id": "nope", "hash": fake.hash})
    assert (missing.status_code, missing.json()) == (400, {"error": MESSAGE_NOT_FOUND})
    wrong = await http.post(url, json={"id": sms_id, "hash": "nope"})
    assert wrong.json() == {"error": INVALID_CREDENTIALS}


# ---------------------------------------------------------------------- the real client


async def test_real_client_against_the_fake(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    sent = await client.send([EE, EE2], "Hi", "SMSPM.com", None)
    assert [s.to_number for s in sent] == [EE, EE2]
    assert {s.status for s in sent} == {ADDED_TO_QUEUE}
    details = await client.details(sent[0].id)
    assert (details.status, details.price, details.carrier) == (
        SmsStatus.QUEUED,
        Decimal("0.045"),
        "Telia",
    )
    fake.set_status(EE2, "failed")
    assert (await client.details(sent[1].id)).status is SmsStatus.FAILED
    fake.set_status(sent[0].id, "expired")
    assert (await client.details(sent[0].id)).status is SmsStatus.UNKNOWN


async def test_real_client_errors(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    with pytest.raises(SmsTokenRequired):
        await client_for(fake, http, token="").send([EE], "Hi", "SMSPM.com", None)
    with pytest.raises(SmsOutcomeUnknown):  # "Invalid credentials" is not in the doc
        await client_for(fake, http, token="wrong").send([EE], "Hi", "SMSPM.com", None)
    client = client_for(fake, http)
    with pytest.raises(SmsSenderRequired):
        await client.send([EE], "Hi", "", None)
    with pytest.raises(SmsBadSender):
        await client.send([EE], "Hi", "MyShop", None)
    with pytest.raises(SmsInvalidNumber):
        await client.send([EE, "+37257788990"], "Hi", "SMSPM.com", None)
    with pytest.raises(SmsUnavailable):
        await client.details("nope")
    assert fake.messages == {}


async def test_fail_next_and_unknown_outcome(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    client = client_for(fake, http)
    fake.fail_next("/", "<html>502 Bad Gateway</html>", 502)
    with pytest.raises(SmsOutcomeUnknown):  # a proxy's page proves nothing
        await client.send([EE], "Hi", "SMSPM.com", None)
    assert fake.messages == {}
    assert fake.requests[-1].http_status == 502

    fake.delay_next("/", 0.3)
    async with httpx.AsyncClient(timeout=0.05) as impatient:
        with pytest.raises(SmsOutcomeUnknown):
            await client_for(fake, impatient).send([EE], "Hi", "SMSPM.com", None)
    await fake.wait_idle()
    assert len(fake.messages) == 1  # it went out after all: that is why it is "unknown"
    assert fake.count("/") == 2

    fake.fail_next("/smsdetails", "<html>503</html>", 503, times=2)
    with pytest.raises(SmsUnavailable):
        await client.details(next(iter(fake.messages)))
    assert fake.count("/smsdetails") == 2  # one retry
    fake.fail_next("/smsdetails/", '{"status": "submitted"}')
    assert (await client.details("whatever")).status is SmsStatus.SUBMITTED


# ---------------------------------------------------------------------- reports


async def test_report_callback(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    async with Receiver() as receiver:
        sent = await client_for(fake, http).send([EE, EE2], "Hi", "SMSPM.com", receiver.url)
        assert fake.messages[sent[0].id].report_url == receiver.url
        fake.set_status(sent[0].id, "submitted")
        fake.set_status(EE, "delivered")
        fake.set_status(EE, "delivered")  # no change, no report
        await fake.wait_idle()
        assert receiver.received == [
            {"id": sent[0].id, "toNumber": EE, "status": "submitted"},
            {"id": sent[0].id, "toNumber": EE, "status": "delivered"},
        ]
        report = parse_report(receiver.received[-1])
        assert (report.id, report.status, report.to_number) == (
            sent[0].id,
            SmsStatus.DELIVERED,
            EE,
        )
        assert [(a.http_status, a.error) for a in fake.reports_sent] == [(200, None)] * 2
        fake.repeat_report(EE)
        await fake.wait_idle()
        assert receiver.received[-1] == receiver.received[-2]


async def test_auto_outcome(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    fake.auto_outcome = {EE: "delivered", EE2: "failed"}
    fake.auto_after = 0.02
    async with Receiver() as receiver:
        sent = await client_for(fake, http).send([EE, EE2, EE3], "Hi", "SMSPM.com", receiver.url)
        await fake.settle()
        by_number = {s.to_number: fake.messages[s.id] for s in sent}
        assert by_number[EE].history == ["queued", "submitted", "delivered"]
        assert by_number[EE2].history == ["queued", "submitted", "failed"]
        assert by_number[EE3].history == ["queued"]
        got = [(r["toNumber"], r["status"]) for r in receiver.received]
        assert sorted(got) == sorted(
            [(EE, "submitted"), (EE, "delivered"), (EE2, "submitted"), (EE2, "failed")]
        )
        assert [s for n, s in got if n == EE] == ["submitted", "delivered"]  # in order


async def test_auto_outcome_wildcard_without_reports(
    fake: FakeSMSPM, http: httpx.AsyncClient
) -> None:
    fake.auto_outcome = {"*": "delivered"}
    fake.auto_after = 0.01
    fake.send_reports = False
    sent = await client_for(fake, http).send([EE3], "Hi", "SMSPM.com", "http://127.0.0.1:9/x")
    await fake.settle()
    assert fake.messages[sent[0].id].status == "delivered"
    assert fake.reports_sent == []


async def test_auto_step_skipped_once_final(fake: FakeSMSPM, http: httpx.AsyncClient) -> None:
    fake.auto_outcome = {EE: "delivered"}
    fake.auto_after = 0.02
    sent = await client_for(fake, http).send([EE], "Hi", "SMSPM.com", None)
    fake.set_status(sent[0].id, "failed")
    await fake.settle()
    assert fake.messages[sent[0].id].history == ["queued", "failed"]


async def test_unreachable_report_url_is_recorded(
    fake: FakeSMSPM, http: httpx.AsyncClient
) -> None:
    async with Receiver() as receiver:
        url = receiver.url
    sent = await client_for(fake, http).send([EE], "Hi", "SMSPM.com", url)
    fake.set_status(sent[0].id, "delivered")
    await fake.wait_idle()
    (attempt,) = fake.reports_sent
    assert attempt.http_status is None and attempt.error
    assert attempt.payload == {"id": sent[0].id, "toNumber": EE, "status": "delivered"}


async def test_credentials_and_base_url() -> None:
    fake = FakeSMSPM(hash_="h", token="t")
    assert (fake.hash, fake.hash_, fake.token) == ("h", "h", "t")
    with pytest.raises(RuntimeError):
        fake.base_url  # noqa: B018 - not started
    async with fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"


async def test_set_status_unknown_key(fake: FakeSMSPM) -> None:
    with pytest.raises(KeyError):
        fake.set_status("nope", "delivered")
