"""In-process fake of the SMSPalm virtual-number API, served over real HTTP.

The protocol follows ``/work/shared/upstream-docs/smspalm.txt`` (the only source of truth):
one endpoint ``/api/v1/handler`` driven by the ``action`` query parameter, plain-text
answers (``ACCESS_BALANCE:124.94``, ``ACCESS_NUMBER:{id}:{phone}``, ``STATUS_OK:{code}``...)
except ``getCountries`` / ``getServicesList`` / ``getPrices`` which answer JSON.

Choices made where the document is silent (sms-activate-compatible behaviour):

Transport
    * ``GET`` and ``POST`` are both served. Parameters are merged from the query string and
      an urlencoded/multipart form body; on conflict the form value wins, and a repeated
      parameter keeps its last value.
    * Text answers are ``text/plain; charset=utf-8``; JSON answers are ``application/json``.
    * The eight error strings of section 11 (``BAD_KEY`` ... ``EARLY_CANCEL_DENIED``) are sent
      with ``error_http_status`` (default 200). Every other answer, including
      ``STATUS_CANCEL`` and the empty ``{}`` of ``getPrices``, is HTTP 200.
    * Action names and service codes are case-sensitive. ISO country codes must be upper-case
      (``US``); a country may always be given as its numeric id (``187``) instead.
    * An absent or empty ``server`` routes to servertwo; ``serverone`` routes to serverone;
      any other value falls back to servertwo (like a default branch in a real router).

Request pipeline (in this order)
    1. The request is recorded in :attr:`FakeSMSPalm.requests` (``api_key`` removed).
    2. Rate limit: a sliding window of ``window_seconds`` per ``api_key`` value (the raw value
       sent, valid or not), across all actions. Over the limit -> HTTP 429 with body
       ``TOO_MANY_REQUESTS`` (the doc only states "100 requests/min per token"). Rejected
       requests do not enter the window and consume no ``fail_next``/``delay_next`` entry.
    3. ``delay_next`` sleeps. The rest of the pipeline runs in a task shielded from client
       disconnects, so a delayed action still takes effect after the client gave up.
    4. ``fail_next`` answers the injected body/status *instead of* processing: the action
       does not take effect (no purchase, no cancel). It applies before the key check.
    5. ``BAD_KEY`` for a wrong or missing key, then ``BAD_ACTION`` for an unknown or missing
       action, then the action itself.

Actions
    * ``getPrices``: rows with ``count == 0`` are listed (``"count": 0``), like
      sms-activate. An unknown country, or a country without a price for the service,
      answers ``{}``. ``cost`` is always rendered with two decimals (``250.00``).
    * ``getNumber``: checks in the order ``BAD_SERVICE`` (missing/unknown on that server),
      ``NO_NUMBERS`` (missing/unknown country, no price row, or ``count == 0``),
      ``NO_BALANCE`` (``balance < cost``), then reserves. Activation ids are sequential from
      50292409. Phone numbers are deterministic: a per-country prefix plus the last digits
      of the activation id (US -> ``1480434`` + 4 digits).
    * ``getStatus`` / ``setStatus`` ignore ``server`` and route by the stored activation.
    * ``setStatus`` (missing/unknown ``id`` -> ``NO_ACTIVATION``; a status outside
      {1, 3, 6, 8}, missing or non-numeric -> ``BAD_STATUS``; on servertwo any status but 8
      -> ``BAD_STATUS``):

      - ``8`` already cancelled -> ``ACCESS_CANCEL`` again, no second refund; completed or a
        code already received -> ``BAD_STATUS`` (a used number cannot be refunded); within
        ``early_cancel_seconds`` of purchase -> ``EARLY_CANCEL_DENIED``; else cancel, refund
        the cost to the balance, ``ACCESS_CANCEL``. Stock is not given back.
      - ``1`` -> ``ACCESS_READY`` without changing state (the number is already waiting).
      - ``3`` needs at least one received code (``STATUS_WAIT_RETRY`` carries the last one),
        otherwise ``BAD_STATUS``; repeated while retrying -> ``ACCESS_RETRY_GET`` again.
      - ``6`` needs at least one received code, otherwise ``BAD_STATUS``; repeated on a
        completed activation -> ``ACCESS_ACTIVATION`` again (safe client retries).
      - ``1``/``3``/``6`` on a cancelled activation, or ``1``/``3`` on a completed one ->
        ``BAD_STATUS``.

Test hooks
    * :meth:`FakeSMSPalm.count` counts every request of an action, including 429-rejected
      and in-flight ones.
    * :meth:`FakeSMSPalm.deliver_code` raises ``KeyError`` for an unknown activation and
      ``ValueError`` for a cancelled or completed one (the automatic delivery of
      ``auto_code_after`` silently skips those instead).
    * ``auto_code_after`` is read at purchase time and delivers ``123456`` once.
    * :meth:`FakeSMSPalm.stop` cancels pending automatic deliveries and still-delayed
      requests.
    * :meth:`FakeSMSPalm.hold_next` keeps the next request of an action waiting (recorded, not
      yet processed) until the test sets the returned event, then runs the pipeline from
      ``delay_next`` on; a test can act while a purchase or a cancel is in flight.
    * ``fail_next(..., content_type="text/plain; charset=rot13")`` sends the content type as
      given (parameters included), the body as UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from ._server import FakeServer, SlidingWindow, guess_content_type, query_and_form, respond
from ._server import Reply as BaseReply

API_PATH = "/api/v1/handler"
SERVER_ONE = "serverone"
SERVER_TWO = "servertwo"
DEFAULT_SERVER = SERVER_TWO
SERVERS = (SERVER_ONE, SERVER_TWO)
FIRST_ACTIVATION_ID = 50292409
AUTO_CODE = "123456"
TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"

BAD_KEY = "BAD_KEY"
BAD_ACTION = "BAD_ACTION"
BAD_SERVICE = "BAD_SERVICE"
BAD_STATUS = "BAD_STATUS"
NO_NUMBERS = "NO_NUMBERS"
NO_ACTIVATION = "NO_ACTIVATION"
NO_BALANCE = "NO_BALANCE"
EARLY_CANCEL_DENIED = "EARLY_CANCEL_DENIED"
ERROR_STRINGS = frozenset(
    {
        BAD_KEY,
        BAD_ACTION,
        BAD_SERVICE,
        BAD_STATUS,
        NO_NUMBERS,
        NO_ACTIVATION,
        NO_BALANCE,
        EARLY_CANCEL_DENIED,
    }
)

STATUS_READY = 1
STATUS_RETRY = 3
STATUS_COMPLETE = 6
STATUS_CANCEL = 8
VALID_STATUSES = frozenset({STATUS_READY, STATUS_RETRY, STATUS_COMPLETE, STATUS_CANCEL})

TEXT_PLAIN = "text/plain"
TEXT_HTML = "text/html"
APPLICATION_JSON = "application/json"

# country id -> (phone prefix, number of digits taken from the activation id)
PHONE_PLANS: dict[int, tuple[str, int]] = {
    187: ("1480434", 4),
    16: ("4477009", 5),
    22: ("9198765", 5),
    6: ("62812", 7),
    36: ("1604555", 4),
}
FALLBACK_PHONE_DIGITS = 8


def default_services() -> list[dict[str, str]]:
    """Return a fresh copy of the default service catalog (same on both servers)."""
    return [
        {"code": "wa", "name": "WhatsApp"},
        {"code": "tg", "name": "Telegram"},
        {"code": "ig", "name": "Instagram"},
        {"code": "go", "name": "Google"},
        {"code": "att", "name": "AT&T <Verify>"},
    ]


def default_countries() -> list[dict[str, Any]]:
    """Return a fresh copy of the default country catalog (same on both servers)."""
    return [
        {"id": 187, "eng": "United States"},
        {"id": 16, "eng": "United Kingdom"},
        {"id": 22, "eng": "India"},
        {"id": 6, "eng": "Indonesia"},
        {"id": 36, "eng": "Canada"},
    ]


def default_iso() -> dict[str, int]:
    """Return a fresh ISO alpha-2 -> SMSPalm country id mapping."""
    return {"US": 187, "GB": 16, "IN": 22, "ID": 6, "CA": 36}


_SERVER_TWO_PRICES: tuple[tuple[int, str, str, int], ...] = (
    (187, "wa", "250.00", 345),
    (187, "tg", "420.50", 120),
    (187, "ig", "180.00", 0),
    (187, "go", "150.00", 80),
    (187, "att", "95.00", 40),
    (16, "wa", "380.00", 56),
    (16, "tg", "510.00", 0),
    (16, "go", "200.00", 22),
    (22, "wa", "120.00", 900),
    (22, "tg", "140.00", 300),
    (22, "ig", "90.00", 150),
    (6, "wa", "110.00", 500),
    (6, "tg", "130.00", 210),
    (36, "wa", "350.00", 18),
    (36, "go", "175.00", 0),
)
_SERVER_ONE_PRICES: tuple[tuple[int, str, str, int], ...] = (
    (187, "wa", "300.00", 12),
    (187, "tg", "450.00", 5),
    (187, "go", "160.00", 0),
    (16, "wa", "400.00", 9),
    (22, "wa", "130.00", 250),
    (22, "tg", "150.00", 0),
    (6, "wa", "115.00", 60),
    (36, "tg", "390.00", 7),
)


def _price_table(rows: tuple[tuple[int, str, str, int], ...]) -> dict[tuple[int, str], list]:
    return {(country, service): [Decimal(cost), count] for country, service, cost, count in rows}


def default_prices() -> dict[str, dict[tuple[int, str], list]]:
    """Return fresh default price tables: (country_id, service) -> [cost NGN, count]."""
    return {
        SERVER_ONE: _price_table(_SERVER_ONE_PRICES),
        SERVER_TWO: _price_table(_SERVER_TWO_PRICES),
    }


@dataclass
class Activation:
    """One purchased number as the fake server stores it."""

    id: str
    server: str
    service: str
    country_id: int
    phone: str
    cost: Decimal
    ref: str | None
    created_at: float
    status: str = "wait"  # "wait" | "ok" | "retry" | "cancelled" | "done"
    codes: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


@dataclass
class Request:
    """One received request. ``http_status``/``body`` stay ``None`` while it is in flight."""

    action: str
    params: dict[str, str]
    at: float
    method: str = "GET"
    http_status: int | None = None
    body: str | None = None
    host: str = ""  # the Host header: tells apart clients given different base URLs


@dataclass(frozen=True)
class Reply(BaseReply):
    """An answer the fake is about to send (plain text unless told otherwise)."""

    content_type: str = TEXT_PLAIN


Handler = Callable[[dict[str, str]], Reply]


def to_money(value: Decimal | float | int | str) -> Decimal:
    """Coerce a catalog cost to ``Decimal`` without binary-float artefacts."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def format_money(amount: Decimal) -> str:
    """Render an NGN amount with exactly two decimals."""
    return f"{amount:.2f}"


class FakeSMSPalm(FakeServer):
    """A fake SMSPalm server on ``127.0.0.1`` with an ephemeral port.

    See the module docstring for every behaviour the upstream document leaves open.
    """

    _url_path = API_PATH  # base_url is the full handler URL: http://127.0.0.1:PORT/api/v1/handler

    def __init__(
        self,
        api_key: str = "palm-test-key",
        rate_limit: int | None = None,
        window_seconds: float = 60.0,
        error_http_status: int = 200,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.error_http_status = error_http_status
        self.balance: Decimal = Decimal("50000.00")
        self.services: dict[str, list[dict]] = {s: default_services() for s in SERVERS}
        self.countries: dict[str, list[dict]] = {s: default_countries() for s in SERVERS}
        self.prices: dict[str, dict[tuple[int, str], list]] = default_prices()
        self.iso: dict[str, int] = default_iso()
        self.activations: dict[str, Activation] = {}
        self.requests: list[Request] = []
        self.rejected_429 = 0
        self.code_delivered_at: dict[str, float] = {}
        self.early_cancel_seconds: float = 0.0
        self.auto_code_after: float | None = None
        self._next_id = FIRST_ACTIVATION_ID
        self._windows = SlidingWindow()
        self._holds: dict[str, list[asyncio.Event]] = {}
        self._handlers: dict[str, Handler] = {
            "getBalance": self._get_balance,
            "getCountries": self._get_countries,
            "getServicesList": self._get_services_list,
            "getPrices": self._get_prices,
            "getNumber": self._get_number,
            "getStatus": self._get_status,
            "setStatus": self._set_status,
        }

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", API_PATH, self._handle)
        app.router.add_route("POST", API_PATH, self._handle)

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self,
        action: str,
        body: str,
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``action`` with ``body``/``http_status``.

        The action does not take effect. ``content_type`` defaults to a guess from the body
        (``<...`` -> text/html, ``{``/``[`` -> application/json, else text/plain).
        """
        injected = Reply(body, http_status, content_type or guess_content_type(body))
        self._failures.push(action, injected, times)

    def garble_next(
        self,
        action: str,
        body: str,
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Like :meth:`fail_next`, but the action takes effect first (a number is bought):
        only its answer is replaced, as when a proxy or a crash swallows it."""
        injected = Reply(body, http_status, content_type or guess_content_type(body))
        self._garbles.push(action, injected, times)

    def delay_next(self, action: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` requests of ``action`` sleep ``seconds`` before processing.

        The action still takes effect after the delay even if the client has gone away.
        """
        self._delays.push(action, seconds, times)

    def hold_next(self, action: str) -> asyncio.Event:
        """Keep the next request of ``action`` waiting until the returned event is set.

        The request is recorded (``count`` sees it) as soon as it arrives; it is processed,
        and takes effect, only once released (then ``delay_next``/``fail_next`` apply as
        usual), even if the client has gone away by then.
        """
        gate = asyncio.Event()
        self._holds.setdefault(action, []).append(gate)
        return gate

    def deliver_code(self, activation_id: str, code: str, text: str | None = None) -> None:
        """An SMS with ``code`` arrives for an activation (waiting, ok or retrying).

        The code is appended, the status becomes ``ok`` and ``code_delivered_at`` is stamped.
        ``text`` defaults to ``"Your code is {code}"``. Raises ``KeyError`` for an unknown id
        and ``ValueError`` for a cancelled or completed activation.
        """
        activation = self.activations[str(activation_id)]
        if activation.status in ("cancelled", "done"):
            raise ValueError(f"activation {activation_id} is {activation.status}")
        activation.codes.append(code)
        activation.texts.append(text if text is not None else f"Your code is {code}")
        activation.status = "ok"
        self.code_delivered_at[activation.id] = time.monotonic()

    def count(self, action: str) -> int:
        """Number of requests received for ``action`` (429-rejected and in-flight included)."""
        return sum(1 for request in self.requests if request.action == action)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        params = await query_and_form(request)
        action = params.get("action", "")
        record = Request(
            action=action,
            params={k: v for k, v in params.items() if k != "api_key"},
            at=time.monotonic(),
            method=request.method,
            host=request.host,
        )
        self.requests.append(record)
        key = params.get("api_key", "")
        if not self._windows.admit(key, self.rate_limit, self.window_seconds):
            self.rejected_429 += 1
            reply = Reply(TOO_MANY_REQUESTS, 429)
        else:
            holds = self._holds.get(action)
            gate = holds.pop(0) if holds else None
            if gate is None:
                reply = await self._scripted(action, lambda: self.dispatch(action, params))
            else:
                reply = await self._shielded(self._held(gate, action, params))
        return respond(record, reply)

    async def _held(self, gate: asyncio.Event, action: str, params: dict[str, str]) -> Reply:
        await gate.wait()
        return await self._scripted(action, lambda: self.dispatch(action, params))

    def dispatch(self, action: str, params: dict[str, str]) -> Reply:
        """Authenticate and run one action synchronously (no rate limit, no injections)."""
        if params.get("api_key") != self.api_key:
            return self._error(BAD_KEY)
        handler = self._handlers.get(action)
        if handler is None:
            return self._error(BAD_ACTION)
        return handler(params)

    def _error(self, body: str) -> Reply:
        return Reply(body, self.error_http_status)

    # ------------------------------------------------------------------ catalog helpers

    def _server(self, params: dict[str, str]) -> str:
        return SERVER_ONE if params.get("server") == SERVER_ONE else SERVER_TWO

    def _has_service(self, server: str, code: str) -> bool:
        return any(service["code"] == code for service in self.services[server])

    def _resolve_country(self, server: str, raw: str | None) -> int | None:
        """Map an ISO alpha-2 code or numeric id to a country id listed on ``server``."""
        if not raw:
            return None
        country_id = int(raw) if raw.isdigit() else self.iso.get(raw)
        known = {int(country["id"]) for country in self.countries[server]}
        return country_id if country_id in known else None

    # ------------------------------------------------------------------ catalog actions

    def _get_balance(self, params: dict[str, str]) -> Reply:
        return Reply(f"ACCESS_BALANCE:{format_money(self.balance)}")

    def _get_countries(self, params: dict[str, str]) -> Reply:
        countries = self.countries[self._server(params)]
        return Reply(json.dumps(countries), content_type=APPLICATION_JSON)

    def _get_services_list(self, params: dict[str, str]) -> Reply:
        payload = {"status": "success", "services": self.services[self._server(params)]}
        return Reply(json.dumps(payload), content_type=APPLICATION_JSON)

    def _get_prices(self, params: dict[str, str]) -> Reply:
        server = self._server(params)
        service = params.get("service", "")
        if not self._has_service(server, service):
            return self._error(BAD_SERVICE)
        wanted: int | None = None
        if params.get("country"):
            wanted = self._resolve_country(server, params["country"])
            if wanted is None:
                return Reply("{}", content_type=APPLICATION_JSON)
        entries = [
            _price_entry(country_id, service, cost, count)
            for (country_id, code), (cost, count) in self.prices[server].items()
            if code == service and wanted in (None, country_id)
        ]
        return Reply("{" + ", ".join(entries) + "}", content_type=APPLICATION_JSON)

    # ------------------------------------------------------------------ activation actions

    def _get_number(self, params: dict[str, str]) -> Reply:
        server = self._server(params)
        service = params.get("service", "")
        if not self._has_service(server, service):
            return self._error(BAD_SERVICE)
        country_id = self._resolve_country(server, params.get("country"))
        row = self.prices[server].get((country_id, service)) if country_id is not None else None
        if country_id is None or row is None or row[1] <= 0:
            return self._error(NO_NUMBERS)
        cost = to_money(row[0])
        if self.balance < cost:
            return self._error(NO_BALANCE)
        self.balance -= cost
        row[1] -= 1
        activation = self._create_activation(server, service, country_id, cost, params.get("ref"))
        return Reply(f"ACCESS_NUMBER:{activation.id}:{activation.phone}")

    def _create_activation(
        self, server: str, service: str, country_id: int, cost: Decimal, ref: str | None
    ) -> Activation:
        number = self._next_id
        self._next_id += 1
        activation = Activation(
            id=str(number),
            server=server,
            service=service,
            country_id=country_id,
            phone=make_phone(country_id, number),
            cost=cost,
            ref=ref,
            created_at=time.monotonic(),
        )
        self.activations[activation.id] = activation
        self._schedule_auto_code(activation.id)
        return activation

    def _schedule_auto_code(self, activation_id: str) -> None:
        if self.auto_code_after is not None:
            self._call_later(self.auto_code_after, self._auto_deliver, activation_id)

    def _auto_deliver(self, activation_id: str) -> None:
        activation = self.activations.get(activation_id)
        if activation is None or activation.status in ("cancelled", "done"):
            return
        self.deliver_code(activation_id, AUTO_CODE)

    def _get_status(self, params: dict[str, str]) -> Reply:
        activation = self.activations.get(params.get("id", ""))
        if activation is None:
            return self._error(NO_ACTIVATION)
        return Reply(status_line(activation))

    def _set_status(self, params: dict[str, str]) -> Reply:
        activation = self.activations.get(params.get("id", ""))
        if activation is None:
            return self._error(NO_ACTIVATION)
        raw = params.get("status", "")
        status = int(raw) if raw.isdigit() else None
        if status not in VALID_STATUSES:
            return self._error(BAD_STATUS)
        if activation.server == SERVER_TWO and status != STATUS_CANCEL:
            return self._error(BAD_STATUS)
        transitions: dict[int, Callable[[Activation], Reply]] = {
            STATUS_READY: self._mark_ready,
            STATUS_RETRY: self._request_retry,
            STATUS_COMPLETE: self._complete,
            STATUS_CANCEL: self._cancel,
        }
        return transitions[status](activation)

    def _mark_ready(self, activation: Activation) -> Reply:
        if activation.status in ("cancelled", "done"):
            return self._error(BAD_STATUS)
        return Reply("ACCESS_READY")

    def _request_retry(self, activation: Activation) -> Reply:
        if activation.status in ("cancelled", "done") or not activation.codes:
            return self._error(BAD_STATUS)
        activation.status = "retry"
        return Reply("ACCESS_RETRY_GET")

    def _complete(self, activation: Activation) -> Reply:
        if activation.status == "cancelled" or not activation.codes:
            return self._error(BAD_STATUS)
        activation.status = "done"
        return Reply("ACCESS_ACTIVATION")

    def _cancel(self, activation: Activation) -> Reply:
        if activation.status == "cancelled":
            return Reply("ACCESS_CANCEL")
        if activation.status == "done" or activation.codes:
            return self._error(BAD_STATUS)
        if time.monotonic() - activation.created_at < self.early_cancel_seconds:
            return self._error(EARLY_CANCEL_DENIED)
        activation.status = "cancelled"
        self.balance += activation.cost
        return Reply("ACCESS_CANCEL")


# ---------------------------------------------------------------------- module helpers


def status_line(activation: Activation) -> str:
    """The ``getStatus`` answer for an activation's current state."""
    last = activation.codes[-1] if activation.codes else ""
    lines: dict[str, str] = {
        "wait": "STATUS_WAIT_CODE",
        "ok": f"STATUS_OK:{last}",
        "retry": f"STATUS_WAIT_RETRY:{last}",
        "cancelled": "STATUS_CANCEL",
        "done": f"STATUS_OK:{last}",
    }
    return lines[activation.status]


def make_phone(country_id: int, activation_number: int) -> str:
    """A deterministic phone number consistent with the country (digits only, no ``+``)."""
    prefix, digits = PHONE_PLANS.get(country_id, (str(country_id), FALLBACK_PHONE_DIGITS))
    return prefix + str(activation_number % 10**digits).zfill(digits)


def _price_entry(country_id: int, service: str, cost: Decimal, count: int) -> str:
    """One ``"187": {"wa": {"cost": 250.00, "count": 345}}`` member with a 2-decimal cost."""
    inner = f'{{"cost": {format_money(to_money(cost))}, "count": {int(count)}}}'
    return f"{json.dumps(str(country_id))}: {{{json.dumps(service)}: {inner}}}"


__all__ = [
    "API_PATH",
    "AUTO_CODE",
    "DEFAULT_SERVER",
    "FIRST_ACTIVATION_ID",
    "SERVER_ONE",
    "SERVER_TWO",
    "TOO_MANY_REQUESTS",
    "Activation",
    "FakeSMSPalm",
    "Reply",
    "Request",
    "make_phone",
    "status_line",
]
