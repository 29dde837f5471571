"""PapSMS (JSON over HTTPS, Bearer key), per `shared/upstream-docs/papsms.txt` (the only truth).

`PapSMSClient` speaks the API for one key within its request budget; `PapSMSRoute` is the one
sellable route on it; `parse_webhook` reads the "SMS arrived" callback. Parsing is pure.

Documented (used exactly as shown): `Authorization: Bearer <key>` on every request, base URL
`https://papsms.com/api/v1`, `POST /numbers/purchase {"country", "service"}`,
`GET /numbers/status/{id}` (`waiting` / `received` with `sms.code`, `sms.full_text`),
`POST /numbers/finish/{id} {"status": "completed" | "cancelled"}`, prices in $, 60 requests a
minute with exponential backoff on HTTP 429, and a webhook carrying "the activation ID, code, and
full message text".

ASSUMED, because the doc is silent (each one is a guess until the real API confirms it):

* Catalogue endpoints. The doc only names `/api/v1/countries`, without a shape, and no services,
  prices or balance endpoint. We assume, all in the documented `{"success": true, "data": ...}`
  envelope:

  - `GET /countries` -> `[{"code": "us", "name": "United States"}]`;
  - `GET /services` -> `[{"service": "whatsapp", "name": "WhatsApp"}]`, the whole catalogue;
    `GET /services?country=us` -> the same rows plus `"price": 0.80, "available": 120` for that
    country (`price`/`available` are ignored when listing services);
  - `GET /prices?service=whatsapp` -> `[{"country": "us", "price": 0.80, "available": 120}]`,
    every country for one service in ONE request (offers); `&country=us` narrows it (price,
    and `pair_offer()`, which the catalog uses for a pair the bulk list left out: a guessed
    endpoint may not list everything it sells);
  - `GET /balance` -> `{"balance": 12.50, "currency": "USD"}` (a bare number is accepted too).

  Rows may name the service `code` instead of `service`. Country codes are compared in lower
  case. A row without a positive price is skipped; a missing or unreadable `available` is 0.
  An HTTP 404 on these endpoints is `UpstreamUnavailable`, never "not found": it most likely
  means our guessed endpoint does not exist.
* Errors. Not documented; we read `{"success": false, "error": {"code", "message"}}`,
  `{"success": false, "error": "..."}` and `{"success": false, "message": "..."}`. The body is
  judged before the HTTP status: first the error code (exact table, normalised to snake case),
  then keywords in the code and message, then the HTTP status:

  - no numbers / out of stock / unknown country -> NoNumbers; insufficient balance or HTTP 402
    -> UpstreamNoBalance; unauthorized / invalid key, HTTP 401 (any body) or 403 with a JSON
    error -> BadKey; too early -> EarlyCancelDenied; unknown service -> BadService; invalid
    status / already used -> BadStatus; rate limited or HTTP 429 -> RateLimited;
  - not found / expired, or HTTP 404 with a JSON error -> NoActivation, but only on status and
    finish (an HTML 404 page there is UpstreamUnavailable: the order would be refunded on it);
  - anything else, non-JSON bodies and HTML pages included, is UpstreamUnavailable.

  A `success: true` body is trusted whatever its HTTP status.
* Finish and status. `finish {"status": "cancelled"}` answered "already cancelled" (and
  "completed" answered "already completed/finished") counts as done: the activation is where
  we wanted it, so a retried finish is harmless. Status words ignore case: `completed` with an
  SMS reads as CODE (a poll racing a finish); `cancelled`, `canceled` and `expired` as
  CANCELLED; any other status, or `received` without `sms.code`, is UpstreamUnavailable. The
  activation id is percent-escaped in the path.
* Retries. Reads, status and finish (idempotent) are retried after the `backoff` delays on
  HTTP 429, on 5xx and on network errors, then the last error is raised (RateLimited after 429s).
  `Retry-After` is not read. A purchase is NEVER retried, and only an answer that proves it
  failed counts as a failure: HTTP 429 (the doc's rate limit), HTTP 401 or a `success: false`
  error that maps to a typed refusal above (no numbers, balance, key, service, too early,
  status, rate limit). Everything else is PurchaseOutcomeUnknown (a number may have been
  bought): an HTTP 5xx or 524 page, HTML, a non-JSON or unknown JSON body, a `success: false`
  error we cannot name (it would be UpstreamUnavailable on any other endpoint), a `success:
  true` answer without a usable activation id and phone, and any network error once the
  request may have left. A connect error is UpstreamUnavailable (nothing was sent).
* Reconciliation: the doc has no list of activations and no lookup by a reference of ours
  (status and finish need the activation id we never got), so a lost purchase cannot be looked
  for: the order is refunded, flagged and the owners alerted. If that number then gets an SMS,
  its webhook shows up in the log as a push for an unknown activation.
* Purchases. PapSMS takes no price cap and no reference: `max_cost` is only checked against the
  `cost` in the answer (a higher cost is logged, the number is kept), and `ref` is not sent.
  The phone is returned as digits without "+".
* Countries. `UpstreamCountry(id=code, name, iso=code.upper())`, except "uk" -> "GB" and codes
  that are not two letters (iso None: the catalogue resolves those by name).
* Webhook: see `parse_webhook`. No signature is documented, so none is checked here.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from shop.providers.base import (
    Activation,
    ActivationStatus,
    BadKey,
    BadService,
    BadStatus,
    CountryRef,
    EarlyCancelDenied,
    NoActivation,
    NoNumbers,
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    StatusKind,
    UpstreamCountry,
    UpstreamNoBalance,
    UpstreamOffer,
    UpstreamService,
    UpstreamUnavailable,
)
from shop.providers.budget import Budget
from shop.providers.http import Call, Reply, UpstreamHTTP, snippet

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://papsms.com/api/v1"

PURCHASE_PATH = "/numbers/purchase"
STATUS_PATH = "/numbers/status/"
FINISH_PATH = "/numbers/finish/"
COUNTRIES_PATH = "/countries"  # named by the doc, shape assumed
SERVICES_PATH = "/services"  # assumed
PRICES_PATH = "/prices"  # assumed
BALANCE_PATH = "/balance"  # assumed

FinishStatus = Literal["completed", "cancelled"]


_T = TypeVar("_T")
_NOT_JSON = object()


class Endpoint(enum.Enum):
    """How an endpoint's errors are judged."""

    READ = "read"  # catalogue and balance: "not found" is our guessed endpoint missing
    PURCHASE = "purchase"
    ACTIVATION = "activation"  # status and finish: "not found" is the activation


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PurchasedNumber:
    activation: Activation
    cost: Decimal | None  # USD, as charged by PapSMS


@dataclass(frozen=True)
class WebhookEvent:
    activation_id: str
    code: str | None
    text: str | None
    event_key: str  # the same for a redelivered webhook


# ---------------------------------------------------------------------------------- errors

# Error codes (normalised to snake case), matched exactly.
CODE_ERRORS: dict[str, type[ProviderError]] = {
    **dict.fromkeys(
        ("rate_limited", "rate_limit", "rate_limit_exceeded", "too_many_requests"), RateLimited
    ),
    **dict.fromkeys(
        (
            "insufficient_balance",
            "insufficient_funds",
            "no_balance",
            "low_balance",
            "balance_too_low",
        ),
        UpstreamNoBalance,
    ),
    **dict.fromkeys(
        (
            "unauthorized",
            "unauthorised",
            "unauthenticated",
            "forbidden",
            "invalid_api_key",
            "invalid_key",
            "bad_key",
            "invalid_token",
            "missing_api_key",
            "api_key_required",
        ),
        BadKey,
    ),
    **dict.fromkeys(
        ("too_early", "early_cancel", "early_cancel_denied", "cancel_too_early"),
        EarlyCancelDenied,
    ),
    **dict.fromkeys(
        (
            "no_numbers",
            "no_numbers_available",
            "out_of_stock",
            "no_stock",
            "sold_out",
            "numbers_unavailable",
            "invalid_country",
            "unknown_country",
            "country_not_found",
        ),
        NoNumbers,
    ),
    **dict.fromkeys(
        ("invalid_service", "unknown_service", "bad_service", "service_not_found"), BadService
    ),
    **dict.fromkeys(
        (
            "invalid_status",
            "bad_status",
            "already_completed",
            "already_finished",
            "already_cancelled",
            "already_canceled",
            "no_sms",
            "sms_not_received",
        ),
        BadStatus,
    ),
}
# Only on status/finish, where the id in the path is the thing that can be missing.
ACTIVATION_CODES = frozenset(
    {
        "not_found",
        "activation_not_found",
        "no_activation",
        "invalid_activation",
        "unknown_activation",
        "activation_expired",
    }
)

# Keywords in the code and message, tried in this order when the code is not in the table.
MESSAGE_ERRORS: tuple[tuple[re.Pattern[str], type[ProviderError]], ...] = tuple(
    (re.compile(pattern), error)
    for pattern, error in (
        (r"too many requests|rate.?limit", RateLimited),
        (
            r"insufficient (account )?(balance|funds|credit)"
            r"|not enough (balance|funds|money|credit)|(low|no) balance|balance (is )?too low",
            UpstreamNoBalance,
        ),
        (
            r"unauthori[sz]ed|unauthenticated|authenticat|invalid (api )?(key|token)"
            r"|(api )?key (is )?(invalid|missing|required|revoked|expired)|forbidden"
            r"|access denied",
            BadKey,
        ),
        (r"too (early|soon)|early cancel|cannot (be )?cancel\w* (yet|so soon)", EarlyCancelDenied),
        (
            r"no (free |available )?numbers?|out of stock|sold out|no stock"
            r"|numbers? (are |is )?(not |un)available",
            NoNumbers,
        ),
        (
            r"(invalid|unknown|unsupported) service|service (not found|(is )?not supported)",
            BadService,
        ),
        (
            r"(invalid|unknown|unsupported) country|country (not found|(is )?not supported)",
            NoNumbers,
        ),
        (
            r"invalid status|already (been )?(completed|finished|cancel+ed|used)"
            r"|no sms (received )?yet",
            BadStatus,
        ),
    )
)
NOT_FOUND = re.compile(r"not found|no such|does not exist|unknown activation|expired")
ALREADY = {
    "cancelled": re.compile(r"already (been )?cancel+ed"),
    "completed": re.compile(r"already (been )?(completed|finished)"),
}


# ---------------------------------------------------------------------------------- parsing


def _load(body: str) -> Any:
    """JSON with exact decimals, or `_NOT_JSON`."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return _NOT_JSON


def _norm(value: object) -> str:
    """`"Out Of-Stock"` -> `"out_of_stock"`."""
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")


def _text(value: object) -> str | None:
    """A non-empty string or integer as a stripped string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value).strip() or None
    return None


def _error_parts(data: Mapping[str, Any]) -> tuple[str, str]:
    """(code, message) of an error answer, either may be empty."""
    error = data.get("error")
    code: object = data.get("code")
    message: object = data.get("message")
    if isinstance(error, Mapping):
        code = error.get("code", code)
        message = error.get("message", message)
    elif isinstance(error, str):
        message = message or error
        code = code or error
    return _text(code) or "", _text(message) or ""


def _unexpected(body: str, http_status: int, endpoint: Endpoint) -> ProviderError:
    """The error for an answer that is not a JSON object we understand."""
    detail = f"unexpected PapSMS answer (HTTP {http_status}): {snippet(body)!r}"
    if http_status == 429:
        return RateLimited(detail)
    if http_status == 401:
        return BadKey(detail)
    if endpoint is Endpoint.PURCHASE:
        return PurchaseOutcomeUnknown(detail)  # a proxy's page, a gateway timeout, garbage
    return UpstreamUnavailable(detail)


def error_for(code: str, message: str, http_status: int, endpoint: Endpoint) -> ProviderError:
    """The typed error for a `success: false` answer: code, then words, then HTTP status."""
    detail = f"PapSMS error (HTTP {http_status}) {code or '-'}: {snippet(message)}"
    key = _norm(code)
    if key in ACTIVATION_CODES and endpoint is Endpoint.ACTIVATION:
        return NoActivation(detail)
    known = CODE_ERRORS.get(key)
    if known is not None:
        return known(detail)
    words = f"{key.replace('_', ' ')} {message.lower()}"
    for pattern, error in MESSAGE_ERRORS:
        if pattern.search(words):
            return error(detail)
    if endpoint is Endpoint.ACTIVATION and (NOT_FOUND.search(words) or http_status == 404):
        return NoActivation(detail)
    if http_status == 429:
        return RateLimited(detail)
    if http_status in (401, 403):
        return BadKey(detail)
    if http_status == 402:
        return UpstreamNoBalance(detail)
    if endpoint is Endpoint.PURCHASE:
        return PurchaseOutcomeUnknown(detail)  # a refusal we cannot name proves nothing
    return UpstreamUnavailable(detail)


def parse_envelope(body: str, http_status: int, endpoint: Endpoint = Endpoint.READ) -> Any:
    """The `data` of a `{"success": true, "data": ...}` answer, or the typed error."""
    data = _load(body)
    if not isinstance(data, dict):
        raise _unexpected(body, http_status, endpoint)
    success = data.get("success")
    if success is True or (success is None and "data" in data and "error" not in data):
        if not 200 <= http_status < 300:
            log.warning("PapSMS answered success with HTTP %s; trusting the body", http_status)
        return data.get("data")
    if success is False or "error" in data:
        raise error_for(*_error_parts(data), http_status, endpoint)
    raise _unexpected(body, http_status, endpoint)


def _money(value: object) -> Decimal | None:
    """A finite, non-negative amount, never through float; else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _stock(value: object) -> int:
    if isinstance(value, bool):
        return 0
    try:
        return max(int(str(value).strip()), 0)
    except ValueError:
        return 0


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _country_id(value: object) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def parse_purchase(body: str, http_status: int) -> PurchasedNumber:
    """`{"success": true, "data": {"activation_id": "12345678", "phone_number": "+1415...",
    "cost": 0.80, ...}}`. A success we cannot use is PurchaseOutcomeUnknown: it cost money."""
    data = parse_envelope(body, http_status, Endpoint.PURCHASE)
    if isinstance(data, dict):
        activation_id = _text(data.get("activation_id"))
        phone = _text(data.get("phone_number"))
        digits = _digits(phone) if phone else ""
        if activation_id and digits:
            return PurchasedNumber(Activation(activation_id, digits), _money(data.get("cost")))
    raise PurchaseOutcomeUnknown(f"PapSMS purchase succeeded without a number: {snippet(body)!r}")


def parse_status(body: str, http_status: int = 200) -> ActivationStatus:
    """`{"status": "waiting", "sms": null}` or `{"status": "received", "sms": {"code": ...}}`."""
    data = parse_envelope(body, http_status, Endpoint.ACTIVATION)
    status = _text(data.get("status")) if isinstance(data, dict) else None
    if status is None or not isinstance(data, dict):
        raise UpstreamUnavailable(f"unexpected PapSMS status: {snippet(body)!r}")
    status = status.lower()
    sms = data.get("sms")
    code = _text(sms.get("code")) if isinstance(sms, dict) else None
    text = _text(sms.get("full_text")) if isinstance(sms, dict) else None
    if status == "waiting":
        return ActivationStatus(StatusKind.WAITING)
    if status in ("received", "completed") and code:
        return ActivationStatus(StatusKind.CODE, code=code, text=text)
    if status in ("cancelled", "canceled", "expired"):
        return ActivationStatus(StatusKind.CANCELLED)
    raise UpstreamUnavailable(f"unexpected PapSMS status {status!r}: {snippet(body)!r}")


def parse_finish(body: str, http_status: int, wanted: FinishStatus) -> None:
    """Any success; an "already <wanted>" error also means the activation is where we want it."""
    data = _load(body)
    if isinstance(data, dict) and data.get("success") is False:
        code, message = _error_parts(data)
        if ALREADY[wanted].search(f"{_norm(code).replace('_', ' ')} {message.lower()}"):
            log.info("PapSMS finish %s: already %s", wanted, wanted)
            return
    parse_envelope(body, http_status, Endpoint.ACTIVATION)


def _rows(body: str, http_status: int) -> list[dict[str, Any]]:
    data = parse_envelope(body, http_status)
    if not isinstance(data, list):
        raise UpstreamUnavailable(f"unexpected PapSMS list: {snippet(body)!r}")
    return [row for row in data if isinstance(row, dict)]


def parse_countries(body: str, http_status: int = 200) -> list[UpstreamCountry]:
    """`[{"code": "us", "name": "United States"}]` (assumed shape)."""
    countries = []
    for row in _rows(body, http_status):
        code = _country_id(row.get("code"))
        if code is None:
            continue
        iso = "GB" if code == "uk" else code.upper()
        name = _text(row.get("name")) or code.upper()
        countries.append(
            UpstreamCountry(
                id=code, name=name, iso=iso if len(iso) == 2 and iso.isalpha() else None
            )
        )
    return countries


def parse_services(body: str, http_status: int = 200) -> list[UpstreamService]:
    """`[{"service": "whatsapp", "name": "WhatsApp", ...}]` (assumed), deduplicated."""
    services: dict[str, UpstreamService] = {}
    for row in _rows(body, http_status):
        code = _text(row.get("service")) or _text(row.get("code"))
        if code is not None and code not in services:
            services[code] = UpstreamService(code=code, name=_text(row.get("name")) or code)
    return list(services.values())


def parse_prices(
    body: str, http_status: int = 200, service_code: str | None = None
) -> list[UpstreamOffer]:
    """`[{"country": "us", "price": 0.80, "available": 120}]` (assumed) -> offers."""
    offers = []
    for row in _rows(body, http_status):
        service = _text(row.get("service")) or _text(row.get("code"))
        if service_code is not None and service is not None and service != service_code:
            continue
        country = _country_id(row.get("country"))
        cost = _money(row.get("price"))
        if country is None or cost is None or cost <= 0:
            log.warning("Skipping a malformed PapSMS price row %r", snippet(str(row)))
            continue
        offers.append(UpstreamOffer(country, cost, _stock(row.get("available"))))
    return offers


def parse_balance(body: str, http_status: int = 200) -> Decimal:
    """`{"balance": 12.50, "currency": "USD"}` (assumed) or a bare number."""
    data = parse_envelope(body, http_status)
    amount = _money(data.get("balance") if isinstance(data, dict) else data)
    if amount is None:
        raise UpstreamUnavailable(f"unexpected PapSMS balance: {snippet(body)!r}")
    return amount


WEBHOOK_ID_KEYS = ("activation_id", "id")
WEBHOOK_TEXT_KEYS = ("full_text", "text")


def parse_webhook(payload: Mapping[str, Any]) -> WebhookEvent:
    """One "SMS arrived" webhook (JSON already decoded, or a form).

    The doc only says the POST includes "the activation ID, code, and full message text". We
    accept `activation_id` (or `id`), `code` (or `sms.code`), `full_text` (or `text`, or
    `sms.full_text`) and an optional `event_id`, at the top level or inside a `data` object
    like the API's answers. Numbers are read as strings. `event_key` is `event_id` when given,
    else `"{activation_id}:{code}"`, so a redelivered webhook is the same event. Raises
    ValueError without an activation id.
    """
    fields: Mapping[str, Any] = payload
    inner = payload.get("data")
    if isinstance(inner, Mapping) and not any(_text(payload.get(k)) for k in WEBHOOK_ID_KEYS):
        fields = inner
    activation_id = next(
        (text for key in WEBHOOK_ID_KEYS if (text := _text(fields.get(key)))), None
    )
    if activation_id is None:
        raise ValueError("PapSMS webhook without an activation id")
    sms = fields.get("sms")
    sms = sms if isinstance(sms, Mapping) else {}
    code = _text(fields.get("code")) or _text(sms.get("code"))
    text = next((t for key in WEBHOOK_TEXT_KEYS if (t := _text(fields.get(key)))), None)
    text = text or _text(sms.get("full_text"))
    event_id = _text(fields.get("event_id")) or _text(payload.get("event_id"))
    return WebhookEvent(
        activation_id=activation_id,
        code=code,
        text=text,
        event_key=event_id or f"{activation_id}:{code or ''}",
    )


# ---------------------------------------------------------------------------------- client


class PapSMSClient:
    """The PapSMS API for one key, within its request budget (60 a minute by default)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str,
        budget: Budget,
        backoff: tuple[float, ...] = (1.0, 2.0, 4.0),
    ) -> None:
        self._http = UpstreamHTTP(
            http, "PapSMS", budget=budget, secrets=[api_key], retry_delays=backoff
        )
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.budget = budget

    async def balance(self) -> Decimal:
        return await self._read(
            self._call("GET", BALANCE_PATH), Priority.INTERACTIVE, parse_balance
        )

    async def countries(self, priority: Priority = Priority.BACKGROUND) -> list[UpstreamCountry]:
        return await self._read(self._call("GET", COUNTRIES_PATH), priority, parse_countries)

    async def services(
        self, country: str | None = None, priority: Priority = Priority.BACKGROUND
    ) -> list[UpstreamService]:
        params = {"country": country} if country else None
        call = self._call("GET", SERVICES_PATH, params=params)
        return await self._read(call, priority, parse_services)

    async def prices(
        self,
        service: str,
        country: str | None = None,
        priority: Priority = Priority.BACKGROUND,
        retry: bool = True,
    ) -> list[UpstreamOffer]:
        params = {"service": service, **({"country": country} if country else {})}

        def parse(body: str, http_status: int) -> list[UpstreamOffer]:
            return parse_prices(body, http_status, service)

        call = self._call("GET", PRICES_PATH, params=params)
        return await self._read(call, priority, parse, retry=retry)

    async def purchase(self, service: str, country: str) -> PurchasedNumber:
        """Buy one number. Never retried: see the module docstring."""
        call = self._call("POST", PURCHASE_PATH, payload={"country": country, "service": service})
        return await self._http.once(call, parse_purchase, lost=PurchaseOutcomeUnknown)

    async def status(self, activation_id: str) -> ActivationStatus:
        call = self._call("GET", STATUS_PATH + quote(activation_id, safe=""))
        return await self._read(call, Priority.POLL, parse_status)

    async def finish(self, activation_id: str, status: FinishStatus) -> None:
        def parse(body: str, http_status: int) -> None:
            parse_finish(body, http_status, status)

        path = FINISH_PATH + quote(activation_id, safe="")
        await self._read(
            self._call("POST", path, payload={"status": status}), Priority.PURCHASE, parse
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: dict[str, str] | None = None,
    ) -> Call:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        url = self._base_url + path
        return Call(path, method, url, params=params, json=payload, headers=headers)

    async def _read(
        self,
        call: Call,
        priority: Priority,
        parse: Callable[[str, int], _T],
        retry: bool = True,
    ) -> _T:
        """Send and parse, retried on 429, 5xx and network errors (unless `retry` is off):
        everything but a purchase, which goes through `once`."""
        retries = None if retry else 0
        return await self._http.read(
            call, parse, priority=priority, retries=retries, retry_if=transient
        )


def transient(error: Exception, reply: Reply | None) -> bool:
    """What PapSMS's retries are for: HTTP 429, and "unavailable" on a 5xx or no answer (an
    unreadable 2xx/4xx will not read better the second time)."""
    return isinstance(error, RateLimited) or (
        isinstance(error, UpstreamUnavailable) and (reply is None or reply.status >= 500)
    )


# ---------------------------------------------------------------------------------- route


class PapSMSRoute:
    """PapSMS as one route: finish supported, no second SMS on the same number."""

    key = "papsms"
    title = "PapSMS"
    account = "papsms"
    currency = "USD"
    can_request_another = False
    can_finish = True
    is_sandbox = False

    def __init__(self, client: PapSMSClient, rate: Decimal) -> None:
        self._client = client
        self.rate = rate

    async def balance(self) -> Decimal:
        return await self._client.balance()

    async def services(self) -> list[UpstreamService]:
        return await self._client.services()

    async def countries(self) -> list[UpstreamCountry]:
        return await self._client.countries()

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]:
        return await self._client.prices(service_code, priority=priority)

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        wanted = country.upstream_id.lower()
        offers = await self._client.prices(service_code, wanted, priority=Priority.PURCHASE)
        return next((offer for offer in offers if offer.country_id == wanted), None)

    async def pair_offer(
        self, service_code: str, country: CountryRef, priority: Priority
    ) -> UpstreamOffer | None:
        """`/prices` with `country` for a pair the bulk list left out (its shape is assumed,
        so we do not trust it to be complete); one request, not retried."""
        wanted = country.upstream_id.lower()
        offers = await self._client.prices(service_code, wanted, priority=priority, retry=False)
        return next((offer for offer in offers if offer.country_id == wanted), None)

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        """Buy a number; PapSMS cannot cap the price, so `max_cost` is only checked after."""
        bought = await self._client.purchase(service_code, country.upstream_id)
        if max_cost is not None and bought.cost is not None and bought.cost > max_cost:
            log.warning(
                "PapSMS charged %s for activation %s (ref %s), above the cap %s",
                bought.cost,
                bought.activation.activation_id,
                ref,
                max_cost,
            )
        return bought.activation

    async def status(self, activation_id: str) -> ActivationStatus:
        return await self._client.status(activation_id)

    async def cancel(self, activation_id: str) -> None:
        await self._client.finish(activation_id, "cancelled")

    async def request_another(self, activation_id: str) -> None:
        raise BadStatus("PapSMS cannot send another SMS to the same number")

    async def finish(self, activation_id: str) -> None:
        await self._client.finish(activation_id, "completed")

    async def close(self) -> None:
        return None
