"""The bot's own small HTTP endpoint for upstream callbacks (SMSPM delivery reports).

Callbacks are authenticated by a secret in the path; anything else gets 404 and changes nothing.
Handlers store the event and return at once; Telegram edits happen later in a batched job.
Whatever a stranger sends (non-ASCII paths or headers, bodies nested too deep to parse) gets
a 4xx answer, never a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from shop.ports import RoutingRepository
from shop.providers.cryptopay import SIGNATURE_HEADER
from shop.providers.cryptopay import parse_webhook as parse_cryptopay_webhook
from shop.providers.papsms import parse_webhook
from shop.providers.smspm import parse_report
from shop.services.crypto import CryptoTopups
from shop.services.orders import OrderService
from shop.services.sms import ReportAction, SmsService
from web.server import WebServer

log = logging.getLogger(__name__)


def secret_matches(received: str, expected: str) -> bool:
    """Constant-time comparison of a path secret. `hmac.compare_digest` refuses `str`s with
    non-ASCII characters (a TypeError: a 500), so both sides are compared as UTF-8 bytes;
    `surrogatepass` keeps any string aiohttp decoded encodable, and one-to-one."""
    return hmac.compare_digest(
        received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _path_secret_ok(request: web.Request, secret: str) -> bool:
    return secret_matches(request.match_info.get("secret", ""), secret)


async def _payload(request: web.Request) -> dict[str, Any]:
    """A callback's fields from JSON, a form, or the query string, whichever it used."""
    fields: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        raw = await request.read()
        if raw:
            content_type = request.content_type
            if content_type == "application/json" or raw.lstrip()[:1] in (b"{", b"["):
                try:
                    data = json.loads(raw)
                except RecursionError:  # nested deeper than the parser goes: not a callback
                    raise ValueError("JSON nested too deep") from None
                if isinstance(data, dict):
                    fields.update(data)
            else:
                from urllib.parse import parse_qsl

                fields.update(parse_qsl(raw.decode("utf-8", "replace")))
    return fields


def sms_report_handler(sms: SmsService, secret: str, server: WebServer) -> Any:
    """Answers at once. A final status (failed, delivered) is confirmed with `/smsdetails` in
    the background before it counts, so a forged report refunds nothing."""

    async def handle(request: web.Request) -> web.Response:
        if not _path_secret_ok(request, secret):
            return web.Response(status=404, text="not found")
        try:
            report = parse_report(await _payload(request))
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="bad report")
        action = await sms.report(report.id, report.status)
        if action is ReportAction.UNKNOWN:
            log.info("SMS report for an unknown message id")
        elif action is ReportAction.CHECK:
            server.spawn(sms.check(report.id))
        return web.Response(text="ok")

    return handle


def papsms_webhook_handler(
    orders: OrderService, routing: RoutingRepository, secret: str, server: WebServer
) -> Any:
    """Answers at once; the event is stored once, then confirmed by a status call and delivered
    in the background. A forged or replayed webhook changes nothing."""

    async def handle(request: web.Request) -> web.Response:
        if not _path_secret_ok(request, secret):
            return web.Response(status=404, text="not found")
        try:
            event = parse_webhook(await _payload(request))
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="bad webhook")
        order_id = await orders.record_push(
            "papsms", event.event_key, event.activation_id, routing
        )
        if order_id is not None:
            server.spawn(orders.poll(order_id))
        return web.Response(text="ok")

    return handle


def cryptopay_webhook_handler(crypto: CryptoTopups, secret: str, server: WebServer) -> Any:
    """Crypto Pay's `invoice_paid` updates. The signature (HMAC-SHA256 of the raw body keyed
    with SHA-256 of the token) is checked before the body is parsed: a forged update gets 401, a
    signed body that is not an update 400, and neither changes anything. The top-up is credited
    before the answer (a failure answers 500 and Crypto Pay retries; the poll catches it too);
    the user is told in the background."""

    async def handle(request: web.Request) -> web.Response:
        if not _path_secret_ok(request, secret):
            return web.Response(status=404, text="not found")
        raw = await request.read()
        if not crypto.client.verify(raw, request.headers.get(SIGNATURE_HEADER)):
            log.warning("Crypto Pay webhook with a bad signature ignored")
            return web.Response(status=401, text="bad signature")
        try:
            update = parse_cryptopay_webhook(raw)
        except ValueError as exc:
            log.warning("Crypto Pay webhook not understood: %s", exc)
            return web.Response(status=400, text="bad update")
        if update.update_type != "invoice_paid" or update.invoice is None:
            return web.Response(text="ok")
        credit = await crypto.on_paid(update.invoice)
        if credit is not None:
            server.spawn(crypto.announce(credit))
        return web.Response(text="ok")

    return handle
