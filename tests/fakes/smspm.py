"""In-process fake of the SMSPM SMS API, served over real HTTP.

The protocol follows ``/work/shared/upstream-docs/smspm.txt`` (the only source of truth): a
JSON POST to the root sends one text to one number (``toNumber`` a string) or several (a list,
up to 100), answering ``{"messages": [{"id", "toNumber", "status": "Added to queue"}]}``; a
JSON POST to ``/smsdetails`` with ``id`` and ``hash`` answers the message's ``status``
(queued | submitted | delivered | failed), ``price`` (EUR) and ``carrier``; errors are
``{"error": "..."}``; a ``report`` URL gets automatic status notifications.

Choices made where the document is silent:

Transport
    * ``POST`` with a JSON object body, as in the doc's fetch examples. ``GET`` with query
      parameters works too (the doc's browser/cURL example), as does a POST with a form body.
      Query parameters and body fields are merged, the body winning. In a query string a
      repeated ``toNumber`` makes a list; a comma-separated value is *not* split (it is one
      invalid number). A body that is not a JSON object -> ``{"error": "Invalid request"}``.
    * Every answer is ``application/json``. Errors use ``error_http_status`` (default 400; the
      doc gives no codes), successes 200. Unknown paths get aiohttp's plain 404.
    * Paths are compared without a trailing slash (``/smsdetails/`` is ``/smsdetails``).

Sending (checks in this order; the first failure refuses the whole request, nothing is stored)
    1. missing or empty ``token`` -> ``Token is required`` (the doc's string);
    2. wrong ``hash`` or ``token`` -> ``Invalid credentials`` (the doc names no string);
    3. missing or empty ``fromNumber`` -> ``Sender number is required``;
    4. ``fromNumber`` not in ``approved_senders`` -> ``Bad sender``. Compared ignoring case:
       the doc writes both ``SMSPM.com`` and ``smspm.com`` for the default sender;
    5. missing or empty ``text`` -> ``Text is required`` (not in the doc);
    6. more than 100 numbers -> ``Too many recipients`` (not in the doc);
    7. ``toNumber`` missing, an empty list, or any entry that is not a string of 8 to 15 ASCII
       digits (so no ``+``, spaces or JSON numbers) -> ``Invalid phone number``.
    A valid request stores one :class:`Message` per entry (a repeated number is sent twice),
    each with a uuid4 ``id`` and status ``queued``, and a non-empty string ``report`` as its
    report URL.

Details
    * Only ``hash`` is checked (the doc sends no token): wrong -> ``Invalid credentials``;
      a missing or unknown ``id`` -> ``Message not found`` (not in the doc).
    * The answer is ``{"id", "status", "price", "carrier"}`` with ``price`` the string
      :attr:`FakeSMSPM.price` (``"0.045"``) and ``carrier`` :attr:`FakeSMSPM.carrier`
      (``"Telia"``), at every status; either is left out when set to ``None``.

Delivery reports (the doc does not define them)
    * On every status *change* of a message with a report URL, and if ``send_reports`` is
      true, the fake POSTs JSON ``{"id", "toNumber", "status"}`` to that URL in a task. Reports
      of one message are delivered in order, one after another; no retries. Every attempt is
      recorded in :attr:`FakeSMSPM.reports_sent` with the answer's status or the error.
    * ``auto_outcome`` maps a number (or ``"*"`` for any) to a final status: ``auto_after / 2``
      seconds after sending the message becomes ``submitted``, ``auto_after`` seconds after
      sending it becomes that status. A step is skipped once the message is delivered or failed.

Request pipeline
    1. The request is recorded in :attr:`FakeSMSPM.requests` with ``token`` removed.
    2. ``delay_next`` sleeps. The rest runs in a task shielded from client disconnects, so a
       delayed send still takes effect after the client gave up (an "outcome unknown").
    3. ``fail_next`` answers the injected body/status *instead of* processing: nothing is sent.
    4. Validation and processing as above.
    5. ``garble_next`` answers the injected body/status *after* processing: the request took
       effect (the messages were queued and will be reported), but the client cannot read
       the answer (e.g. JSON nested deeper than its parser goes).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ._server import FakeServer, Reply, Scripted, guess_content_type, respond

SEND_PATH = "/"
DETAILS_PATH = "/smsdetails"
MAX_RECIPIENTS = 100
DEFAULT_SENDER = "SMSPM.com"

ADDED_TO_QUEUE = "Added to queue"
TOKEN_REQUIRED = "Token is required"
INVALID_PHONE = "Invalid phone number"
SENDER_REQUIRED = "Sender number is required"
BAD_SENDER = "Bad sender"
INVALID_CREDENTIALS = "Invalid credentials"
TEXT_REQUIRED = "Text is required"
TOO_MANY = "Too many recipients"
MESSAGE_NOT_FOUND = "Message not found"
INVALID_REQUEST = "Invalid request"

QUEUED = "queued"
SUBMITTED = "submitted"
DELIVERED = "delivered"
FAILED = "failed"
FINAL = frozenset({DELIVERED, FAILED})

APPLICATION_JSON = "application/json"
TEXT_HTML = "text/html"
TEXT_PLAIN = "text/plain"

SETTLE_LIMIT = 5.0
PHONE = re.compile(r"[0-9]{8,15}")


@dataclass
class Message:
    """One SMS as the fake stores it."""

    id: str
    to_number: str
    text: str
    sender: str
    report_url: str | None
    created_at: float
    status: str = QUEUED
    history: list[str] = field(default_factory=lambda: [QUEUED])


@dataclass
class Request:
    """One received request. ``http_status``/``body`` stay ``None`` while it is in flight."""

    path: str
    method: str
    params: dict[str, Any]  # without the token
    at: float
    http_status: int | None = None
    body: str | None = None
    host: str = ""  # the Host header: tells apart clients given different base URLs


@dataclass
class ReportAttempt:
    """One delivery-report POST; ``http_status`` or ``error`` is set once it is done."""

    url: str
    payload: dict[str, str]
    at: float
    http_status: int | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.http_status is not None or self.error is not None


def normalise_path(path: str) -> str:
    return path.rstrip("/") or "/"


class FakeSMSPM(FakeServer):
    """A fake SMSPM server on ``127.0.0.1`` with an ephemeral port.

    See the module docstring for every behaviour the upstream document leaves open.
    """

    def __init__(
        self,
        hash_: str = "smspm-test-hash",
        token: str = "smspm-test-token",
        error_http_status: int = 400,
    ) -> None:
        super().__init__(normalise=normalise_path)
        self.hash = hash_
        self.token = token
        self.error_http_status = error_http_status
        self.approved_senders: set[str] = {DEFAULT_SENDER}
        self.send_reports = True
        self.auto_outcome: dict[str, str] = {}
        self.auto_after = 0.05
        self.price: str | None = "0.045"
        self.carrier: str | None = "Telia"
        self.messages: dict[str, Message] = {}
        self.requests: list[Request] = []
        self.reports_sent: list[ReportAttempt] = []
        self._reports: dict[str, asyncio.Task[None]] = {}  # last report task per message
        self._garbles: Scripted[Reply] = Scripted(normalise_path)
        self._handlers: dict[str, Callable[[dict[str, Any]], Reply]] = {
            SEND_PATH: self._send,
            DETAILS_PATH: self._details,
        }

    # ------------------------------------------------------------------ lifecycle

    def _add_routes(self, app: web.Application) -> None:
        for path in (SEND_PATH, DETAILS_PATH, DETAILS_PATH + "/"):
            app.router.add_route("GET", path, self._handle)
            app.router.add_route("POST", path, self._handle)

    def _side_tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._reports.values())

    async def start(self) -> None:
        """Start serving on 127.0.0.1 with an OS-assigned port."""
        await super().start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def stop(self) -> None:
        """Stop serving; cancel automatic outcomes, delayed requests and pending reports."""
        await super().stop()
        self._reports.clear()

    @property
    def hash_(self) -> str:
        """The same as ``hash`` (the constructor's name for it)."""
        return self.hash

    # ------------------------------------------------------------------ test hooks

    def fail_next(
        self,
        path: str,
        body: str,
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` with ``body`` instead of processing.

        Nothing takes effect (no message is stored). ``content_type`` defaults to a guess.
        """
        reply = Reply(body, http_status, content_type or guess_content_type(body))
        self._failures.push(path, reply, times)

    def garble_next(
        self,
        path: str,
        body: str,
        http_status: int = 200,
        times: int = 1,
        content_type: str | None = None,
    ) -> None:
        """Process the next ``times`` requests to ``path`` as usual, then answer ``body``.

        Unlike :meth:`fail_next`, the request takes effect: a send queues its messages (they
        get their automatic outcomes and reports) although the answer says nothing readable.
        """
        reply = Reply(body, http_status, content_type or guess_content_type(body))
        self._garbles.push(path, reply, times)

    def delay_next(self, path: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` requests to ``path``; they still take effect afterwards."""
        self._delays.push(path, seconds, times)

    def find(self, key: str) -> Message:
        """A message by id, or the latest one sent to a number. KeyError if none."""
        if key in self.messages:
            return self.messages[key]
        for message in reversed(self.messages.values()):
            if message.to_number == key:
                return message
        raise KeyError(key)

    def set_status(self, key: str, status: str) -> Message:
        """Set a message's status (by id, or the latest to a number) and report a change.

        Any string is accepted, to test how clients take unknown statuses.
        """
        message = self.find(key)
        if message.status != status:
            message.status = status
            message.history.append(status)
            self._report(message)
        return message

    def repeat_report(self, key: str) -> None:
        """Send the current status report of a message again (a duplicate callback)."""
        message = self.find(key)
        if message.report_url is None:
            raise ValueError(f"message {message.id} has no report URL")
        self._report(message)

    def count(self, path: str) -> int:
        """Requests received for ``path`` (in-flight ones included)."""
        wanted = normalise_path(path)
        return sum(1 for request in self.requests if request.path == wanted)

    async def wait_idle(self) -> None:
        """Wait for requests in flight and report deliveries already started."""
        while self._inflight or any(not t.done() for t in self._reports.values()):
            pending = [*self._inflight, *(t for t in self._reports.values() if not t.done())]
            await asyncio.wait(pending)

    async def settle(self) -> None:
        """Also wait for pending automatic outcomes and the reports they trigger.

        Gives up with TimeoutError after ``SETTLE_LIMIT`` seconds rather than hang a test.
        """
        async with asyncio.timeout(SETTLE_LIMIT):
            while True:
                await self.wait_idle()
                if not self._timers:
                    return
                await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        path = normalise_path(request.path)
        params, malformed = await _collect_params(request)
        record = Request(
            path=path,
            method=request.method,
            params={k: v for k, v in params.items() if k != "token"},
            at=time.monotonic(),
            host=request.host,
        )
        self.requests.append(record)
        reply = await self._scripted(path, lambda: self._process(path, params, malformed))
        return respond(record, reply)

    def _process(self, path: str, params: dict[str, Any], malformed: bool) -> Reply:
        if malformed:
            return self._error(INVALID_REQUEST)
        reply = self._handlers[path](params)
        garbled = self._garbles.pop(path)
        return reply if garbled is None else garbled

    def _error(self, message: str) -> Reply:
        return Reply(json.dumps({"error": message}), self.error_http_status)

    # ------------------------------------------------------------------ endpoints

    def _send(self, params: dict[str, Any]) -> Reply:
        token = params.get("token")
        if not isinstance(token, str) or not token:
            return self._error(TOKEN_REQUIRED)
        if params.get("hash") != self.hash or token != self.token:
            return self._error(INVALID_CREDENTIALS)
        sender = params.get("fromNumber")
        if not isinstance(sender, str) or not sender.strip():
            return self._error(SENDER_REQUIRED)
        if sender.casefold() not in {s.casefold() for s in self.approved_senders}:
            return self._error(BAD_SENDER)
        text = params.get("text")
        if not isinstance(text, str) or not text:
            return self._error(TEXT_REQUIRED)
        raw = params.get("toNumber")
        numbers = [raw] if isinstance(raw, str) else raw
        if not isinstance(numbers, list) or not numbers:
            return self._error(INVALID_PHONE)
        if len(numbers) > MAX_RECIPIENTS:
            return self._error(TOO_MANY)
        if not all(isinstance(n, str) and PHONE.fullmatch(n) for n in numbers):
            return self._error(INVALID_PHONE)
        report = params.get("report")
        report_url = report if isinstance(report, str) and report else None
        answer = []
        for number in numbers:
            message = Message(
                id=str(uuid.uuid4()),
                to_number=number,
                text=text,
                sender=sender,
                report_url=report_url,
                created_at=time.monotonic(),
            )
            self.messages[message.id] = message
            self._schedule_outcome(message)
            answer.append({"id": message.id, "toNumber": number, "status": ADDED_TO_QUEUE})
        return Reply(json.dumps({"messages": answer}))

    def _details(self, params: dict[str, Any]) -> Reply:
        if params.get("hash") != self.hash:
            return self._error(INVALID_CREDENTIALS)
        sms_id = params.get("id")
        message = self.messages.get(sms_id) if isinstance(sms_id, str) else None
        if message is None:
            return self._error(MESSAGE_NOT_FOUND)
        answer: dict[str, str] = {"id": message.id, "status": message.status}
        if self.price is not None:
            answer["price"] = self.price
        if self.carrier is not None:
            answer["carrier"] = self.carrier
        return Reply(json.dumps(answer))

    # ------------------------------------------------------------------ outcomes and reports

    def _schedule_outcome(self, message: Message) -> None:
        outcome = self.auto_outcome.get(message.to_number, self.auto_outcome.get("*"))
        if outcome is None:
            return
        self._later(self.auto_after / 2, message.id, SUBMITTED)
        self._later(self.auto_after, message.id, outcome)

    def _later(self, delay: float, sms_id: str, status: str) -> None:
        self._call_later(delay, self._advance, sms_id, status)

    def _advance(self, sms_id: str, status: str) -> None:
        if self.messages[sms_id].status not in FINAL:
            self.set_status(sms_id, status)

    def _report(self, message: Message) -> None:
        if message.report_url is None or not self.send_reports:
            return
        payload = {"id": message.id, "toNumber": message.to_number, "status": message.status}
        previous = self._reports.get(message.id)
        self._reports[message.id] = asyncio.get_running_loop().create_task(
            self._deliver(message.report_url, payload, previous)
        )

    async def _deliver(
        self, url: str, payload: dict[str, str], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # reports of one message go out in order
        attempt = ReportAttempt(url=url, payload=payload, at=time.monotonic())
        self.reports_sent.append(attempt)
        if self._session is None:
            attempt.error = "fake stopped"
            return
        try:
            async with self._session.post(url, json=payload) as response:
                await response.read()
                attempt.http_status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            attempt.error = f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- module helpers


async def _collect_params(request: web.Request) -> tuple[dict[str, Any], bool]:
    """Query string merged with a JSON or form body (the body wins); True if malformed."""
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values if key == "toNumber" and len(values) > 1 else values[-1]
    if request.method != "POST" or not request.can_read_body:
        return params, False
    raw = await request.read()
    if not raw.strip():
        return params, False
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        for key in form:
            values = [v for v in form.getall(key) if isinstance(v, str)]
            if values:
                params[key] = values if key == "toNumber" and len(values) > 1 else values[-1]
        return params, False
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return params, True
    if not isinstance(data, dict):
        return params, True
    params.update(data)
    return params, False


__all__ = [
    "ADDED_TO_QUEUE",
    "BAD_SENDER",
    "DEFAULT_SENDER",
    "DELIVERED",
    "DETAILS_PATH",
    "FAILED",
    "INVALID_CREDENTIALS",
    "INVALID_PHONE",
    "MESSAGE_NOT_FOUND",
    "QUEUED",
    "SENDER_REQUIRED",
    "SEND_PATH",
    "SUBMITTED",
    "TEXT_REQUIRED",
    "TOKEN_REQUIRED",
    "TOO_MANY",
    "FakeSMSPM",
    "Message",
    "Reply",
    "ReportAttempt",
    "Request",
]
