"""Callback data factories: short prefixes, typed fields, always well under 64 bytes.

Every number in callback data is a `UInt` (an id or an amount) or a `Page`: ASCII digits only,
and bounded, so forged data never puts an integer SQLite cannot hold into a query. An id above
`MAX_ID` reads as `MAX_ID`, which names no row ("not found", like any unknown id); a page above
`MAX_PAGE` reads as `MAX_PAGE`, past the end of any list. Anything else that is not digits
(`²`, `-1`, `+5`, `1_0`) does not unpack: "this button is no longer valid".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import BeforeValidator, Field

from shop.numbers import MAX_ID, parse_uint

QUERY_MAX_BYTES = 32
MAX_PAGE = 100_000  # beyond any list; page × page size stays far below SQLite's limit


def _digits(most: int) -> Callable[[object], object]:
    def parse(value: object) -> object:
        if isinstance(value, str):
            number = parse_uint(value, most)
            if number is None:
                raise ValueError("not a whole number of ASCII digits")
            return number
        return value

    return parse


UInt = Annotated[int, BeforeValidator(_digits(MAX_ID)), Field(ge=0, le=MAX_ID)]
Page = Annotated[int, BeforeValidator(_digits(MAX_PAGE)), Field(ge=0, le=MAX_PAGE)]


class MenuCb(CallbackData, prefix="m"):
    to: str  # main | buy | balance | orders | help


class ServicesCb(CallbackData, prefix="sp"):
    page: Page = 0
    q: str = ""


class ServiceCb(CallbackData, prefix="s"):
    sid: UInt
    page: Page = 0


class AzCb(CallbackData, prefix="az"):
    """A page of everything A-Z: the services (sid 0), or one service's countries."""

    sid: UInt = 0
    page: Page = 0


class CountryCb(CallbackData, prefix="c"):
    sid: UInt
    cc: str


class RouteCb(CallbackData, prefix="r"):
    sid: UInt
    cc: str
    rt: str


class QuoteCb(CallbackData, prefix="q"):
    qid: UInt


class OrderCb(CallbackData, prefix="o"):
    oid: UInt
    act: str  # show | cancel | another | done | refresh


class OrdersCb(CallbackData, prefix="op"):
    page: Page = 0


class NoopCb(CallbackData, prefix="x"):
    pass


def short_query(text: str) -> str:
    """A search query that fits callback data: no separators, at most QUERY_MAX_BYTES bytes."""
    cleaned = " ".join(text.replace(":", " ").split())
    encoded = cleaned.encode()[:QUERY_MAX_BYTES]
    return encoded.decode(errors="ignore")


class SmsCb(CallbackData, prefix="sm"):
    sid: UInt = 0
    act: str  # send | show | cancel


class WatchCb(CallbackData, prefix="w"):
    sid: UInt
    cc: str


class WalletCb(CallbackData, prefix="wl"):
    act: str  # topup | other | refs | hist
    page: Page = 0


class TopupAmountCb(CallbackData, prefix="ta"):
    amount: UInt  # shop currency, minor units; checked against the limits again on use


class TopupPayCb(CallbackData, prefix="tp"):
    m: str  # stars | crypto
    amount: UInt


class LanguageCb(CallbackData, prefix="lg"):
    locale: str  # a catalog's language code, e.g. "ru"


class AdminCb(CallbackData, prefix="adm"):
    to: str  # a section: home, stats, users, orders, pricing, broadcast, recon, backup, audit…
    n: Page = 0  # the audit page, or the days of a reconciliation


class BroadcastCb(CallbackData, prefix="bc"):
    bid: UInt = 0  # 0: the prompt, before there is a draft
    act: str  # send | cancel (a draft or the prompt) | stop (a running broadcast)


class RentKindCb(CallbackData, prefix="rk"):
    e: UInt  # 1: extendable rentals, 0: fixed period
    page: Page = 0


class RentOfferCb(CallbackData, prefix="ro"):
    e: UInt
    oid: str  # SMSPool's rental id
    d: UInt = 0  # 0: pick a period; else the confirm screen for `d` days
    s: UInt = 0  # a single-service line: the catalog's service id (0: any service)


class RentPayCb(CallbackData, prefix="rp"):
    e: UInt
    oid: str
    d: UInt
    p: UInt  # the price shown (minor units): a higher price is never charged
    t: str  # the confirm screen's token: one purchase per screen
    s: UInt = 0  # the catalog's service id of a single-service line (0: any service)


class RentSvcCb(CallbackData, prefix="rsv"):
    """The single-service picker of a confirm screen (rental `oid`, `d` days)."""

    e: UInt
    oid: str
    d: UInt
    page: Page = 0
    find: UInt = 0  # 1: ask for a typed service name


class RentalCb(CallbackData, prefix="rl"):
    rid: UInt
    act: str  # show | msgs | ext | extok | refund | refundok
    d: UInt = 0  # days (extend)
    n: Page = 0  # the messages' page, or the extension's number (extok)
    p: UInt = 0  # the extension price shown (extok)


class RentalsCb(CallbackData, prefix="rls"):
    page: Page = 0


class AdminRentalCb(CallbackData, prefix="arl"):
    rid: UInt
    act: str  # refund
