"""Recipient lists typed by users, checked with `phonenumbers` and normalised for SMSPM.

SMSPM wants international digits with the country code and no "+" (`37256789045`). We accept
what people paste: one number a line, or separated by commas or semicolons, with spaces, dashes,
dots and brackets inside a number, written `+372 5678 9045`, `00372 5678 9045` or already in
SMSPM's own form `37256789045`.

A number written without "+" or "00" is read as international digits (SMSPM's format). If that
reading is not a valid number, the entry is refused with "add the country code": it is most
likely a national number (`56789045`, `07912 345678`). A number starting with a single "0" is
always national and refused the same way. An entry with a "+" inside or more than 15 digits is
refused as "several numbers" (people separate numbers with spaces too, which we cannot tell from
spaces inside a number). Letters (vanity numbers) and extensions are refused;
decimal digits of other scripts (٣٧٢…) are read as digits. Valid numbers outside any country
(+800 freephone, +882 networks) are refused: they have no ISO region to price them by.

The validity check is `phonenumbers.is_valid_number` (the number plan), not "is a mobile": US
numbers are "fixed line or mobile" and some landlines take SMS, so the carrier has the last word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

SEPARATORS = re.compile(r"[\n\r,;]+")
ALLOWED = re.compile(r"^[\s(]*\+?[0-9\s().\-/]+$")

NEED_COUNTRY_CODE = "add the country code, e.g. +372 5678 9045"
NOT_A_NUMBER = "not a phone number"
INVALID = "not a valid phone number"
NO_COUNTRY = "not a number in a country (e.g. +800), it cannot receive SMS"
SEVERAL = "looks like several numbers: put one number per line, or separate them with commas"
MAX_DIGITS = 15  # E.164


@dataclass(frozen=True)
class Recipient:
    digits: str  # international digits without "+", as SMSPM wants them
    region: str  # ISO 3166 alpha-2 from phonenumbers, e.g. "EE"


@dataclass(frozen=True)
class Invalid:
    raw: str
    reason: str


@dataclass
class RecipientList:
    valid: list[Recipient] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    too_many: bool = False  # more than `limit` valid numbers: only the first `limit` are kept


def split_entries(text: str) -> list[str]:
    """The non-empty entries of a pasted list, stripped."""
    return [entry.strip() for entry in SEPARATORS.split(text) if entry.strip()]


def _ascii_digits(raw: str) -> str:
    """Other scripts' decimal digits (e.g. ٠١٢, ０１２) as ASCII digits."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in raw)


def parse_number(raw: str) -> Recipient | Invalid:
    """One entry -> a Recipient, or the reason it was refused."""
    cleaned = _ascii_digits(raw)
    compact = re.sub(r"[^0-9+]", "", cleaned)
    explicit = compact.startswith(("+", "00"))
    if compact.startswith("+"):
        international = compact
    elif compact.startswith("00"):
        international = "+" + compact[2:]
    else:
        international = "+" + compact  # SMSPM's own format, 37256789045
    if "+" in international[1:] or len(international) - 1 > MAX_DIGITS:
        return Invalid(raw, SEVERAL)
    if not ALLOWED.match(cleaned):
        return Invalid(raw, NOT_A_NUMBER)
    if compact.startswith("0") and not explicit:
        return Invalid(raw, NEED_COUNTRY_CODE)  # a trunk prefix: a national number
    # Imported at the first list typed (its number plans are ~1 MB), not by every bot.
    import phonenumbers

    try:
        number = phonenumbers.parse(international, None)
    except phonenumbers.NumberParseException:
        return Invalid(raw, INVALID if explicit else NEED_COUNTRY_CODE)
    if not phonenumbers.is_valid_number(number):
        return Invalid(raw, INVALID if explicit else NEED_COUNTRY_CODE)
    region = phonenumbers.region_code_for_number(number)
    if not region or len(region) != 2 or not region.isalpha() or region == "ZZ":
        return Invalid(raw, NO_COUNTRY)
    digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return Recipient(digits=digits, region=region)


def parse_recipients(text: str, limit: int = 100) -> RecipientList:
    """Parse a pasted list: valid numbers (duplicates dropped, first kept), refusals with a
    reason, and whether more than `limit` valid numbers were given (only `limit` are kept)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    result = RecipientList()
    seen_digits: set[str] = set()
    seen_invalid: set[str] = set()
    for entry in split_entries(text):
        parsed = parse_number(entry)
        if isinstance(parsed, Invalid):
            if parsed.raw not in seen_invalid:
                seen_invalid.add(parsed.raw)
                result.invalid.append(parsed)
            continue
        if parsed.digits in seen_digits:
            continue
        seen_digits.add(parsed.digits)
        if len(result.valid) >= limit:
            result.too_many = True
            continue
        result.valid.append(parsed)
    return result
