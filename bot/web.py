"""The bot's own small HTTP endpoint for upstream callbacks (SMSPM delivery reports).

Callbacks are authenticated by a secret in the path; anything else gets 404 and changes nothing.
Handlers store the event and return at once; Telegram edits happen later in a batched job.
Whatever a stranger sends (non-ASCII paths or headers, bodies nested too deep to parse) gets
a 4xx answer, never a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web
from aiohttp.http import HttpProcessingError

from bot.payments.cryptopay import SIGNATURE_HEADER
from bot.payments.cryptopay import parse_webhook as parse_cryptopay_webhook
from bot.providers.papsms import parse_webhook
from bot.providers.smspm import parse_report
from bot.services.crypto import CryptoTopups
from bot.services.orders import OrderService
from bot.services.sms import ReportAction, SmsService
from storage.routing import RoutingRepo

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


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
    orders: OrderService, routing: RoutingRepo, secret: str, server: WebServer
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


class _QuietBadRequests(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus the traceback for a request aiohttp could not even parse
    (bytes outside ASCII in the request line, a broken header): aiohttp answers 400 itself, and
    a stranger should not fill the log with stacks that quote the request line (secret path
    and all). Crashes of our own handlers are still logged in full."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.info("Malformed request refused with HTTP %s", exc_info.code)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


class WebServer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=MAX_BODY)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work after answering the caller; awaited at stop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Callback work failed", exc_info=task.exception())

    def add(self, method: str, path: str, handler: Any) -> None:
        self.app.router.add_route(method, path, handler)

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            logger=_QuietBadRequests(logging.getLogger("aiohttp.server"), {}),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Callback endpoint listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
