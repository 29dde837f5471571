"""The Crypto Pay client: parsing of every answer and error, webhook signatures, then over HTTP
against the fake (retries for reads only, never for createInvoice), and the fake itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from shop.providers.cryptopay import (
    FIAT_CURRENCIES,
    CryptoPayClient,
    CryptoPayRejected,
    CryptoPayTimeout,
    CryptoPayUnavailable,
    InvalidAmount,
    Invoice,
    InvoiceNotFound,
    InvoiceStatus,
    ProtocolError,
    Unauthorized,
    parse_envelope,
    parse_invoice,
    parse_invoices,
    parse_webhook,
    signature,
    verify_signature,
)
from tests.fakes.cryptopay import FIRST_INVOICE_ID, HTML_502, FakeCryptoPay

TOKEN = "12345:AAcryptopaytestTokenXYZ0123456789"

# An Invoice object with the fields the doc lists (a fiat invoice, paid in TON).
PAID_INVOICE: dict[str, Any] = {
    "invoice_id": 528890,
    "hash": "IVDoTcNBYEfk",
    "currency_type": "fiat",
    "fiat": "USD",
    "amount": "10.5",
    "accepted_assets": ["USDT", "TON"],
    "paid_asset": "TON",
    "paid_amount": "2",
    "paid_fiat_rate": "5.25",
    "paid_usd_rate": "5.25",
    "fee_asset": "TON",
    "fee_amount": "0.06",
    "bot_invoice_url": "https://t.me/CryptoBot?start=IVDoTcNBYEfk",
    "mini_app_invoice_url": "https://t.me/CryptoBot/app?startapp=invoice-IVDoTcNBYEfk",
    "web_app_invoice_url": "https://app.send.tg/invoices/IVDoTcNBYEfk",
    "description": "Balance top-up: $10.50",
    "status": "paid",
    "created_at": "2024-05-12T10:00:00.000Z",
    "paid_anonymously": False,
    "paid_at": "2024-05-12T10:03:11.000Z",
    "allow_comments": False,
    "allow_anonymous": True,
    "expiration_date": "2024-05-12T11:00:00.000Z",
    "payload": "42",
}


def envelope(result: Any) -> str:
    return json.dumps({"ok": True, "result": result})


def failure(code: int, name: str) -> str:
    return json.dumps({"ok": False, "error": {"code": code, "name": name}})


# ---------------------------------------------------------------------------------- parsing


def test_ok_envelope() -> None:
    assert parse_envelope(200, envelope({"items": []})) == {"items": []}
    assert parse_envelope(200, envelope(True)) is True


@pytest.mark.parametrize(
    ("status", "body", "error", "name"),
    [
        (401, failure(401, "UNAUTHORIZED"), Unauthorized, "UNAUTHORIZED"),
        (400, failure(400, "INVOICE_NOT_FOUND"), InvoiceNotFound, "INVOICE_NOT_FOUND"),
        (400, failure(400, "AMOUNT_INVALID"), InvalidAmount, "AMOUNT_INVALID"),
        (400, failure(400, "AMOUNT_TOO_SMALL"), InvalidAmount, "AMOUNT_TOO_SMALL"),
        (400, failure(400, "ASSET_INVALID"), CryptoPayRejected, "ASSET_INVALID"),
        (405, failure(405, "METHOD_NOT_FOUND"), CryptoPayRejected, "METHOD_NOT_FOUND"),
        (429, failure(429, "TOO_MANY_REQUESTS"), CryptoPayRejected, "TOO_MANY_REQUESTS"),
        (200, json.dumps({"ok": False, "error": "EXPIRES_IN_INVALID"}), CryptoPayRejected,
         "EXPIRES_IN_INVALID"),
    ],
)  # fmt: skip
def test_rejections(status: int, body: str, error: type[CryptoPayRejected], name: str) -> None:
    with pytest.raises(CryptoPayRejected) as caught:
        parse_envelope(status, body)
    assert type(caught.value) is error
    assert caught.value.name == name


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, HTML_502),
        (200, ""),
        (200, "null"),
        (200, '{"result": 1}'),
        (500, failure(500, "INTERNAL_ERROR")),
        (503, "Service Unavailable"),
    ],
)
def test_unusable_answers_are_unavailable(status: int, body: str) -> None:
    with pytest.raises(CryptoPayUnavailable) as caught:
        parse_envelope(status, body)
    assert not isinstance(caught.value, CryptoPayTimeout)


def test_ok_without_result_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_envelope(200, '{"ok": true}')


def test_paid_fiat_invoice() -> None:
    invoice = parse_invoice(PAID_INVOICE)
    assert invoice == Invoice(
        invoice_id=528890,
        hash="IVDoTcNBYEfk",
        currency_type="fiat",
        asset=None,
        fiat="USD",
        amount=Decimal("10.5"),
        accepted_assets=("USDT", "TON"),
        status=InvoiceStatus.PAID,
        bot_invoice_url="https://t.me/CryptoBot?start=IVDoTcNBYEfk",
        mini_app_invoice_url="https://t.me/CryptoBot/app?startapp=invoice-IVDoTcNBYEfk",
        web_app_invoice_url="https://app.send.tg/invoices/IVDoTcNBYEfk",
        description="Balance top-up: $10.50",
        payload="42",
        created_at=datetime(2024, 5, 12, 10, 0, tzinfo=UTC),
        paid_at=datetime(2024, 5, 12, 10, 3, 11, tzinfo=UTC),
        expiration_date=datetime(2024, 5, 12, 11, 0, tzinfo=UTC),
        paid_asset="TON",
        paid_amount=Decimal(2),
        paid_fiat_rate=Decimal("5.25"),
    )


def test_active_crypto_invoice_with_the_deprecated_pay_url() -> None:
    data = {
        "invoice_id": 7,
        "hash": "IVx",
        "asset": "USDT",
        "amount": "3",
        "pay_url": "https://t.me/CryptoBot?start=IVx",
        "status": "active",
        "created_at": "2024-05-12T10:00:00Z",
    }
    invoice = parse_invoice(data)
    assert invoice.currency_type == "crypto"
    assert invoice.asset == "USDT"
    assert invoice.bot_invoice_url == "https://t.me/CryptoBot?start=IVx"
    assert invoice.paid_at is None and invoice.paid_amount is None and invoice.payload is None


@pytest.mark.parametrize(
    "change",
    [
        {"invoice_id": "528890"},
        {"invoice_id": None},
        {"status": "cancelled"},
        {"amount": "ten"},
        {"amount": "NaN"},
        {"amount": None},
        {"bot_invoice_url": None},
        {"created_at": "yesterday"},
        {"currency_type": "stars"},
        {"paid_amount": [1]},
    ],
)
def test_broken_invoices(change: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_invoice({**PAID_INVOICE, **change})


def test_invoice_list() -> None:
    assert [i.invoice_id for i in parse_invoices({"items": [PAID_INVOICE]})] == [528890]
    with pytest.raises(ProtocolError):
        parse_invoices([PAID_INVOICE])


def test_supported_fiat_currencies() -> None:
    assert {"USD", "EUR", "RUB", "GBP", "INR", "BRL"} <= FIAT_CURRENCIES
    assert "JPY" not in FIAT_CURRENCIES and "CHF" not in FIAT_CURRENCIES


# ---------------------------------------------------------------------------------- webhooks


def body_of(update: dict[str, Any]) -> bytes:
    return json.dumps(update).encode()


UPDATE = {
    "update_id": 9,
    "update_type": "invoice_paid",
    "request_date": "2024-05-12T10:03:12.000Z",
    "payload": PAID_INVOICE,
}


def test_signature_is_hmac_of_the_body_keyed_with_sha256_of_the_token() -> None:
    body = body_of(UPDATE)
    expected = hmac.new(hashlib.sha256(TOKEN.encode()).digest(), body, hashlib.sha256).hexdigest()
    assert signature(TOKEN, body) == expected
    assert verify_signature(TOKEN, body, expected)
    assert verify_signature(TOKEN, body, expected.upper())


@pytest.mark.parametrize(
    "received",
    [
        None,
        "",
        "0" * 64,
        "not hex at all",
        hmac.new(TOKEN.encode(), body_of(UPDATE), hashlib.sha256).hexdigest(),  # raw-token key
    ],
)
def test_bad_signatures(received: str | None) -> None:
    assert not verify_signature(TOKEN, body_of(UPDATE), received)


def test_signature_covers_every_byte() -> None:
    body = body_of(UPDATE)
    good = signature(TOKEN, body)
    assert not verify_signature(TOKEN, body + b" ", good)
    assert not verify_signature(TOKEN, body.replace(b'"10.5"', b'"99.5"'), good)
    assert not verify_signature("other:token", body, good)


def test_parse_webhook() -> None:
    update = parse_webhook(body_of(UPDATE))
    assert (update.update_id, update.update_type) == (9, "invoice_paid")
    assert update.invoice is not None and update.invoice.invoice_id == 528890
    assert update.request_date == datetime(2024, 5, 12, 10, 3, 12, tzinfo=UTC)
    other = parse_webhook(body_of({**UPDATE, "update_type": "check_activated", "payload": {}}))
    assert other.invoice is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>",
        b"\xff\xfe",
        b"[]",
        body_of({**UPDATE, "update_id": "9"}),
        body_of({**UPDATE, "update_type": None}),
        body_of({**UPDATE, "payload": {"invoice_id": 1}}),
    ],
)
def test_garbage_webhooks(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_webhook(body)


# ---------------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def fake() -> AsyncIterator[FakeCryptoPay]:
    async with FakeCryptoPay(TOKEN) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


def make_client(
    http: httpx.AsyncClient, fake: FakeCryptoPay, token: str = TOKEN, timeout: float | None = None
) -> CryptoPayClient:
    return CryptoPayClient(http, token, fake.base_url, backoff=(0.01, 0.02), timeout=timeout)


@pytest.fixture
def client(http: httpx.AsyncClient, fake: FakeCryptoPay) -> CryptoPayClient:
    return make_client(http, fake)


async def test_invoice_lifecycle(client: CryptoPayClient, fake: FakeCryptoPay) -> None:
    invoice = await client.create_invoice(
        Decimal("10.50"),
        fiat="USD",
        accepted_assets=("USDT", "TON"),
        description="Balance top-up: $10.50",
        payload="42",
        expires_in=3600,
    )
    sent = fake.requests[-1].params
    assert sent == {
        "amount": "10.50",
        "currency_type": "fiat",
        "fiat": "USD",
        "accepted_assets": "USDT,TON",
        "description": "Balance top-up: $10.50",
        "payload": "42",
        "expires_in": 3600,
        "allow_comments": False,
        "allow_anonymous": True,
    }
    assert invoice.invoice_id == FIRST_INVOICE_ID
    assert invoice.status is InvoiceStatus.ACTIVE
    assert (invoice.fiat, invoice.amount, invoice.payload) == ("USD", Decimal("10.5"), "42")
    assert invoice.accepted_assets == ("USDT", "TON")
    assert invoice.bot_invoice_url.startswith("https://t.me/CryptoBot?start=IV")
    assert invoice.expiration_date is not None

    fake.pay(invoice.invoice_id, asset="TON")
    [paid] = await client.get_invoices(invoice_ids=[invoice.invoice_id])
    assert paid.status is InvoiceStatus.PAID
    assert (paid.paid_asset, paid.paid_amount) == ("TON", Decimal(2))
    assert fake.requests[-1].params["invoice_ids"] == str(invoice.invoice_id)

    with pytest.raises(CryptoPayRejected) as caught:
        await client.delete_invoice(invoice.invoice_id)  # a paid invoice stays
    assert caught.value.name == "INVOICE_PAID"


async def test_crypto_invoice_and_delete(client: CryptoPayClient, fake: FakeCryptoPay) -> None:
    invoice = await client.create_invoice(Decimal(3), asset="USDT", payload="1")
    assert fake.requests[-1].params["currency_type"] == "crypto"
    assert (invoice.currency_type, invoice.asset) == ("crypto", "USDT")
    assert await client.delete_invoice(invoice.invoice_id) is True
    assert await client.get_invoices(invoice_ids=[invoice.invoice_id]) == []
    with pytest.raises(InvoiceNotFound):
        await client.delete_invoice(invoice.invoice_id)
    with pytest.raises(ValueError):
        await client.create_invoice(Decimal(1), fiat="USD", asset="USDT")


async def test_batches_and_statuses(client: CryptoPayClient, fake: FakeCryptoPay) -> None:
    ids = [(await client.create_invoice(Decimal(1), fiat="EUR")).invoice_id for _ in range(3)]
    fake.pay(ids[0])
    fake.expire(ids[1])
    found = {i.invoice_id: i.status for i in await client.get_invoices(invoice_ids=ids)}
    assert found == {
        ids[0]: InvoiceStatus.PAID,
        ids[1]: InvoiceStatus.EXPIRED,
        ids[2]: InvoiceStatus.ACTIVE,
    }
    active = await client.get_invoices(status=InvoiceStatus.ACTIVE)
    assert [i.invoice_id for i in active] == [ids[2]]


async def test_wrong_token(http: httpx.AsyncClient, fake: FakeCryptoPay) -> None:
    client = make_client(http, fake, token="12345:wrong")
    with pytest.raises(Unauthorized):
        await client.get_invoices(invoice_ids=[1])
    assert not fake.requests[-1].token_ok
    with pytest.raises(Unauthorized):
        await client.create_invoice(Decimal(1), fiat="USD")
    assert fake.invoices == {}


@pytest.mark.parametrize(
    ("amount", "name"), [(Decimal(0), "AMOUNT_INVALID"), (Decimal("0.001"), "AMOUNT_TOO_SMALL")]
)
async def test_invalid_amounts(client: CryptoPayClient, amount: Decimal, name: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        await client.create_invoice(amount, fiat="USD")
    assert caught.value.name == name


async def test_fake_refuses_bad_parameters(client: CryptoPayClient) -> None:
    with pytest.raises(CryptoPayRejected, match="FIAT_INVALID"):
        await client.create_invoice(Decimal(1), fiat="JPY")
    with pytest.raises(CryptoPayRejected, match="ACCEPTED_ASSETS_INVALID"):
        await client.create_invoice(Decimal(1), fiat="USD", accepted_assets=("DOGE",))
    with pytest.raises(CryptoPayRejected, match="ASSET_INVALID"):
        await client.create_invoice(Decimal(1), asset="DOGE")


async def test_reads_are_retried(client: CryptoPayClient, fake: FakeCryptoPay) -> None:
    fake.html_502_next("getInvoices", times=2)
    assert await client.get_invoices(invoice_ids=[1]) == []
    assert fake.count("getInvoices") == 3
    fake.html_502_next("getInvoices", times=3)
    with pytest.raises(CryptoPayUnavailable):
        await client.get_invoices(invoice_ids=[1])
    assert fake.count("getInvoices") == 6
    fake.reject_next("getInvoices", "TOO_MANY_REQUESTS", 429)
    assert await client.get_invoices(invoice_ids=[1]) == []
    assert fake.count("getInvoices") == 8


async def test_create_invoice_is_never_retried(
    client: CryptoPayClient, fake: FakeCryptoPay
) -> None:
    fake.html_502_next("createInvoice")
    with pytest.raises(CryptoPayUnavailable):
        await client.create_invoice(Decimal(1), fiat="USD")
    assert fake.count("createInvoice") == 1
    assert fake.invoices == {}
    fake.reject_next("deleteInvoice", "INTERNAL_ERROR", 500)
    with pytest.raises(CryptoPayUnavailable):
        await client.delete_invoice(1)
    assert fake.count("deleteInvoice") == 1


async def test_create_invoice_timeout(http: httpx.AsyncClient, fake: FakeCryptoPay) -> None:
    client = make_client(http, fake, timeout=0.2)
    fake.delay_next("createInvoice", 0.6)
    with pytest.raises(CryptoPayTimeout):
        await client.create_invoice(Decimal(1), fiat="USD", payload="7")
    await fake.wait_idle()
    assert fake.count("createInvoice") == 1
    # The request did reach Crypto Pay: an invoice exists that nobody was shown.
    assert [i.payload for i in fake.invoices.values()] == ["7"]


async def test_read_timeout_is_retried(http: httpx.AsyncClient, fake: FakeCryptoPay) -> None:
    client = make_client(http, fake, timeout=0.2)
    fake.delay_next("getInvoices", 0.6)
    assert await client.get_invoices(status=InvoiceStatus.PAID) == []
    assert fake.count("getInvoices") == 2


async def test_unreachable(http: httpx.AsyncClient) -> None:
    client = CryptoPayClient(http, TOKEN, "http://127.0.0.1:9", backoff=())
    with pytest.raises(CryptoPayUnavailable) as caught:
        await client.create_invoice(Decimal(1), fiat="USD")
    assert not isinstance(caught.value, CryptoPayTimeout)  # never sent: nothing was created


async def test_token_is_never_logged(
    http: httpx.AsyncClient, fake: FakeCryptoPay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(http, fake)
    fake.html_502_next("getInvoices")
    await client.get_invoices(invoice_ids=[1])
    fake.reject_next("createInvoice", "UNAUTHORIZED", 401)
    with pytest.raises(Unauthorized) as caught:
        await client.create_invoice(Decimal(1), fiat="USD")
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client) and TOKEN not in str(caught.value)
    assert all(TOKEN not in json.dumps(r.params) for r in fake.requests)


# ---------------------------------------------------------------------------------- the fake


async def test_fake_signs_webhooks(fake: FakeCryptoPay, client: CryptoPayClient) -> None:
    received: list[tuple[bytes, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get("crypto-pay-api-signature")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        fake.webhook_url = f"http://127.0.0.1:{port}/hook"
        invoice = await client.create_invoice(Decimal(5), fiat="USD", payload="3")
        fake.pay(invoice.invoice_id, asset="USDT")
        fake.repeat_webhook()
        fake.forge_next = True
        fake.send_update("invoice_paid", fake.invoice(invoice.invoice_id).to_json())
        await fake.wait_webhooks()
    finally:
        await runner.cleanup()
    assert [a.http_status for a in fake.webhooks_sent] == [200, 200, 200]
    (first, sig1), (again, sig2), (forged, sig3) = received
    assert first == again and sig1 == sig2
    assert client.verify(first, sig1)
    assert not client.verify(forged, sig3)
    update = parse_webhook(first)
    assert update.invoice is not None
    assert update.invoice.status is InvoiceStatus.PAID
    assert (update.invoice.paid_asset, update.invoice.paid_amount) == ("USDT", Decimal(5))


async def test_fake_expiry(fake: FakeCryptoPay, client: CryptoPayClient) -> None:
    invoice = await client.create_invoice(Decimal(1), fiat="USD", expires_in=1)
    fake.invoice(invoice.invoice_id).expires_at = datetime(2000, 1, 1, tzinfo=UTC)
    [seen] = await client.get_invoices(invoice_ids=[invoice.invoice_id])
    assert seen.status is InvoiceStatus.EXPIRED
    with pytest.raises(ValueError):
        fake.pay(invoice.invoice_id)
    reply = fake.dispatch(
        "createInvoice",
        {"currency_type": "fiat", "fiat": "USD", "amount": "1", "expires_in": 0},
        True,
    )
    assert (reply.http_status, json.loads(reply.body)["error"]["name"]) == (
        400,
        "EXPIRES_IN_INVALID",
    )
