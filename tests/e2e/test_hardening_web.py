"""The bot's own webhook endpoints (PapSMS, SMSPM reports, Crypto Pay) against strangers: a path
secret or a signature header with non-ASCII characters is refused with 404 / 401, never a 500
with a traceback, and the listener binds to 127.0.0.1 unless told otherwise.

Requests go over real HTTP: through httpx where it can express them (it percent-encodes a
non-ASCII path), and as raw bytes on a socket where a client library refuses (UTF-8 and
Latin-1 bytes in the request line or in a header)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.config import Settings
from tests.conftest import TOKEN, BotHarness, free_port
from tests.fakes.cryptopay import FakeCryptoPay, sign
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspm import FakeSMSPM

PAP_SECRET = "pap-hook-secret"
SMS_SECRET = "sms-report-secret"
CRYPTO_SECRET = "crypto-hook-secret"
SIGNATURE = "crypto-pay-api-signature"

PATHS = {
    "papsms": f"/papsms/webhook/{PAP_SECRET}",
    "smspm": f"/smspm/report/{SMS_SECRET}",
    "cryptopay": f"/cryptopay/webhook/{CRYPTO_SECRET}",
}


@pytest.fixture
async def pap() -> AsyncIterator[FakePapSMS]:
    fake = FakePapSMS(rate_limit=None)
    await fake.start()
    yield fake
    await fake.stop()


async def _all_endpoints(
    harness_factory: Callable[..., BotHarness],
    pap: FakePapSMS,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    **overrides: Any,
) -> tuple[BotHarness, int]:
    """The bot with all three endpoints on its listener (no HTTP_HOST set: the default)."""
    port = free_port()
    harness = harness_factory(
        http_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        papsms_api_key=pap.api_key,
        papsms_base_url=pap.base_url,
        papsms_rate_limit=6000,
        papsms_webhook=True,
        papsms_webhook_secret=PAP_SECRET,
        smspm_hash=smspm.hash,
        smspm_token=smspm.token,
        smspm_base_url=smspm.base_url,
        smspm_rate_limit=6000,
        smspm_report_secret=SMS_SECRET,
        cryptopay_token=cryptopay.token,
        cryptopay_base_url=cryptopay.base_url,
        cryptopay_poll_seconds=3600,
        cryptopay_webhook=True,
        cryptopay_webhook_secret=CRYPTO_SECRET,
        **overrides,
    )
    await harness.start()
    return harness, port


async def raw_request(
    port: int, path: bytes, headers: tuple[tuple[bytes, bytes], ...] = (), body: bytes = b"{}"
) -> int:
    """POST with the request line and headers written byte for byte; the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        b"POST " + path + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
        *(name + b": " + value for name, value in headers),
    ]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split(b" ")[1])


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records of a request that crashed (aiohttp logs those with a traceback)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and (r.exc_info or r.name.startswith("aiohttp"))
    ]


async def test_non_ascii_path_secrets_get_404_not_500(
    harness_factory: Callable[..., BotHarness],
    pap: FakePapSMS,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    _, port = await _all_endpoints(harness_factory, pap, smspm, cryptopay)
    prefixes = ("/papsms/webhook/", "/smspm/report/", "/cryptopay/webhook/")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for prefix in prefixes:
            for secret in ("sécret", "секрет", "🔑", PAP_SECRET + "é", "%FF%FE"):
                response = await client.post(prefix + secret, json={"id": "x", "status": "x"})
                assert response.status_code == 404, (prefix, secret, response.status_code)
    for prefix in prefixes:
        for raw in ("sécret".encode(), "секрет".encode(), b"s\xe9cret", b"\xff\xfe"):
            status = await raw_request(port, prefix.encode() + raw)
            assert status in (400, 404), (prefix, raw, status)
    assert server_errors(caplog) == []


async def test_non_ascii_signature_header_gets_401_not_500(
    harness_factory: Callable[..., BotHarness],
    pap: FakePapSMS,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    harness, port = await _all_endpoints(harness_factory, pap, smspm, cryptopay)
    body = b'{"update_id": 1, "update_type": "invoice_paid", "payload": {}}'
    good = sign(cryptopay.token, body)
    path = PATHS["cryptopay"].encode()
    for value in ("подпись".encode(), "é".encode() + good.encode(), b"\xe9" * 64, b"\xff"):
        status = await raw_request(port, path, ((SIGNATURE.encode(), value),), body)
        assert status == 401, (value, status)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.post(
            PATHS["cryptopay"], content=body, headers={SIGNATURE: "ключ".encode()}
        )
        assert response.status_code == 401
        # The right signature still passes the check (a signed body that is no update: 400).
        response = await client.post(PATHS["cryptopay"], content=body, headers={SIGNATURE: good})
        assert response.status_code == 400
    assert server_errors(caplog) == []
    assert harness.app is not None
    assert await harness.app.db.fetchval("SELECT COUNT(*) FROM ledger") == 0


async def test_non_ascii_headers_and_bodies_on_the_report_and_papsms_endpoints(
    harness_factory: Callable[..., BotHarness],
    pap: FakePapSMS,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    _, port = await _all_endpoints(harness_factory, pap, smspm, cryptopay)
    headers = ((b"X-Note", "привет".encode()), (b"X-Latin", b"caf\xe9"))
    for name in ("papsms", "smspm"):
        path = PATHS[name].encode()
        status = await raw_request(port, path, headers, b'{"id": "n\xc3\xa9", "status": "x"}')
        assert status in (200, 400), (name, status)
        # JSON nested deeper than the parser goes: a bad request, not a crash.
        assert await raw_request(port, path, (), b"[" * 50_000) == 400
    assert server_errors(caplog) == []


async def test_the_listener_binds_to_localhost_by_default(
    harness_factory: Callable[..., BotHarness],
    pap: FakePapSMS,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
) -> None:
    defaults = Settings(_env_file=None, bot_token=TOKEN)  # type: ignore[call-arg]
    assert (defaults.http_host, defaults.http_port) == ("127.0.0.1", 8080)
    harness, port = await _all_endpoints(harness_factory, pap, smspm, cryptopay)
    assert harness.app is not None and harness.app.web is not None
    assert (harness.app.web.host, harness.app.web.port) == ("127.0.0.1", port)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/smspm/report/wrong", json={})
    assert response.status_code == 404
