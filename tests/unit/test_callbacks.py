"""handlers.callbacks: every factory packs under 64 bytes, and no two share a prefix."""

from __future__ import annotations

import pytest
from aiogram.filters.callback_data import CallbackData

from handlers.callbacks import (
    AdminCb,
    AzCb,
    BroadcastCb,
    CountryCb,
    LanguageCb,
    MenuCb,
    NoopCb,
    OrderCb,
    OrdersCb,
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
    AzCb(),
    AzCb(sid=10**9, page=99_999),
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


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.pack())
def test_packed_data_fits_telegram(sample: CallbackData) -> None:
    assert len(sample.pack().encode()) <= 64
    assert type(sample).unpack(sample.pack()) == sample


def test_every_factory_has_its_own_prefix() -> None:
    factories = CallbackData.__subclasses__()
    prefixes = [factory.__prefix__ for factory in factories]
    assert len(set(prefixes)) == len(prefixes)
    assert {type(sample) for sample in SAMPLES} == set(factories)
