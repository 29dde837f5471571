"""In-process fake of the Crypto Pay API (@CryptoBot), served over real HTTP on 127.0.0.1.

Per https://help.crypt.bot/crypto-pay-api: every call is ``/api/{method}`` with the header
``Crypto-Pay-API-Token``; parameters come as a query string, a JSON body or a form (merged, the
body wins). Answers are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"code": 400, "name": "..."}}`` with the HTTP status equal to the code.

Methods
    * ``getMe`` -> ``{"app_id", "name", "payment_processing_bot_username": "CryptoBot"}``.
    * ``createInvoice``: ``currency_type`` "crypto" (default; ``asset`` in :attr:`assets`) or
      "fiat" (``fiat`` in ``FIAT_CURRENCIES``, optional comma-separated ``accepted_assets``);
      ``amount`` a positive decimal string, at least :attr:`min_amount`; ``description`` up to
      1024 characters; ``payload`` up to 4096 bytes; ``expires_in`` 1-2678400;
      ``allow_comments``/``allow_anonymous``. Ids count up from ``FIRST_INVOICE_ID``.
    * ``getInvoices``: ``asset``, ``fiat``, ``invoice_ids`` (comma-separated), ``status``
      (``active`` / ``paid``), ``offset``, ``count`` (1-1000, default 100) -> ``{"items": [...]}``
      newest first. Deleted invoices are gone.
    * ``deleteInvoice``: ``invoice_id`` -> ``true``; unknown or deleted -> ``INVOICE_NOT_FOUND``;
      a paid invoice cannot be deleted (``INVOICE_PAID``, assumed).

Error names (the doc lists none; these are assumed): ``UNAUTHORIZED`` 401,
``METHOD_NOT_FOUND`` 405, ``*_REQUIRED`` / ``*_INVALID`` 400 (``AMOUNT_INVALID``,
``AMOUNT_TOO_SMALL``, ``ASSET_INVALID``, ``FIAT_INVALID``, ``EXPIRES_IN_INVALID``, ...),
``INVOICE_NOT_FOUND`` 400.

Test helpers
    :meth:`pay` marks an invoice paid (``paid_asset``, ``paid_amount`` at :attr:`rates`) and,
    with :attr:`webhook_url` set, POSTs the signed ``invoice_paid`` update in a task;
    :meth:`expire` ends an active invoice now; :meth:`repeat_webhook` redelivers the last update
    byte for byte; :meth:`post_webhook` sends any body with any signature; :meth:`wait_webhooks`.
    Faults: :meth:`fail_next` (any body and status, e.g. :meth:`html_502_next`),
    :meth:`delay_next` (the call still takes effect after the delay: a client timeout),
    :attr:`forge_next` (the next webhook is signed with the wrong key).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from aiohttp import web

from ._server import FakeServer, Reply, guess_content_type, respond

FIRST_INVOICE_ID = 5001
TOKEN = "12345:AAcryptopaytestTokenXYZ0123456789"
FIAT_CURRENCIES = (
    "USD", "EUR", "RUB", "BYN", "UAH", "GBP", "CNY", "KZT", "UZS", "GEL",
    "TRY", "AMD", "THB", "INR", "BRL", "IDR", "AZN", "AED", "PLN", "ILS",
)  # fmt: skip
DEFAULT_ASSETS = ("USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC")
SIGNATURE_HEADER = "crypto-pay-api-signature"
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def number(value: Decimal) -> str:
    """Crypto Pay renders amounts as plain decimal strings without trailing zeros."""
    return format(value.normalize(), "f")


def sign(token: str, body: bytes) -> str:
    return hmac.new(hashlib.sha256(token.encode()).digest(), body, hashlib.sha256).hexdigest()


@dataclass
class FakeInvoice:
    invoice_id: int
    hash: str
    currency_type: str
    asset: str | None
    fiat: str | None
    amount: Decimal
    accepted_assets: tuple[str, ...]
    description: str | None
    payload: str | None
    allow_comments: bool
    allow_anonymous: bool
    created_at: datetime
    expires_at: datetime | None
    status: str = "active"
    paid_at: datetime | None = None
    paid_asset: str | None = None
    paid_amount: Decimal | None = None
    paid_fiat_rate: Decimal | None = None
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "invoice_id": self.invoice_id,
            "hash": self.hash,
            "currency_type": self.currency_type,
            "amount": number(self.amount),
            "bot_invoice_url": f"https://t.me/CryptoBot?start={self.hash}",
            "mini_app_invoice_url": f"https://t.me/CryptoBot/app?startapp=invoice-{self.hash}",
            "web_app_invoice_url": f"https://app.send.tg/invoices/{self.hash}",
            "status": self.status,
            "created_at": iso(self.created_at),
            "allow_comments": self.allow_comments,
            "allow_anonymous": self.allow_anonymous,
        }
        if self.currency_type == "crypto":
            data["asset"] = self.asset
        else:
            data["fiat"] = self.fiat
            if self.accepted_assets:
                data["accepted_assets"] = list(self.accepted_assets)
        if self.description is not None:
            data["description"] = self.description
        if self.payload is not None:
            data["payload"] = self.payload
        if self.expires_at is not None:
            data["expiration_date"] = iso(self.expires_at)
        if self.status == "paid":
            assert self.paid_at is not None and self.paid_amount is not None
            data.update(
                paid_at=iso(self.paid_at),
                paid_asset=self.paid_asset,
                paid_amount=number(self.paid_amount),
                paid_anonymously=False,
                fee_asset=self.paid_asset,
                fee_amount=number((self.paid_amount * Decimal("0.03")).quantize(Decimal("1e-8"))),
            )
            if self.paid_fiat_rate is not None:
                data["paid_fiat_rate"] = number(self.paid_fiat_rate)
                data["paid_usd_rate"] = number(self.paid_fiat_rate)
        return data


@dataclass
class Request:
    """One received request: the method and its merged parameters (never the token)."""

    method: str
    params: dict[str, Any]
    token_ok: bool
    http_status: int | None = None
    body: str | None = None


@dataclass
class WebhookAttempt:
    body: bytes
    signature: str
    http_status: int | None = None
    error: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


class InvalidParam(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def ok(result: Any) -> Reply:
    return Reply(json.dumps({"ok": True, "result": result}))


def error(name: str, code: int = 400) -> Reply:
    return Reply(json.dumps({"ok": False, "error": {"code": code, "name": name}}), code)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


class FakeCryptoPay(FakeServer):
    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.assets: tuple[str, ...] = DEFAULT_ASSETS
        self.min_amount = Decimal("0.01")
        # Price of one unit of each asset in any fiat (the fake has one rate table).
        self.rates: dict[str, Decimal] = {
            "USDT": Decimal(1),
            "USDC": Decimal(1),
            "TON": Decimal("5.25"),
            "BTC": Decimal(60000),
            "ETH": Decimal(3000),
            "LTC": Decimal(80),
            "BNB": Decimal(550),
            "TRX": Decimal("0.12"),
        }
        self.invoices: dict[int, FakeInvoice] = {}
        self.requests: list[Request] = []
        self.webhook_url: str | None = None
        self.webhooks_sent: list[WebhookAttempt] = []
        self.forge_next = False
        self._next_id = FIRST_INVOICE_ID
        self._next_update = 1
        self._webhook_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle)

    def _side_tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._webhook_tasks)

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self,
        method: str,
        body: str | Mapping[str, Any],
        http_status: int = 200,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``body``; they have no effect."""
        text = body if isinstance(body, str) else json.dumps(body)
        self._failures.push(method, Reply(text, http_status, guess_content_type(text)), times)

    def html_502_next(self, method: str, times: int = 1) -> None:
        self.fail_next(method, HTML_502, 502, times)

    def reject_next(self, method: str, name: str, code: int = 400, times: int = 1) -> None:
        """``{"ok": false, "error": {"code", "name"}}`` for the next calls of ``method``."""
        self.fail_next(method, {"ok": False, "error": {"code": code, "name": name}}, code, times)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """Answer the next calls of ``method`` late; they still take effect (a timeout)."""
        self._delays.push(method, seconds, times)

    def count(self, method: str) -> int:
        return sum(1 for request in self.requests if request.method == method)

    def invoice(self, invoice_id: int | str) -> FakeInvoice:
        return self.invoices[int(invoice_id)]

    def by_payload(self, payload: str) -> list[FakeInvoice]:
        return [inv for inv in self.invoices.values() if inv.payload == payload]

    def pay(
        self,
        invoice_id: int | str,
        asset: str = "USDT",
        webhook: bool = True,
        paid_amount: Decimal | None = None,
    ) -> dict[str, Any]:
        """The customer pays: the invoice becomes ``paid``; returns the Invoice JSON.

        With ``webhook_url`` set and ``webhook`` true, the signed update is POSTed in a task.
        """
        invoice = self.invoice(invoice_id)
        self._refresh(invoice)
        if invoice.deleted or invoice.status != "active":
            raise ValueError(f"invoice {invoice_id} is {invoice.status}")
        if invoice.currency_type == "crypto":
            assert invoice.asset is not None
            invoice.paid_asset = invoice.asset
            invoice.paid_amount = invoice.amount if paid_amount is None else paid_amount
            invoice.paid_fiat_rate = self.rates.get(invoice.asset)
        else:
            if invoice.accepted_assets and asset not in invoice.accepted_assets:
                raise ValueError(f"{asset} is not accepted by invoice {invoice_id}")
            rate = self.rates[asset]
            invoice.paid_asset = asset
            invoice.paid_fiat_rate = rate
            invoice.paid_amount = (
                (invoice.amount / rate).quantize(Decimal("1e-8"))
                if paid_amount is None
                else paid_amount
            )
        invoice.status = "paid"
        invoice.paid_at = datetime.now(UTC)
        data = invoice.to_json()
        if webhook and self.webhook_url:
            self.send_update("invoice_paid", data)
        return data

    def expire(self, invoice_id: int | str) -> None:
        """An active invoice's time runs out now."""
        invoice = self.invoice(invoice_id)
        if invoice.status == "active":
            invoice.status = "expired"

    def send_update(self, update_type: str, payload: Any) -> WebhookAttempt:
        """POST one webhook update, signed (wrongly when :attr:`forge_next` is set)."""
        body = json.dumps(
            {
                "update_id": self._next_update,
                "update_type": update_type,
                "request_date": iso(datetime.now(UTC)),
                "payload": payload,
            }
        ).encode()
        self._next_update += 1
        key = self.token
        if self.forge_next:
            self.forge_next = False
            key = "not-" + self.token
        return self.post_webhook(body, sign(key, body))

    def repeat_webhook(self) -> WebhookAttempt:
        """Redeliver the last webhook, the same bytes and signature."""
        if not self.webhooks_sent:
            raise RuntimeError("no webhook was sent yet")
        last = self.webhooks_sent[-1]
        return self.post_webhook(last.body, last.signature)

    def post_webhook(self, body: bytes, signature: str | None) -> WebhookAttempt:
        """POST any body with any signature (None: no header) to :attr:`webhook_url`."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        attempt = WebhookAttempt(body, signature or "", payload=payload)
        self.webhooks_sent.append(attempt)
        task = asyncio.get_running_loop().create_task(self._send_webhook(attempt, signature))
        self._webhook_tasks.add(task)
        task.add_done_callback(self._webhook_tasks.discard)
        return attempt

    async def wait_webhooks(self) -> None:
        while self._webhook_tasks:
            await asyncio.wait(list(self._webhook_tasks))

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query.items())
        raw = await request.read()
        bad_body = False
        if raw:
            if request.content_type == "application/json":
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                    bad_body = True
                if isinstance(body, dict):
                    params.update(body)
                elif not bad_body:
                    bad_body = True
            else:
                from urllib.parse import parse_qsl

                params.update(parse_qsl(raw.decode("utf-8", "replace")))
        token_ok = hmac.compare_digest(
            request.headers.get("Crypto-Pay-API-Token", "").encode(), self.token.encode()
        )
        record = Request(method, params, token_ok)
        self.requests.append(record)
        reply = await self._scripted(
            method, lambda: self.dispatch(method, params, token_ok, bad_body)
        )
        return respond(record, reply)

    def dispatch(
        self, method: str, params: Mapping[str, Any], token_ok: bool, bad_body: bool = False
    ) -> Reply:
        """Authenticate and run one call (no injections)."""
        if not token_ok:
            return error("UNAUTHORIZED", 401)
        handlers = {
            "getMe": self._get_me,
            "createInvoice": self._create_invoice,
            "getInvoices": self._get_invoices,
            "deleteInvoice": self._delete_invoice,
        }
        handler = handlers.get(method)
        if handler is None:
            return error("METHOD_NOT_FOUND", 405)
        if bad_body:
            return error("REQUEST_BODY_INVALID")
        try:
            return handler(params)
        except InvalidParam as exc:
            return error(exc.name)

    # ------------------------------------------------------------------ methods

    def _get_me(self, params: Mapping[str, Any]) -> Reply:
        return ok(
            {"app_id": 4242, "name": "Numbot", "payment_processing_bot_username": "CryptoBot"}
        )

    def _create_invoice(self, params: Mapping[str, Any]) -> Reply:
        currency_type = str(params.get("currency_type") or "crypto")
        asset = fiat = None
        accepted: tuple[str, ...] = ()
        if currency_type == "crypto":
            asset = params.get("asset")
            if not asset:
                raise InvalidParam("ASSET_REQUIRED")
            if asset not in self.assets:
                raise InvalidParam("ASSET_INVALID")
        elif currency_type == "fiat":
            fiat = params.get("fiat")
            if not fiat:
                raise InvalidParam("FIAT_REQUIRED")
            if fiat not in FIAT_CURRENCIES:
                raise InvalidParam("FIAT_INVALID")
            raw_assets = params.get("accepted_assets")
            if raw_assets:
                accepted = tuple(a.strip() for a in str(raw_assets).split(",") if a.strip())
                if not accepted or any(a not in self.assets for a in accepted):
                    raise InvalidParam("ACCEPTED_ASSETS_INVALID")
        else:
            raise InvalidParam("CURRENCY_TYPE_INVALID")
        raw_amount = params.get("amount")
        if raw_amount in (None, ""):
            raise InvalidParam("AMOUNT_REQUIRED")
        try:
            amount = Decimal(str(raw_amount))
        except InvalidOperation:
            raise InvalidParam("AMOUNT_INVALID") from None
        if not amount.is_finite() or amount <= 0:
            raise InvalidParam("AMOUNT_INVALID")
        if amount < self.min_amount:
            raise InvalidParam("AMOUNT_TOO_SMALL")
        description = params.get("description")
        if description is not None and len(str(description)) > 1024:
            raise InvalidParam("DESCRIPTION_TOO_LONG")
        payload = params.get("payload")
        if payload is not None and len(str(payload).encode()) > 4096:
            raise InvalidParam("PAYLOAD_TOO_LONG")
        expires_at = None
        if params.get("expires_in") not in (None, ""):
            try:
                expires_in = int(params["expires_in"])
            except (TypeError, ValueError):
                raise InvalidParam("EXPIRES_IN_INVALID") from None
            if not 1 <= expires_in <= 2_678_400:
                raise InvalidParam("EXPIRES_IN_INVALID")
            expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        invoice = FakeInvoice(
            invoice_id=self._next_id,
            hash="IV" + secrets.token_hex(6).upper(),
            currency_type=currency_type,
            asset=asset,
            fiat=fiat,
            amount=amount,
            accepted_assets=accepted,
            description=None if description is None else str(description),
            payload=None if payload is None else str(payload),
            allow_comments=_bool(params.get("allow_comments", True)),
            allow_anonymous=_bool(params.get("allow_anonymous", True)),
            created_at=datetime.now(UTC),
            expires_at=expires_at,
        )
        self._next_id += 1
        self.invoices[invoice.invoice_id] = invoice
        return ok(invoice.to_json())

    def _get_invoices(self, params: Mapping[str, Any]) -> Reply:
        rows = [inv for inv in self.invoices.values() if not inv.deleted]
        for inv in rows:
            self._refresh(inv)
        if params.get("invoice_ids"):
            try:
                wanted = {int(i) for i in str(params["invoice_ids"]).split(",") if i.strip()}
            except ValueError:
                raise InvalidParam("INVOICE_IDS_INVALID") from None
            rows = [inv for inv in rows if inv.invoice_id in wanted]
        if params.get("asset"):
            rows = [inv for inv in rows if inv.asset == params["asset"]]
        if params.get("fiat"):
            rows = [inv for inv in rows if inv.fiat == params["fiat"]]
        status = params.get("status")
        if status:
            if status not in ("active", "paid"):
                raise InvalidParam("STATUS_INVALID")
            rows = [inv for inv in rows if inv.status == status]
        try:
            offset = int(params.get("offset", 0))
            count = int(params.get("count", 100))
        except (TypeError, ValueError):
            raise InvalidParam("COUNT_INVALID") from None
        if offset < 0:
            raise InvalidParam("OFFSET_INVALID")
        if not 1 <= count <= 1000:
            raise InvalidParam("COUNT_INVALID")
        rows.sort(key=lambda inv: inv.invoice_id, reverse=True)
        return ok({"items": [inv.to_json() for inv in rows[offset : offset + count]]})

    def _delete_invoice(self, params: Mapping[str, Any]) -> Reply:
        try:
            invoice_id = int(params.get("invoice_id", ""))
        except (TypeError, ValueError):
            raise InvalidParam("INVOICE_ID_INVALID") from None
        invoice = self.invoices.get(invoice_id)
        if invoice is None or invoice.deleted:
            return error("INVOICE_NOT_FOUND")
        if invoice.status == "paid":
            return error("INVOICE_PAID")
        invoice.deleted = True
        return ok(True)

    def _refresh(self, invoice: FakeInvoice) -> None:
        if (
            invoice.status == "active"
            and invoice.expires_at is not None
            and datetime.now(UTC) >= invoice.expires_at
        ):
            invoice.status = "expired"

    # ------------------------------------------------------------------ webhooks

    async def _send_webhook(self, attempt: WebhookAttempt, signature: str | None) -> None:
        if self.webhook_url is None:
            attempt.error = "no webhook_url"
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        try:
            async with self._session.post(
                self.webhook_url, data=attempt.body, headers=headers
            ) as response:
                attempt.http_status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempt.error = type(exc).__name__


__all__ = [
    "FIAT_CURRENCIES",
    "FIRST_INVOICE_ID",
    "HTML_502",
    "TOKEN",
    "FakeCryptoPay",
    "FakeInvoice",
    "Request",
    "WebhookAttempt",
    "sign",
]
