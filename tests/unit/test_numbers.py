"""Whole numbers from users: ASCII digits only, never beyond SQLite's INTEGER."""

from __future__ import annotations

import pytest

from handlers.callbacks import MAX_PAGE, OrderCb, WalletCb
from shop.numbers import MAX_ID, parse_uint

NOT_DIGITS = ["", "²", "١٢", "５", "-1", "+5", " 5", "5 ", "1_0", "0x10", "1e3"]


@pytest.mark.parametrize("text", NOT_DIGITS)
def test_only_ascii_digits(text: str) -> None:
    assert parse_uint(text) is None


def test_bounded_to_sqlite_integer() -> None:
    assert parse_uint("0") == 0
    assert parse_uint("0042") == 42
    assert parse_uint(str(MAX_ID)) == MAX_ID
    assert parse_uint(str(MAX_ID + 1)) == MAX_ID
    assert parse_uint("9" * 5000) == MAX_ID  # no int() of a huge string
    assert parse_uint("250", most=100) == 100


def test_callback_numbers_are_bounded() -> None:
    assert OrderCb.unpack(f"o:{10**20}:show").oid == MAX_ID
    assert WalletCb.unpack(f"wl:hist:{10**20}").page == MAX_PAGE
    for forged in ("o:²:show", "o:-1:show", "o:+1:show", "o: 1:show", "o:1_0:show"):
        with pytest.raises(ValueError):
            OrderCb.unpack(forged)
    assert OrderCb(oid=7, act="show").pack() == "o:7:show"
