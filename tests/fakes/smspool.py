"""In-process fake of the SMSPool API, served over real HTTP on 127.0.0.1.

The protocol follows ``/work/shared/upstream-docs/smspool.txt`` (the only source of truth): one
path per endpoint under the base URL (``/purchase/sms``, ``/sms/check``...), JSON answers in
the doc's shapes, failures as HTTP 200 ``{"success":0,"message":...}``.

Choices made where the document is silent:

Transport
    * ``GET`` and ``POST`` are both served on every endpoint. Parameters are merged from the
      query string and an urlencoded/multipart form; the form wins on conflict.
    * The key is checked only where the doc lists it (not on country/service retrieve_all nor
      request/suggested_countries). A missing or wrong key answers HTTP 401 with the doc's
      ``errors`` shape; its message carries HTML (``<b>Missing</b> or invalid param: key``),
      as real 4xx answers may. purchase/sms lists every missing or invalid param (key, country,
      service, max_price) the same way: HTTP 401 if the key is among them, else 400.
    * Every answer is ``application/json`` except injected ones (guessed from the body).

Request pipeline (in this order)
    1. The request is recorded in :attr:`FakeSMSPool.requests` (``key`` removed).
    2. Rate limit: a sliding window of ``window_seconds`` per ``key`` value (empty for keyless
       calls), across all paths. Over the limit -> HTTP 429 ``{"success":0,"message":"Too
       many requests"}``; rejected requests do not enter the window nor consume a
       ``fail_next``/``delay_next`` entry, and are counted in :attr:`rejected_429`.
    3. ``delay_next`` sleeps; the rest runs in a task shielded from client disconnects, so a
       delayed purchase still takes effect after the client gave up.
    4. ``fail_next`` answers the injected body/status instead: the action does not happen.
    5. The endpoint itself.

Catalog
    * Countries carry ``short_name`` (ISO alpha-2); the doc's sample omits it, SMSPool gives it.
    * ``country`` may be an ID or a short_name (any case); ``service`` an ID or a name (any
      case). Given to service/retrieve_all, ``country`` keeps the services priced there; given to
      country/retrieve_all, it keeps that country.
    * request/price answers a price even when stock is 0; "No price was found for this
      query." only when no row exists. Prices are strings with two decimals.
    * request/suggested_countries lists the service's rows with stock > 0 in catalog order,
      ``country_id`` and ``pool`` as numbers (as in the doc); a missing service answers
      "Fill in all params!", an unknown one ``[]``. :attr:`FakeSMSPool.suggested` (service ID
      -> country IDs) shortens a service's list to those countries, as the real one is short.

Orders
    * purchase/sms checks, in order: params; no price row -> "This service is not available
      for this country."; stock 0, or price above ``max_price`` -> "This country is currently
      not available for this service, please try the following countries: " (the pool search
      finds nothing); price above balance -> "Insufficient balance, the price is: X while you
      only have: Y". Then it charges, takes one from stock and answers the doc's success
      shape. ``pool`` and ``pricing_option`` are recorded, not used.
    * Order ids are 7 random upper-case letters; numbers are the country's dialling code plus
      random digits; ``phonenumber`` in request/active is the purchase's ``number``.
    * Lifetime ``lifetime_seconds`` (600); ``expires_in`` is the whole seconds left (599).
      ``timestamp`` is wall-clock time at UTC+``timestamp_utc_offset_hours`` (2, which is what
      the doc's sample implies: its timestamp is 21:20:07 and its expiry 19:30:07 UTC);
      ``expiry`` and ``expiration`` are Unix seconds.
    * Expiry (lazily at each request, or :meth:`expire`): a waiting order becomes 2 expired and
      is refunded (the doc: orders without an SMS are refunded automatically); an order with a
      code leaves request/active, a resend one falls back to 3.
    * sms/cancel succeeds only on a waiting order (status 1) at least
      ``too_early_cancel_seconds`` old: it becomes 5 cancelled and is refunded. Anything else
      (too early, a code received, already closed) answers the doc's bare ``{"success":0}``;
      an unknown order answers sms/check's "We could not find this order!".
    * sms/resend needs a received code (status 3): the order becomes 4 resend and keeps its
      last code. Otherwise: "Phonenumber could not be requested again, try later again."
    * sms/check in 4 shows the doc's shape (no ``sms``). Status 6 refunded is never reached by
      itself; set ``order.status`` to use it.
    * request/active lists unexpired orders in 1, 3 or 4, oldest first: ``code``/``full_code``
      are "0" until an SMS arrives, then the last SMS (kept during a resend); ``status`` is
      "pending" for 1 and 4, "completed" for 3.

Rentals (the doc's "Rental endpoints")
    * Served at the doc's URLs: ``/rental/retrieve_all``, ``/purchase/rental``,
      ``/rental/retrieve_messages``, ``/rental/retrieve_status.php``, ``/rental/refund.php``,
      ``/rental/extend.php`` (only those: a URL without its ``.php`` is a 404). Request
      records, :meth:`FakeSMSPool.count`, :meth:`FakeSMSPool.counts` and the
      ``fail_next``/``garble_next``/``delay_next`` knobs name an endpoint without ``.php``
      (``"rental/extend"``; a ``.php`` given to them is dropped).
    * Rental time is :attr:`FakeSMSPool.clock` (``time.time`` unless a test replaces it;
      :meth:`FakeSMSPool.advance` moves it forward). One-time orders keep wall-clock time.
    * :attr:`FakeSMSPool.rental_offers` is the list retrieve_all sells (:class:`RentalRow`:
      id, country name, region, extendable, pricing {days: USD}); ids are unique across both
      types. retrieve_all needs ``type`` ("1" extendable, "0" not; otherwise the doc's "Fill
      in all params! [GET: type, key (optional)]"), ignores ``key``, and answers an object
      keyed by rental id with ``pricing`` as a JSON string of whole or decimal numbers, as in
      the doc (``{}`` when nothing is for sale).
    * purchase/rental: a missing/wrong key, an unknown ``id`` or a ``days`` that is not a
      whole number answer the ``errors`` shape (HTTP 401 for the key, else 400); days the row
      does not price answer "You selected a invalid amount of days! The following days are
      available: 7 14 30 "; ``service_id`` (a known service, on a US extendable row only, else
      "The service you entered is not available!") halves the price; a price above the
      balance answers "You do not have enough balance, please top up your account with X
      dollars in order to purchase this rental." (X: the shortfall). Then it debits, and
      answers the doc's success shape (``days`` a number, ``expiry`` a string of Unix
      seconds, ``rental_code`` 7 upper-case letters). There is no stock.
    * A rental runs until ``expiry`` (purchase time + days). Once the clock passes it the
      rental has expired: retrieve_status shows ``available`` 0 and ``activeFor`` 0 (``activeFor``
      is :attr:`rental_active_for`, 90, while live), messages can no longer arrive, extend
      and refund are refused; retrieve_messages still shows the history.
    * retrieve_messages lists every message newest first, keyed "0", "1"..., each with the
      rental's serial number as ``ID`` (so every message of a rental shares it, as in the doc)
      and as ``source``; timestamps are "11 May 2022 18:39:54" at UTC+
      ``timestamp_utc_offset_hours``; ``messages`` is ``[]`` when there are none. Status and
      messages of an unknown code answer "No rental was found!" (so do extend and refund).
    * rental/extend.php: days the rental's row does not price -> the invalid-days answer; a
      rental that is not extendable, refunded or expired -> "Something went wrong on
      extending your rental, you have NOT been charged!" (also on demand:
      :meth:`fail_extend_next`); not enough balance -> the purchase's answer. Else it debits
      the row's price (halved for a single-service line) and adds the days to ``expiry``.
    * rental/refund.php: an already refunded rental answers "This number could not be
      refunded as you already have refunded it."; more than ``refund_window_seconds`` (12 h)
      after the purchase, after its first message, or once expired, the doc's "TYou cannot
      refund a rental after 12 hours or after receiving one message."; else everything paid
      for the rental (purchase and extensions) goes back to the balance and the rental ends
      now (``expiry`` = refund time, ``available`` 0).
"""

from __future__ import annotations

import itertools
import json
import random
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from ._server import FakeServer, Reply, SlidingWindow, guess_content_type, query_and_form, respond

PATHS = (
    "country/retrieve_all",
    "service/retrieve_all",
    "request/balance",
    "request/price",
    "request/suggested_countries",
    "purchase/sms",
    "sms/check",
    "sms/resend",
    "sms/cancel",
    "request/active",
)
KEYLESS = frozenset(
    {"country/retrieve_all", "service/retrieve_all", "request/suggested_countries"}
)
# The rental endpoints at the doc's URLs; requests and knobs name them without ".php".
RENTAL_URLS = (
    "rental/retrieve_all",
    "purchase/rental",
    "rental/retrieve_messages",
    "rental/retrieve_status.php",
    "rental/refund.php",
    "rental/extend.php",
)
KEY_OPTIONAL = frozenset({"rental/retrieve_all"})

PENDING, EXPIRED, CODE, RESEND, CANCELLED, REFUNDED = range(1, 7)
CHECK_MESSAGES = {
    PENDING: "pending",
    EXPIRED: "expired",
    RESEND: "resend",
    CANCELLED: "cancelled",
    REFUNDED: "refunded",
}
CLOSED = frozenset({EXPIRED, CANCELLED, REFUNDED})

FILL_IN_ALL_PARAMS = "Fill in all params!"
NO_PRICE = "No price was found for this query."
NOT_FOR_COUNTRY = "This service is not available for this country."
COUNTRY_UNAVAILABLE = (
    "This country is currently not available for this service, please try the following "
    "countries: "
)
ORDER_NOT_FOUND = "We could not find this order!"
RESEND_OK = "Number has been requested again"
RESEND_REFUSED = "Phonenumber could not be requested again, try later again."
TOO_MANY_REQUESTS = "Too many requests"
KEY_DESCRIPTION = "Your API key which can be found on your settings page at /my/settings"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

RENTALS_FILL_IN = "Fill in all params! [GET: type, key (optional)]"
SERVICE_NOT_AVAILABLE = "The service you entered is not available!"
INVALID_DAYS = "You selected a invalid amount of days! The following days are available: "
NO_RENTAL = "No rental was found!"
RENTAL_REFUNDED = "Your rental has been refunded!"
ALREADY_REFUNDED = "This number could not be refunded as you already have refunded it."
REFUND_DENIED = "TYou cannot refund a rental after 12 hours or after receiving one message."
EXTENDED = "Your rental has been succesfully extended!"
EXTEND_FAILED = "Something went wrong on extending your rental, you have NOT been charged!"
DAY_SECONDS = 86400
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SINGLE_SERVICE_COUNTRY = "United States"  # the doc: service_id works for US extendable only

APPLICATION_JSON = "application/json"
TEXT_HTML = "text/html"
TEXT_PLAIN = "text/plain"

DIALLING = {"1": ("1201", 7), "2": ("447", 9), "3": ("91", 10), "4": ("62", 10), "5": ("1604", 7)}


def default_countries() -> list[dict[str, str]]:
    return [
        {"ID": "1", "name": "United States", "region": "Americas", "short_name": "US"},
        {"ID": "2", "name": "United Kingdom", "region": "Europe", "short_name": "GB"},
        {"ID": "3", "name": "India", "region": "Asia", "short_name": "IN"},
        {"ID": "4", "name": "Indonesia", "region": "Asia", "short_name": "ID"},
        {"ID": "5", "name": "Canada", "region": "Americas", "short_name": "CA"},
    ]


def default_services() -> list[dict[str, str]]:
    return [
        {"ID": "1012", "name": "WhatsApp"},
        {"ID": "1011", "name": "Telegram"},
        {"ID": "395", "name": "Google"},
        {"ID": "828", "name": "Instagram"},
    ]


@dataclass
class PriceRow:
    price: Decimal
    stock: int
    pool: int


def default_prices() -> dict[tuple[str, str], PriceRow]:
    """(service ID, country ID) -> price (USD), stock and pool."""
    rows = [
        ("1012", "1", "0.31", 50, 1),
        ("1012", "2", "0.10", 20, 7),
        ("1012", "3", "0.15", 0, 3),
        ("1012", "4", "0.12", 40, 5),
        ("1011", "1", "0.45", 30, 1),
        ("1011", "3", "0.12", 100, 3),
        ("395", "2", "0.20", 5, 7),
        ("395", "5", "0.55", 8, 2),
    ]
    return {(s, c): PriceRow(Decimal(p), stock, pool) for s, c, p, stock, pool in rows}


@dataclass
class Order:
    """One purchased number as the fake stores it."""

    order_id: str
    number: str
    service_id: str
    service_name: str
    country_id: str
    country_name: str
    short_name: str
    cost: Decimal
    pool: int
    created_at: float  # time.time()
    expires_at: float
    status: int = PENDING
    sms: str | None = None
    full_sms: str | None = None
    expired: bool = False  # past its lifetime: no longer in request/active


@dataclass
class RentalRow:
    """One rental retrieve_all sells: ``pricing`` is days -> USD."""

    id: str
    name: str
    region: str
    extendable: bool
    pricing: dict[int, Decimal]


def default_rental_offers() -> list[RentalRow]:
    def table(*prices: tuple[int, str]) -> dict[int, Decimal]:
        return {days: Decimal(price) for days, price in prices}

    return [
        RentalRow(
            "0", "United States", "Americas", True, table((7, "18"), (14, "25"), (30, "30"))
        ),
        RentalRow("1", "United Kingdom", "Europe", True, table((7, "12"), (14, "20"), (30, "35"))),
        RentalRow(
            "2", "United States", "Americas", False, table((7, "8"), (14, "14"), (30, "24"))
        ),
        RentalRow("3", "Canada", "Americas", False, table((7, "9.50"), (30, "20"))),
    ]


@dataclass
class RentalSMS:
    sender: str | None
    text: str
    at: float  # clock time


@dataclass
class Rental:
    """One rented number as the fake stores it."""

    rental_code: str
    serial: int  # the messages' ``ID`` and ``source``
    offer: RentalRow
    number: str
    days: int  # purchased plus extended
    created_at: float  # clock time
    expires_at: float
    service_id: str | None
    paid: Decimal  # everything debited for it: purchase and extensions
    messages: list[RentalSMS] = field(default_factory=list)
    refunded: bool = False
    expired: bool = False

    @property
    def live(self) -> bool:
        return not self.refunded and not self.expired


@dataclass
class Request:
    """One received request. ``http_status``/``body`` stay ``None`` while it is in flight."""

    path: str
    params: dict[str, str]
    at: float
    method: str = "POST"
    http_status: int | None = None
    body: str | None = None


def reply(data: Any, http_status: int = 200) -> Reply:
    return Reply(json.dumps(data), http_status)


def failure(message: str) -> Reply:
    return reply({"success": 0, "message": message})


def money(amount: Decimal) -> str:
    return f"{amount:.2f}"


class FakeSMSPool(FakeServer):
    """A fake SMSPool on ``127.0.0.1`` with an ephemeral port; see the module docstring."""

    def __init__(
        self,
        api_key: str = "pool-test-key",
        rate_limit: int | None = None,
        window_seconds: float = 60.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(normalise=_path)
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.balance = Decimal("100.00")
        self.countries: list[dict[str, str]] = default_countries()
        self.services: list[dict[str, str]] = default_services()
        self.prices: dict[tuple[str, str], PriceRow] = default_prices()
        self.orders: dict[str, Order] = {}
        self.suggested: dict[str, list[str]] = {}  # service ID -> the only countries suggested
        self.requests: list[Request] = []
        self.rejected_429 = 0
        self.too_early_cancel_seconds = 0.0
        self.lifetime_seconds = 600.0
        self.timestamp_utc_offset_hours = 2.0
        self.rental_offers: list[RentalRow] = default_rental_offers()
        self.rentals: dict[str, Rental] = {}
        self.clock: Callable[[], float] = time.time  # rental time
        self.rental_active_for = 90
        self.refund_window_seconds = 12 * 3600.0
        self._rental_serials = itertools.count(1)
        self._random = random.Random(seed)
        self._windows = SlidingWindow()
        self._handlers: dict[str, Callable[[dict[str, str]], Reply]] = {
            "country/retrieve_all": self._countries,
            "service/retrieve_all": self._services,
            "request/balance": self._balance,
            "request/price": self._price,
            "request/suggested_countries": self._suggested,
            "purchase/sms": self._purchase,
            "sms/check": self._check,
            "sms/resend": self._resend,
            "sms/cancel": self._cancel,
            "request/active": self._active,
            "rental/retrieve_all": self._rental_offers,
            "purchase/rental": self._rental_purchase,
            "rental/retrieve_messages": self._rental_messages,
            "rental/retrieve_status": self._rental_status,
            "rental/refund": self._rental_refund,
            "rental/extend": self._rental_extend,
        }

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        for path in (*PATHS, *RENTAL_URLS):
            app.router.add_route("GET", f"/{path}", self._handle)
            app.router.add_route("POST", f"/{path}", self._handle)

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self,
        path: str,
        body: str | dict[str, Any] | list[Any],
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``path`` with ``body`` (a dict/list is JSON).

        The action does not take effect.
        """
        text = body if isinstance(body, str) else json.dumps(body)
        injected = Reply(text, http_status, content_type or guess_content_type(text))
        self._failures.push(path, injected, times)

    def garble_next(
        self,
        path: str,
        body: str | dict[str, Any] | list[Any],
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Like :meth:`fail_next`, but the action takes effect first (an order is bought):
        only its answer is replaced, as when a proxy or a crash swallows it."""
        text = body if isinstance(body, str) else json.dumps(body)
        injected = Reply(text, http_status, content_type or guess_content_type(text))
        self._garbles.push(path, injected, times)

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` requests of ``path``; the action still happens afterwards."""
        self._delays.push(path, seconds, times)

    def deliver_code(self, order_id: str, code: str, full_sms: str | None = None) -> None:
        """An SMS arrives: the order shows status 3 with ``code`` (``full_sms`` as its text).

        Raises ``KeyError`` for an unknown order, ``ValueError`` for a closed or expired one.
        """
        order = self.orders[order_id]
        self._refresh(order)
        if order.status in CLOSED or order.expired:
            raise ValueError(f"order {order_id} is closed")
        order.status = CODE
        order.sms = code
        order.full_sms = full_sms if full_sms is not None else f"Your code is {code}"

    def expire(self, order_id: str) -> None:
        """The order's lifetime ends now (see the module docstring)."""
        order = self.orders[order_id]
        if order.expired or order.status in CLOSED:
            return
        order.expired = True
        order.expires_at = min(order.expires_at, time.time())
        if order.status == PENDING:
            order.status = EXPIRED
            self.balance += order.cost
        elif order.status == RESEND:
            order.status = CODE

    def place_order(self, service: str = "1012", country: str = "1") -> Order:
        """Buy as purchase/sms would, without HTTP; ValueError carries a failure message."""
        params = {"key": self.api_key, "service": service, "country": country}
        answer = json.loads(self._purchase(params).body)
        if answer.get("success") != 1:
            raise ValueError(answer.get("message") or answer.get("errors"))
        return self.orders[answer["order_id"]]

    def count(self, path: str) -> int:
        """Requests received for ``path`` (429-rejected and in-flight ones included)."""
        wanted = _path(path)
        return sum(1 for request in self.requests if request.path == wanted)

    def counts(self) -> dict[str, int]:
        """Requests received per endpoint (as :meth:`count` names them)."""
        return dict(Counter(request.path for request in self.requests))

    # ------------------------------------------------------------------ rental hooks

    def advance(self, seconds: float) -> None:
        """Move the rental clock forward by ``seconds``."""
        base = self.clock
        self.clock = lambda: base() + seconds

    def deliver_rental_message(
        self, rental_code: str, sender: str | None, text: str, at: float | None = None
    ) -> RentalSMS:
        """An SMS reaches a rented number (at clock time ``at``, default now).

        Raises ``KeyError`` for an unknown rental, ``ValueError`` for a refunded or expired one.
        """
        rental = self.rentals[rental_code]
        self._refresh_rental(rental)
        if not rental.live:
            raise ValueError(f"rental {rental_code} has ended")
        message = RentalSMS(sender, text, self.clock() if at is None else at)
        rental.messages.append(message)
        return message

    def expire_rental(self, rental_code: str) -> None:
        """The rental's time runs out now."""
        rental = self.rentals[rental_code]
        if rental.live:
            rental.expires_at = min(rental.expires_at, self.clock())
            rental.expired = True

    def fail_extend_next(self, times: int = 1) -> None:
        """The next ``times`` extensions answer "Something went wrong on extending your
        rental, you have NOT been charged!" and charge nothing."""
        self.fail_next("rental/extend", {"success": 0, "message": EXTEND_FAILED}, times=times)

    def place_rental(
        self, rental_id: str = "0", days: int = 7, service_id: str | None = None
    ) -> Rental:
        """Rent as purchase/rental would, without HTTP; ValueError carries a failure message."""
        params = {"key": self.api_key, "id": rental_id, "days": str(days)}
        if service_id is not None:
            params["service_id"] = service_id
        answer = json.loads(self._rental_purchase(params).body)
        if answer.get("success") != 1:
            raise ValueError(answer.get("message") or answer.get("errors"))
        return self.rentals[answer["rental_code"]]

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        params = await query_and_form(request)
        path = _path(request.path)
        record = Request(
            path=path,
            params={k: v for k, v in params.items() if k != "key"},
            at=time.monotonic(),
            method=request.method,
        )
        self.requests.append(record)
        if not self._windows.admit(params.get("key", ""), self.rate_limit, self.window_seconds):
            self.rejected_429 += 1
            answer = reply({"success": 0, "message": TOO_MANY_REQUESTS}, 429)
        else:
            answer = await self._scripted(path, lambda: self._process(path, params))
        return respond(record, answer)

    def _process(self, path: str, params: dict[str, str]) -> Reply:
        keyed = path not in KEYLESS and path not in KEY_OPTIONAL and path != "purchase/sms"
        if keyed and not self._key_ok(params):
            return self._param_errors(["key"])
        for order in self.orders.values():
            self._refresh(order)
        for rental in self.rentals.values():
            self._refresh_rental(rental)
        return self._handlers[path](params)

    def _key_ok(self, params: dict[str, str]) -> bool:
        return params.get("key") == self.api_key

    def _param_errors(self, names: list[str]) -> Reply:
        errors: list[dict[str, str]] = []
        for name in names:
            error = {"message": f"<b>Missing</b> or invalid param: {name}"}
            if name == "key":
                error["description"] = KEY_DESCRIPTION
            errors.append(error)
        return reply({"success": 0, "errors": errors}, 401 if "key" in names else 400)

    # ------------------------------------------------------------------ catalog

    def _country(self, raw: str | None) -> dict[str, str] | None:
        if not raw:
            return None
        for country in self.countries:
            if raw == country["ID"] or raw.upper() == country["short_name"].upper():
                return country
        return None

    def _service(self, raw: str | None) -> dict[str, str] | None:
        if not raw:
            return None
        for service in self.services:
            if raw == service["ID"] or raw.lower() == service["name"].lower():
                return service
        return None

    def _countries(self, params: dict[str, str]) -> Reply:
        if params.get("country"):
            country = self._country(params["country"])
            return reply([country] if country else [])
        return reply(self.countries)

    def _services(self, params: dict[str, str]) -> Reply:
        if params.get("country"):
            country = self._country(params["country"])
            priced = {s for (s, c) in self.prices if country and c == country["ID"]}
            return reply([s for s in self.services if s["ID"] in priced])
        return reply(self.services)

    def _balance(self, params: dict[str, str]) -> Reply:
        return reply({"balance": money(self.balance)})

    def _price(self, params: dict[str, str]) -> Reply:
        if not params.get("country") or not params.get("service"):
            return failure(FILL_IN_ALL_PARAMS)
        row = self._row(params["service"], params["country"])
        if row is None:
            return reply({"success": 0, "message": NO_PRICE, "price": 0})
        return reply({"price": money(row.price)})

    def _row(self, service: str, country: str) -> PriceRow | None:
        s, c = self._service(service), self._country(country)
        return self.prices.get((s["ID"], c["ID"])) if s and c else None

    def _suggested(self, params: dict[str, str]) -> Reply:
        if not params.get("service"):
            return failure(FILL_IN_ALL_PARAMS)
        service = self._service(params["service"])
        short = self.suggested.get(service["ID"]) if service else None
        rows = []
        for country in self.countries:
            row = self.prices.get((service["ID"], country["ID"])) if service else None
            if short is not None and country["ID"] not in short:
                continue
            if row is not None and row.stock > 0:
                rows.append(
                    {
                        "pool": row.pool,
                        "country_id": int(country["ID"]),
                        "name": country["name"],
                        "short_name": country["short_name"],
                        "price": money(row.price),
                    }
                )
        return reply(rows)

    # ------------------------------------------------------------------ orders

    def _purchase(self, params: dict[str, str]) -> Reply:
        service, country = (
            self._service(params.get("service")),
            self._country(params.get("country")),
        )
        max_price = _decimal(params.get("max_price"))
        missing = [
            name
            for name, bad in (
                ("key", not self._key_ok(params)),
                ("country", country is None),
                ("service", service is None),
                ("max_price", "max_price" in params and max_price is None),
            )
            if bad
        ]
        if missing or service is None or country is None:
            return self._param_errors(missing)
        row = self.prices.get((service["ID"], country["ID"]))
        if row is None:
            return failure(NOT_FOR_COUNTRY)
        if row.stock <= 0 or (max_price is not None and row.price > max_price):
            return failure(COUNTRY_UNAVAILABLE)
        if self.balance < row.price:
            return failure(
                f"Insufficient balance, the price is: {money(row.price)} while you only have: "
                f"{money(self.balance)}"
            )
        self.balance -= row.price
        row.stock -= 1
        now = time.time()
        order = Order(
            order_id=self._new_order_id(),
            number=self._new_number(country["ID"]),
            service_id=service["ID"],
            service_name=service["name"],
            country_id=country["ID"],
            country_name=country["name"],
            short_name=country["short_name"],
            cost=row.price,
            pool=row.pool,
            created_at=now,
            expires_at=now + self.lifetime_seconds,
        )
        self.orders[order.order_id] = order
        return reply(
            {
                "success": 1,
                "number": order.number,
                "order_id": order.order_id,
                "country": order.country_name,
                "service": order.service_name,
                "pool": order.pool,
                "expires_in": int(order.expires_at - time.time()),
                "message": "",
            }
        )

    def _new_order_id(self) -> str:
        while True:
            order_id = "".join(self._random.choices(string.ascii_uppercase, k=7))
            if order_id not in self.orders:
                return order_id

    def _new_number(self, country_id: str) -> str:
        prefix, size = DIALLING.get(country_id, (country_id, 9))
        return prefix + "".join(self._random.choices(string.digits, k=size))

    def _refresh(self, order: Order) -> None:
        if not order.expired and order.status not in CLOSED and time.time() >= order.expires_at:
            self.expire(order.order_id)

    def _order(self, params: dict[str, str]) -> Order | None:
        return self.orders.get(params.get("orderid", ""))

    def _check(self, params: dict[str, str]) -> Reply:
        order = self._order(params)
        if order is None:
            return failure(ORDER_NOT_FOUND)
        expiration = int(order.expires_at)
        if order.status == CODE:
            return reply(
                {
                    "status": CODE,
                    "sms": order.sms,
                    "full_sms": order.full_sms,
                    "expiration": expiration,
                }
            )
        return reply(
            {
                "status": order.status,
                "message": CHECK_MESSAGES[order.status],
                "resend": 0,
                "expiration": expiration,
            }
        )

    def _resend(self, params: dict[str, str]) -> Reply:
        order = self._order(params)
        if order is None:
            return failure(ORDER_NOT_FOUND)
        if order.status != CODE or order.expired:
            return reply({"success": 0, "message": RESEND_REFUSED, "resend": 0})
        order.status = RESEND
        return reply({"success": 1, "message": RESEND_OK, "resend": 0})

    def _cancel(self, params: dict[str, str]) -> Reply:
        order = self._order(params)
        if order is None:
            return failure(ORDER_NOT_FOUND)
        too_early = time.time() - order.created_at < self.too_early_cancel_seconds
        if order.status != PENDING or too_early:
            return reply({"success": 0})
        order.status = CANCELLED
        self.balance += order.cost
        return reply({"success": 1})

    def _active(self, params: dict[str, str]) -> Reply:
        zone = timezone(timedelta(hours=self.timestamp_utc_offset_hours))
        rows = []
        live = (o for o in self.orders.values() if not o.expired and o.status not in CLOSED)
        for order in sorted(live, key=lambda o: o.created_at):
            created = datetime.fromtimestamp(order.created_at, zone)
            rows.append(
                {
                    "timestamp": created.strftime(TIMESTAMP_FORMAT),
                    "order_code": order.order_id,
                    "phonenumber": order.number,
                    "code": order.sms or "0",
                    "full_code": order.full_sms or "0",
                    "short_name": order.short_name,
                    "service": order.service_name,
                    "status": "completed" if order.status == CODE else "pending",
                    "expiry": str(int(order.expires_at)),
                }
            )
        return reply(rows)

    # ------------------------------------------------------------------ rentals

    def _rental_offers(self, params: dict[str, str]) -> Reply:
        kind = params.get("type")
        if kind not in ("0", "1"):
            return failure(RENTALS_FILL_IN)
        extendable = kind == "1"
        return reply(
            {
                row.id: {"name": row.name, "region": row.region, "pricing": _pricing(row)}
                for row in self.rental_offers
                if row.extendable == extendable
            }
        )

    def _rental_row(self, rental_id: str | None) -> RentalRow | None:
        return next((row for row in self.rental_offers if row.id == rental_id), None)

    def _rental_price(self, row: RentalRow, days: int, single_service: bool) -> Decimal:
        price = row.pricing[days]
        return price / 2 if single_service else price

    def _no_balance(self, price: Decimal) -> Reply:
        return failure(
            "You do not have enough balance, please top up your account with "
            f"{money(price - self.balance)} dollars in order to purchase this rental."
        )

    def _rental_purchase(self, params: dict[str, str]) -> Reply:
        row, days = self._rental_row(params.get("id")), _whole(params.get("days"))
        missing = [name for name, bad in (("id", row is None), ("days", days is None)) if bad]
        if not self._key_ok(params):
            missing.insert(0, "key")
        if missing or row is None or days is None:
            return self._param_errors(missing)
        if days not in row.pricing:
            return failure(_invalid_days(row))
        service_id = params.get("service_id")
        if service_id is not None:
            single = row.extendable and row.name == SINGLE_SERVICE_COUNTRY
            if not single or self._service(service_id) is None:
                return failure(SERVICE_NOT_AVAILABLE)
        price = self._rental_price(row, days, service_id is not None)
        if self.balance < price:
            return self._no_balance(price)
        self.balance -= price
        now = self.clock()
        rental = Rental(
            rental_code=self._new_rental_code(),
            serial=next(self._rental_serials),
            offer=row,
            number=self._rental_number(row),
            days=days,
            created_at=now,
            expires_at=now + days * DAY_SECONDS,
            service_id=service_id,
            paid=price,
        )
        self.rentals[rental.rental_code] = rental
        return reply(
            {
                "success": 1,
                "message": "",
                "phonenumber": rental.number,
                "days": days,
                "rental_code": rental.rental_code,
                "expiry": str(int(rental.expires_at)),
            }
        )

    def _new_rental_code(self) -> str:
        while True:
            code = "".join(self._random.choices(string.ascii_uppercase, k=7))
            if code not in self.rentals:
                return code

    def _rental_number(self, row: RentalRow) -> str:
        country = next((c for c in self.countries if c["name"] == row.name), None)
        return self._new_number(country["ID"] if country else "9")

    def _refresh_rental(self, rental: Rental) -> None:
        if rental.live and self.clock() >= rental.expires_at:
            rental.expired = True

    def _rental(self, params: dict[str, str]) -> Rental | None:
        return self.rentals.get(params.get("rental_code", ""))

    def _rental_messages(self, params: dict[str, str]) -> Reply:
        rental = self._rental(params)
        if rental is None:
            return failure(NO_RENTAL)
        zone = timezone(timedelta(hours=self.timestamp_utc_offset_hours))
        newest_first = sorted(rental.messages, key=lambda m: m.at, reverse=True)
        messages = {
            str(position): {
                "ID": rental.serial,
                "sender": message.sender,
                "message": message.text,
                "timestamp": _message_time(datetime.fromtimestamp(message.at, zone)),
            }
            for position, message in enumerate(newest_first)
        }
        return reply({"success": 1, "messages": messages or [], "source": str(rental.serial)})

    def _rental_status(self, params: dict[str, str]) -> Reply:
        rental = self._rental(params)
        if rental is None:
            return failure(NO_RENTAL)
        return reply(
            {
                "success": 1,
                "status": {
                    "expiry": int(rental.expires_at),
                    "available": 1 if rental.live else 0,
                    "phonenumber": rental.number,
                    "activeFor": self.rental_active_for if rental.live else 0,
                },
            }
        )

    def _rental_refund(self, params: dict[str, str]) -> Reply:
        rental = self._rental(params)
        if rental is None:
            return failure(NO_RENTAL)
        if rental.refunded:
            return failure(ALREADY_REFUNDED)
        now = self.clock()
        late = now - rental.created_at > self.refund_window_seconds
        if late or rental.messages or rental.expired:
            return failure(REFUND_DENIED)
        self.balance += rental.paid
        rental.refunded = True
        rental.expires_at = min(rental.expires_at, now)
        return reply({"success": 1, "message": RENTAL_REFUNDED})

    def _rental_extend(self, params: dict[str, str]) -> Reply:
        rental = self._rental(params)
        if rental is None:
            return failure(NO_RENTAL)
        row, days = rental.offer, _whole(params.get("days"))
        if days is None or days not in row.pricing:
            return failure(_invalid_days(row))
        if not row.extendable or not rental.live:
            return failure(EXTEND_FAILED)
        price = self._rental_price(row, days, rental.service_id is not None)
        if self.balance < price:
            return self._no_balance(price)
        self.balance -= price
        rental.paid += price
        rental.days += days
        rental.expires_at += days * DAY_SECONDS
        return reply({"success": 1, "message": EXTENDED})


def _path(path: str) -> str:
    return path.strip("/").removesuffix(".php")


def _whole(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None


def _number(amount: Decimal) -> str:
    """A JSON number: 18 for a whole amount, else its shortest decimal (9.5)."""
    if amount == amount.to_integral_value():
        return str(int(amount))
    return format(amount.normalize(), "f")


def _pricing(row: RentalRow) -> str:
    """The doc's `pricing`, a JSON string: `{"7":18,"14":25,"30":30}`."""
    pairs = (f'"{days}":{_number(price)}' for days, price in sorted(row.pricing.items()))
    return "{" + ",".join(pairs) + "}"


def _invalid_days(row: RentalRow) -> str:
    return INVALID_DAYS + "".join(f"{days} " for days in sorted(row.pricing))


def _message_time(moment: datetime) -> str:
    """`11 May 2022 18:39:54`, month names in English whatever the locale."""
    return f"{moment.day:02d} {MONTHS[moment.month - 1]} {moment.year} {moment:%H:%M:%S}"


def _decimal(raw: str | None) -> Decimal | None:
    try:
        value = Decimal(raw) if raw else None
    except InvalidOperation:
        return None
    return value if value is not None and value.is_finite() else None


__all__ = [
    "ALREADY_REFUNDED",
    "COUNTRY_UNAVAILABLE",
    "EXTENDED",
    "EXTEND_FAILED",
    "INVALID_DAYS",
    "NOT_FOR_COUNTRY",
    "NO_RENTAL",
    "ORDER_NOT_FOUND",
    "PATHS",
    "REFUND_DENIED",
    "RENTALS_FILL_IN",
    "RENTAL_REFUNDED",
    "RENTAL_URLS",
    "RESEND_REFUSED",
    "SERVICE_NOT_AVAILABLE",
    "FakeSMSPool",
    "Order",
    "PriceRow",
    "Rental",
    "RentalRow",
    "RentalSMS",
    "Reply",
    "Request",
]
