"""Pure rules of the admin services: when the daily backup runs, which orders cost us upstream."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shop.models import ReconOrder
from shop.services.backups import seconds_until_hour
from shop.services.reconcile import _returned_upstream


def _order(status: str, **fields: object) -> ReconOrder:
    values: dict[str, object] = {
        "route": "smspalm2",
        "status": status,
        "has_number": True,
        "has_code": False,
        "needs_attention": False,
        "charged": True,
        "refunded": status in ("cancelled", "expired", "failed"),
        "price": 33,
        "cost": 25,
        "upstream_cost": Decimal(250),
        "created_at": 1,
        "finished_at": 2,
    }
    values.update(fields)
    return ReconOrder(**values)  # type: ignore[arg-type]


def test_seconds_until_the_backup_hour() -> None:
    at = datetime(2025, 3, 5, 2, 30, tzinfo=UTC)
    assert seconds_until_hour(3, at) == 30 * 60
    assert seconds_until_hour(2, at) == 23 * 3600 + 30 * 60  # passed today: tomorrow
    assert seconds_until_hour(2, datetime(2025, 3, 5, 2, 0, tzinfo=UTC)) == 24 * 3600


def test_which_orders_the_upstream_gave_back() -> None:
    assert _returned_upstream(_order("cancelled"))
    assert _returned_upstream(_order("expired"))
    # a code, a number still waiting, a cancel that failed: the upstream keeps the money
    assert not _returned_upstream(_order("completed", has_code=True, refunded=False))
    assert not _returned_upstream(_order("expired", has_code=True))
    assert not _returned_upstream(_order("number_issued", refunded=False))
    assert not _returned_upstream(_order("expired", needs_attention=True))
    # no number at all: nothing was paid, nothing given back
    assert not _returned_upstream(_order("failed", has_number=False))
