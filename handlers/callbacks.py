"""Callback data factories: short prefixes, typed fields, always well under 64 bytes."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

QUERY_MAX_BYTES = 32


class MenuCb(CallbackData, prefix="m"):
    to: str  # main | buy | balance | orders | help


class ServicesCb(CallbackData, prefix="sp"):
    page: int = 0
    q: str = ""


class ServiceCb(CallbackData, prefix="s"):
    sid: int
    page: int = 0


class CountryCb(CallbackData, prefix="c"):
    sid: int
    cc: str


class RouteCb(CallbackData, prefix="r"):
    sid: int
    cc: str
    rt: str


class QuoteCb(CallbackData, prefix="q"):
    qid: int


class OrderCb(CallbackData, prefix="o"):
    oid: int
    act: str  # show | cancel | another | done | refresh


class OrdersCb(CallbackData, prefix="op"):
    page: int = 0


class NoopCb(CallbackData, prefix="x"):
    pass


def short_query(text: str) -> str:
    """A search query that fits callback data: no separators, at most QUERY_MAX_BYTES bytes."""
    cleaned = " ".join(text.replace(":", " ").split())
    encoded = cleaned.encode()[:QUERY_MAX_BYTES]
    return encoded.decode(errors="ignore")


class SmsCb(CallbackData, prefix="sm"):
    sid: int = 0
    act: str  # send | show | cancel


class WatchCb(CallbackData, prefix="w"):
    sid: int
    cc: str


class WalletCb(CallbackData, prefix="wl"):
    act: str  # topup | other | refs | hist
    page: int = 0


class TopupAmountCb(CallbackData, prefix="ta"):
    amount: int  # shop currency, minor units; checked against the limits again on use


class TopupPayCb(CallbackData, prefix="tp"):
    m: str  # stars | crypto
    amount: int


class LanguageCb(CallbackData, prefix="lg"):
    locale: str  # a catalog's language code, e.g. "ru"
