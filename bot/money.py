"""Money in integer minor units of one currency; Babel knows decimals and symbols."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision

_HUNDRED = Decimal(100)


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
        """Parse a typed amount (`10`, `2.50`, `2,5`) into minor units.

        Raises ValueError for anything that is not a plain positive number with at most the
        currency's decimals.
        """
        cleaned = text.strip().replace(",", ".")
        if not cleaned or not all(c.isdigit() or c == "." for c in cleaned):
            raise ValueError(f"not an amount: {text!r}")
        try:
            amount = Decimal(cleaned)
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {text!r}") from exc
        minor = amount.scaleb(self.exponent)
        if minor != minor.to_integral_value():
            raise ValueError(f"at most {self.exponent} decimals in {self.code}")
        if minor <= 0:
            raise ValueError("the amount must be positive")
        return int(minor)

    def convert_up(
        self, amount: Decimal, rate: Decimal, markup_percent: Decimal = Decimal(0)
    ) -> int:
        """`amount` (upstream currency) × `rate` × (1 + markup), rounded up to the minor unit."""
        value = amount * rate * (_HUNDRED + markup_percent) / _HUNDRED
        return int(value.scaleb(self.exponent).to_integral_value(rounding=ROUND_CEILING))
