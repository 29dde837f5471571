from __future__ import annotations

from decimal import Decimal

import pytest

from bot.countries import resolve
from bot.money import Currency


def test_format_and_parse() -> None:
    usd = Currency.of("USD")
    assert usd.format(1050) == "$10.50"
    assert usd.parse("10") == 1000
    assert usd.parse("2.50") == 250
    assert usd.parse("2,5") == 250
    for bad in ("", "abc", "-1", "0", "1.234", "1e3", "1.2.3", "nan"):
        with pytest.raises(ValueError):
            usd.parse(bad)
    jpy = Currency.of("JPY")
    assert jpy.exponent == 0 and jpy.parse("15") == 15
    with pytest.raises(ValueError):
        jpy.parse("1.5")


def test_retail_rounds_up_to_the_minor_unit() -> None:
    usd = Currency.of("USD")
    # 250 NGN × 0.00065 × 1.30 = 0.21125 -> 22 cents
    assert usd.convert_up(Decimal("250.00"), Decimal("0.00065"), Decimal(30)) == 22
    assert usd.convert_up(Decimal("1"), Decimal("1"), Decimal(0)) == 100


def test_countries_from_pycountry() -> None:
    us = resolve("United States")
    assert (us.code, us.flag) == ("US", "🇺🇸")
    assert resolve("Russia").code == "RU"
    assert resolve("USA").code == "US"
    unknown = resolve("Atlantis Free State")
    assert unknown.code.startswith("x-") and unknown.name == "Atlantis Free State"
