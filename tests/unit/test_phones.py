"""Recipient parsing: SMSPM's digits format out, the reason for every refusal."""

from __future__ import annotations

import phonenumbers
import pytest

from shop.phones import (
    INVALID,
    NEED_COUNTRY_CODE,
    NO_COUNTRY,
    NOT_A_NUMBER,
    SEVERAL,
    Invalid,
    Recipient,
    parse_number,
    parse_recipients,
    split_entries,
)

ESTONIA = Recipient("37256789045", "EE")
UK = Recipient("447912345678", "GB")
US = Recipient("12125551234", "US")


def test_doc_examples_are_valid_for_the_library() -> None:
    # The doc's "correct formats", checked with phonenumbers itself, not assumed.
    for digits, region in [("37256789045", "EE"), ("447912345678", "GB"), ("12125551234", "US")]:
        number = phonenumbers.parse("+" + digits, None)
        assert phonenumbers.is_valid_number(number)
        assert phonenumbers.region_code_for_number(number) == region


@pytest.mark.parametrize(
    "raw",
    [
        "+372 5678 9045",
        "00372 5678 9045",
        "37256789045",
        "+37256789045",
        "(+372) 5678-9045",
        "+372.5678.9045",
        "٣٧٢٥٦٧٨٩٠٤٥",  # Arabic-Indic digits
    ],
)
def test_estonian_forms(raw: str) -> None:
    assert parse_number(raw) == ESTONIA


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 7912 345678", UK),
        ("447912345678", UK),
        ("+1 (212) 555-1234", US),
        ("12125551234", US),
        ("0049 151 12345678", Recipient("4915112345678", "DE")),
    ],
)
def test_other_countries(raw: str, expected: Recipient) -> None:
    assert parse_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("56789045", NEED_COUNTRY_CODE),  # the doc's "missing country code"
        ("07912 345678", NEED_COUNTRY_CODE),  # UK national with trunk 0
        ("2125551234", NEED_COUNTRY_CODE),  # US national without the 1
        ("+372 123", INVALID),
        ("00372 1", INVALID),
        ("+999 1234 5678", INVALID),  # no such country code
        ("+", NOT_A_NUMBER),
        ("abc", NOT_A_NUMBER),
        ("+1 800 FLOWERS", NOT_A_NUMBER),
        ("+372 5678 9045 ext 12", NOT_A_NUMBER),
        ("+37256789045+1", SEVERAL),
        ("+372 5678 9045 +44 7912 345678", SEVERAL),
        ("37256789045 447912345678", SEVERAL),
        ("0037256789045447123", SEVERAL),
        ("003725678904544", INVALID),  # 15 digits after 00: one (invalid) number
        ("+800 1234 5678", NO_COUNTRY),  # valid, but international freephone
    ],
)
def test_refusals(raw: str, reason: str) -> None:
    assert parse_number(raw) == Invalid(raw, reason)


def test_country_code_hint_names_the_format() -> None:
    assert "country code" in NEED_COUNTRY_CODE and "+372" in NEED_COUNTRY_CODE


def test_separators() -> None:
    text = "+372 5678 9045\n447912345678, 12125551234;\r\n\n ;, 0049 151 12345678 "
    assert split_entries(text) == [
        "+372 5678 9045",
        "447912345678",
        "12125551234",
        "0049 151 12345678",
    ]
    result = parse_recipients(text)
    assert [r.digits for r in result.valid] == [
        "37256789045",
        "447912345678",
        "12125551234",
        "4915112345678",
    ]
    assert [r.region for r in result.valid] == ["EE", "GB", "US", "DE"]
    assert result.invalid == [] and not result.too_many


def test_mixed_valid_invalid_and_duplicates() -> None:
    text = "+372 5678 9045\n56789045\n00372 5678 9045\n37256789045\n+44 7912 345678\n56789045"
    result = parse_recipients(text)
    assert result.valid == [ESTONIA, UK]  # the same number in three forms is kept once
    assert result.invalid == [Invalid("56789045", NEED_COUNTRY_CODE)]
    assert not result.too_many


def test_empty_input() -> None:
    result = parse_recipients(" \n , ; ")
    assert (result.valid, result.invalid, result.too_many) == ([], [], False)


def test_limit_keeps_the_first_and_flags() -> None:
    numbers = [f"+37256789{n:03d}" for n in range(5)]
    assert all(isinstance(parse_number(n), Recipient) for n in numbers)
    result = parse_recipients("\n".join(numbers), limit=3)
    assert [r.digits for r in result.valid] == [n[1:] for n in numbers[:3]]
    assert result.too_many
    exact = parse_recipients("\n".join(numbers[:3] + numbers[:1]), limit=3)
    assert len(exact.valid) == 3 and not exact.too_many  # a duplicate does not count twice


def test_default_limit_is_one_hundred() -> None:
    numbers = [f"+3725{n:07d}" for n in range(101)]
    valid = [n for n in numbers if isinstance(parse_number(n), Recipient)]
    assert len(valid) == 101
    result = parse_recipients(",".join(valid))
    assert len(result.valid) == 100 and result.too_many


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        parse_recipients("+372 5678 9045", limit=0)
