"""Callback data factories: short prefixes, typed fields, always well under 64 bytes.

Every number in callback data is a `UInt` (an id or an amount) or a `Page`: ASCII digits only,
and bounded, so forged data never puts an integer SQLite cannot hold into a query. An id above
`MAX_ID` reads as `MAX_ID`, which names no row ("not found", like any unknown id); a page above
`MAX_PAGE` reads as `MAX_PAGE`, past the end of any list. Anything else that is not digits
(`²`, `-1`, `+5`, `1_0`) does not unpack: "this button is no longer valid".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, Self, cast

from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import CallbackQuery
from magic_filter import MagicFilter
from pydantic import BeforeValidator, ConfigDict, Field

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


class PrefixFilter(CallbackQueryFilter):
    """aiogram's `CallbackData` filter, comparing the prefix first. A router tries its
    handlers in turn, and aiogram's `unpack` turns down each handler of another kind by
    raising an exception with a formatted message: a few microseconds per handler tried,
    on every click."""

    async def __call__(self, query: CallbackQuery) -> Literal[False] | dict[str, Any]:
        factory = self.callback_data
        data = query.data if isinstance(query, CallbackQuery) else None
        if not data or data.partition(factory.__separator__)[0] != factory.__prefix__:
            return False
        return await super().__call__(query)


class Prefixed:
    """Mixin for our callback data (before `CallbackData` in the bases): `.filter()` gives
    a `PrefixFilter`, and data is frozen and unpacked once per distinct string.

    Most clicks carry one of a few hundred strings (the menus' buttons), and aiogram's
    `unpack` splits, checks and validates each anew: about 8 µs a click. Frozen, an
    unpacked instance can be handed to every handler that gets the same string. A string
    that does not unpack raises as before and is not kept; the store is emptied when it
    reaches `UNPACKED_KEPT` strings, so made-up data cannot grow it."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def filter(cls, rule: MagicFilter | None = None) -> CallbackQueryFilter:
        return PrefixFilter(callback_data=cast(type[CallbackData], cls), rule=rule)

    @classmethod
    def unpack(cls, value: str) -> Self:
        key = (cls, value)
        data = _UNPACKED.get(key)
        if data is None:
            data = super().unpack(value)  # type: ignore[misc]
            if len(_UNPACKED) >= UNPACKED_KEPT:
                _UNPACKED.clear()
            _UNPACKED[key] = data
        return cast(Self, data)


UNPACKED_KEPT = 4096
_UNPACKED: dict[tuple[type, str], object] = {}


class MenuCb(Prefixed, CallbackData, prefix="m"):
    to: str  # main | buy | balance | orders | help


class ServicesCb(Prefixed, CallbackData, prefix="sp"):
    page: Page = 0
    q: str = ""


class ServiceCb(Prefixed, CallbackData, prefix="s"):
    sid: UInt
    page: Page = 0


class CountryCb(Prefixed, CallbackData, prefix="c"):
    sid: UInt
    cc: str


class RouteCb(Prefixed, CallbackData, prefix="r"):
    sid: UInt
    cc: str
    rt: str


class QuoteCb(Prefixed, CallbackData, prefix="q"):
    qid: UInt


class OrderCb(Prefixed, CallbackData, prefix="o"):
    oid: UInt
    act: str  # show | cancel | another | done | refresh


class OrdersCb(Prefixed, CallbackData, prefix="op"):
    page: Page = 0


class NoopCb(Prefixed, CallbackData, prefix="x"):
    pass


def short_query(text: str) -> str:
    """A search query that fits callback data: no separators, at most QUERY_MAX_BYTES bytes."""
    cleaned = " ".join(text.replace(":", " ").split())
    encoded = cleaned.encode()[:QUERY_MAX_BYTES]
    return encoded.decode(errors="ignore")


class SmsCb(Prefixed, CallbackData, prefix="sm"):
    sid: UInt = 0
    act: str  # send | show | cancel


class WatchCb(Prefixed, CallbackData, prefix="w"):
    sid: UInt
    cc: str


class WalletCb(Prefixed, CallbackData, prefix="wl"):
    act: str  # topup | other | refs | hist
    page: Page = 0


class TopupAmountCb(Prefixed, CallbackData, prefix="ta"):
    amount: UInt  # shop currency, minor units; checked against the limits again on use


class TopupPayCb(Prefixed, CallbackData, prefix="tp"):
    m: str  # stars | crypto
    amount: UInt


class LanguageCb(Prefixed, CallbackData, prefix="lg"):
    locale: str  # a catalog's language code, e.g. "ru"
