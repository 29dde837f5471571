"""Money in integer minor units of one currency; Babel knows decimals and symbols."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision

_HUNDRED = Decimal(100)
MAX_AMOUNT_CHARS = 24
MAX_MAJOR_DIGITS = 12  # a trillion major units: far beyond any real amount, far below int64
# ASCII digits only: `str.isdigit()` (and Decimal) also accept Arabic-Indic, Devanagari,
# full-width and other digits, which a user's keyboard can produce and a reviewer cannot read.
_AMOUNT_RE = re.compile(r"(?P<major>[0-9]*)(?:[.,](?P<minor>[0-9]*))?", re.ASCII)


class AmountError(ValueError):
    """A typed amount that is not a plain positive number of this currency."""


@lru_cache(maxsize=8192)
def _format(code: str, exponent: int, minor: int) -> str:
    # Babel takes tens of microseconds per call; menus format the same prices over and over.
    return format_currency(
        Decimal(minor).scaleb(-exponent), code, locale="en_US", currency_digits=True
    )


@dataclass(frozen=True)
class Currency:
    """The shop currency. Amounts are ints in minor units (cents for USD)."""

    code: str
    exponent: int

    @classmethod
    def of(cls, code: str) -> Currency:
        return cls(code=code, exponent=get_currency_precision(code))

    @property
    def unit(self) -> int:
        """Minor units in one major unit."""
        return 10**self.exponent

    def to_decimal(self, minor: int) -> Decimal:
        return Decimal(minor).scaleb(-self.exponent)

    def format(self, minor: int) -> str:
        """`1050` -> `$10.50`, with the currency's own decimals and symbol."""
        return _format(self.code, self.exponent, minor)

    def parse(self, text: str) -> int:
        """Parse a typed amount (`10`, `2.50`, `2,5`, `.5`) into minor units.

        Raises AmountError (a ValueError) for anything that is not a plain positive number
        written with ASCII digits and at most the currency's decimals: signs, exponents
        (`1e3`), `NaN`/`Infinity`, thousands separators (`1,000.00`), non-ASCII digits,
        more than MAX_MAJOR_DIGITS digits before the separator and over-long input.
        """
        cleaned = text.strip()
        if len(cleaned) > MAX_AMOUNT_CHARS:
            raise AmountError("the amount is too long")
        match = _AMOUNT_RE.fullmatch(cleaned)
        if match is None:
            raise AmountError(f"not an amount: {text!r}")
        major, minor = match["major"], match["minor"] or ""
        if not major and not minor:
            raise AmountError(f"not an amount: {text!r}")
        if len(major.lstrip("0")) > MAX_MAJOR_DIGITS:
            raise AmountError("the amount is too large")
        if len(minor) > self.exponent:
            raise AmountError(f"at most {self.exponent} decimals in {self.code}")
        value = int(major or "0") * self.unit + int(minor.ljust(self.exponent, "0") or "0")
        if value <= 0:
            raise AmountError("the amount must be positive")
        return value

    def convert_up(
        self, amount: Decimal, rate: Decimal, markup_percent: Decimal = Decimal(0)
    ) -> int:
        """`amount` (upstream currency) × `rate` × (1 + markup), rounded up to the minor unit."""
        value = amount * rate * (_HUNDRED + markup_percent) / _HUNDRED
        return int(value.scaleb(self.exponent).to_integral_value(rounding=ROUND_CEILING))
