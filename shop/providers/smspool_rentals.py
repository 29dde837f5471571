"""SMSPool rentals (numbers by the day), per `shared/upstream-docs/smspool.txt`, "Rental
endpoints".

`SMSPoolRentals` speaks every rental endpoint the doc lists (rental/retrieve_all,
purchase/rental, rental/retrieve_messages, rental/retrieve_status.php, rental/refund.php,
rental/extend.php) for one key, through `SMSPoolClient`'s transport: its HTTP client, request
budget (shared with one-time orders on the same key), key handling and redaction. Prices are
USD (SMSPool's currency) as Decimal. Parsing is pure and tested on the doc's exact strings.

Where the doc is silent we chose:

Transport
* The URLs are the doc's, `.php` included where it lists one (status, refund, extend).
* Every request is a POST form with the key in the body, like the rest of this client.
  retrieve_all's own error names its parameters as GET ones ("[GET: type, key (optional)]"),
  so `type` goes in the query string as well as in the body; the key never goes in a URL (an
  endpoint that read only GET would ignore it: it is optional there, for account prices).
* Reads retry like the other SMSPool reads, on network errors and UpstreamUnavailable answers:
  retrieve_all twice, retrieve_status and retrieve_messages once (they are polled: the next
  poll is the next retry). UnknownRental and other typed refusals are not retried.
* purchase/rental, rental/extend and rental/refund are sent once, never retried, at PURCHASE
  priority. A connect error (nothing left this machine) is UpstreamUnavailable. Only a refusal
  in words of the table below (all of them refusals the doc lists for a rental endpoint, or
  its `errors` shape "Missing or invalid param: ...") proves that nothing happened, whatever
  the HTTP status. Everything else is "outcome unknown": any other network error (a timeout
  after sending), an HTTP 5xx or 429 page, HTML, non-JSON, unknown JSON, a refusal in words we
  do not know, a success without its fields. That is PurchaseOutcomeUnknown for a purchase,
  ExtendOutcomeUnknown (a PurchaseOutcomeUnknown) for an extension, RefundOutcomeUnknown for a
  refund. The doc has no endpoint listing our rentals, so a lost purchase is not reconciled.
* A refund may be asked again: a refunded rental answers "already refunded"
  (RentalAlreadyRefunded), which means the rental is refunded, by this request or an earlier one.

Refusals (case-insensitive substrings of SMSPool's words, first match wins, the key first)
* "param: key" -> BadKey; "not have enough balance" / "insufficient balance" ->
  UpstreamNoBalance (the shop's SMSPool account, not the customer's wallet); "invalid amount of
  days" / "param: days" -> InvalidRentalDays, with the days the message lists ("available: 7 14
  30 " -> (7, 14, 30)); "no rental was found" / "param: rental_code" -> UnknownRental;
  "already have refunded" -> RentalAlreadyRefunded; "cannot refund a rental" (the doc's words
  begin "TYou") -> RentalRefundDenied (after 12 hours or after a message); "not been charged"
  -> RentalExtendFailed; "service you entered is not available" / "param: service_id" /
  "param: id" -> RentalUnavailable; "something has gone wrong" (purchase/rental's documented
  failure) -> UpstreamUnavailable. Other words on a read are UpstreamUnavailable (RateLimited
  on HTTP 429), as on the other SMSPool reads.
* The doc lists "No rental was found!" for messages and status only; we read it the same on
  extend and refund (a rental SMSPool does not know cannot be charged nor refunded).

Values
* retrieve_all `type`: 1 = extendable, 0 = not (the doc says only "whether the rental is
  extendable"). The answer's keys are the rental IDs purchase/rental takes ("The 0 represents
  the rental ID"); as purchase/rental takes no type, an ID is taken to be unique across both
  types. A JSON list (how PHP encodes keys 0..n-1) is read by position, unless a row has `ID`.
* `pricing` is a JSON string (as in the doc) or an object, days -> USD price. Days that are not
  positive whole numbers and prices that are not positive are dropped; a rental left without a
  price is skipped (it cannot be bought). `stock` (or `available`) and `short_name` are read
  when given; the doc shows neither (`stock` None: not said).
* Expiries are Unix seconds (UTC), as strings or numbers. purchase/rental's `days` falls back
  to the days asked for; `phonenumber` is digits only; an answer with a rental code and a number
  but no readable `expiry` is still a purchase (expiry None: ask retrieve_status).
* `service_id` is sent only when given (the doc: 50% off, US extendable rentals only). It is
  SMSPool's service ID (service/retrieve_all's `ID`). The doc gives the discount as "50% off"
  and says nothing of how the price is reported: retrieve_all's `pricing` is taken to be the
  full price whatever the line, a single-service line to cost exactly half of it (no rounding
  of our own upstream), and purchase/rental to report no price (its success carries none).
  An extension of a single-service line is taken to cost half of the same `pricing` too
  (rental/extend takes no `service_id`; the line keeps the one it was bought with).
* rental/extend's answer has no new expiry: ask retrieve_status.
* retrieve_status: `activeFor` has no documented unit; it is exposed raw as `active_for` (we take
  it for seconds). `available` 1 means the number can receive now (the doc: it must be 1 before
  a code is sent). A rental has ended once its `expiry` has passed (`RentalStatus.ended`).
* retrieve_messages: a message's `ID` is positional (the doc's two messages share ID 6) and
  `source` names no message, so neither is a key. Messages are deduplicated on (timestamp,
  sender, text): two identical texts from one sender in the same second count as one. They are
  returned oldest first when every timestamp reads (the doc's sample lists the newer first),
  else in SMSPool's order. A null sender is None. The timestamp ("11 May 2022 18:39:54") has no
  time zone: it is kept verbatim (it is part of the key) and read as a naive `sent_at`, with
  English month names whatever the locale.
* `poll()` reads retrieve_status, then retrieve_messages, as the doc asks ("run this endpoint
  every time before retrieving your rental messages").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shop.providers.base import (
    BadKey,
    ExtendOutcomeUnknown,
    InvalidRentalDays,
    Priority,
    ProviderError,
    PurchaseOutcomeUnknown,
    RateLimited,
    RefundOutcomeUnknown,
    RentalAlreadyRefunded,
    RentalExtendFailed,
    RentalRefundDenied,
    RentalUnavailable,
    UnknownRental,
    UpstreamNoBalance,
    UpstreamUnavailable,
)
from shop.providers.http import snippet

# The SMSPool parsing helpers are shared with the one-time-number client, not copied.
from shop.providers.smspool import (
    PARAM_ERROR,
    SMSPoolClient,
    _int,
    _is_true,
    _iso,
    _load,
    _text,
    digits,
    failure_message,
    to_decimal,
    unexpected,
)

log = logging.getLogger(__name__)

RETRIEVE_ALL = "rental/retrieve_all"
PURCHASE = "purchase/rental"
MESSAGES = "rental/retrieve_messages"
STATUS = "rental/retrieve_status.php"
REFUND = "rental/refund.php"
EXTEND = "rental/extend.php"

EXTENDABLE, NOT_EXTENDABLE = "1", "0"  # retrieve_all `type`

# Case-insensitive substrings of SMSPool's words, first match wins (the key first).
RENTAL_ERRORS: tuple[tuple[str, type[ProviderError]], ...] = (
    ("param: key", BadKey),
    ("insufficient balance", UpstreamNoBalance),
    ("not have enough balance", UpstreamNoBalance),
    ("invalid amount of days", InvalidRentalDays),
    ("param: days", InvalidRentalDays),
    ("no rental was found", UnknownRental),
    ("param: rental_code", UnknownRental),
    ("already have refunded", RentalAlreadyRefunded),
    ("cannot refund a rental", RentalRefundDenied),
    ("not been charged", RentalExtendFailed),
    ("service you entered is not available", RentalUnavailable),
    ("param: service_id", RentalUnavailable),
    ("param: id", RentalUnavailable),
    ("something has gone wrong", UpstreamUnavailable),
)

MONTHS = {
    name: number
    for number, full in enumerate(
        (
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        start=1,
    )
    for name in (full, full[:3])
} | {"sept": 9}
MESSAGE_TIME = re.compile(
    r"(\d{1,2})\s+([A-Za-z]+)\.?\s+(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})", re.ASCII
)
ISO_TIME = "%Y-%m-%d %H:%M:%S"


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RentalOffer:
    """One rental retrieve_all lists: `id` is what purchase/rental takes."""

    id: str
    country: str  # SMSPool's country name
    region: str | None
    extendable: bool
    pricing: Mapping[int, Decimal]  # days -> USD, fewest days first
    stock: int | None = None  # only if SMSPool says (the doc shows none)
    iso: str | None = None  # ISO 3166 alpha-2 if SMSPool gives `short_name`

    @property
    def days(self) -> tuple[int, ...]:
        """The periods on sale, fewest days first."""
        return tuple(sorted(self.pricing))

    def price(self, days: int) -> Decimal | None:
        """The USD price for `days`, or None if that period is not on sale."""
        return self.pricing.get(days)


@dataclass(frozen=True)
class RentalPurchase:
    rental_code: str  # the key of every later call: store it before anything else
    phone: str  # digits only
    days: int
    expiry: datetime | None  # UTC; None if the answer gave none (ask status())


@dataclass(frozen=True)
class RentalStatus:
    expiry: datetime  # UTC
    available: bool  # the number can receive now
    phone: str  # digits only
    active_for: int | None  # `activeFor`, unit undocumented (taken for seconds)

    def ended(self, now: datetime | None = None) -> bool:
        """Whether the rental's time is up at `now` (default: the current time)."""
        return self.expiry <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class RentalMessage:
    sender: str | None
    text: str  # verbatim
    timestamp: str  # SMSPool's, verbatim (no time zone)
    sent_at: datetime | None  # `timestamp` read as a naive datetime, if it reads

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a message across polls (SMSPool's IDs are positional)."""
        return (self.timestamp, self.sender or "", self.text)


@dataclass(frozen=True)
class RentalPoll:
    status: RentalStatus
    messages: tuple[RentalMessage, ...]  # every message so far, oldest first when known


@dataclass(frozen=True)
class ExtendResult:
    rental_code: str
    days: int  # the days added
    message: str  # SMSPool's words, for logs only


@dataclass(frozen=True)
class RefundResult:
    rental_code: str
    message: str  # SMSPool's words, for logs only


# ---------------------------------------------------------------------------------- parsing


def known_rental_error(message: str) -> type[ProviderError] | None:
    lowered = message.lower()
    for needle, error in RENTAL_ERRORS:
        if needle in lowered:
            return error
    return None


def available_days(message: str) -> tuple[int, ...]:
    """`... The following days are available: 7 14 30 ` -> (7, 14, 30); () if none named."""
    found = re.search(r"available:\s*([\d\s]*)", message, re.IGNORECASE)
    return tuple(int(day) for day in found.group(1).split()) if found else ()


def rental_error(message: str, http_status: int = 200) -> ProviderError:
    """The typed error for SMSPool's words on a rental endpoint (tags already stripped)."""
    error = known_rental_error(message)
    detail = f"SMSPool (HTTP {http_status}): {snippet(message) or 'refused without a message'}"
    if error is InvalidRentalDays:
        return InvalidRentalDays(detail, available_days(message))
    if error is None:
        error = RateLimited if http_status == 429 else UpstreamUnavailable
    return error(detail)


def _read_answer(body: str, http_status: int) -> Any:
    """The JSON of a read that is not a failure; raise the typed error for a failure."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        raise rental_error(message, http_status)
    if data is None:
        raise unexpected(body, http_status)
    return data


def _write_answer(
    body: str, http_status: int, what: str, unknown: type[ProviderError]
) -> dict[str, Any]:
    """The JSON object of a write's success; the typed error of a refusal that proves nothing
    happened; `unknown` for every other answer."""
    data = _load(body)
    message = failure_message(data, http_status)
    if message is not None:
        if known_rental_error(message) is not None or PARAM_ERROR in message.lower():
            raise rental_error(message, http_status)
        detail = snippet(message) or "refused without a message"
        raise unknown(f"SMSPool {what} (HTTP {http_status}): {detail}")
    if isinstance(data, dict) and _is_true(data.get("success")):
        if http_status >= 400:
            log.warning("SMSPool %s succeeded with HTTP %s", what, http_status)
        return data
    raise unknown(f"unclear SMSPool {what} answer (HTTP {http_status}): {snippet(body)!r}")


def _success(data: Any, body: str, http_status: int) -> dict[str, Any]:
    """A read's `{"success":1,...}` object."""
    if not (isinstance(data, dict) and _is_true(data.get("success"))):
        raise unexpected(body, http_status)
    return data


def _epoch(value: object) -> datetime | None:
    seconds = _int(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_pricing(value: object) -> dict[int, Decimal]:
    """`"{\\"7\\":18,\\"14\\":25,\\"30\\":30}"` (or that object) -> {7: 18, 14: 25, 30: 30}."""
    table = _load(value) if isinstance(value, str) else value
    if not isinstance(table, dict):
        return {}
    pricing = {}
    for raw_days, raw_price in table.items():
        days, price = _int(raw_days), to_decimal(raw_price)
        if days is not None and days > 0 and price is not None and price > 0:
            pricing[days] = price
    return dict(sorted(pricing.items()))


def parse_offers(body: str, http_status: int = 200, *, extendable: bool) -> list[RentalOffer]:
    """`{"0":{"name":"United States","region":"Americas","pricing":"{\\"7\\":18,...}"}}`,
    the answer to retrieve_all with `type` 1 (`extendable`) or 0."""
    data = _read_answer(body, http_status)
    if isinstance(data, dict):
        rows = [(key, row) for key, row in data.items()]
    elif isinstance(data, list):
        rows = [(str(position), row) for position, row in enumerate(data)]
    else:
        raise unexpected(body, http_status)
    if not all(isinstance(row, dict) for _, row in rows):
        raise unexpected(body, http_status)
    offers = []
    for key, row in rows:
        rental_id = key if isinstance(data, dict) else (_text(row.get("ID")) or key)
        country, pricing = _text(row.get("name")), parse_pricing(row.get("pricing"))
        if not rental_id.strip() or country is None or not pricing:
            log.warning("Skipping a malformed SMSPool rental %s: %r", key, snippet(str(row)))
            continue
        stock = _int(row.get("stock"))
        offers.append(
            RentalOffer(
                id=rental_id.strip(),
                country=country,
                region=_text(row.get("region")),
                extendable=extendable,
                pricing=pricing,
                stock=stock if stock is not None else _int(row.get("available")),
                iso=_iso(row.get("short_name")),
            )
        )
    return offers


def parse_purchase(body: str, http_status: int = 200, *, days: int) -> RentalPurchase:
    """`{"success":1, "message": "", "phonenumber": "123456789", "days": 30,
    "rental_code":"ABCDEFG", "expiry":"1653758381"}` (`days`: the days asked for), a refusal
    that proves nothing was bought (its typed error), or PurchaseOutcomeUnknown."""
    data = _write_answer(body, http_status, PURCHASE, PurchaseOutcomeUnknown)
    rental_code, phone = _text(data.get("rental_code")), digits(data.get("phonenumber") or "")
    if rental_code is None or not phone:
        raise PurchaseOutcomeUnknown(
            f"SMSPool {PURCHASE} success without a rental (HTTP {http_status}): {snippet(body)!r}"
        )
    answered_days = _int(data.get("days"))
    return RentalPurchase(
        rental_code=rental_code,
        phone=phone,
        days=answered_days if answered_days is not None and answered_days > 0 else days,
        expiry=_epoch(data.get("expiry")),
    )


def parse_message_time(text: str) -> datetime | None:
    """`11 May 2022 18:39:54` (or `2022-05-11 18:39:54`) as a naive datetime, or None."""
    found = MESSAGE_TIME.fullmatch(text.strip())
    try:
        if found is None:
            return datetime.strptime(text.strip(), ISO_TIME)
        day, month_name, year, hour, minute, second = found.groups()
        month = MONTHS.get(month_name.lower())
        if month is None:
            return None
        return datetime(int(year), month, int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None


def _message(row: dict[str, Any]) -> RentalMessage | None:
    text, raw_time = row.get("message"), row.get("timestamp")
    if not isinstance(text, str):
        return None
    timestamp = raw_time.strip() if isinstance(raw_time, str) else _text(raw_time) or ""
    return RentalMessage(_text(row.get("sender")), text, timestamp, parse_message_time(timestamp))


def parse_messages(body: str, http_status: int = 200) -> list[RentalMessage]:
    """`{"success":1,"messages":{"0":{"ID":6,"sender":null,"message":"Message 1",
    "timestamp":"11 May 2022 18:39:54"},...},"source":"6"}`: deduplicated on (timestamp,
    sender, text), oldest first when every timestamp reads."""
    data = _success(_read_answer(body, http_status), body, http_status)
    rows = data.get("messages")
    if isinstance(rows, dict):
        rows = list(rows.values())
    if not isinstance(rows, list):
        raise unexpected(body, http_status)
    seen: set[tuple[str, str, str]] = set()
    messages = []
    for row in rows:
        message = _message(row) if isinstance(row, dict) else None
        if message is None:
            log.warning("Skipping a malformed SMSPool rental message %r", snippet(str(row)))
            continue
        if message.key not in seen:
            seen.add(message.key)
            messages.append(message)
    times = [message.sent_at for message in messages]
    if all(time is not None for time in times):
        messages.sort(key=lambda message: message.sent_at or datetime.min)
    return messages


def parse_status(body: str, http_status: int = 200) -> RentalStatus:
    """`{"success":1,"status":{"expiry":1654495533,"available":1,"phonenumber":"123456789",
    "activeFor":90}}`."""
    data = _success(_read_answer(body, http_status), body, http_status)
    status = data.get("status")
    expiry = _epoch(status.get("expiry")) if isinstance(status, dict) else None
    if not isinstance(status, dict) or expiry is None:
        raise unexpected(body, http_status)
    return RentalStatus(
        expiry=expiry,
        available=_is_true(status.get("available")),
        phone=digits(status.get("phonenumber") or ""),
        active_for=_int(status.get("activeFor")),
    )


def parse_extend(body: str, http_status: int = 200) -> str:
    """`{"success":1,"message":"Your rental has been succesfully extended!"}` -> its words;
    a refusal that proves nothing was charged (its typed error), or ExtendOutcomeUnknown."""
    data = _write_answer(body, http_status, EXTEND, ExtendOutcomeUnknown)
    return _text(data.get("message")) or ""


def parse_refund(body: str, http_status: int = 200) -> str:
    """`{"success":1,"message":"Your rental has been refunded!"}` -> its words; a refusal
    (its typed error), or RefundOutcomeUnknown."""
    data = _write_answer(body, http_status, REFUND, RefundOutcomeUnknown)
    return _text(data.get("message")) or ""


# ---------------------------------------------------------------------------------- client


def _required(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value.strip()


def _positive_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise ValueError(f"days must be a positive whole number, not {days!r}")
    return days


class SMSPoolRentals:
    """SMSPool's rental endpoints for one key, through that key's `SMSPoolClient`.

    Reads retry; purchase(), extend() and refund() are sent once and raise an
    "outcome unknown" error when the answer proves nothing (see the module docstring).
    """

    currency = "USD"

    def __init__(self, client: SMSPoolClient) -> None:
        self._client = client

    async def offers(
        self, extendable: bool, priority: Priority = Priority.INTERACTIVE
    ) -> list[RentalOffer]:
        """The rentals on sale of one kind (extendable or not), with their price tables."""
        kind = EXTENDABLE if extendable else NOT_EXTENDABLE

        def parse(body: str, http_status: int) -> list[RentalOffer]:
            return parse_offers(body, http_status, extendable=extendable)

        return await self._client.read(
            RETRIEVE_ALL, parse, priority, {"type": kind}, query={"type": kind}
        )

    async def purchase(
        self, rental_id: str, days: int, service_id: str | None = None
    ) -> RentalPurchase:
        """Rent the number of offer `rental_id` for `days` (a period its pricing lists),
        optionally for one service only (`service_id`: US extendable rentals, 50% off).

        Never retried. Raises UpstreamNoBalance, InvalidRentalDays, RentalUnavailable,
        UnknownRental or BadKey when SMSPool proves nothing was bought, UpstreamUnavailable
        when nothing was sent, and PurchaseOutcomeUnknown for every other answer.
        """
        params = {"id": _required(rental_id, "rental_id"), "days": str(_positive_days(days))}
        if service_id is not None:
            params["service_id"] = _required(service_id, "service_id")

        def parse(body: str, http_status: int) -> RentalPurchase:
            return parse_purchase(body, http_status, days=days)

        return await self._client.send_once(PURCHASE, parse, params, lost=PurchaseOutcomeUnknown)

    async def status(self, rental_code: str, priority: Priority = Priority.POLL) -> RentalStatus:
        """The rental's expiry, availability and number (UnknownRental if SMSPool has none)."""
        params = {"rental_code": _required(rental_code, "rental_code")}
        return await self._client.read(STATUS, parse_status, priority, params, retries=1)

    async def messages(
        self, rental_code: str, priority: Priority = Priority.POLL
    ) -> list[RentalMessage]:
        """Every message the number has received so far, deduplicated, oldest first when the
        timestamps read. The doc asks for status() first: poll() does both."""
        params = {"rental_code": _required(rental_code, "rental_code")}
        return await self._client.read(MESSAGES, parse_messages, priority, params, retries=1)

    async def poll(self, rental_code: str, priority: Priority = Priority.POLL) -> RentalPoll:
        """status(), then messages(), in the order the doc asks for: two requests."""
        status = await self.status(rental_code, priority)
        messages = await self.messages(rental_code, priority)
        return RentalPoll(status, tuple(messages))

    async def extend(self, rental_code: str, days: int) -> ExtendResult:
        """Add `days` (a period the rental's pricing lists) to the rental. Never retried.

        Raises RentalExtendFailed, UpstreamNoBalance, InvalidRentalDays, UnknownRental or
        BadKey when SMSPool proves nothing was charged, UpstreamUnavailable when nothing was
        sent, and ExtendOutcomeUnknown (a PurchaseOutcomeUnknown) for every other answer.
        The new expiry is status()'s.
        """
        code = _required(rental_code, "rental_code")
        params = {"rental_code": code, "days": str(_positive_days(days))}
        message = await self._client.send_once(
            EXTEND, parse_extend, params, lost=ExtendOutcomeUnknown
        )
        return ExtendResult(code, days, message)

    async def refund(self, rental_code: str) -> RefundResult:
        """Refund the rental upstream (allowed within 12 hours and before the first message).

        Sent once. Raises RentalRefundDenied, RentalAlreadyRefunded, UnknownRental or BadKey
        on SMSPool's refusals, UpstreamUnavailable when nothing was sent, and
        RefundOutcomeUnknown for every other answer (asking again is safe).
        """
        code = _required(rental_code, "rental_code")
        message = await self._client.send_once(
            REFUND, parse_refund, {"rental_code": code}, lost=RefundOutcomeUnknown
        )
        return RefundResult(code, message)


__all__ = [
    "ExtendResult",
    "RefundResult",
    "RentalMessage",
    "RentalOffer",
    "RentalPoll",
    "RentalPurchase",
    "RentalStatus",
    "SMSPoolRentals",
    "parse_extend",
    "parse_messages",
    "parse_offers",
    "parse_purchase",
    "parse_refund",
    "parse_status",
]
