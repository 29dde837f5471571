"""SMSPool (JSON over HTTP), per `shared/upstream-docs/smspool.txt` (the only source of truth).

`SMSPoolClient` speaks one endpoint per method for one API key; `SMSPoolRoute` sells it as the
route "smspool". Parsing is pure and tested on the doc's exact strings.

Where the doc is silent we chose:

Transport
* Every request is a POST with a form body (the doc allows GET or POST): the key never appears
  in a URL, so neither httpx's request log nor a proxy's access log can leak it. The key is
  sent only to endpoints whose table lists it (not to country/service retrieve_all, nor to
  request/suggested_countries).
* The body is judged before the HTTP status. A failure is a JSON object with `success` 0, or
  with an `errors` list, or (on HTTP >= 400) with a `message` and no `success`. Its words are
  the `message` and every `errors[].message`, HTML tags stripped (4xx answers may carry
  `<b>...</b>`), joined by "; ". A documented success shape is trusted whatever the status.
  Anything else (HTML, non-JSON, other JSON) is UpstreamUnavailable, or RateLimited on 429.
* Messages map to typed errors by case-insensitive substring, first match wins, the key first
  (the doc's errors list names key, country and service together): "param: key" -> BadKey;
  "insufficient balance" / "not have enough balance" -> UpstreamNoBalance; "could not find this
  order" -> NoActivation; "not available for this service", "country is currently not
  available" and "not available for this country" -> NoNumbers (a service missing in one
  country is a "try another country", not a dead service); "param: service" -> BadService;
  "param: country" -> NoNumbers; anything else (including "Something went horribly wrong" and
  "Fill in all params!") -> UpstreamUnavailable, or RateLimited on HTTP 429.
* Reads retry (default twice) on network errors and UpstreamUnavailable answers, 429 included.
  A purchase is never retried, and only a documented refusal proves it failed: a failure
  answer whose words map to a typed error above (including "Something went horribly wrong,
  try again please!", a Fail answer of the doc's purchase/sms table) or that names a "Missing
  or invalid param" (the doc's `errors` shape), whatever the HTTP status. A connect error is
  UpstreamUnavailable (nothing was sent). Everything else is PurchaseOutcomeUnknown and gets
  reconciled (below): any other network error, an HTTP 5xx or 524 page, HTML, a non-JSON or
  unknown JSON body (an HTTP 429 included: the doc describes no rate limit), a refusal in
  words we do not know, and a success without an order id and number.

Values
* Amounts may be strings or numbers; JSON numbers are read as Decimal, never through float.
* `number` is returned as digits only (the doc gives "123456789"; no "+" or spaces).
* `request/price` "No price was found" (or a price of 0) is "no offer" (None), not an error.
* `request/suggested_countries` gives no stock: a listed country has a conventional stock of
  100 (`LISTED_STOCK`). It is a short list, while `request/price` sells in many more
  countries: `pair_offer()` prices one pair the list leaves out (the catalog asks when a
  customer picks it), with the same conventional stock. A country listed twice (two pools)
  keeps its cheapest price, since we buy with pricing_option=1 (cheapest).
* countries(): `iso` is `short_name` when the endpoint gives a two-letter one (the doc's sample
  does not; request/active and suggested_countries do), else None.
* SMSPool has no `ref` parameter: `buy(ref=...)` is not sent. `pool` is not sent either (the
  doc: an empty pool selects a suitable one).

Orders
* sms/check: 1 pending -> WAITING; 2 expired, 5 cancelled, 6 refunded -> CANCELLED (the doc:
  orders without an SMS are refunded automatically); 3 -> CODE (`sms`, `full_sms` as text);
  4 resend -> WAITING_RETRY with `sms` if given, else the last code this route saw.
* sms/cancel: `{"success":1}` is done. `{"success":0}` with no message, or with a message we do
  not know on an HTTP < 400 answer (e.g. "too early", "cannot be cancelled yet"), is
  EarlyCancelDenied; then one sms/check decides: expired/cancelled/refunded means the order is
  already closed and the cancel counts as done; a received code is BadStatus (a used number
  cannot be cancelled); otherwise the EarlyCancelDenied stands.
* sms/resend failure is BadStatus with SMSPool's words as the detail (the doc's "could not be
  requested again, try later again"), unless the words name a known error (key, order).
* There is no finish endpoint: can_finish is False and finish() raises BadStatus.

Batch polling
* status() reads a shared snapshot of request/active no older than `snapshot_max_age`, or joins
  the one fetch in flight (a task shared by every caller: never two fetches at once). A listed
  order with `code` other than "0" is CODE (`full_code` as text); a listed order with code "0"
  and status "pending" is WAITING; after request_another, the same old code is WAITING_RETRY.
  An order not listed, or listed in a state we do not know, costs one sms/check.

Purchase reconciliation
* After PurchaseOutcomeUnknown, the route fetches request/active (a fetch started after the
  failure) at each of `reconcile_delays` and looks for the one order that matches: its
  `service` is the service's name (or code) and its `short_name` the country's ISO code (names
  from services()/countries(), fetched once if not cached), this route has not already returned
  it from another buy, and it was created at or after the purchase's start minus 60 s. Exactly
  one match is returned; two or more, or none after the last attempt, raise
  PurchaseOutcomeUnknown. A concurrent purchase of the same service and country on this route
  makes a match ambiguous, so it also raises at once; so does a lost purchase of the same
  offer whose reconciliation failed within the last 60 s (its order may land any moment).
* The first attempt that sees any match decides. An order bought with the same key by
  someone else (another process, the website) within the window, while ours never landed,
  cannot be told from ours: matching lives in one process, and the claimed set forgets ids
  beyond the newest 1000.
* Creation time: the `timestamp` ("2022-05-24 21:20:07") has no time zone, and the doc's own
  sample is not UTC (its `expiry` 1653420607 is 19:30:07 UTC, ten minutes after 21:20:07 at
  UTC+2). The route learns the zone's offset from its own purchases as they appear in
  request/active (rounded to 15 minutes); until then it uses `expiry` minus the lifetime of
  the last purchase (`expires_in`, 600 s by default, as the doc's samples suggest).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

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
from shop.providers.http import Call, UpstreamHTTP, snippet
from shop.providers.http import unexpected as unreadable

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.smspool.net"
LISTED_STOCK = 100  # suggested_countries gives no stock: a listed country "has numbers"
CHEAPEST = "1"  # pricing_option: 0 = highest success rate, 1 = cheapest
DEFAULT_LIFETIME = 600.0  # seconds; the doc's purchase says expires_in 599
RECONCILE_SLACK = 60.0
OFFSET_STEP = 900  # time zones are whole quarter hours
MAX_REMEMBERED = 1000
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

# Case-insensitive substrings of SMSPool's words, first match wins (the key first).
ERRORS: tuple[tuple[str, type[ProviderError]], ...] = (
    ("param: key", BadKey),
    ("insufficient balance", UpstreamNoBalance),
    ("not have enough balance", UpstreamNoBalance),
    ("could not find this order", NoActivation),
    ("not available for this service", NoNumbers),
    ("country is currently not available", NoNumbers),
    ("not available for this country", NoNumbers),
    ("param: service", BadService),
    ("param: country", NoNumbers),
    ("something went horribly wrong", UpstreamUnavailable),
)

PARAM_ERROR = "missing or invalid param"  # the doc's `errors` entries: nothing was bought

CHECK_PENDING, CHECK_EXPIRED, CHECK_CODE, CHECK_RESEND, CHECK_CANCELLED, CHECK_REFUNDED = range(
    1, 7
)
CLOSED_STATUSES = frozenset({CHECK_EXPIRED, CHECK_CANCELLED, CHECK_REFUNDED})

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Purchase:
    order_id: str
    number: str  # digits only
    expires_in: int | None


@dataclass(frozen=True)
class Check:
    """One sms/check answer: `status` 1..6 and, for 3 (or 4 if given), the SMS."""

    status: int
    sms: str | None = None
    full_sms: str | None = None
    expiration: int | None = None


@dataclass(frozen=True)
class ActiveOrder:
    """One row of request/active."""

    order_code: str
    phonenumber: str
    code: str  # "0" while waiting
    full_code: str
    short_name: str
    service: str  # the service's name, not its ID
    status: str
    timestamp: str
    expiry: int | None

    @property
    def has_code(self) -> bool:
        return self.code not in ("", "0")


# ---------------------------------------------------------------------------------- parsing


def strip_tags(text: str) -> str:
    """`<b>Missing</b> or invalid param: key` -> `Missing or invalid param: key`."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", text)).split())


def _load(body: str) -> Any:
    """JSON with exact decimals, or None if the body is not JSON."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return None


def _is_false(value: object) -> bool:
    return value is False or value == 0 or value == "0"


def _is_true(value: object) -> bool:
    return value is True or value == 1 or value == "1"


def failure_message(data: Any, http_status: int = 200) -> str | None:
    """SMSPool's words if `data` is a failure answer ("" when it gave none), else None."""
    if not isinstance(data, dict):
        return None
    errors = data.get("errors")
    failed = (
        ("success" in data and _is_false(data["success"]))
        or isinstance(errors, list)
        or ("success" not in data and "message" in data and http_status >= 400)
    )
    if not failed:
        return None
    words = []
    if isinstance(data.get("message"), str):
        words.append(data["message"])
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            words.append(item["message"])
    return "; ".join(text for text in map(strip_tags, words) if text)


def known_error(message: str) -> type[ProviderError] | None:
    lowered = message.lower()
    for needle, error in ERRORS:
        if needle in lowered:
            return error
    return None


def error_for(message: str, http_status: int = 200) -> ProviderError:
    """The typed error for SMSPool's words (tags already stripped)."""
    error = known_error(message)
    if error is None:
        error = RateLimited if http_status == 429 else UpstreamUnavailable
    detail = snippet(message) or "refused without a message"
    return error(f"SMSPool (HTTP {http_status}): {detail}")


def unexpected(body: str, http_status: int) -> UpstreamUnavailable:
    return unreadable("SMSPool", body, http_status)


def _answer(body: str, http_status: int) -> Any:
    """The JSON of an answer that is not a failure; raise the typed error for a failure."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        raise error_for(message, http_status)
    if data is None:
        raise unexpected(body, http_status)
    return data


def to_decimal(value: object) -> Decimal | None:
    """`"0.75"`, `0.75` (as Decimal) or `1` -> Decimal; anything else, or negative -> None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _text(value: object) -> str | None:
    """A non-empty id-like value (string or integer) as a string."""
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text or None


def _int(value: object) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def digits(value: object) -> str:
    return re.sub(r"\D", "", str(value))


def _rows(data: Any, body: str, http_status: int) -> list[dict[str, Any]]:
    """A JSON list of objects; a PHP-style object keyed "0", "1", ... counts as a list."""
    if isinstance(data, dict) and all(key.isdigit() for key in data):
        data = list(data.values())
    if not isinstance(data, list):
        raise unexpected(body, http_status)
    return [row for row in data if isinstance(row, dict)]


def parse_balance(body: str, http_status: int = 200) -> Decimal:
    """`{"balance":"1.00"}` -> Decimal('1.00')."""
    data = _answer(body, http_status)
    balance = to_decimal(data.get("balance")) if isinstance(data, dict) else None
    if balance is None:
        raise unexpected(body, http_status)
    return balance


def _iso(value: object) -> str | None:
    text = _text(value)
    return text.upper() if text is not None and len(text) == 2 and text.isalpha() else None


def parse_countries(body: str, http_status: int = 200) -> list[UpstreamCountry]:
    """`[{"ID":"1","name":"United States","region":"Americas"}]`, `short_name` if given."""
    rows = _rows(_answer(body, http_status), body, http_status)
    countries = []
    for row in rows:
        country_id, name = _text(row.get("ID")), _text(row.get("name"))
        if country_id is not None and name is not None:
            countries.append(UpstreamCountry(country_id, name, _iso(row.get("short_name"))))
    return countries


def parse_services(body: str, http_status: int = 200) -> list[UpstreamService]:
    """`[{"ID":"1","name":"1688"},{"ID":"2","name":"1Q"}]`."""
    rows = _rows(_answer(body, http_status), body, http_status)
    services = []
    for row in rows:
        code = _text(row.get("ID"))
        if code is not None:
            services.append(UpstreamService(code, _text(row.get("name")) or code))
    return services


def parse_price(body: str, http_status: int = 200) -> Decimal | None:
    """`{"price":"0.75"}`; "No price was found for this query." (or a zero price) -> None."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None and "no price was found" in message.lower():
        return None
    data = _answer(body, http_status)
    price = to_decimal(data.get("price")) if isinstance(data, dict) else None
    if price is None:
        raise unexpected(body, http_status)
    return price if price > 0 else None


def parse_suggested(body: str, http_status: int = 200) -> list[UpstreamOffer]:
    """`[{"pool":1,"country_id":1,"name":"United States","short_name":"US","price":"0.31"}]`.

    One offer per country, the cheapest pool's price, stock `LISTED_STOCK`.
    """
    rows = _rows(_answer(body, http_status), body, http_status)
    cheapest: dict[str, Decimal] = {}
    for row in rows:
        country_id, price = _text(row.get("country_id")), to_decimal(row.get("price"))
        if country_id is None or price is None or price <= 0:
            log.warning("Skipping a malformed SMSPool suggestion %r", snippet(str(row)))
            continue
        if country_id not in cheapest or price < cheapest[country_id]:
            cheapest[country_id] = price
    return [UpstreamOffer(country, cost, LISTED_STOCK) for country, cost in cheapest.items()]


def parse_purchase(body: str, http_status: int = 200) -> Purchase:
    """`{"success":1,"number":"123456789","order_id":"ABCDEFG",...,"expires_in":599}`, a
    documented refusal (its typed error), or PurchaseOutcomeUnknown for anything else."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        if known_error(message) is not None or PARAM_ERROR in message.lower():
            raise error_for(message, http_status)
        detail = snippet(message) or "refused without a message"
        raise PurchaseOutcomeUnknown(f"SMSPool purchase/sms (HTTP {http_status}): {detail}")
    if isinstance(data, dict) and _is_true(data.get("success")):
        order_id, number = _text(data.get("order_id")), digits(data.get("number") or "")
        if order_id is not None and number:
            if http_status >= 400:
                log.warning("SMSPool sold order %s with HTTP %s", order_id, http_status)
            return Purchase(order_id, number, _int(data.get("expires_in")))
    raise PurchaseOutcomeUnknown(
        f"unclear SMSPool purchase/sms answer (HTTP {http_status}): {snippet(body)!r}"
    )


def parse_check(body: str, http_status: int = 200) -> Check:
    """`{"status":3,"sms":"00000","full_sms":"full SMS","expiration":1669382268}` and kin."""
    data = _answer(body, http_status)
    status = _int(data.get("status")) if isinstance(data, dict) else None
    if status is None or not CHECK_PENDING <= status <= CHECK_REFUNDED:
        raise unexpected(body, http_status)
    sms = _text(data.get("sms"))
    full_sms = data.get("full_sms")
    return Check(
        status=status,
        sms=sms if sms not in (None, "0") else None,
        full_sms=full_sms if isinstance(full_sms, str) and full_sms else None,
        expiration=_int(data.get("expiration")),
    )


def check_status(check: Check, last_code: str | None = None) -> ActivationStatus:
    """sms/check as an ActivationStatus; `last_code` fills in a resend's code."""
    if check.status == CHECK_PENDING:
        return ActivationStatus(StatusKind.WAITING)
    if check.status == CHECK_CODE and check.sms:
        return ActivationStatus(StatusKind.CODE, code=check.sms, text=check.full_sms)
    if check.status == CHECK_RESEND:
        return ActivationStatus(StatusKind.WAITING_RETRY, code=check.sms or last_code)
    if check.status in CLOSED_STATUSES:
        return ActivationStatus(StatusKind.CANCELLED)
    raise UpstreamUnavailable(f"SMSPool sms/check: status {check.status} without an SMS")


def parse_resend(body: str, http_status: int = 200) -> None:
    """`{"success":1,"message":"Number has been requested again","resend":0}`."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        if known_error(message) is None and http_status < 400:
            raise BadStatus(f"SMSPool refused a resend: {snippet(message) or 'no reason'}")
        raise error_for(message, http_status)
    if not (isinstance(data, dict) and _is_true(data.get("success"))):
        raise unexpected(body, http_status)


def parse_cancel(body: str, http_status: int = 200) -> None:
    """`{"success":1}` is done; `{"success":0}` (or an unknown refusal) is EarlyCancelDenied."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        if known_error(message) is None and http_status < 400:
            raise EarlyCancelDenied(f"SMSPool refused a cancel: {snippet(message) or 'bare'}")
        raise error_for(message, http_status)
    if not (isinstance(data, dict) and _is_true(data.get("success"))):
        raise unexpected(body, http_status)


def parse_active(body: str, http_status: int = 200) -> list[ActiveOrder]:
    """`[{"timestamp":"2022-05-24 21:20:07","order_code":"ABCDEFGH",...,"expiry":"..."}]`."""
    orders = []
    for row in _rows(_answer(body, http_status), body, http_status):
        order_code = _text(row.get("order_code"))
        if order_code is None:
            continue
        orders.append(
            ActiveOrder(
                order_code=order_code,
                phonenumber=digits(row.get("phonenumber") or ""),
                code=_text(row.get("code")) or "0",
                full_code=str(row.get("full_code") or ""),
                short_name=(_text(row.get("short_name")) or "").upper(),
                service=_text(row.get("service")) or "",
                status=(_text(row.get("status")) or "").lower(),
                timestamp=_text(row.get("timestamp")) or "",
                expiry=_int(row.get("expiry")),
            )
        )
    return orders


def parse_timestamp(text: str) -> float | None:
    """`2022-05-24 21:20:07` read as if it were UTC (its real zone is unknown), or None."""
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------- client


class SMSPoolClient:
    """The SMSPool API for one key, within its request budget. One method per endpoint."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str,
        budget: Budget,
        retry_delays: tuple[float, ...] = (0.5, 1.5),
    ) -> None:
        self._http = UpstreamHTTP(
            http, "SMSPool", budget=budget, secrets=[api_key], retry_delays=retry_delays
        )
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.budget = budget

    # -- informative

    async def countries(self, priority: Priority = Priority.BACKGROUND) -> list[UpstreamCountry]:
        return await self._read("country/retrieve_all", parse_countries, priority, key=False)

    async def services(self, priority: Priority = Priority.BACKGROUND) -> list[UpstreamService]:
        return await self._read("service/retrieve_all", parse_services, priority, key=False)

    async def balance(self, priority: Priority = Priority.INTERACTIVE) -> Decimal:
        return await self._read("request/balance", parse_balance, priority)

    async def price(
        self,
        service: str,
        country: str,
        priority: Priority = Priority.PURCHASE,
        retries: int = 1,
    ) -> Decimal | None:
        params = {"service": service, "country": country}
        return await self._read("request/price", parse_price, priority, params, retries=retries)

    async def suggested_countries(self, service: str, priority: Priority) -> list[UpstreamOffer]:
        params = {"service": service}
        return await self._read(
            "request/suggested_countries", parse_suggested, priority, params, key=False
        )

    async def active(self, priority: Priority = Priority.POLL) -> list[ActiveOrder]:
        return await self._read("request/active", parse_active, priority, retries=1)

    async def check(self, order_id: str, priority: Priority = Priority.POLL) -> Check:
        return await self._read("sms/check", parse_check, priority, {"orderid": order_id})

    # -- ordering

    async def purchase(
        self, service: str, country: str, max_price: Decimal | None = None
    ) -> Purchase:
        """Buy one number, cheapest option first. Never retried."""
        params = {"country": country, "service": service, "pricing_option": CHEAPEST}
        if max_price is not None:
            params["max_price"] = str(max_price)
        return await self.send_once(
            "purchase/sms", parse_purchase, params, lost=PurchaseOutcomeUnknown
        )

    async def resend(self, order_id: str) -> None:
        await self._write("sms/resend", parse_resend, {"orderid": order_id})

    async def cancel(self, order_id: str) -> None:
        await self._write("sms/cancel", parse_cancel, {"orderid": order_id})

    # -- transport for other SMSPool APIs on the same key (rentals)

    async def read(
        self,
        path: str,
        parse: Callable[[str, int], _T],
        priority: Priority,
        params: Mapping[str, str] | None = None,
        *,
        key: bool = True,
        retries: int = 2,
        query: Mapping[str, str] | None = None,
    ) -> _T:
        """A read within the budget, retried on network errors and UpstreamUnavailable
        answers; `parse(body, http_status)` makes the result, the key redacted from errors.
        `query` goes into the URL as well (never put the key there)."""
        return await self._read(
            path, parse, priority, params, key=key, retries=retries, query=query
        )

    async def send_once(
        self,
        path: str,
        parse: Callable[[str, int], _T],
        params: Mapping[str, str],
        *,
        lost: Callable[[str], ProviderError],
        priority: Priority = Priority.PURCHASE,
    ) -> _T:
        """One request that may move money, never retried. If it cannot have left (connect
        error) it is UpstreamUnavailable; any other network error raises `lost(detail)`;
        an answer goes to `parse(body, http_status)`, the key redacted from its errors."""
        call = self._call(path, params, key=True)
        return await self._http.once(call, parse, priority=priority, lost=lost)

    # -- plumbing

    def _call(
        self,
        path: str,
        params: Mapping[str, str],
        key: bool,
        query: Mapping[str, str] | None = None,
    ) -> Call:
        form = {**params, "key": self._api_key} if key else dict(params)
        return Call(path, "POST", f"{self._base_url}/{path}", params=query, data=form)

    async def _write(
        self, path: str, parse: Callable[[str, int], None], params: Mapping[str, str]
    ) -> None:
        """sms/resend and sms/cancel: not retried (a second resend is a second request)."""
        await self._http.once(self._call(path, params, key=True), parse)

    async def _read(
        self,
        path: str,
        parse: Callable[[str, int], _T],
        priority: Priority,
        params: Mapping[str, str] | None = None,
        *,
        key: bool = True,
        retries: int = 2,
        query: Mapping[str, str] | None = None,
    ) -> _T:
        """A read, retried on network errors and on UpstreamUnavailable answers (429 too)."""
        call = self._call(path, params or {}, key, query)
        return await self._http.read(call, parse, priority=priority, retries=retries)


# ---------------------------------------------------------------------------------- route


@dataclass(frozen=True)
class ActiveSnapshot:
    started_at: float  # time.monotonic() when its fetch started
    orders: dict[str, ActiveOrder]


def _remember(store: OrderedDict[str, _T], key: str, value: _T) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > MAX_REMEMBERED:
        store.popitem(last=False)


class SMSPoolRoute:
    """SMSPool as one route. Polls every live order with one request/active call per tick."""

    key = "smspool"
    title = "SMSPool"
    account = "smspool"
    currency = "USD"
    can_request_another = True
    can_finish = False
    is_sandbox = False

    def __init__(
        self,
        client: SMSPoolClient,
        rate: Decimal,
        snapshot_max_age: float = 2.0,
        reconcile_delays: tuple[float, ...] = (0.0, 2.0, 5.0),
    ) -> None:
        self._client = client
        self.rate = rate
        self.snapshot_max_age = snapshot_max_age
        self.reconcile_delays = reconcile_delays or (0.0,)
        self._snapshot: ActiveSnapshot | None = None
        self._fetch: asyncio.Task[ActiveSnapshot] | None = None
        self._fetch_started = 0.0
        self._service_names: dict[str, str] = {}
        self._country_isos: dict[str, str] = {}
        self._claimed: OrderedDict[str, None] = OrderedDict()
        self._bought_at: OrderedDict[str, float] = OrderedDict()  # order -> time.time()
        self._bought_mono: OrderedDict[str, float] = OrderedDict()  # order -> monotonic
        self._last_codes: OrderedDict[str, str] = OrderedDict()
        self._retrying: OrderedDict[str, str | None] = OrderedDict()  # order -> code before
        self._buying: dict[tuple[str, str], int] = {}  # purchases in flight per offer
        self._unresolved: dict[tuple[str, str], float] = {}  # offer -> last failed reconcile
        self._timestamp_offset: float | None = None  # upstream wall clock minus UTC, seconds
        self._lifetime = DEFAULT_LIFETIME

    @property
    def client(self) -> SMSPoolClient:
        """The account's client (rentals share its key and request budget)."""
        return self._client

    @property
    def timestamp_offset(self) -> float | None:
        """How far SMSPool's `timestamp` runs ahead of UTC (seconds), once learned."""
        return self._timestamp_offset

    # -- catalog

    async def balance(self) -> Decimal:
        return await self._client.balance()

    async def services(self) -> list[UpstreamService]:
        services = await self._client.services()
        self._service_names.update({s.code: s.name for s in services})
        return services

    async def countries(self) -> list[UpstreamCountry]:
        countries = await self._client.countries()
        self._country_isos.update({c.id: c.iso for c in countries if c.iso})
        return countries

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]:
        return await self._client.suggested_countries(service_code, priority)

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        cost = await self._client.price(service_code, country.upstream_id)
        return None if cost is None else UpstreamOffer(country.upstream_id, cost, LISTED_STOCK)

    async def pair_offer(
        self, service_code: str, country: CountryRef, priority: Priority
    ) -> UpstreamOffer | None:
        """request/price for one pair, which sells in many more countries than
        suggested_countries lists; stock is the conventional LISTED_STOCK (none is given)."""
        cost = await self._client.price(service_code, country.upstream_id, priority, retries=0)
        return None if cost is None else UpstreamOffer(country.upstream_id, cost, LISTED_STOCK)

    # -- buying

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        """Buy at no more than `max_cost` USD; a lost answer is looked for in request/active."""
        started = time.time()
        offer = (service_code, country.upstream_id)
        self._buying[offer] = self._buying.get(offer, 0) + 1
        try:
            try:
                purchase = await self._client.purchase(
                    service_code, country.upstream_id, max_price=max_cost
                )
            except PurchaseOutcomeUnknown as exc:
                log.warning("SMSPool purchase for ref %s: %s; reconciling", ref, exc)
                return await self._reconcile(service_code, country, started, exc)
        finally:
            self._buying[offer] -= 1
            if not self._buying[offer]:
                del self._buying[offer]
        if purchase.expires_in is not None and purchase.expires_in > 0:
            self._lifetime = float(purchase.expires_in)
        self._claim(purchase.order_id)
        _remember(self._bought_at, purchase.order_id, time.time())
        _remember(self._bought_mono, purchase.order_id, time.monotonic())
        return Activation(purchase.order_id, purchase.number)

    def _claim(self, order_id: str) -> None:
        _remember(self._claimed, order_id, None)

    async def _reconcile(
        self, service_code: str, country: CountryRef, started: float, cause: ProviderError
    ) -> Activation:
        offer = (service_code, country.upstream_id)
        unresolved = self._unresolved.get(offer)
        if unresolved is not None and unresolved >= started - RECONCILE_SLACK:
            # That purchase's order may land now and would look just like ours.
            raise PurchaseOutcomeUnknown(f"{cause}; an earlier lost purchase is unresolved")
        try:
            return await self._find(service_code, country, started, cause)
        except PurchaseOutcomeUnknown:
            self._unresolved[offer] = time.time()
            raise

    async def _find(
        self, service_code: str, country: CountryRef, started: float, cause: ProviderError
    ) -> Activation:
        services = await self._names_of(service_code)
        isos = await self._isos_of(country)
        for delay in self.reconcile_delays:
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                snapshot = await self._active(time.monotonic(), Priority.PURCHASE)
            except ProviderError as exc:
                log.warning("SMSPool reconciliation could not read request/active: %s", exc)
                continue
            if self._buying.get((service_code, country.upstream_id), 0) > 1:
                # Its order, not yet claimed, would look just like ours.
                raise PurchaseOutcomeUnknown(f"{cause}; another purchase of this offer is live")
            matches = [
                order
                for order in snapshot.orders.values()
                if order.order_code not in self._claimed
                and order.service.lower() in services
                and order.short_name in isos
                and (created := self._created_at(order)) is not None
                and created >= started - RECONCILE_SLACK
            ]
            if len(matches) == 1:
                found = matches[0]
                log.warning("SMSPool purchase reconciled: order %s", found.order_code)
                self._claim(found.order_code)
                return Activation(found.order_code, found.phonenumber)
            if len(matches) > 1:
                codes = ", ".join(sorted(order.order_code for order in matches))
                raise PurchaseOutcomeUnknown(f"{cause}; several orders could be ours: {codes}")
        raise PurchaseOutcomeUnknown(f"{cause}; no matching order in request/active")

    async def _names_of(self, service_code: str) -> set[str]:
        if service_code not in self._service_names:
            try:
                await self.services()
            except ProviderError as exc:
                log.warning("SMSPool services for reconciliation: %s", exc)
        names = {service_code, self._service_names.get(service_code, service_code)}
        return {name.lower() for name in names}

    async def _isos_of(self, country: CountryRef) -> set[str]:
        if country.iso is None and country.upstream_id not in self._country_isos:
            try:
                await self.countries()
            except ProviderError as exc:
                log.warning("SMSPool countries for reconciliation: %s", exc)
        known = (country.iso, self._country_isos.get(country.upstream_id))
        return {iso.upper() for iso in known if iso}

    def _created_at(self, order: ActiveOrder) -> float | None:
        """When SMSPool created an order, in UTC epoch seconds, as well as we can tell."""
        wall = parse_timestamp(order.timestamp)
        if self._timestamp_offset is not None and wall is not None:
            return wall - self._timestamp_offset
        if order.expiry is not None:
            return order.expiry - self._lifetime
        return None

    def _learn_offset(self, orders: dict[str, ActiveOrder]) -> None:
        for order_id, bought_at in reversed(self._bought_at.items()):
            order = orders.get(order_id)
            wall = parse_timestamp(order.timestamp) if order is not None else None
            if wall is not None:
                offset = round((wall - bought_at) / OFFSET_STEP) * OFFSET_STEP
                if offset != self._timestamp_offset:
                    log.info("SMSPool timestamps are UTC%+.2gh", offset / 3600)
                self._timestamp_offset = float(offset)
                return

    # -- watching

    async def status(self, activation_id: str) -> ActivationStatus:
        """From the shared request/active snapshot, or one sms/check if the order is not there."""
        snapshot = await self._active(
            time.monotonic() - self.snapshot_max_age, Priority.POLL, join_older=True
        )
        order = snapshot.orders.get(activation_id)
        bought = self._bought_mono.get(activation_id)
        if order is None and bought is not None and snapshot.started_at < bought:
            # Bought after that snapshot began: wait for the next shared one, not a check.
            snapshot = await self._active(bought, Priority.POLL)
            order = snapshot.orders.get(activation_id)
        if order is not None:
            status = self._from_active(order)
            if status is not None:
                return status
        check = await self._client.check(activation_id, Priority.POLL)
        return self._from_check(activation_id, check)

    def _from_active(self, order: ActiveOrder) -> ActivationStatus | None:
        order_id = order.order_code
        if order.has_code:
            if order_id in self._retrying and self._retrying[order_id] == order.code:
                return ActivationStatus(StatusKind.WAITING_RETRY, code=order.code)
            self._retrying.pop(order_id, None)
            _remember(self._last_codes, order_id, order.code)
            text = order.full_code if order.full_code not in ("", "0") else None
            return ActivationStatus(StatusKind.CODE, code=order.code, text=text)
        if order.status == "pending":
            if order_id in self._retrying:
                return ActivationStatus(StatusKind.WAITING_RETRY, code=self._retrying[order_id])
            return ActivationStatus(StatusKind.WAITING)
        return None  # a state the doc does not show: ask sms/check

    def _from_check(self, order_id: str, check: Check) -> ActivationStatus:
        last = self._last_codes.get(order_id)
        if check.status == CHECK_CODE and check.sms and order_id in self._retrying:
            if check.sms == self._retrying[order_id]:
                return ActivationStatus(StatusKind.WAITING_RETRY, code=check.sms)
        status = check_status(check, last)
        if status.kind is StatusKind.CODE and status.code:
            self._retrying.pop(order_id, None)
            _remember(self._last_codes, order_id, status.code)
        elif status.kind is StatusKind.CANCELLED:
            self._forget(order_id)
        return status

    def _forget(self, order_id: str) -> None:
        self._last_codes.pop(order_id, None)
        self._retrying.pop(order_id, None)

    async def _active(
        self, fresh_since: float, priority: Priority, join_older: bool = False
    ) -> ActiveSnapshot:
        """A snapshot whose fetch started at or after `fresh_since`, or (`join_older`) the
        fetch in flight whenever it started. Never two fetches at once."""
        while True:
            snapshot = self._snapshot
            if snapshot is not None and snapshot.started_at >= fresh_since:
                return snapshot
            if self._fetch is None:
                self._fetch_started = time.monotonic()
                self._fetch = asyncio.get_running_loop().create_task(
                    self._fetch_active(self._fetch_started, priority)
                )
                self._fetch.add_done_callback(_consume)
            fetch = self._fetch
            if join_older or self._fetch_started >= fresh_since:
                return await asyncio.shield(fetch)
            try:  # an older fetch is running: let it finish, then start a fresh one
                await asyncio.shield(fetch)
            except ProviderError:
                pass

    async def _fetch_active(self, started: float, priority: Priority) -> ActiveSnapshot:
        try:
            orders = await self._client.active(priority)
        finally:
            self._fetch = None
        snapshot = ActiveSnapshot(started, {order.order_code: order for order in orders})
        if self._snapshot is None or self._snapshot.started_at <= started:
            self._snapshot = snapshot
        self._learn_offset(snapshot.orders)
        return snapshot

    # -- actions

    async def cancel(self, activation_id: str) -> None:
        """sms/cancel; a refusal on an order that is already closed counts as done."""
        try:
            await self._client.cancel(activation_id)
        except EarlyCancelDenied as refused:
            try:
                check = await self._client.check(activation_id, Priority.PURCHASE)
            except ProviderError as exc:
                log.info("SMSPool cancel of %s refused; check failed: %s", activation_id, exc)
                raise refused from None
            if check.status in CLOSED_STATUSES:
                log.info("SMSPool order %s already closed (%s)", activation_id, check.status)
                self._forget(activation_id)
                return
            if check.status == CHECK_CODE:
                raise BadStatus(f"SMSPool order {activation_id} has a code") from None
            raise
        self._forget(activation_id)

    async def request_another(self, activation_id: str) -> None:
        """sms/resend: the number waits for another SMS."""
        await self._client.resend(activation_id)
        _remember(self._retrying, activation_id, self._last_codes.get(activation_id))

    async def finish(self, activation_id: str) -> None:
        raise BadStatus("SMSPool has no endpoint to finish an order")

    async def close(self) -> None:
        fetch, self._fetch = self._fetch, None
        if fetch is not None and not fetch.done():
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a shared fetch's error so that a fetch nobody awaits any more stays quiet."""
    if not task.cancelled():
        task.exception()


__all__ = [
    "DEFAULT_BASE_URL",
    "LISTED_STOCK",
    "ActiveOrder",
    "ActiveSnapshot",
    "Check",
    "Purchase",
    "SMSPoolClient",
    "SMSPoolRoute",
]
