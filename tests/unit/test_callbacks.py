"""handlers.callbacks: every factory packs under 64 bytes, and no two share a prefix."""

from __future__ import annotations

import pytest
from aiogram.filters.callback_data import CallbackData

from handlers.callbacks import (
    AdminCb,
    AdminRentalCb,
    AzCb,
    BroadcastCb,
    CountryCb,
    LanguageCb,
    MenuCb,
    NoopCb,
    OrderCb,
    OrdersCb,
    QuoteCb,
    RentalCb,
    RentalsCb,
    RentKindCb,
    RentOfferCb,
    RentPayCb,
    RentSvcCb,
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
    RentKindCb(e=1, page=3),
    RentOfferCb(e=1, oid="123456", d=30, s=4_000_000_000),
    # The longest: every field at a realistic maximum (a 6-digit offer, a catalog service id).
    RentPayCb(e=1, oid="123456", d=30, p=99_999_999, t="0123abcd", s=4_000_000_000),
    RentSvcCb(e=1, oid="123456", d=30, page=99_999, find=1),
    RentalCb(rid=4_000_000_000, act="refundok", d=30, n=99_999, p=99_999_999),
    RentalsCb(page=2),
    AdminRentalCb(rid=4_000_000_000, act="refund"),
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
