"""In-process fake of the PapSMS API, served over real HTTP on 127.0.0.1.

Documented in ``/work/shared/upstream-docs/papsms.txt`` and served exactly as shown there:
``Authorization: Bearer <key>``, the ``{"success": true, "data": ...}`` envelope,
``POST /api/v1/numbers/purchase {"country", "service"}`` (answer: ``activation_id``,
``phone_number`` with "+", ``country``, ``service``, ``expires_at``, ``cost``),
``GET /api/v1/numbers/status/{id}`` (``{"status": "waiting", "sms": null}`` or ``"received"``
with ``sms.code``, ``sms.full_text``, ``sms.received_at``) and
``POST /api/v1/numbers/finish/{id} {"status": "completed" | "cancelled"}``.

Assumed, the same as ``shop/providers/papsms.py`` documents (the doc is silent):

Endpoints
    * ``GET /countries`` -> ``[{"code": "us", "name": "United States"}, ...]``.
    * ``GET /services`` -> ``[{"service": "whatsapp", "name": "WhatsApp"}, ...]``;
      ``GET /services?country=us`` -> the services priced there, with ``price`` and
      ``available`` (stock 0 included); an unknown country -> ``[]``.
    * ``GET /prices?service=whatsapp[&country=us]`` ->
      ``[{"country": "us", "price": 0.80, "available": 120}, ...]`` (stock 0 included);
      no ``service`` -> 400 ``invalid_request``; an unknown one -> 400 ``invalid_service``; an
      unknown country -> ``[]``. Pairs in :attr:`FakePapSMS.unlisted` are left out of the
      list without ``country`` (priced only when asked for with it).
    * ``GET /balance`` -> ``{"balance": 25.00, "currency": "USD"}``.
    * ``POST /numbers/finish/{id}`` answers ``{"activation_id": ..., "status": ...}``.
    * Money is rendered with two decimals (``0.80``), as in the doc.

Errors
    ``{"success": false, "error": {"code": ..., "message": ...}}`` with: ``unauthorized`` 401,
    ``invalid_request`` 400, ``invalid_service`` 400, ``no_numbers`` 409, ``insufficient_balance``
    402, ``not_found`` 404, ``too_early`` 409, ``invalid_status`` 409, ``method_not_allowed`` 405,
    ``rate_limited`` 429. A path outside the API answers a plain-text ``404: Not Found``.

Request pipeline (in this order)
    1. The request is recorded in :attr:`FakePapSMS.requests` without its headers (no key).
    2. Rate limit: a sliding window of ``window_seconds`` per ``Authorization`` value, over all
       endpoints (60 a minute, the doc's default). Over it -> HTTP 429 ``rate_limited``,
       counted in :attr:`rejected_429`; rejected requests do not enter the window and use up no
       ``fail_next``/``delay_next`` entry.
    3. ``delay_next`` sleeps; the rest runs in a task shielded from client disconnects, so a
       delayed purchase still happens after the client gave up.
    4. ``fail_next`` answers the injected body instead: the request has no effect.
    5. Unknown path -> plain 404; then the Bearer check -> 401; then the method -> 405.

Activations
    * Ids are numeric strings from 12345678. Phones are deterministic per country
      (us -> ``+1415555`` + the last 4 digits of the id).
    * Purchase checks, in order: body (JSON with ``country`` and ``service`` strings), service
      known, a price row with stock > 0 for the country (else ``no_numbers``), balance >= price
      (else ``insufficient_balance``). It debits the price and takes one from stock.
    * An activation lives ``lifetime_seconds`` (``expires_at``); a waiting one past it, or one
      passed to :meth:`FakePapSMS.expire`, becomes ``expired`` and is refunded.
    * ``finish cancelled``: already cancelled or expired -> success again, no second refund; an
      SMS received or completed -> ``invalid_status``; within ``too_early_cancel_seconds`` of the
      purchase -> ``too_early``; else cancelled with a full refund (stock is not given back).
    * ``finish completed``: needs a received SMS (else ``invalid_status``); again on a completed
      one -> success. After it, status answers ``"completed"`` with the SMS.

Webhooks
    With ``webhook_url`` set, :meth:`FakePapSMS.deliver_code` POSTs
    ``{"event_id", "activation_id", "code", "full_text", "received_at"}`` as JSON in a task
    (no signature: none is documented). Every attempt is in :attr:`webhooks_sent`;
    :meth:`repeat_webhook` sends the last payload again, same ``event_id``;
    :meth:`wait_webhooks` waits for those in flight.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web

from ._server import FakeServer, Reply, SlidingWindow, guess_content_type, respond

API_PREFIX = "/api/v1"
FIRST_ACTIVATION_ID = 12345678
APPLICATION_JSON = "application/json"
TEXT_PLAIN = "text/plain"
TEXT_HTML = "text/html"

# country -> (phone prefix with "+", number of digits taken from the activation id)
PHONE_PLANS: dict[str, tuple[str, int]] = {
    "us": ("+1415555", 4),
    "gb": ("+447700", 6),
    "in": ("+9198", 8),
    "id": ("+62812", 7),
    "ca": ("+1604555", 4),
}
FALLBACK_PHONE = ("+999", 8)

ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "invalid_service": 400,
    "unauthorized": 401,
    "insufficient_balance": 402,
    "not_found": 404,
    "method_not_allowed": 405,
    "no_numbers": 409,
    "too_early": 409,
    "invalid_status": 409,
    "rate_limited": 429,
}


def default_countries() -> list[dict[str, str]]:
    return [
        {"code": "us", "name": "United States"},
        {"code": "gb", "name": "United Kingdom"},
        {"code": "in", "name": "India"},
        {"code": "id", "name": "Indonesia"},
        {"code": "ca", "name": "Canada"},
    ]


def default_services() -> list[dict[str, str]]:
    return [
        {"service": "whatsapp", "name": "WhatsApp"},
        {"service": "telegram", "name": "Telegram"},
        {"service": "google", "name": "Google"},
        {"service": "instagram", "name": "Instagram"},
    ]


_PRICES: tuple[tuple[str, str, str, int], ...] = (
    ("whatsapp", "us", "0.80", 120),
    ("whatsapp", "gb", "1.20", 40),
    ("whatsapp", "in", "0.15", 900),
    ("whatsapp", "id", "0.12", 500),
    ("whatsapp", "ca", "0.90", 0),
    ("telegram", "us", "1.50", 60),
    ("telegram", "gb", "2.00", 0),
    ("telegram", "in", "0.25", 300),
    ("telegram", "id", "0.20", 210),
    ("google", "us", "0.50", 80),
    ("google", "gb", "0.70", 22),
    ("google", "in", "0.10", 150),
    ("instagram", "us", "0.40", 30),
    ("instagram", "id", "0.10", 0),
)


def default_prices() -> dict[tuple[str, str], list[Any]]:
    """Fresh (service, country) -> [price USD, stock]."""
    return {
        (service, country): [Decimal(price), stock] for service, country, price, stock in _PRICES
    }


@dataclass
class Activation:
    """One purchased number as the fake stores it."""

    id: str
    service: str
    country: str
    phone: str  # with "+", as the API shows it
    cost: Decimal
    created_at: float  # monotonic
    expires_at: datetime
    status: str = "waiting"  # waiting | received | completed | cancelled | expired
    sms: dict[str, str] | None = None


@dataclass
class Request:
    """One received request (headers are not kept). Status and body stay None in flight."""

    method: str
    path: str  # without the /api/v1 prefix when under it
    query: dict[str, str]
    json: Any
    at: float
    bearer_ok: bool
    http_status: int | None = None
    body: str | None = None


@dataclass
class WebhookAttempt:
    """One webhook POST: `http_status` is None while in flight or after a network `error`."""

    payload: dict[str, Any]
    http_status: int | None = None
    error: str | None = None


def render(value: Any) -> str:
    """JSON with Decimal money rendered with two decimals (``0.80``), as in the doc."""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}: {render(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value)


def ok(data: Any) -> Reply:
    return Reply(render({"success": True, "data": data}))


def error(code: str, message: str) -> Reply:
    body = render({"success": False, "error": {"code": code, "message": message}})
    return Reply(body, ERROR_STATUS[code])


def make_phone(country: str, activation_number: int) -> str:
    prefix, digits = PHONE_PLANS.get(country, FALLBACK_PHONE)
    return prefix + str(activation_number % 10**digits).zfill(digits)


def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_prefix(path_prefix: str) -> str:
    """``"/api/v1/numbers/status"`` or ``"numbers/status"`` -> ``"/numbers/status"``."""
    prefix = path_prefix if path_prefix.startswith("/") else "/" + path_prefix
    if prefix.startswith(API_PREFIX + "/") or prefix == API_PREFIX:
        prefix = prefix[len(API_PREFIX) :] or "/"
    return prefix


class FakePapSMS(FakeServer):
    """A fake PapSMS server on ``127.0.0.1`` with an ephemeral port (see the module docstring)."""

    _url_path = API_PREFIX  # base_url is the client's: http://127.0.0.1:PORT/api/v1

    def __init__(
        self,
        api_key: str = "pap-test-key",
        rate_limit: int | None = 60,
        window_seconds: float = 60.0,
        webhook_url: str | None = None,
    ) -> None:
        super().__init__(normalise=normalise_prefix, by_prefix=True)
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.webhook_url = webhook_url
        self.balance = Decimal("25.00")
        self.countries = default_countries()
        self.services = default_services()
        self.prices = default_prices()
        self.unlisted: set[tuple[str, str]] = set()  # (service, country) only priced one by one
        self.activations: dict[str, Activation] = {}
        self.requests: list[Request] = []
        self.rejected_429 = 0
        self.too_early_cancel_seconds = 0.0
        self.lifetime_seconds = 1200.0
        self.webhooks_sent: list[WebhookAttempt] = []
        self._next_id = FIRST_ACTIVATION_ID
        self._next_event = 1
        self._windows = SlidingWindow()
        self._webhook_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def _side_tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._webhook_tasks)

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self,
        path_prefix: str,
        body: str | Mapping[str, Any],
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` with ``body`` instead.

        A mapping is sent as JSON. The request has no effect (nothing bought or cancelled).
        """
        text = body if isinstance(body, str) else render(body)
        reply = Reply(text, http_status, content_type or guess_content_type(text))
        self._failures.push(path_prefix, reply, times)

    def garble_next(
        self,
        path_prefix: str,
        body: str | Mapping[str, Any],
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Like :meth:`fail_next`, but the request takes effect first (a number is bought):
        only its answer is replaced, as when a proxy or a crash swallows it."""
        text = body if isinstance(body, str) else render(body)
        reply = Reply(text, http_status, content_type or guess_content_type(text))
        self._garbles.push(path_prefix, reply, times)

    def delay_next(self, path_prefix: str, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` before handling the next ``times`` requests under ``path_prefix``.

        The request still takes effect after the delay, even if the client has gone away.
        """
        self._delays.push(path_prefix, seconds, times)

    def count(self, path_prefix: str = "/") -> int:
        """Requests received under ``path_prefix`` (429-rejected and in-flight ones included)."""
        prefix = normalise_prefix(path_prefix)
        return sum(1 for request in self.requests if request.path.startswith(prefix))

    def deliver_code(
        self, activation_id: str, code: str, full_text: str | None = None, webhook: bool = True
    ) -> dict[str, Any] | None:
        """An SMS arrives: the activation becomes ``received`` (a later SMS replaces it).

        With ``webhook_url`` set and ``webhook`` true, the webhook is POSTed in a task and its
        payload returned. Raises KeyError for an unknown id, ValueError unless the activation
        is waiting or received.
        """
        activation = self.activations[str(activation_id)]
        self._refresh(activation)
        if activation.status not in ("waiting", "received"):
            raise ValueError(f"activation {activation_id} is {activation.status}")
        received_at = iso_time(datetime.now(UTC))
        text = full_text if full_text is not None else self._default_text(activation, code)
        activation.sms = {"code": code, "full_text": text, "received_at": received_at}
        activation.status = "received"
        if not (webhook and self.webhook_url):
            return None
        payload = {
            "event_id": f"evt_{self._next_event:06d}",
            "activation_id": activation.id,
            "code": code,
            "full_text": text,
            "received_at": received_at,
        }
        self._next_event += 1
        self._post_webhook(payload)
        return payload

    def repeat_webhook(self) -> dict[str, Any]:
        """Send the last webhook payload again, unchanged (a redelivery)."""
        if not self.webhooks_sent:
            raise RuntimeError("no webhook was sent yet")
        payload = dict(self.webhooks_sent[-1].payload)
        self._post_webhook(payload)
        return payload

    async def wait_webhooks(self) -> None:
        """Wait until every webhook POST in flight has finished."""
        while self._webhook_tasks:
            await asyncio.wait(list(self._webhook_tasks))

    def expire(self, activation_id: str) -> None:
        """End a waiting activation's lifetime now (refunded, status ``expired``)."""
        activation = self.activations[str(activation_id)]
        if activation.status == "waiting":
            self._end(activation, "expired")

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith(API_PREFIX + "/"):
            path = path[len(API_PREFIX) :]
        raw = await request.read()
        authorization = request.headers.get("Authorization", "")
        body_json: Any = None
        json_error = False
        if raw:
            try:
                body_json = json.loads(raw)
            except ValueError:
                json_error = True
        record = Request(
            method=request.method,
            path=path,
            query=dict(request.query.items()),
            json=body_json,
            at=time.monotonic(),
            bearer_ok=authorization == f"Bearer {self.api_key}",
        )
        self.requests.append(record)
        if not self._windows.admit(authorization, self.rate_limit, self.window_seconds):
            self.rejected_429 += 1
            reply = error("rate_limited", "Too many requests")
        else:
            reply = await self._scripted(
                path,
                lambda: self._process(record, request.path, authorization, body_json, json_error),
            )
        return respond(record, reply)

    def _process(
        self, record: Request, full_path: str, authorization: str, body_json: Any, json_error: bool
    ) -> Reply:
        if not full_path.startswith(API_PREFIX + "/"):
            return Reply("404: Not Found", 404, TEXT_PLAIN)
        return self.dispatch(
            record.method, record.path, record.query, body_json, json_error, authorization
        )

    def dispatch(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        json_error: bool,
        authorization: str,
    ) -> Reply:
        """Route, authenticate and run one request (no rate limit, no injections)."""
        route = self._route(path)
        if route is None:
            return Reply("404: Not Found", 404, TEXT_PLAIN)
        wanted_method, handler = route
        if authorization != f"Bearer {self.api_key}":
            return error("unauthorized", "Invalid API key")
        if method != wanted_method:
            return error("method_not_allowed", f"Use {wanted_method}")
        if json_error:
            return error("invalid_request", "Invalid JSON body")
        return handler(query, body)

    def _route(self, path: str) -> tuple[str, Callable[[Mapping[str, str], Any], Reply]] | None:
        fixed: dict[str, tuple[str, Callable[[Mapping[str, str], Any], Reply]]] = {
            "/balance": ("GET", self._balance),
            "/countries": ("GET", self._countries),
            "/services": ("GET", self._services),
            "/prices": ("GET", self._prices),
            "/numbers/purchase": ("POST", self._purchase),
        }
        if path in fixed:
            return fixed[path]
        match = re.fullmatch(r"/numbers/(status|finish)/([^/]+)", path)
        if match is None:
            return None
        action, activation_id = match.groups()
        if action == "status":
            return "GET", lambda query, body: self._status(activation_id)
        return "POST", lambda query, body: self._finish(activation_id, body)

    # ------------------------------------------------------------------ catalogue

    def _service_name(self, code: str) -> str | None:
        return next((s["name"] for s in self.services if s["service"] == code), None)

    def _country_known(self, code: str) -> bool:
        return any(c["code"] == code for c in self.countries)

    def _balance(self, query: Mapping[str, str], body: Any) -> Reply:
        return ok({"balance": self.balance, "currency": "USD"})

    def _countries(self, query: Mapping[str, str], body: Any) -> Reply:
        return ok(self.countries)

    def _services(self, query: Mapping[str, str], body: Any) -> Reply:
        country = query.get("country")
        if not country:
            return ok(self.services)
        if not self._country_known(country):
            return ok([])
        rows = []
        for service in self.services:
            row = self.prices.get((service["service"], country))
            if row is not None:
                rows.append({**service, "price": row[0], "available": row[1]})
        return ok(rows)

    def _prices(self, query: Mapping[str, str], body: Any) -> Reply:
        service = query.get("service")
        if not service:
            return error("invalid_request", "service is required")
        if self._service_name(service) is None:
            return error("invalid_service", "Unknown service")
        wanted = query.get("country")
        rows = [
            {"country": c["code"], "price": row[0], "available": row[1]}
            for c in self.countries
            if (row := self.prices.get((service, c["code"]))) is not None
            and wanted in (None, "", c["code"])
            and (wanted or (service, c["code"]) not in self.unlisted)
        ]
        return ok(rows)

    # ------------------------------------------------------------------ activations

    def _purchase(self, query: Mapping[str, str], body: Any) -> Reply:
        if not isinstance(body, dict):
            return error("invalid_request", "JSON body with country and service required")
        service, country = body.get("service"), body.get("country")
        if not isinstance(service, str) or not isinstance(country, str):
            return error("invalid_request", "country and service are required")
        if self._service_name(service) is None:
            return error("invalid_service", "Unknown service")
        row = self.prices.get((service, country)) if self._country_known(country) else None
        if row is None or row[1] <= 0:
            return error("no_numbers", "No numbers available for this service and country")
        cost = Decimal(row[0])
        if self.balance < cost:
            return error("insufficient_balance", "Insufficient balance")
        self.balance -= cost
        row[1] -= 1
        number = self._next_id
        self._next_id += 1
        activation = Activation(
            id=str(number),
            service=service,
            country=country,
            phone=make_phone(country, number),
            cost=cost,
            created_at=time.monotonic(),
            expires_at=datetime.now(UTC) + timedelta(seconds=self.lifetime_seconds),
        )
        self.activations[activation.id] = activation
        return ok(
            {
                "activation_id": activation.id,
                "phone_number": activation.phone,
                "country": country,
                "service": service,
                "expires_at": iso_time(activation.expires_at),
                "cost": cost,
            }
        )

    def _status(self, activation_id: str) -> Reply:
        activation = self.activations.get(activation_id)
        if activation is None:
            return error("not_found", "Activation not found")
        self._refresh(activation)
        return ok({"status": activation.status, "sms": activation.sms})

    def _finish(self, activation_id: str, body: Any) -> Reply:
        activation = self.activations.get(activation_id)
        if activation is None:
            return error("not_found", "Activation not found")
        wanted = body.get("status") if isinstance(body, dict) else None
        if wanted not in ("completed", "cancelled"):
            return error("invalid_request", 'status must be "completed" or "cancelled"')
        self._refresh(activation)
        if wanted == "cancelled":
            return self._cancel(activation)
        return self._complete(activation)

    def _cancel(self, activation: Activation) -> Reply:
        if activation.status in ("cancelled", "expired"):
            return self._finished(activation)
        if activation.status in ("received", "completed"):
            return error(
                "invalid_status", "An SMS was received; the activation cannot be cancelled"
            )
        if time.monotonic() - activation.created_at < self.too_early_cancel_seconds:
            return error("too_early", "Too early to cancel this activation")
        self._end(activation, "cancelled")
        return self._finished(activation)

    def _complete(self, activation: Activation) -> Reply:
        if activation.status == "received":
            activation.status = "completed"
        if activation.status == "completed":
            return self._finished(activation)
        if activation.status == "waiting":
            return error("invalid_status", "No SMS received yet")
        return error("invalid_status", f"Activation is {activation.status}")

    def _finished(self, activation: Activation) -> Reply:
        return ok({"activation_id": activation.id, "status": activation.status})

    def _refresh(self, activation: Activation) -> None:
        if (
            activation.status == "waiting"
            and time.monotonic() - activation.created_at >= self.lifetime_seconds
        ):
            self._end(activation, "expired")

    def _end(self, activation: Activation, status: str) -> None:
        activation.status = status
        self.balance += activation.cost

    def _default_text(self, activation: Activation, code: str) -> str:
        name = self._service_name(activation.service) or activation.service
        return f"Your {name} code: {code}"

    # ------------------------------------------------------------------ webhooks

    def _post_webhook(self, payload: dict[str, Any]) -> None:
        attempt = WebhookAttempt(payload)
        self.webhooks_sent.append(attempt)
        task = asyncio.get_running_loop().create_task(self._send_webhook(attempt))
        self._webhook_tasks.add(task)
        task.add_done_callback(self._webhook_tasks.discard)

    async def _send_webhook(self, attempt: WebhookAttempt) -> None:
        if self.webhook_url is None:
            attempt.error = "no webhook_url"
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._session.post(self.webhook_url, json=attempt.payload) as response:
                attempt.http_status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempt.error = type(exc).__name__


__all__ = [
    "API_PREFIX",
    "FIRST_ACTIVATION_ID",
    "Activation",
    "FakePapSMS",
    "Reply",
    "Request",
    "WebhookAttempt",
    "make_phone",
    "render",
]
