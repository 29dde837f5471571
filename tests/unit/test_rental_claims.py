"""`RentalRepo.claim_due`: a rental is handed out once per poll period, whoever asks.

Two instances are two `Database` connections on one SQLite file, racing on the same rentals;
the compare-and-set on `next_poll_at` is what makes each claim atomic per row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from shop.models import NewRental, RentalState
from storage.db import Database
from storage.migrate import open_database
from storage.rentals import RentalRepo

NOW = 1_800_000_000


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[RentalRepo, RentalRepo]]:
    one, other = Database(tmp_path / "shop.db"), Database(tmp_path / "shop.db")
    await open_database(one)
    await open_database(other)
    repo = RentalRepo(one)
    async with one.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, first_name, created_at) VALUES (:id, 'A', :now)",
            {"id": 1, "now": NOW},
        )
        for n in range(30):
            rental_id = await repo.create(
                tx,
                NewRental(
                    user_id=1,
                    request_key=f"1:{n}",
                    offer_id="0",
                    country="United States",
                    extendable=True,
                    service_id=None,
                    days=7,
                    price=100,
                    upstream_cost=Decimal("1"),
                    cost=100,
                    pricing={7: Decimal("1")},
                    chat_id=None,
                ),
                NOW,
            )
            assert rental_id is not None
            await repo.transition(
                tx,
                rental_id,
                [RentalState.BUYING],
                RentalState.ACTIVE,
                rental_code=f"CODE{n}",
                next_poll_at=NOW - n,
            )
    yield repo, RentalRepo(other)
    await other.close()
    await one.close()


async def test_two_instances_never_claim_the_same_rental_in_one_period(
    two: tuple[RentalRepo, RentalRepo],
) -> None:
    a, b = two
    seen: list[int] = []
    while len(seen) < 30:
        # Both instances read the same due rows at once; each row goes to one of them.
        claims = await asyncio.gather(*(repo.claim_due(NOW, 7, NOW + 60) for repo in (a, b, a, b)))
        got = [rental.id for claim in claims for rental in claim]
        assert got, "due rentals left unclaimed"
        seen += got
    assert len(seen) == len(set(seen)) == 30  # every rental once, none twice
    assert await a.claim_due(NOW + 59, 100, NOW + 120) == []  # not due again in the period
    assert len(await b.claim_due(NOW + 60, 100, NOW + 120)) == 30  # the next period


async def test_a_stale_read_claims_nothing(two: tuple[RentalRepo, RentalRepo]) -> None:
    a, b = two
    (first,) = await a.claim_due(NOW, 1, NOW + 60)  # the oldest due: next_poll_at NOW - 29
    # Instance b read the row before a's claim: its compare-and-set on the old value fails.
    assert not await b.claim_poll(first.id, NOW - 29, NOW + 60)
    assert await b.claim_poll(first.id, NOW + 60, NOW + 120)  # the current value: claimed
    # A rental no longer live is never claimed.
    async with b.db.transaction() as tx:
        await b.transition(tx, first.id, [RentalState.ACTIVE], RentalState.EXPIRED)
    assert not await a.claim_poll(first.id, NOW + 120, NOW + 180)
    assert first.id not in [r.id for r in await a.claim_due(NOW + 500, 100, NOW + 600)]
