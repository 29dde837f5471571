"""Pure rules of top-ups and promo codes: expiry parsing, payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shop.services.promos import parse_expiry
from shop.services.topups import TopupService

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC).timestamp()


def test_expiry_in_days() -> None:
    assert parse_expiry("7d", NOW) == int(NOW) + 7 * 86400
    assert parse_expiry("1D", NOW) == int(NOW) + 86400


def test_expiry_iso_date_lasts_through_that_day_utc() -> None:
    assert parse_expiry("2030-05-31", NOW) == int(datetime(2030, 6, 1, tzinfo=UTC).timestamp())


def test_expiry_iso_datetime() -> None:
    assert parse_expiry("2030-05-31T10:30", NOW) == int(
        datetime(2030, 5, 31, 10, 30, tzinfo=UTC).timestamp()
    )
    assert parse_expiry("2030-05-31T10:30+02:00", NOW) == int(
        datetime(2030, 5, 31, 8, 30, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize("text", ["0d", "soon", "2030-13-01", "-1d", ""])
def test_bad_expiry(text: str) -> None:
    with pytest.raises(ValueError):
        parse_expiry(text, NOW)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [("t:1", 1), ("t:42", 42), ("t:", None), ("t:-1", None), ("x:1", None), ("t:1a", None)],
)
def test_payload(payload: str, expected: int | None) -> None:
    assert TopupService.topup_id(payload) == expected
