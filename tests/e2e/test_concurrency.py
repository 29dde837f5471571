"""Money rules under races between two bot processes: two `Database`s (two engines, two
pools) on one database hammer the same user at once. On SQLite the writer lock serializes
them; on PostgreSQL (READ COMMITTED) the conditional updates, row locks and UNIQUE indexes
must. Every test ends with each balance equal to its ledger's sum."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shop.models import LedgerKind
from shop.money import Currency
from shop.services.promos import PromoRefused, PromoService
from storage.audit import AuditRepo
from storage.db import Database
from storage.migrate import open_database
from storage.promos import PromoRepo
from storage.topups import TopupRepo
from storage.users import LedgerRepo
from tests.databases import DatabaseTarget

USER = 7_000_000_001  # beyond 2^32: Telegram ids are BIGINT
ROUNDS = 12


@pytest.fixture
async def two(database_target: DatabaseTarget, tmp_path: Path) -> AsyncIterator[list[Database]]:
    url = database_target.url or f"sqlite:///{tmp_path / 'shop.db'}"
    first = Database(url, pool_size=6)
    await open_database(first)
    second = Database(url, pool_size=6)
    await open_database(second)  # migrations already applied: nothing to do
    async with first.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, first_name, created_at) VALUES (:id, 'Racer', 0)",
            {"id": USER},
        )
    yield [first, second]
    assert await LedgerRepo(first).mismatches() == []
    await second.close()
    await first.close()


async def _credit(db: Database, amount: int) -> None:
    async with db.transaction() as tx:
        assert await LedgerRepo.apply(tx, USER, amount, LedgerKind.CREDIT, "seed")


async def _all(*work: object) -> list[object]:
    return list(await asyncio.gather(*work))  # type: ignore[call-overload]


async def test_concurrent_debits_never_go_below_zero(two: list[Database]) -> None:
    await _credit(two[0], 1000)

    async def debit(db: Database) -> bool:
        async with db.transaction() as tx:
            return await LedgerRepo.apply(tx, USER, -100, LedgerKind.ADJUSTMENT, "race")

    results = await _all(*(debit(two[i % 2]) for i in range(2 * ROUNDS)))
    assert results.count(True) == 10
    ledger = LedgerRepo(two[1])
    assert await ledger.balance(USER) == 0
    assert await ledger.sum(USER) == 0


async def _order(db: Database, price: int) -> int:
    now = int(time.time())
    async with db.transaction() as tx:
        service = await tx.insert(
            "INSERT INTO services (slug, name) VALUES ('race', 'Race') RETURNING id"
        )
        order = await tx.insert(
            "INSERT INTO orders (user_id, route, service_id, country, price, upstream_cost, "
            "cost, status, created_at, updated_at) VALUES (:user, 'r', :service, 'us', :price, "
            "'1', 1, 'failed', :now, :now) RETURNING id",
            {"user": USER, "service": service, "price": price, "now": now},
        )
        assert await LedgerRepo.apply(
            tx, USER, -price, LedgerKind.PURCHASE, "number purchase", order
        )
    return order


async def test_one_refund_per_order_under_races(two: list[Database]) -> None:
    await _credit(two[0], 500)
    order = await _order(two[0], 300)

    async def refund(db: Database) -> int:
        async with db.transaction() as tx:
            return await LedgerRepo.refund_once(tx, USER, 300, "race", order_id=order)

    refunded = await _all(*(refund(two[i % 2]) for i in range(2 * ROUNDS)))
    assert sorted(refunded) == [0] * (2 * ROUNDS - 1) + [300]
    assert await LedgerRepo(two[0]).balance(USER) == 500
    count = await two[1].fetchval(
        "SELECT COUNT(*) FROM ledger WHERE order_id = :o AND kind = 'refund'", {"o": order}
    )
    assert count == 1


async def test_one_credit_per_payment_under_races(two: list[Database]) -> None:
    async with two[0].transaction() as tx:
        topup = await TopupRepo.insert(tx, USER, "crypto", 700, "7", "USDT", 3600)

    async def credit(db: Database) -> int:
        # What TopupService.credit does, from two processes at once.
        async with db.transaction() as tx:
            row = await TopupRepo.lock(tx, topup)
            if row is None or not await TopupRepo.mark_paid(tx, topup, None):
                return 0
            await LedgerRepo.apply(tx, USER, 700, LedgerKind.TOPUP, "top-up", topup_id=topup)
            return 700

    credited = await _all(*(credit(two[i % 2]) for i in range(2 * ROUNDS)))
    assert sorted(credited) == [0] * (2 * ROUNDS - 1) + [700]
    assert await LedgerRepo(two[1]).balance(USER) == 700


async def test_one_redemption_per_user_and_never_over_the_cap(two: list[Database]) -> None:
    services = [
        PromoService(db, PromoRepo(), LedgerRepo(db), AuditRepo(db), Currency.of("USD"))
        for db in two
    ]
    await services[0].create(1, "RACE", 250, 3, None)

    async def redeem(service: PromoService) -> int:
        try:
            return (await service.redeem(USER, "race")).amount
        except PromoRefused:
            return 0

    redeemed = await _all(*(redeem(services[i % 2]) for i in range(2 * ROUNDS)))
    assert sorted(redeemed) == [0] * (2 * ROUNDS - 1) + [250]
    used = await two[0].fetchval("SELECT used FROM promo_codes WHERE code = 'RACE'")
    assert used == 1
    assert await LedgerRepo(two[1]).balance(USER) == 250
