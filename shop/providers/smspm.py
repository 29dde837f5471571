"""SMSPM outbound SMS, per `shared/upstream-docs/smspm.txt` (the only source of truth).

One JSON POST to the base URL sends one text to up to 100 recipients; `/smsdetails` tells one
message's status, price (EUR) and carrier; an optional `report` URL gets status callbacks.

Where the doc is silent we chose:

* Bodies are judged before HTTP status codes (the doc gives none). A body with a `messages`
  list is a success whatever the status code and even if it also has an `error` (the listed
  messages were queued and cost money; the mismatch is logged).
* A send fails only on an answer that proves it: one of the doc's four error strings
  (matched ignoring case and surrounding space), whatever the status code. Any other answer to
  a send (HTML, a 5xx or 524 page, non-JSON, other JSON, an HTTP 429 the doc does not
  mention, an error in words the doc does not use, e.g. bad credentials) proves nothing:
  SMSPM may have sent the messages, so it is `SmsOutcomeUnknown`, like a lost answer. On
  `/smsdetails` (a read) the same answers are `SmsUnavailable`, or `SmsRateLimited` on 429.
* A success may list fewer recipients than asked: it is returned as is and the caller refunds
  the missing ones. A listed entry without an `id` or a `toNumber` was queued but cannot be
  followed: the send is `SmsOutcomeUnknown`, carrying the entries we can follow (`accepted`).
  `toNumber` is returned as digits without "+" or spaces.
* Sending is never retried. A connect error (nothing reached SMSPM) is `SmsUnavailable`; any
  other network error once the request may have left (read/write timeout, dropped connection)
  is `SmsOutcomeUnknown`: the messages may have gone out. Reads (`/smsdetails`) retry on
  network errors and on HTTP 5xx/429 without a JSON answer.
* Prices are read as Decimal (JSON numbers too, never through float). A price that is absent,
  empty, negative or not a number is `None`; an unknown status is `SmsStatus.UNKNOWN`.
* The token (and hash) never appear in exception messages: details are redacted.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import httpx

from shop.providers.base import (
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    UpstreamUnavailable,
)
from shop.providers.budget import Budget
from shop.providers.http import Call, Reply, UpstreamHTTP, snippet, unexpected

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 100
DETAILS_PATH = "/smsdetails"

_T = TypeVar("_T")


# ---------------------------------------------------------------------------------- errors


class SmsError(ProviderError):
    """Anything SMSPM refused or did not answer. Users only ever see `user_message`."""

    user_message = "SMS sending is unavailable right now. Please try again later."


class SmsConfigError(SmsError):
    """The shop's SMSPM settings are wrong (token, sender): not the customer's fault.

    Worth an admin alert; the customer only hears that sending is unavailable.
    """

    user_message = "Sending is temporarily unavailable."


class SmsTokenRequired(SmsConfigError):
    """SMSPM saw no token."""


class SmsSenderRequired(SmsConfigError):
    """No sender ID was sent (`fromNumber`)."""


class SmsBadSender(SmsConfigError):
    """The sender ID is not approved on the SMSPM account (User Account -> Sender Request)."""


class SmsInvalidNumber(SmsError):
    """SMSPM refused a recipient, and with it the whole request."""

    user_message = (
        "The SMS service refused a phone number. Write each number with its country code, "
        "e.g. +372 5678 9045, and try again."
    )


class SmsUnavailable(SmsError, UpstreamUnavailable):
    """Nothing reached SMSPM (connection refused), or a read (`/smsdetails`) got HTTP 5xx, an
    HTML page, an unknown error or an unreadable answer."""

    user_message = "SMS sending is unavailable right now. Please try again later."


class SmsRateLimited(SmsUnavailable, RateLimited):
    """HTTP 429 without an answer we understand."""


class SmsOutcomeUnknown(SmsError, PurchaseOutcomeUnknown):
    """The send request may have reached SMSPM, and no answer came or the answer proves
    nothing: messages may have gone out. `accepted` holds the messages the answer did list in
    a form we can follow (usually none).

    Never retried, since a retry could send everything twice.
    """

    user_message = (
        "The SMS service did not give a clear answer, so we cannot tell whether your message "
        "went out."
    )

    def __init__(self, detail: str = "", accepted: Sequence[SentSms] = ()) -> None:
        super().__init__(detail)
        self.accepted = tuple(accepted)


# The doc's "Common Issues" strings, compared case-insensitively.
ERRORS: dict[str, type[SmsError]] = {
    "token is required": SmsTokenRequired,
    "invalid phone number": SmsInvalidNumber,
    "sender number is required": SmsSenderRequired,
    "bad sender": SmsBadSender,
}


# ---------------------------------------------------------------------------------- results


class SmsStatus(enum.Enum):
    """The doc's status values, plus UNKNOWN for anything else SMSPM might say."""

    QUEUED = "queued"  # waiting in SMSPM's queue
    SUBMITTED = "submitted"  # handed to the carrier
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> SmsStatus:
        """`"Delivered"` -> DELIVERED; an unknown or non-string value -> UNKNOWN."""
        if isinstance(value, str):
            try:
                status = cls(value.strip().lower())
            except ValueError:
                return cls.UNKNOWN
            return status
        return cls.UNKNOWN

    @property
    def is_final(self) -> bool:
        return self in (SmsStatus.DELIVERED, SmsStatus.FAILED)


@dataclass(frozen=True)
class SentSms:
    id: str
    to_number: str  # digits, no "+"
    status: str  # SMSPM's words, "Added to queue" in the doc


@dataclass(frozen=True)
class SmsDetails:
    status: SmsStatus
    price: Decimal | None  # EUR
    carrier: str | None


@dataclass(frozen=True)
class SmsReport:
    id: str
    status: SmsStatus
    to_number: str | None


# ---------------------------------------------------------------------------------- parsing


def _load(body: str) -> Any:
    """JSON with exact decimals, or None if the body is not JSON."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return None


def _unexpected(body: str, http_status: int) -> UpstreamUnavailable:
    return unexpected("SMSPM", body, http_status, SmsUnavailable, SmsRateLimited)


def error_for(message: object) -> SmsError:
    """The typed error for an `{"error": ...}` answer."""
    if isinstance(message, str):
        known = ERRORS.get(message.strip().lower())
        if known is not None:
            return known(f"SMSPM: {message.strip()}")
    return SmsUnavailable(f"SMSPM error: {snippet(str(message))!r}")


def _digits(value: object) -> str:
    return re.sub(r"[\s+]", "", str(value))


def _text(value: object) -> str | None:
    """A non-empty id-like value as a string (numbers too), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None


def _sent(item: object) -> SentSms | None:
    if not isinstance(item, dict):
        return None
    sms_id, number = _text(item.get("id")), _text(item.get("toNumber"))
    if sms_id is None or number is None:
        return None
    status = item.get("status")
    return SentSms(sms_id, _digits(number), "" if status is None else str(status))


def parse_send(body: str, http_status: int) -> list[SentSms]:
    """`{"messages": [{"id", "toNumber", "status": "Added to queue"}]}`; one of the doc's
    error strings is its typed error; any other answer is `SmsOutcomeUnknown`."""
    data = _load(body)
    if isinstance(data, dict):
        messages = data.get("messages")
        if isinstance(messages, list):
            if "error" in data:
                log.warning("SMSPM listed queued messages and an error; trusting the messages")
            sent = [sms for sms in map(_sent, messages) if sms is not None]
            if len(sent) < len(messages):
                raise SmsOutcomeUnknown(
                    f"SMSPM listed {len(messages) - len(sent)} queued message(s) without id "
                    f"or toNumber (HTTP {http_status})",
                    accepted=sent,
                )
            return sent
        error = data.get("error")
        if isinstance(error, str) and error.strip().lower() in ERRORS:
            raise error_for(error)
    raise SmsOutcomeUnknown(f"unclear SMSPM send answer (HTTP {http_status}): {snippet(body)!r}")


def _price(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        price = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        log.warning("Ignoring an unreadable SMSPM price %r", snippet(str(value)))
        return None
    if not price.is_finite() or price < 0:
        return None
    return price


def parse_details(body: str, http_status: int = 200) -> SmsDetails:
    """`/smsdetails`: `{"status": "delivered", "price": 0.045, "carrier": "Telia"}`."""
    data = _load(body)
    if isinstance(data, dict):
        if "error" in data:
            raise error_for(data["error"])
        if isinstance(data.get("status"), str):
            carrier = data.get("carrier")
            carrier = carrier.strip() if isinstance(carrier, str) else None
            return SmsDetails(
                status=SmsStatus.parse(data["status"]),
                price=_price(data.get("price")),
                carrier=carrier or None,
            )
    raise _unexpected(body, http_status)


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


REPORT_ID_KEYS = ("id", "smsid", "messageid")


def parse_report(payload: Mapping[str, Any]) -> SmsReport:
    """One delivery-report callback, from JSON, a form or a query string.

    The doc only says SMSPM "will automatically notify your URL when the SMS status changes"; it
    does not define the body. We accept the message id as `id`, `smsId` or `messageId` (first
    found in that order), the `status` with the doc's values in any case (anything else is
    `SmsStatus.UNKNOWN`), and an optional `toNumber`. Keys match whatever their case, with
    `_` and `-` ignored (`SMS_ID`, `message-id`, `tonumber`). Other fields are ignored. A
    payload without a non-empty id or status raises ValueError.
    """
    fields = {_key(name): value for name, value in payload.items()}
    sms_id = next(
        (text for key in REPORT_ID_KEYS if (text := _text(fields.get(key))) is not None), None
    )
    if sms_id is None:
        raise ValueError("delivery report without a message id")
    status = fields.get("status")
    if not isinstance(status, str) or not status.strip():
        raise ValueError("delivery report without a status")
    number = _text(fields.get("tonumber"))
    return SmsReport(
        id=sms_id,
        status=SmsStatus.parse(status),
        to_number=_digits(number) if number is not None else None,
    )


# ---------------------------------------------------------------------------------- client


class SMSPMClient:
    """One SMSPM account (hash + token), optionally within a request budget."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        hash_: str,
        token: str,
        budget: Budget | None = None,
        retry_delays: tuple[float, ...] = (0.5,),
    ) -> None:
        self._http = UpstreamHTTP(
            http,
            "SMSPM",
            budget=budget,
            secrets=[token, hash_],
            retry_delays=retry_delays,
            unavailable=SmsUnavailable,
        )
        self._base_url = base_url
        self._details_url = base_url.rstrip("/") + DETAILS_PATH
        self._hash = hash_
        self._token = token
        self.budget = budget

    async def send(
        self, to_numbers: list[str], text: str, sender: str, report_url: str | None
    ) -> list[SentSms]:
        """Send `text` to up to 100 numbers (digits, no "+") in ONE request, never retried.

        Returns what SMSPM accepted, which may be fewer than asked. Raises a typed SmsError;
        `SmsOutcomeUnknown` when the request may have gone out without an answer.
        """
        if not to_numbers:
            raise ValueError("no recipients")
        if len(to_numbers) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients per request")
        payload: dict[str, Any] = {
            "hash": self._hash,
            "token": self._token,
            "toNumber": to_numbers[0] if len(to_numbers) == 1 else list(to_numbers),
            "text": text,
            "fromNumber": sender,
        }
        if report_url:
            payload["report"] = report_url
        call = Call("send", "POST", self._base_url, json=payload)
        return await self._http.once(call, parse_send, lost=SmsOutcomeUnknown)

    async def details(self, sms_id: str, priority: Priority = Priority.POLL) -> SmsDetails:
        """One message's status, price (EUR) and carrier. Retried on network errors."""
        payload = {"id": sms_id, "hash": self._hash}
        call = Call("smsdetails", "POST", self._details_url, json=payload)
        return await self._http.read(
            call, parse_details, priority=priority, retry_if=_retry_details
        )


def _retry_details(error: Exception, reply: Reply | None) -> bool:
    """/smsdetails is asked again after a network error, or an HTTP 5xx or 429 without a
    JSON answer; an answer SMSPM did write is final."""
    if reply is None:
        return isinstance(error, SmsUnavailable)
    transient = reply.status >= 500 or reply.status == 429
    return transient and not isinstance(_load(reply.text), dict)
