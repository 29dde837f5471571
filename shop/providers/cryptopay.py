"""Crypto Pay (@CryptoBot), per the public doc https://help.crypt.bot/crypto-pay-api.

Documented (used exactly as shown): every call is `{base}/api/{method}` with the header
`Crypto-Pay-API-Token: <token>`; parameters as a query string or a JSON body (we POST JSON);
answers are `{"ok": true, "result": ...}` or
`{"ok": false, "error": {"code": 400, "name": "..."}}`.
Methods used: `createInvoice` (`currency_type` "fiat" with `fiat` and comma-separated
`accepted_assets`, or "crypto" with `asset`; `amount` as a string; `description` up to 1024
characters; `payload` up to 4 KB; `expires_in` 1-2678400 seconds; `allow_comments`,
`allow_anonymous`), `getInvoices` (`invoice_ids` comma-separated, `status`, `offset`, `count`
up to 1000 -> `result.items`) and `deleteInvoice` (`invoice_id` -> `true`). Fiat currencies an
invoice may be priced in: `FIAT_CURRENCIES`. Webhooks are a POST of
`{"update_id", "update_type": "invoice_paid", "request_date", "payload": <Invoice>}` with the
header `crypto-pay-api-signature`: the hex HMAC-SHA256 of the raw body keyed with
SHA-256(token).

Assumed where the doc is silent: error names other than `UNAUTHORIZED` are matched loosely
(`*NOT_FOUND` on an invoice -> `InvoiceNotFound`, names with `AMOUNT` -> `InvalidAmount`);
anything that is not the JSON envelope (an HTML 502 page, an empty body) is
`CryptoPayUnavailable`. Reads (`getInvoices`) are retried with backoff on network
errors, 5xx and 429; `createInvoice` and `deleteInvoice` never are. The token travels only in the
header and is never logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from shop.providers.http import Call, Reply, UpstreamHTTP

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://pay.crypt.bot"
TOKEN_HEADER = "Crypto-Pay-API-Token"
SIGNATURE_HEADER = "crypto-pay-api-signature"
MAX_EXPIRES_IN = 2_678_400
MAX_DESCRIPTION = 1024
MAX_PAYLOAD_BYTES = 4096
MAX_COUNT = 1000
# The doc's list of fiat currencies an invoice can be priced in ("currencies" section).
FIAT_CURRENCIES = frozenset(
    {
        "USD", "EUR", "RUB", "BYN", "UAH", "GBP", "CNY", "KZT", "UZS", "GEL",
        "TRY", "AMD", "THB", "INR", "BRL", "IDR", "AZN", "AED", "PLN", "ILS",
    }
)  # fmt: skip
READ_BACKOFF = (0.5, 1.5)


# ---------------------------------------------------------------------------------- errors


class CryptoPayError(Exception):
    """Anything that went wrong talking to Crypto Pay. The message is for logs only."""


class CryptoPayUnavailable(CryptoPayError):
    """No usable answer: a network error, an HTML error page, a body that is not the envelope."""


class CryptoPayTimeout(CryptoPayUnavailable):
    """The request may have reached Crypto Pay and got no answer (its outcome is unknown)."""


class CryptoPayRejected(CryptoPayError):
    """`ok: false`: Crypto Pay understood the request and refused it."""

    def __init__(self, code: int, name: str) -> None:
        super().__init__(f"{code} {name}")
        self.code = code
        self.name = name


class Unauthorized(CryptoPayRejected):
    """The token is wrong or revoked."""


class InvoiceNotFound(CryptoPayRejected):
    """No such invoice (already deleted, or never ours)."""


class InvalidAmount(CryptoPayRejected):
    """The amount is malformed, too small or too large for the asset."""


class ProtocolError(CryptoPayUnavailable):
    """`ok: true`, but the result is not what the doc describes."""


# ---------------------------------------------------------------------------------- results


class InvoiceStatus(enum.StrEnum):
    ACTIVE = "active"
    PAID = "paid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Invoice:
    invoice_id: int
    hash: str
    currency_type: str  # "crypto" or "fiat"
    asset: str | None
    fiat: str | None
    amount: Decimal
    accepted_assets: tuple[str, ...]
    status: InvoiceStatus
    bot_invoice_url: str
    mini_app_invoice_url: str | None
    web_app_invoice_url: str | None
    description: str | None
    payload: str | None
    created_at: datetime
    paid_at: datetime | None
    expiration_date: datetime | None
    paid_asset: str | None
    paid_amount: Decimal | None
    paid_fiat_rate: Decimal | None


@dataclass(frozen=True)
class WebhookUpdate:
    update_id: int
    update_type: str
    request_date: datetime | None
    invoice: Invoice | None  # set for "invoice_paid"


# ---------------------------------------------------------------------------------- parsing


def parse_envelope(status_code: int, text: str) -> Any:
    """The `result` of an answer, or the typed error it stands for."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CryptoPayUnavailable(f"HTTP {status_code}, not JSON ({len(text)} bytes)") from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise CryptoPayUnavailable(f"HTTP {status_code}, JSON without the ok/result envelope")
    if data["ok"]:
        if "result" not in data:
            raise ProtocolError("ok without result")
        return data["result"]
    raise rejection(data.get("error"), status_code)


def rejection(error: Any, status_code: int) -> CryptoPayError:
    """The typed error for an `ok: false` answer's `error` object."""
    if isinstance(error, str):
        code, name = status_code, error
    elif isinstance(error, Mapping):
        raw_code = error.get("code", status_code)
        code = raw_code if isinstance(raw_code, int) else status_code
        name = str(error.get("name") or error.get("message") or "UNKNOWN")
    else:
        code, name = status_code, "UNKNOWN"
    if code >= 500 or status_code >= 500:
        return CryptoPayUnavailable(f"{code} {name}")
    upper = name.upper()
    if upper == "UNAUTHORIZED" or code == 401:
        return Unauthorized(code, name)
    if upper.endswith("NOT_FOUND") and "INVOICE" in upper:
        return InvoiceNotFound(code, name)
    if "AMOUNT" in upper:
        return InvalidAmount(code, name)
    return CryptoPayRejected(code, name)


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ProtocolError(f"{field}: not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ProtocolError(f"{field}: not a number") from None
    if not number.is_finite():
        raise ProtocolError(f"{field}: not a number")
    return number


def _optional_decimal(value: Any, field: str) -> Decimal | None:
    return None if value in (None, "") else _decimal(value, field)


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise ProtocolError(f"{field}: not a date")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProtocolError(f"{field}: not an ISO 8601 date") from None


def _optional_time(value: Any, field: str) -> datetime | None:
    return None if value in (None, "") else _time(value, field)


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_invoice(data: Any) -> Invoice:
    """An Invoice object as the doc describes it; ProtocolError if it is not one."""
    if not isinstance(data, Mapping):
        raise ProtocolError("invoice: not an object")
    invoice_id = data.get("invoice_id")
    if isinstance(invoice_id, bool) or not isinstance(invoice_id, int):
        raise ProtocolError("invoice_id missing")
    try:
        status = InvoiceStatus(str(data.get("status")))
    except ValueError:
        raise ProtocolError(f"invoice {invoice_id}: unknown status") from None
    currency_type = data.get("currency_type") or "crypto"
    if currency_type not in ("crypto", "fiat"):
        raise ProtocolError(f"invoice {invoice_id}: unknown currency_type")
    url = data.get("bot_invoice_url") or data.get("pay_url")  # pay_url: deprecated name
    if not isinstance(url, str) or not url:
        raise ProtocolError(f"invoice {invoice_id}: no bot_invoice_url")
    assets = data.get("accepted_assets") or ()
    if isinstance(assets, str):
        assets = assets.split(",")
    if not isinstance(assets, (list, tuple)):
        raise ProtocolError(f"invoice {invoice_id}: accepted_assets is not a list")
    return Invoice(
        invoice_id=invoice_id,
        hash=str(data.get("hash") or ""),
        currency_type=currency_type,
        asset=_optional_str(data.get("asset")),
        fiat=_optional_str(data.get("fiat")),
        amount=_decimal(data.get("amount"), "amount"),
        accepted_assets=tuple(str(a).strip() for a in assets if str(a).strip()),
        status=status,
        bot_invoice_url=url,
        mini_app_invoice_url=_optional_str(data.get("mini_app_invoice_url")),
        web_app_invoice_url=_optional_str(data.get("web_app_invoice_url")),
        description=_optional_str(data.get("description")),
        payload=_optional_str(data.get("payload")),
        created_at=_time(data.get("created_at"), "created_at"),
        paid_at=_optional_time(data.get("paid_at"), "paid_at"),
        expiration_date=_optional_time(data.get("expiration_date"), "expiration_date"),
        paid_asset=_optional_str(data.get("paid_asset")),
        paid_amount=_optional_decimal(data.get("paid_amount"), "paid_amount"),
        paid_fiat_rate=_optional_decimal(data.get("paid_fiat_rate"), "paid_fiat_rate"),
    )


def parse_invoices(result: Any) -> list[Invoice]:
    """`getInvoices` -> `{"items": [Invoice, ...]}`."""
    if not isinstance(result, Mapping) or not isinstance(result.get("items"), list):
        raise ProtocolError("getInvoices: no items")
    return [parse_invoice(item) for item in result["items"]]


def signature(token: str, body: bytes) -> str:
    """The `crypto-pay-api-signature` Crypto Pay sends with a webhook for this body."""
    secret = hashlib.sha256(token.encode()).digest()
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(token: str, body: bytes, received: str | None) -> bool:
    """Whether `received` signs `body` (compared in constant time). Compared as bytes: a
    header with non-ASCII characters is simply wrong (`compare_digest` refuses such `str`s)."""
    if not received:
        return False
    given = received.strip().lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(signature(token, body).encode(), given)


def parse_webhook(body: bytes) -> WebhookUpdate:
    """A webhook body (already verified). ValueError when it is not an update."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("webhook body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("webhook body is not an object")
    update_id, update_type = data.get("update_id"), data.get("update_type")
    if isinstance(update_id, bool) or not isinstance(update_id, int):
        raise ValueError("webhook without update_id")
    if not isinstance(update_type, str):
        raise ValueError("webhook without update_type")
    invoice = None
    if update_type == "invoice_paid":
        try:
            invoice = parse_invoice(data.get("payload"))
        except ProtocolError as exc:
            raise ValueError(f"webhook payload: {exc}") from None
    try:
        request_date = _optional_time(data.get("request_date"), "request_date")
    except ProtocolError:
        request_date = None
    return WebhookUpdate(update_id, update_type, request_date, invoice)


def _result(body: str, http_status: int) -> Any:
    return parse_envelope(http_status, body)


def _retry_read(error: Exception, reply: Reply | None) -> bool:
    """Reads are asked again when unavailable (network, 5xx, not the envelope) or on 429."""
    if isinstance(error, CryptoPayRejected):
        return error.code == 429
    return isinstance(error, CryptoPayUnavailable)


# ---------------------------------------------------------------------------------- client


class CryptoPayClient:
    """Crypto Pay for one app token, over the shared httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        backoff: Sequence[float] = READ_BACKOFF,
        timeout: float | None = None,
    ) -> None:
        self._http = UpstreamHTTP(
            http,
            "Crypto Pay",
            secrets=[token],
            retry_delays=tuple(backoff),
            unavailable=CryptoPayUnavailable,
            timeout=timeout,
        )
        self._token = token
        self._base = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"CryptoPayClient({self._base!r})"  # never the token

    def verify(self, body: bytes, received: str | None) -> bool:
        """Whether a webhook body carries this app's signature."""
        return verify_signature(self._token, body, received)

    def _call(self, method: str, params: Mapping[str, Any]) -> Call:
        url = f"{self._base}/api/{method}"
        return Call(method, "POST", url, json=dict(params), headers={TOKEN_HEADER: self._token})

    async def _read(self, method: str, params: Mapping[str, Any]) -> Any:
        """A call that changes nothing, retried after each backoff delay."""
        return await self._http.read(self._call(method, params), _result, retry_if=_retry_read)

    async def _once(self, method: str, params: Mapping[str, Any], lost: bool = False) -> Any:
        """A call that changes something, sent once; `lost`: a request that may have arrived
        unanswered raises CryptoPayTimeout."""
        call = self._call(method, params)
        return await self._http.once(call, _result, lost=CryptoPayTimeout if lost else None)

    async def create_invoice(
        self,
        amount: Decimal,
        *,
        fiat: str | None = None,
        accepted_assets: Sequence[str] = (),
        asset: str | None = None,
        description: str | None = None,
        payload: str | None = None,
        expires_in: int | None = None,
        allow_comments: bool = False,
        allow_anonymous: bool = True,
    ) -> Invoice:
        """One invoice, priced in `fiat` (paid in one of `accepted_assets`) or in `asset`.

        Never retried: `CryptoPayTimeout` means an invoice may exist that nobody will see.
        """
        if (fiat is None) == (asset is None):
            raise ValueError("give exactly one of fiat and asset")
        params: dict[str, Any] = {"amount": format(amount, "f")}
        if fiat is not None:
            params["currency_type"] = "fiat"
            params["fiat"] = fiat
            if accepted_assets:
                params["accepted_assets"] = ",".join(accepted_assets)
        else:
            params["currency_type"] = "crypto"
            params["asset"] = asset
        if description:
            params["description"] = description[:MAX_DESCRIPTION]
        if payload is not None:
            if len(payload.encode()) > MAX_PAYLOAD_BYTES:
                raise ValueError("payload is over 4 KB")
            params["payload"] = payload
        if expires_in is not None:
            params["expires_in"] = max(1, min(MAX_EXPIRES_IN, expires_in))
        params["allow_comments"] = allow_comments
        params["allow_anonymous"] = allow_anonymous
        return parse_invoice(await self._once("createInvoice", params, lost=True))

    async def get_invoices(
        self,
        invoice_ids: Sequence[int] = (),
        status: InvoiceStatus | None = None,
        offset: int = 0,
        count: int = 100,
    ) -> list[Invoice]:
        """Invoices by id (in batches of at most 1000) and/or status."""
        params: dict[str, Any] = {"offset": offset, "count": max(1, min(MAX_COUNT, count))}
        if invoice_ids:
            if len(invoice_ids) > MAX_COUNT:
                raise ValueError("at most 1000 invoice ids per call")
            params["invoice_ids"] = ",".join(str(i) for i in invoice_ids)
            params["count"] = max(params["count"], len(invoice_ids))
        if status is not None:
            params["status"] = status.value
        return parse_invoices(await self._read("getInvoices", params))

    async def delete_invoice(self, invoice_id: int) -> bool:
        """Delete an invoice so it can no longer be paid. Not retried (best effort)."""
        result = await self._once("deleteInvoice", {"invoice_id": invoice_id})
        return result is True
