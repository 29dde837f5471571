"""handlers.callbacks: every factory packs under 64 bytes, the prefix-first filter decides
exactly as aiogram's own `CallbackData` filter does, and data unpacked once is aiogram's."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import F
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import CallbackQuery, User
from pydantic import ValidationError

from handlers.admin_render import AdminCb
from handlers.broadcast import BroadcastCb
from handlers.callbacks import (
    _UNPACKED,
    UNPACKED_KEPT,
    CountryCb,
    LanguageCb,
    MenuCb,
    NoopCb,
    OrderCb,
    OrdersCb,
    PrefixFilter,
    QuoteCb,
    RouteCb,
    ServiceCb,
    ServicesCb,
    SmsCb,
    TopupAmountCb,
    TopupPayCb,
    WalletCb,
    WatchCb,
)

SAMPLES: list[CallbackData] = [
    MenuCb(to="buy"),
    MenuCb(to="main"),
    ServicesCb(page=2, q="what"),
    ServicesCb(),
    ServiceCb(sid=12, page=1),
    CountryCb(sid=12, cc="US"),
    RouteCb(sid=12, cc="US", rt="smspalm1"),
    QuoteCb(qid=99),
    OrderCb(oid=5, act="cancel"),
    OrdersCb(page=3),
    NoopCb(),
    SmsCb(sid=4, act="show"),
    WatchCb(sid=12, cc="GB"),
    WalletCb(act="hist", page=1),
    TopupAmountCb(amount=500),
    TopupPayCb(m="stars", amount=500),
    LanguageCb(locale="ru"),
    AdminCb(to="stats", n=7),
    BroadcastCb(bid=3, act="send"),
]
FACTORIES = sorted({type(sample) for sample in SAMPLES}, key=lambda f: f.__prefix__)
# Data no factory made: near misses of the prefixes, and junk.
STRANGERS = ["", "x:1", "s", "s:", "sp", "spx:1", "m:buy:extra", "c:12", "q:abc", ":", "zz:1"]


def query(data: str) -> CallbackQuery:
    user = User(id=5, is_bot=False, first_name="Ann")
    return CallbackQuery(id="1", from_user=user, chat_instance="ci", data=data or None)


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
async def test_prefix_filter_decides_as_aiogram_does(factory: type[CallbackData]) -> None:
    ours = factory.filter()
    assert isinstance(ours, PrefixFilter)
    theirs = CallbackQueryFilter(callback_data=factory)
    for data in [sample.pack() for sample in SAMPLES] + STRANGERS:
        expected: Any = await theirs(query(data))
        assert await ours(query(data)) == expected, data


async def test_prefix_filter_keeps_the_rule() -> None:
    to_buy = MenuCb.filter(F.to == "buy")
    assert await to_buy(query(MenuCb(to="buy").pack())) == {"callback_data": MenuCb(to="buy")}
    assert await to_buy(query(MenuCb(to="main").pack())) is False


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.pack())
def test_packed_data_fits_telegram(sample: CallbackData) -> None:
    assert len(sample.pack().encode()) <= 64


def aiogram_unpack(factory: type[CallbackData], data: str) -> CallbackData:
    return CallbackData.unpack.__func__(factory, data)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_unpacking_gives_what_aiogram_gives(factory: type[CallbackData]) -> None:
    for data in [sample.pack() for sample in SAMPLES] + STRANGERS:
        try:
            expected: Any = aiogram_unpack(factory, data)
        except (TypeError, ValueError) as exc:
            expected = type(exc)
        for _ in range(2):  # unpacked, then kept
            try:
                got: Any = factory.unpack(data)
            except (TypeError, ValueError) as exc:
                got = type(exc)
            assert got == expected, data


def test_a_string_is_unpacked_once_into_frozen_data() -> None:
    data = CountryCb(sid=12, cc="US").pack()
    first = CountryCb.unpack(data)
    assert CountryCb.unpack(data) is first
    with pytest.raises(ValidationError):
        first.cc = "GB"  # type: ignore[misc]
    assert first.model_copy(update={"cc": "GB"}).pack() == "c:12:GB"


def test_made_up_data_cannot_grow_the_store() -> None:
    for number in range(UNPACKED_KEPT + 10):
        OrdersCb.unpack(f"op:{number}")
    assert len(_UNPACKED) <= UNPACKED_KEPT
    assert OrdersCb.unpack("op:3") == OrdersCb(page=3)
