"""SpotSMS virtual numbers, per `shared/upstream-docs/spotsms.txt` (the only source of truth).

`SpotSMSClient` speaks the protocol for one API key: GET `api-data.php?action=...&apikey=...`,
every answer a JSON object with a numeric `code` (200/401/402/404/500). `SpotSMSRoute` is the
one sellable route of that account.

Where the doc is silent we chose:

* The body decides first, then the HTTP status: a JSON object with a numeric `code` (an int or
  a string of digits) is judged by that code whatever the status. Without one, HTTP 429 is
  `RateLimited` and anything else (HTML, non-JSON, other JSON, a 5xx page) is
  `UpstreamUnavailable`. `code` 429 in a JSON body is `RateLimited` too.
* Codes: 401 `BadKey`, 402 `UpstreamNoBalance`, 500 and any code not in the doc
  `UpstreamUnavailable`, on every action. 404 depends on the action: `NoNumbers` for
  `getNumber` and `countries`, "no SMS yet" (WAITING) for `getMsg`, `NoActivation` for
  `cancelRsActivation`, and `UpstreamUnavailable` for `services` and `balance` (an upstream
  that lists no services is broken; answering [] would wipe the route's catalog).
  `msg` fields only ever reach exception details (logs), never users.
* `cancelRsActivation`'s answer is not documented: `code` 200 is success, 404 `NoActivation`,
  anything else as above.
* Prices and the balance are read as Decimal (strings as in the doc, JSON numbers too, never
  through float). The doc gives no currency; we take it to be USD.
* A service's cost is its `price`; `operators` are ignored (the number actually used is
  recorded through `pidUsed`). A country's stock is its `count` (missing or unreadable: 0).
* `getNumber` is never retried; it cannot enforce `max_cost` (the order service checks a
  fresh `price()` first). Only the doc's refusals prove that nothing was bought: `code` 401
  (`BadKey`), 402 (`UpstreamNoBalance`) and 404 (`NoNumbers`), whatever the HTTP status. Every
  other answer is `PurchaseOutcomeUnknown`: `code` 500 ("Server error" says nothing about
  whether a number was taken), an undocumented code (429 included), an HTTP 5xx or 524 page,
  HTML, an unreadable body, a `code` 200 answer without a phone number or `rsId` (a number was
  bought that we cannot follow), and any network error once the request may have left. A
  connect error is `UpstreamUnavailable` (nothing was sent).
* Reconciliation: SpotSMS has no list of active numbers and takes no reference of ours (the
  doc's getMsg and cancelRsActivation need the `rsId` we never got), so a lost purchase cannot
  be looked for: the order is refunded, flagged and the owners alerted, and they settle it from
  the SpotSMS dashboard.
* Prices: a service priced at 0 (or below) is not for sale: it has no offers and no price
  (the shop never sells a number for nothing).
* `getMsg` needs the phone, the service id and `rsId`, but a route's `status()` only gets the
  activation id, so the activation id is all three: `"{rsId}|{phone digits}|{pidUsed}"`
  (restart-safe, no memory). `pn` is sent with its "+" as in the doc's cURL example, `pid` is
  `pidUsed` (the requested service when the answer has none). A malformed id is
  `NoActivation` without a request.
* `getMsg` `data`: a short token (no spaces, at most 12 characters) is the code itself; a
  longer text is kept as `text` and its code is the first run of 4-8 digits (or "123-456" /
  "123 456", joined); a text without such a run is its own code so it still reaches the
  customer. 404 (or 200 with an empty `data`) is WAITING whatever its `msg`, so a number
  SpotSMS cancelled by itself is never reported as CANCELLED: the order's deadline handles it.
* Reads (`services`, `countries`, `balance`) are retried on network errors, 429, 500 and
  unreadable answers; `getNumber`, `getMsg` (the poller asks again anyway) and
  `cancelRsActivation` are not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import pycountry

from shop.countries import resolve
from shop.providers.base import (
    Activation,
    ActivationStatus,
    BadKey,
    BadStatus,
    CountryRef,
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
from shop.providers.http import Call, UpstreamHTTP, snippet, unexpected

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://spotsms.com/api-data.php"
PRICE_MAX_AGE = 600.0  # seconds a cached service price list stays good for offers()
ID_SEPARATOR = "|"
SHORT_CODE_MAX = 12

_CODE_IN_TEXT = re.compile(r"(?<!\d)(\d{3}[- ]\d{3}|\d{4,8})(?!\d)")


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SpotService:
    id: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class SpotCountry:
    code: str  # ISO alpha-2, lower-case in the doc ("us")
    name: str
    count: int


@dataclass(frozen=True)
class ActivationRef:
    """What `getMsg` needs, packed into one activation id."""

    rs_id: str
    phone: str  # digits, no "+"
    pid: str

    def encode(self) -> str:
        return ID_SEPARATOR.join((self.rs_id, self.phone, self.pid))

    @classmethod
    def decode(cls, activation_id: str) -> ActivationRef:
        """`"{rsId}|{digits}|{pid}"`; an `rsId` may itself contain "|". Else NoActivation."""
        parts = activation_id.rsplit(ID_SEPARATOR, 2)
        if len(parts) != 3 or not all(parts) or not parts[1].isdigit():
            raise NoActivation(f"malformed SpotSMS activation id {activation_id[:60]!r}")
        return cls(rs_id=parts[0], phone=parts[1], pid=parts[2])


# ---------------------------------------------------------------------------------- parsing


def _detail(answer: Mapping[str, Any]) -> str:
    """The upstream's own words, for logs only."""
    return snippet(str(answer.get("msg") or answer.get("message") or ""))


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _text(value: object) -> str | None:
    """A non-empty string or integer as a stripped string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value).strip() or None
    return None


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def parse_envelope(body: str, http_status: int = 200) -> dict[str, Any]:
    """The JSON answer with a numeric `code`; 200 and 404 are returned, the rest raise."""
    try:
        data = json.loads(body, parse_float=Decimal)
    except ValueError:
        data = None
    code = _code(data.get("code")) if isinstance(data, dict) else None
    if not isinstance(data, dict) or code is None:
        raise unexpected("SpotSMS", body, http_status)
    data["code"] = code
    if code in (200, 404):
        return data
    detail = f"SpotSMS code {code} (HTTP {http_status}): {_detail(data)!r}"
    if code == 401:
        raise BadKey(detail)
    if code == 402:
        raise UpstreamNoBalance(detail)
    if code == 429:
        raise RateLimited(detail)
    raise UpstreamUnavailable(detail)


def _unexpected(action: str, answer: Mapping[str, Any]) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"unexpected SpotSMS {action} answer: {snippet(str(answer))!r}")


def services_from(answer: Mapping[str, Any]) -> list[SpotService]:
    """`{"code": 200, "data": [{"id": "0003", "name": "Microsoft", "price": "0.0882"}]}`."""
    if answer["code"] != 200 or not isinstance(answer.get("data"), list):
        raise _unexpected("services", answer)
    services = []
    for item in answer["data"]:
        if not isinstance(item, dict):
            continue
        service_id, price = _text(item.get("id")), _decimal(item.get("price"))
        if service_id is None or price is None or price < 0:
            log.warning("Skipping a malformed SpotSMS service %r", snippet(str(item)))
            continue
        services.append(SpotService(service_id, _text(item.get("name")) or service_id, price))
    return services


def countries_from(answer: Mapping[str, Any]) -> list[SpotCountry]:
    """`{"code": 200, "data": [{"code": "us", "name": "United States", "count": 150}]}`.

    404 (no country for this service) is NoNumbers.
    """
    if answer["code"] == 404:
        raise NoNumbers(f"SpotSMS countries: {_detail(answer)!r}")
    if not isinstance(answer.get("data"), list):
        raise _unexpected("countries", answer)
    countries = []
    for item in answer["data"]:
        if not isinstance(item, dict) or _text(item.get("code")) is None:
            continue
        code = str(_text(item.get("code"))).lower()
        count = _decimal(item.get("count"))
        stock = int(count) if count is not None and count > 0 else 0
        countries.append(SpotCountry(code, _text(item.get("name")) or code.upper(), stock))
    return countries


def digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def number_from(answer: Mapping[str, Any], pid: str) -> Activation:
    """`{"code": 200, "data": "+12025551234", "rsId": "...", "pidUsed": "0003"}`.

    404 is NoNumbers; a success we cannot follow is PurchaseOutcomeUnknown.
    """
    if answer["code"] == 404:
        raise NoNumbers(f"SpotSMS getNumber: {_detail(answer)!r}")
    phone = digits(_text(answer.get("data")) or "")
    rs_id = _text(answer.get("rsId"))
    pid_used = _text(answer.get("pidUsed")) or pid
    if not phone or rs_id is None or ID_SEPARATOR in pid_used:
        raise PurchaseOutcomeUnknown(
            f"SpotSMS getNumber succeeded without a usable number: {snippet(str(answer))!r}"
        )
    return Activation(ActivationRef(rs_id, phone, pid_used).encode(), phone)


def parse_purchase(body: str, http_status: int, pid: str) -> Activation:
    """getNumber's answer: a number, a documented refusal (`code` 401, 402, 404), or
    PurchaseOutcomeUnknown for anything that does not prove the purchase failed."""
    try:
        answer = parse_envelope(body, http_status)
    except (BadKey, UpstreamNoBalance):
        raise
    except ProviderError as exc:
        raise PurchaseOutcomeUnknown(f"unclear SpotSMS getNumber answer: {exc}") from None
    return number_from(answer, pid)


def code_in(text: str) -> str:
    """The code in an SMS text: the first 4-8 digit run ("123-456" joined), else the text."""
    match = _CODE_IN_TEXT.search(text)
    return digits(match.group(1)) if match else text


def sms_from(answer: Mapping[str, Any]) -> ActivationStatus:
    """`{"code": 200, "data": "123456"}` is a code; `{"code": 404, ...}` is "no SMS yet"."""
    if answer["code"] == 404:
        return ActivationStatus(StatusKind.WAITING)
    data = _text(answer.get("data"))
    if data is None:
        return ActivationStatus(StatusKind.WAITING)
    if len(data) <= SHORT_CODE_MAX and not any(ch.isspace() for ch in data):
        return ActivationStatus(StatusKind.CODE, code=data)
    return ActivationStatus(StatusKind.CODE, code=code_in(data), text=data)


def cancel_from(answer: Mapping[str, Any]) -> None:
    """200 is cancelled; 404 is NoActivation (the answer is not documented)."""
    if answer["code"] == 404:
        raise NoActivation(f"SpotSMS cancelRsActivation: {_detail(answer)!r}")


def balance_from(answer: Mapping[str, Any]) -> Decimal:
    """`{"code": 200, "balance": "49.95"}`."""
    balance = _decimal(answer.get("balance")) if answer["code"] == 200 else None
    if balance is None:
        raise _unexpected("balance", answer)
    return balance


# ---------------------------------------------------------------------------------- client


class SpotSMSClient:
    """The SpotSMS endpoint for one API key, within its request budget (if any)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        budget: Budget | None = None,
        retry_delays: tuple[float, ...] = (0.5, 1.5),
    ) -> None:
        if not api_key:
            raise ValueError("SpotSMS needs an API key")
        self._http = UpstreamHTTP(
            http, "SpotSMS", budget=budget, secrets=[api_key], retry_delays=retry_delays
        )
        self._base_url = base_url
        self._api_key = api_key
        self.budget = budget

    def _call(self, action: str, params: Mapping[str, str]) -> Call:
        query = {"action": action, **params, "apikey": self._api_key}
        return Call(action, "GET", self._base_url, params=query)

    async def call(
        self, action: str, priority: Priority, retries: int = 0, **params: str
    ) -> dict[str, Any]:
        """One request judged by its `code`: 200/404 answers are returned, the rest raise.

        Reads may be retried on UpstreamUnavailable (network, 429, 500, unreadable), never
        a purchase.
        """
        call = self._call(action, params)
        return await self._http.read(call, parse_envelope, priority=priority, retries=retries)

    async def services(self, priority: Priority, retries: int = 2) -> list[SpotService]:
        return services_from(await self.call("services", priority, retries))

    async def countries(self, pid: str, priority: Priority, retries: int = 2) -> list[SpotCountry]:
        """Countries selling `pid`; NoNumbers when none does."""
        return countries_from(await self.call("countries", priority, retries, pid=pid))

    async def get_number(self, pid: str, country: str) -> Activation:
        """Buy one number, never retried; judged by `parse_purchase`."""

        def parse(body: str, http_status: int) -> Activation:
            return parse_purchase(body, http_status, pid)

        call = self._call("getNumber", {"pid": pid, "cuy": country, "num": "1"})
        return await self._http.once(call, parse, lost=PurchaseOutcomeUnknown)

    async def get_message(self, ref: ActivationRef) -> ActivationStatus:
        answer = await self.call(
            "getMsg", Priority.POLL, pn=f"+{ref.phone}", pid=ref.pid, rsid=ref.rs_id
        )
        return sms_from(answer)

    async def cancel(self, rs_id: str) -> None:
        cancel_from(await self.call("cancelRsActivation", Priority.PURCHASE, rsid=rs_id))

    async def balance(self) -> Decimal:
        return balance_from(await self.call("balance", Priority.INTERACTIVE, retries=2))


# ---------------------------------------------------------------------------------- route


def _iso(code: str) -> str | None:
    """`"us"` -> `"US"` when it is an ISO 3166 alpha-2 code (or Kosovo's XK)."""
    upper = code.upper()
    if upper == "XK" or (len(upper) == 2 and pycountry.countries.get(alpha_2=upper)):
        return upper
    return None


def upstream_country(code: str, name: str) -> UpstreamCountry:
    """A SpotSMS country as the catalog wants it.

    The catalog may map countries by name, so a name that does not resolve to the code's own
    ISO country is replaced by one that does.
    """
    iso = _iso(code)
    if iso is not None and resolve(name).code != iso:
        name = "Kosovo" if iso == "XK" else resolve(iso).name
    return UpstreamCountry(id=code, name=name, iso=iso)


def iso_countries() -> list[UpstreamCountry]:
    """Every ISO 3166 country (and Kosovo) with SpotSMS-style lower-case ids."""
    countries = [
        UpstreamCountry(id=c.alpha_2.lower(), name=resolve(c.alpha_2).name, iso=c.alpha_2)
        for c in pycountry.countries
    ]
    return [*countries, UpstreamCountry(id="xk", name="Kosovo", iso="XK")]


class SpotSMSRoute:
    """The SpotSMS account as one route.

    `countries()` costs no request: the doc lists countries per service only, and its codes
    are ISO alpha-2, so it answers every ISO country (lower-case id, `iso` set) plus any other
    code a `countries` answer has shown (by its upstream name), so that every country
    `offers()` can return is known to the catalog. A non-ISO code is only known after an
    `offers()` or `price()` saw it.
    Service prices are cached for `price_max_age` seconds for `offers()` (a service missing
    from the cached list fetches it again at once); `services()` and `price()` always fetch.
    A service no longer listed, or priced at 0 or below, has no offers and no price. A service
    without countries (404) has no offers (`[]`, so stale offers are cleared) and no price.
    """

    key = "spotsms"
    title = "SpotSMS"
    account = "spotsms"
    currency = "USD"  # the doc names no currency
    can_request_another = False
    can_finish = False
    is_sandbox = False

    def __init__(
        self,
        client: SpotSMSClient,
        rate: Decimal,
        price_max_age: float = PRICE_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.rate = rate
        self.price_max_age = price_max_age
        self._clock = clock
        self._prices: dict[str, Decimal] = {}
        self._prices_at: float | None = None
        self._prices_lock = asyncio.Lock()
        self._seen: dict[str, UpstreamCountry] = {}
        self._iso_countries: list[UpstreamCountry] | None = None

    async def balance(self) -> Decimal:
        return await self._client.balance()

    async def _fetch_services(self, priority: Priority, retries: int) -> list[SpotService]:
        services = await self._client.services(priority, retries)
        self._prices = {s.id: s.price for s in services}
        self._prices_at = self._clock()
        return services

    async def _cached_price(self, service_code: str, priority: Priority) -> Decimal | None:
        """The service's price from a list at most `price_max_age` old (or just fetched)."""
        async with self._prices_lock:
            at = self._prices_at
            stale = at is None or self._clock() - at >= self.price_max_age
            if stale or service_code not in self._prices:
                await self._fetch_services(priority, retries=2)
            return self._prices.get(service_code)

    async def services(self) -> list[UpstreamService]:
        services = await self._fetch_services(Priority.BACKGROUND, retries=2)
        return [UpstreamService(code=s.id, name=s.name) for s in services]

    def _remember(self, countries: list[SpotCountry]) -> None:
        for country in countries:
            self._seen[country.code] = upstream_country(country.code, country.name)

    async def countries(self) -> list[UpstreamCountry]:
        if self._iso_countries is None:
            self._iso_countries = iso_countries()
        seen = list(self._seen.values())
        covered = {c.iso or resolve(c.name).code for c in seen}
        merged = seen + [c for c in self._iso_countries if c.iso not in covered]
        return sorted(merged, key=lambda c: c.id)

    async def _service_countries(
        self, service_code: str, priority: Priority, retries: int
    ) -> list[SpotCountry]:
        try:
            countries = await self._client.countries(service_code, priority, retries)
        except NoNumbers:
            return []
        self._remember(countries)
        return countries

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]:
        cost = await self._cached_price(service_code, priority)
        if cost is None or cost <= 0:
            return []  # no longer listed, or not for sale
        countries = await self._service_countries(service_code, priority, retries=2)
        return [UpstreamOffer(c.code, cost, c.count) for c in countries]

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        services = await self._fetch_services(Priority.PURCHASE, retries=1)
        cost = next((s.price for s in services if s.id == service_code), None)
        if cost is None or cost <= 0:
            return None
        countries = await self._service_countries(service_code, Priority.PURCHASE, retries=1)
        wanted = {country.upstream_id.lower(), (country.iso or "").lower()}
        for item in countries:
            if item.code in wanted:
                return UpstreamOffer(item.code, cost, item.count)
        return None

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        # SpotSMS cannot cap a price and takes no reference: both stay on our side.
        return await self._client.get_number(service_code, country.upstream_id)

    async def status(self, activation_id: str) -> ActivationStatus:
        return await self._client.get_message(ActivationRef.decode(activation_id))

    async def cancel(self, activation_id: str) -> None:
        await self._client.cancel(ActivationRef.decode(activation_id).rs_id)

    async def request_another(self, activation_id: str) -> None:
        raise BadStatus("SpotSMS cannot send another SMS to a number")

    async def finish(self, activation_id: str) -> None:
        raise BadStatus("SpotSMS has no finish action")

    async def close(self) -> None:
        return None
