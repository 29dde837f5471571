"""SMSPalm (sms-activate-style text protocol), per `shared/upstream-docs/smspalm.txt`.

`SMSPalmClient` speaks the protocol for one API key; `SMSPalmRoute` is one of its two servers
(PalmServerOne, PalmServerTwo) seen as a sellable route. Parsing is pure and matches the doc's
strings exactly: `EARLY_CANCEL_DENIED` contains "CANCEL" but is not a cancel.

Purchases (getNumber) are never retried, and only an answer that proves what happened is
trusted: one of the eight error strings of the doc's section 11 (whatever the HTTP status) is a
refusal, `ACCESS_NUMBER:{id}:{phone}` is a number (also on a non-200 status: the body decides).
Anything else (a 5xx or 524 page, HTML, an unknown or malformed string, an undocumented 429,
a network error after the request may have left) is PurchaseOutcomeUnknown: SMSPalm may have
sold a number. Only a connect error proves nothing was sent (`shop.providers.http`).
Reconciliation: the doc offers no list of active orders and no lookup by `ref` (getStatus and
setStatus need the activation id we never got), so a lost purchase cannot be looked for. We
send our order id as `ref`, so the owners can find it in the SMSPalm dashboard: the order is
refunded, flagged and the owners alerted with that id.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

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

log = logging.getLogger(__name__)

SERVER_ONE = "serverone"
SERVER_TWO = "servertwo"

# Every error string in the doc's section 11, matched exactly.
ERRORS: dict[str, type[ProviderError]] = {
    "BAD_KEY": BadKey,
    "BAD_ACTION": UpstreamUnavailable,
    "BAD_SERVICE": BadService,
    "BAD_STATUS": BadStatus,
    "NO_NUMBERS": NoNumbers,
    "NO_ACTIVATION": NoActivation,
    "NO_BALANCE": UpstreamNoBalance,
    "EARLY_CANCEL_DENIED": EarlyCancelDenied,
}

SET_STATUS_ANSWERS = {
    1: "ACCESS_READY",
    3: "ACCESS_RETRY_GET",
    6: "ACCESS_ACTIVATION",
    8: "ACCESS_CANCEL",
}


def raise_for_error(body: str) -> None:
    """Raise the typed error for a documented error string."""
    error = ERRORS.get(body)
    if error is not None:
        raise error(body) if error is UpstreamUnavailable else error()


def unexpected(body: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"unexpected SMSPalm answer: {snippet(body)!r}")


def parse_balance(body: str) -> Decimal:
    """`ACCESS_BALANCE:124.94` -> Decimal('124.94')."""
    raise_for_error(body)
    prefix, _, value = body.partition(":")
    if prefix != "ACCESS_BALANCE":
        raise unexpected(body)
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise unexpected(body) from exc


def parse_number(body: str, http_status: int = 200) -> Activation:
    """getNumber's answer: `ACCESS_NUMBER:{activation_id}:{phone_number}`, or a documented
    error string (a refusal); anything else is PurchaseOutcomeUnknown."""
    body = body.strip()
    raise_for_error(body)
    parts = body.split(":")
    if len(parts) != 3 or parts[0] != "ACCESS_NUMBER" or not parts[1] or not parts[2]:
        raise PurchaseOutcomeUnknown(
            f"unclear SMSPalm getNumber answer (HTTP {http_status}): {snippet(body)!r}"
        )
    if http_status != 200:
        log.warning("SMSPalm sold activation %s with HTTP %s", parts[1], http_status)
    return Activation(activation_id=parts[1], phone=parts[2])


def parse_status(body: str) -> ActivationStatus:
    """getStatus answers: STATUS_WAIT_CODE, STATUS_WAIT_RETRY:x, STATUS_OK:x, STATUS_CANCEL."""
    if body == "STATUS_WAIT_CODE":
        return ActivationStatus(StatusKind.WAITING)
    if body == "STATUS_CANCEL":
        return ActivationStatus(StatusKind.CANCELLED)
    prefix, sep, code = body.partition(":")
    if sep and code:
        if prefix == "STATUS_OK":
            return ActivationStatus(StatusKind.CODE, code=code)
        if prefix == "STATUS_WAIT_RETRY":
            return ActivationStatus(StatusKind.WAITING_RETRY, code=code)
    raise_for_error(body)
    raise unexpected(body)


def parse_set_status(body: str, status: int) -> None:
    """setStatus answers one ACCESS_* string per status code."""
    raise_for_error(body)
    if body != SET_STATUS_ANSWERS[status]:
        raise unexpected(body)


def _json(body: str) -> Any:
    raise_for_error(body)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise unexpected(body) from exc


def parse_countries(body: str) -> list[UpstreamCountry]:
    """`[{"id": 187, "eng": "United States"}, ...]`."""
    data = _json(body)
    if not isinstance(data, list):
        raise unexpected(body)
    countries = []
    for item in data:
        if isinstance(item, dict) and item.get("id") is not None and item.get("eng"):
            countries.append(UpstreamCountry(id=str(item["id"]), name=str(item["eng"])))
    return countries


def parse_services(body: str) -> list[UpstreamService]:
    """`{"status": "success", "services": [{"code": "wa", "name": "WhatsApp"}]}`."""
    data = _json(body)
    if not isinstance(data, dict) or data.get("status") != "success":
        raise unexpected(body)
    services = data.get("services")
    if not isinstance(services, list):
        raise unexpected(body)
    return [
        UpstreamService(code=str(s["code"]), name=str(s.get("name") or s["code"]))
        for s in services
        if isinstance(s, dict) and s.get("code")
    ]


def parse_prices(body: str, service_code: str) -> list[UpstreamOffer]:
    """`{"187": {"wa": {"cost": 250.00, "count": 345}}}` -> offers for `service_code`."""
    data = _json(body)
    if isinstance(data, list) and not data:
        return []  # PHP-style empty object
    if not isinstance(data, dict):
        raise unexpected(body)
    offers = []
    for country_id, per_service in data.items():
        entry = per_service.get(service_code) if isinstance(per_service, dict) else None
        if not isinstance(entry, dict):
            continue
        try:
            cost = Decimal(str(entry["cost"]))
            stock = int(entry.get("count", 0))
        except (KeyError, InvalidOperation, TypeError, ValueError):
            log.warning("Skipping malformed SMSPalm price for %s/%s", country_id, service_code)
            continue
        if cost > 0:
            offers.append(
                UpstreamOffer(country_id=str(country_id), cost=cost, stock=max(stock, 0))
            )
    return offers


def judge(body: str, http_status: int, action: str = "") -> str:
    """The stripped body of an answer to a call other than getNumber. Text errors come with
    non-200 codes too: the body decides first, then HTTP 429 is RateLimited and any other
    non-200 status UpstreamUnavailable."""
    body = body.strip()
    if body in ERRORS or http_status == 200:
        return body
    if http_status == 429:
        raise RateLimited(f"SMSPalm {action}: HTTP 429")
    raise UpstreamUnavailable(f"SMSPalm {action}: HTTP {http_status} {snippet(body)!r}")


class SMSPalmClient:
    """The SMSPalm handler endpoint for one API key, within its request budget."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        budget: Budget,
        retry_delays: tuple[float, ...] = (0.5, 1.5),
    ) -> None:
        self._http = UpstreamHTTP(
            http, "SMSPalm", budget=budget, secrets=[api_key], retry_delays=retry_delays
        )
        self._base_url = base_url
        self._api_key = api_key
        self.budget = budget

    def _call(self, action: str, params: dict[str, str]) -> Call:
        query = {"api_key": self._api_key, "action": action, **params}
        return Call(action, "GET", self._base_url, params=query)

    async def call(self, action: str, priority: Priority, retries: int = 0, **params: str) -> str:
        """One request judged by `judge`; reads may be retried on network errors, 429 and 5xx,
        never a purchase."""

        def parse(body: str, http_status: int) -> str:
            return judge(body, http_status, action)

        return await self._http.read(
            self._call(action, params), parse, priority=priority, retries=retries
        )

    async def get_number(self, **params: str) -> Activation:
        """Buy a number: one request, never retried, judged by `parse_number`."""
        return await self._http.once(
            self._call("getNumber", params), parse_number, lost=PurchaseOutcomeUnknown
        )

    async def balance(self) -> Decimal:
        return parse_balance(await self.call("getBalance", Priority.INTERACTIVE, retries=2))


class SMSPalmRoute:
    """One SMSPalm server as a route. Only PalmServerOne supports setStatus 1/3/6."""

    account = "smspalm"
    currency = "NGN"
    is_sandbox = False

    def __init__(self, client: SMSPalmClient, server: str, rate: Decimal) -> None:
        if server not in (SERVER_ONE, SERVER_TWO):
            raise ValueError(f"unknown SMSPalm server {server!r}")
        self._client = client
        self.server = server
        self.rate = rate
        number = "1" if server == SERVER_ONE else "2"
        self.key = f"smspalm{number}"
        self.title = f"SMSPalm Server {number}"
        self.can_request_another = server == SERVER_ONE
        self.can_finish = server == SERVER_ONE

    async def balance(self) -> Decimal:
        return await self._client.balance()

    async def services(self) -> list[UpstreamService]:
        body = await self._client.call(
            "getServicesList", Priority.BACKGROUND, retries=2, server=self.server
        )
        return parse_services(body)

    async def countries(self) -> list[UpstreamCountry]:
        body = await self._client.call(
            "getCountries", Priority.BACKGROUND, retries=2, server=self.server
        )
        return parse_countries(body)

    async def offers(self, service_code: str, priority: Priority) -> list[UpstreamOffer]:
        body = await self._client.call(
            "getPrices", priority, retries=2, service=service_code, server=self.server
        )
        return parse_prices(body, service_code)

    def _country_param(self, country: CountryRef) -> str:
        # PalmServerTwo wants an ISO code; PalmServerOne takes its numeric id.
        if self.server == SERVER_TWO and country.iso:
            return country.iso
        return country.upstream_id

    async def price(self, service_code: str, country: CountryRef) -> UpstreamOffer | None:
        body = await self._client.call(
            "getPrices",
            Priority.PURCHASE,
            retries=1,
            service=service_code,
            country=self._country_param(country),
            server=self.server,
        )
        offers = parse_prices(body, service_code)
        wanted = {country.upstream_id, country.iso}
        for offer in offers:
            if offer.country_id in wanted:
                return offer
        return offers[0] if len(offers) == 1 else None

    async def buy(
        self, service_code: str, country: CountryRef, ref: str, max_cost: Decimal | None = None
    ) -> Activation:
        return await self._client.get_number(
            service=service_code,
            country=self._country_param(country),
            server=self.server,
            ref=ref,
        )

    async def status(self, activation_id: str) -> ActivationStatus:
        body = await self._client.call("getStatus", Priority.POLL, id=activation_id)
        return parse_status(body)

    async def _set_status(self, activation_id: str, status: int) -> None:
        body = await self._client.call(
            "setStatus", Priority.PURCHASE, id=activation_id, status=str(status)
        )
        parse_set_status(body, status)

    async def cancel(self, activation_id: str) -> None:
        await self._set_status(activation_id, 8)

    async def request_another(self, activation_id: str) -> None:
        await self._set_status(activation_id, 3)

    async def finish(self, activation_id: str) -> None:
        await self._set_status(activation_id, 6)

    async def close(self) -> None:
        return None
