"""In-process fake of the SpotSMS virtual-number API, served over real HTTP.

The protocol follows ``/work/shared/upstream-docs/spotsms.txt`` (the only source of truth):
one endpoint ``/api-data.php`` driven by the ``action`` query parameter, the key in
``apikey``, every answer a JSON object with a numeric ``code`` (200/401/402/404/500).

Choices made where the document is silent:

Transport
    * Only ``GET`` is served (the doc shows nothing else). Every answer is
      ``application/json`` except injected string bodies (see :meth:`FakeSpotSMS.fail_next`).
    * Error answers (401/402/404) are sent with ``error_http_status`` (default 200, as PHP
      APIs usually do); ``None`` mirrors the JSON ``code`` in the HTTP status.
    * Action names, service ids and country codes are case-sensitive (``us``, not ``US``).

Request pipeline (in this order)
    1. The request is recorded in :attr:`FakeSpotSMS.requests` (``apikey`` removed).
    2. Rate limit: a sliding window of ``window_seconds`` per ``apikey`` value (the raw value
       sent, valid or not), across all actions. Over the limit -> HTTP 429 with body
       ``{"code": 429, "msg": "Too many requests"}`` (the doc names no limit nor answer),
       counted in :attr:`FakeSpotSMS.rejected_429`. Rejected requests do not enter the
       window and consume no ``fail_next``/``delay_next`` entry.
    3. ``delay_next`` sleeps. The rest runs in a task shielded from client disconnects, so a
       delayed action still takes effect after the client gave up.
    4. ``fail_next`` answers the injected body/status *instead of* processing: the action
       does not take effect (no purchase, no cancel). It applies before the key check.
    5. 401 ``Invalid API key`` for a wrong or missing key, then 404 ``Unknown action`` for an
       unknown or missing action, then the action itself.

Actions
    * ``services``: the doc's shape, prices as strings (``"0.0882"``).
    * ``countries``: 404 ``Service not found`` for an unknown ``pid``, 404 ``No countries
      available`` for a service with an empty list; countries with ``count`` 0 are listed.
    * ``getNumber``: 404 ``Service not found`` (unknown ``pid``), 404 ``No numbers
      available`` (country not listed for the service, or ``count`` 0), 402 ``Insufficient
      balance`` (balance below the service's ``price``), then the purchase: the balance
      pays the price, the country's ``count`` drops by one. ``num`` is ignored (always one).
      ``rsId`` is ``rs{n}`` with ``n`` sequential from 730001; ``pidUsed`` is the service's
      first operator ``pid`` (Telegram ``0100`` answers ``0101``). Phone numbers are
      deterministic: a per-country prefix plus the last digits of ``n`` (us ->
      ``+1202555`` + 4 digits).
    * ``getMsg``: the activation is found by ``rsid``; ``pn`` must be its number (compared
      as digits, ``+`` optional) and ``pid`` the requested service or ``pidUsed``, else 404
      ``Activation not found``. After an SMS: 200 with the last delivered code or text
      verbatim in ``data``; a cancelled one without an SMS: 404 ``Activation cancelled``;
      otherwise 404 ``No SMS yet``.
    * ``cancelRsActivation`` (answer undocumented): unknown ``rsid`` -> 404 ``Activation not
      found``; an SMS already received -> 404 ``Activation is not active`` (a used number is
      not refunded); already cancelled -> 200 ``Already cancelled`` (no second refund);
      else cancelled and 200 ``Activation cancelled``. The price is refunded when
      ``refund_window_seconds`` is ``None`` (default) or not yet over ("a refund if within
      time limit"). Stock is not given back.
    * ``balance``: ``{"code": 200, "balance": "49.95"}``, the Decimal's own digits.

Test hooks
    * :meth:`FakeSpotSMS.count` counts every request of an action, including 429-rejected and
      in-flight ones.
    * :meth:`FakeSpotSMS.deliver_code` raises ``KeyError`` for an unknown activation and
      ``ValueError`` for a cancelled one.
    * ``auto_code_after`` (seconds, read at purchase time) delivers ``123456`` once, skipping
      an activation cancelled by then. :meth:`FakeSpotSMS.stop` cancels pending deliveries
      and still-delayed requests.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from ._server import FakeServer, Reply, SlidingWindow, guess_content_type, respond

API_PATH = "/api-data.php"
FIRST_SERIAL = 730001
AUTO_CODE = "123456"
TOO_MANY_REQUESTS: dict[str, Any] = {"code": 429, "msg": "Too many requests"}

APPLICATION_JSON = "application/json"
TEXT_HTML = "text/html"
TEXT_PLAIN = "text/plain"

# country code -> (phone prefix, number of digits taken from the serial)
PHONE_PLANS: dict[str, tuple[str, int]] = {
    "us": ("+1202555", 4),
    "tr": ("+90555", 7),
    "gb": ("+447700", 6),
}
FALLBACK_PHONE = ("+999", 8)


def _flag(code: str) -> str:
    return f"https://flagcdn.com/w80/{code}.png"


def default_services() -> list[dict[str, Any]]:
    """A fresh copy of the default service list, in the doc's shape."""
    return [
        {
            "id": "0948",
            "name": "WhatsApp",
            "price": "0.0882",
            "operators": [{"pid": "0948", "price": "0.0882"}],
        },
        {
            "id": "0003",
            "name": "Microsoft",
            "price": "0.0882",
            "operators": [{"pid": "0003", "price": "0.0882"}],
        },
        {
            "id": "0100",
            "name": "Telegram",
            "price": "0.1500",
            "operators": [{"pid": "0101", "price": "0.1500"}],
        },
    ]


def _country(code: str, name: str, count: int) -> dict[str, Any]:
    return {"code": code, "name": name, "count": count, "flag": _flag(code)}


def default_countries() -> dict[str, list[dict[str, Any]]]:
    """Fresh per-service country lists: service id -> [{code, name, count, flag}]."""
    return {
        "0948": [
            _country("us", "United States", 150),
            _country("tr", "Turkey", 80),
            _country("gb", "United Kingdom", 0),
        ],
        "0003": [
            _country("us", "United States", 40),
            _country("gb", "United Kingdom", 25),
        ],
        "0100": [
            _country("tr", "Turkey", 12),
            _country("gb", "United Kingdom", 30),
        ],
    }


@dataclass
class SpotActivation:
    """One purchased number as the fake stores it."""

    rs_id: str
    phone: str  # "+12025550001"
    pid: str  # the requested service id
    pid_used: str
    country: str
    cost: Decimal
    created_at: float
    status: str = "active"  # "active" | "received" | "cancelled"
    codes: list[str] = field(default_factory=list)
    refunded: bool = False


@dataclass
class Request:
    """One received request. ``http_status``/``body`` stay ``None`` while it is in flight."""

    action: str
    params: dict[str, str]
    at: float
    http_status: int | None = None
    body: str | None = None


Handler = Callable[[dict[str, str]], Reply]


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def make_phone(country: str, serial: int) -> str:
    """A deterministic number for a country, with its "+", as getNumber answers it."""
    prefix, width = PHONE_PLANS.get(country, FALLBACK_PHONE)
    return prefix + str(serial % 10**width).zfill(width)


class FakeSpotSMS(FakeServer):
    """A fake SpotSMS server on ``127.0.0.1`` with an ephemeral port.

    See the module docstring for every behaviour the upstream document leaves open.
    """

    _url_path = API_PATH  # base_url is the endpoint: http://127.0.0.1:PORT/api-data.php

    def __init__(
        self,
        api_key: str = "spot-test-key",
        rate_limit: int | None = None,
        window_seconds: float = 60.0,
        error_http_status: int | None = 200,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.error_http_status = error_http_status
        self.balance = Decimal("49.95")
        self.services: list[dict[str, Any]] = default_services()
        self.countries: dict[str, list[dict[str, Any]]] = default_countries()
        self.activations: dict[str, SpotActivation] = {}
        self.requests: list[Request] = []
        self.rejected_429 = 0
        self.auto_code_after: float | None = None
        self.refund_window_seconds: float | None = None
        self._serial = FIRST_SERIAL
        self._windows = SlidingWindow()
        self._handlers: dict[str, Handler] = {
            "services": self._services,
            "countries": self._countries,
            "getNumber": self._get_number,
            "getMsg": self._get_msg,
            "cancelRsActivation": self._cancel,
            "balance": self._balance,
        }

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get(API_PATH, self._handle)

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self, action: str, body: dict[str, Any] | str, http_status: int = 200, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of ``action`` with ``body``; no effect happens.

        A dict is sent as JSON; a string as is, typed by a guess (``<`` HTML, ``{``/``[``
        JSON, else plain text).
        """
        if isinstance(body, dict):
            reply = Reply(json.dumps(body), http_status, APPLICATION_JSON)
        else:
            reply = Reply(body, http_status, guess_content_type(body))
        self._failures.push(action, reply, times)

    def garble_next(
        self, action: str, body: dict[str, Any] | str, http_status: int = 200, times: int = 1
    ) -> None:
        """Like :meth:`fail_next`, but the action takes effect first (a number is bought):
        only its answer is replaced, as when a proxy or a crash swallows it."""
        if isinstance(body, dict):
            reply = Reply(json.dumps(body), http_status, APPLICATION_JSON)
        else:
            reply = Reply(body, http_status, guess_content_type(body))
        self._garbles.push(action, reply, times)

    def delay_next(self, action: str, seconds: float, times: int = 1) -> None:
        """Make the next ``times`` requests of ``action`` wait ``seconds`` first.

        The action still takes effect after the delay, even if the client has gone away.
        """
        self._delays.push(action, seconds, times)

    def deliver_code(self, rs_id: str, code_or_text: str) -> None:
        """An SMS arrives: ``getMsg`` answers it verbatim in ``data`` from now on."""
        activation = self.activations[rs_id]
        if activation.status == "cancelled":
            raise ValueError(f"activation {rs_id} is cancelled")
        activation.codes.append(code_or_text)
        activation.status = "received"

    def count(self, action: str) -> int:
        """Requests received for ``action`` (429-rejected and in-flight included)."""
        return sum(1 for request in self.requests if request.action == action)

    def stock(self, pid: str, country: str) -> int:
        """The ``count`` of a country for a service (0 when not listed)."""
        row = self._country_row(pid, country)
        return int(row["count"]) if row is not None else 0

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        params = dict(request.query.items())
        action = params.get("action", "")
        record = Request(
            action=action,
            params={k: v for k, v in params.items() if k != "apikey"},
            at=time.monotonic(),
        )
        self.requests.append(record)
        key = params.get("apikey", "")
        if not self._windows.admit(key, self.rate_limit, self.window_seconds):
            self.rejected_429 += 1
            reply = Reply(json.dumps(TOO_MANY_REQUESTS), 429)
        else:
            reply = await self._scripted(action, lambda: self.dispatch(action, params))
        return respond(record, reply)

    def dispatch(self, action: str, params: dict[str, str]) -> Reply:
        """Authenticate and run one action (no rate limit, no injections)."""
        if params.get("apikey") != self.api_key:
            return self._error(401, "Invalid API key")
        handler = self._handlers.get(action)
        if handler is None:
            return self._error(404, "Unknown action")
        return handler(params)

    def _error(self, code: int, msg: str) -> Reply:
        status = code if self.error_http_status is None else self.error_http_status
        return Reply(json.dumps({"code": code, "msg": msg}), status)

    @staticmethod
    def _ok(payload: dict[str, Any]) -> Reply:
        return Reply(json.dumps({"code": 200, **payload}))

    # ------------------------------------------------------------------ helpers

    def _service(self, pid: str | None) -> dict[str, Any] | None:
        return next((s for s in self.services if s["id"] == pid), None)

    def _country_row(self, pid: str, country: str | None) -> dict[str, Any] | None:
        rows = self.countries.get(pid, [])
        return next((row for row in rows if row["code"] == country), None)

    # ------------------------------------------------------------------ actions

    def _services(self, params: dict[str, str]) -> Reply:
        return self._ok({"data": self.services})

    def _countries(self, params: dict[str, str]) -> Reply:
        pid = params.get("pid")
        if self._service(pid) is None:
            return self._error(404, "Service not found")
        rows = self.countries.get(str(pid), [])
        if not rows:
            return self._error(404, "No countries available")
        return self._ok({"data": rows})

    def _get_number(self, params: dict[str, str]) -> Reply:
        pid = params.get("pid", "")
        service = self._service(pid)
        if service is None:
            return self._error(404, "Service not found")
        country = params.get("cuy", "")
        row = self._country_row(pid, country)
        if row is None or int(row["count"]) <= 0:
            return self._error(404, "No numbers available")
        cost = Decimal(str(service["price"]))
        if self.balance < cost:
            return self._error(402, "Insufficient balance")
        self.balance -= cost
        row["count"] = int(row["count"]) - 1
        operators = service.get("operators") or []
        pid_used = str(operators[0]["pid"]) if operators else pid
        serial = self._serial
        self._serial += 1
        activation = SpotActivation(
            rs_id=f"rs{serial}",
            phone=make_phone(country, serial),
            pid=pid,
            pid_used=pid_used,
            country=country,
            cost=cost,
            created_at=time.monotonic(),
        )
        self.activations[activation.rs_id] = activation
        self._schedule_auto_code(activation.rs_id)
        return self._ok({"data": activation.phone, "rsId": activation.rs_id, "pidUsed": pid_used})

    def _schedule_auto_code(self, rs_id: str) -> None:
        if self.auto_code_after is not None:
            self._call_later(self.auto_code_after, self._auto_deliver, rs_id)

    def _auto_deliver(self, rs_id: str) -> None:
        activation = self.activations.get(rs_id)
        if activation is not None and activation.status != "cancelled":
            self.deliver_code(rs_id, AUTO_CODE)

    def _get_msg(self, params: dict[str, str]) -> Reply:
        activation = self.activations.get(params.get("rsid", ""))
        if (
            activation is None
            or _digits(params.get("pn", "")) != _digits(activation.phone)
            or params.get("pid") not in (activation.pid, activation.pid_used)
        ):
            return self._error(404, "Activation not found")
        if activation.codes:
            return self._ok({"data": activation.codes[-1]})
        if activation.status == "cancelled":
            return self._error(404, "Activation cancelled")
        return self._error(404, "No SMS yet")

    def _cancel(self, params: dict[str, str]) -> Reply:
        activation = self.activations.get(params.get("rsid", ""))
        if activation is None:
            return self._error(404, "Activation not found")
        if activation.status == "cancelled":
            return self._ok({"msg": "Already cancelled"})
        if activation.status == "received":
            return self._error(404, "Activation is not active")
        activation.status = "cancelled"
        window = self.refund_window_seconds
        if window is None or time.monotonic() - activation.created_at <= window:
            self.balance += activation.cost
            activation.refunded = True
        return self._ok({"msg": "Activation cancelled"})

    def _balance(self, params: dict[str, str]) -> Reply:
        return self._ok({"balance": str(self.balance)})


__all__ = [
    "API_PATH",
    "AUTO_CODE",
    "FIRST_SERIAL",
    "TOO_MANY_REQUESTS",
    "FakeSpotSMS",
    "Reply",
    "Request",
    "SpotActivation",
    "make_phone",
]
