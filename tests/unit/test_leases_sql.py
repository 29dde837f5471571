"""The lease statements of storage/leases.py on SQLite and on PostgreSQL: who may claim, renew
and release an order, a code's sending and a singleton job, at given times."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from storage.db import Database
from storage.leases import JobLeaseRepo, LeaseRepo

NOW = 1_000_000
FRESH = NOW - 30  # heartbeats older than this: the instance is gone


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The run's database (SQLite, and PostgreSQL: tests/databases.py)."""
    async with database.transaction() as tx:
        await tx.execute("INSERT INTO users (id, created_at) VALUES (1, 0)")
        await tx.execute("INSERT INTO services (id, slug, name) VALUES (1, 'wa', 'WhatsApp')")
        for instance, seen in (("a", NOW), ("b", NOW), ("stale", FRESH - 1)):
            await tx.execute(
                "INSERT INTO instances (id, host, node, pid, shared, started_at, seen_at) "
                "VALUES (:id, 'h', 'n', 1, 1, 0, :seen)",
                {"id": instance, "seen": seen},
            )
    yield database


async def add_order(db: Database, status: str, owner: str | None, until: int | None) -> int:
    async with db.transaction() as tx:
        rows = await tx.fetchall(
            "INSERT INTO orders (user_id, route, service_id, country, price, upstream_cost, "
            "cost, status, deadline, created_at, updated_at, lease_owner, lease_until) "
            "VALUES (1, 'r', 1, 'US', 100, '1', 1, :status, :deadline, 0, 0, :owner, :until) "
            "RETURNING id",
            {"status": status, "deadline": NOW + 600, "owner": owner, "until": until},
        )
    return int(rows[0]["id"])


async def test_claim_takes_only_free_watched_orders(db: Database) -> None:
    repo = LeaseRepo(db)
    held = await add_order(db, "number_issued", "a", NOW + 10)
    expired = await add_order(db, "number_issued", "a", NOW)  # ends now: free
    gone = await add_order(db, "code_received", "stale", NOW + 10)  # owner's heartbeat stale
    missing = await add_order(db, "number_issued", "ghost", NOW + 10)  # owner not registered
    unowned = await add_order(db, "number_issued", None, None)
    buying = await add_order(db, "created", None, None)  # a purchase: never claimed
    closed = await add_order(db, "completed", None, None)
    claimed = await repo.claim("b", NOW, FRESH, NOW + 30, limit=10)
    assert [c[0] for c in claimed] == [expired, gone, missing, unowned]
    assert claimed[1][1] == "code_received" and claimed[0][3] == "r"
    owners = await repo.holders([held, expired, gone, missing, unowned, buying, closed])
    assert owners == {
        held: "a",
        expired: "b",
        gone: "b",
        missing: "b",
        unowned: "b",
        buying: None,
        closed: None,
    }
    assert await repo.claim("a", NOW, FRESH, NOW + 30, limit=10) == []  # b's now


async def test_claim_in_batches(db: Database) -> None:
    repo = LeaseRepo(db)
    ids = [await add_order(db, "number_issued", None, None) for _ in range(5)]
    first = await repo.claim("a", NOW, FRESH, NOW + 30, limit=2)
    second = await repo.claim("b", NOW, FRESH, NOW + 30, limit=10)
    assert [c[0] for c in first] == ids[:2] and [c[0] for c in second] == ids[2:]


async def test_renew_answers_what_is_still_held_and_release_frees_it(db: Database) -> None:
    repo = LeaseRepo(db)
    mine = await add_order(db, "number_issued", "a", NOW + 5)
    buying = await add_order(db, "created", "a", NOW + 5)
    taken = await add_order(db, "number_issued", "b", NOW + 5)
    renewed = await repo.renew("a", NOW + 30)
    assert sorted(r[0] for r in renewed) == [mine, buying]
    assert taken not in {r[0] for r in renewed}
    later = await repo.claim("c", NOW + 20, FRESH, NOW + 50, limit=10)
    assert [c[0] for c in later] == [taken]  # a's were renewed; b's ran out
    assert await repo.release("a") == 2
    assert await repo.holders([mine, buying, taken]) == {mine: None, buying: None, taken: "c"}


async def test_interrupted_purchases_are_those_nobody_live_holds(db: Database) -> None:
    repo = LeaseRepo(db)
    live = await add_order(db, "created", "a", NOW + 10)
    dead = await add_order(db, "created", "stale", NOW + 10)
    old = await add_order(db, "created", None, None)  # from before leases
    await add_order(db, "number_issued", None, None)
    assert [i for i, _ in await repo.interrupted(NOW, FRESH)] == [dead, old]
    assert live not in {i for i, _ in await repo.interrupted(NOW, FRESH)}


async def test_a_code_is_sent_by_one_claimer(db: Database) -> None:
    repo = LeaseRepo(db)
    order = await add_order(db, "code_received", "a", NOW + 10)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO order_codes (order_id, code, received_at) VALUES (:o, '1234', 0)",
            {"o": order},
        )
    code = int(await db.fetchval("SELECT id FROM order_codes"))
    assert await repo.claim_code(code, "a", NOW, FRESH, NOW + 120)
    assert not await repo.claim_code(code, "b", NOW, FRESH, NOW + 120)  # a is sending it
    await repo.unclaim_code(code, "a")  # a's send failed
    assert await repo.claim_code(code, "b", NOW, FRESH, NOW + 120)
    assert await repo.claim_code(code, "a", NOW + 121, FRESH, NOW + 241)  # b's ran out
    async with db.transaction() as tx:
        await tx.execute("UPDATE order_codes SET delivered_at = 1")
    assert not await repo.claim_code(code, "b", NOW + 999, FRESH, NOW + 1119)


async def test_a_job_lease_is_held_renewed_and_taken_over(db: Database) -> None:
    jobs = JobLeaseRepo(db)
    # The registry's heartbeats are fresh throughout (FRESH); only the leases' times move.
    assert await jobs.acquire("catalog", "a", NOW, FRESH, NOW + 60)
    assert not await jobs.acquire("catalog", "b", NOW + 10, FRESH, NOW + 70)
    assert await jobs.acquire("catalog", "a", NOW + 50, FRESH, NOW + 110)  # renewed
    assert not await jobs.acquire("catalog", "b", NOW + 100, FRESH, NOW + 160)
    assert await jobs.acquire("catalog", "b", NOW + 111, FRESH, NOW + 171)  # ran out
    assert await jobs.holder("catalog") == ("b", NOW + 171)
    # Its owner gone from the registry (stale heartbeat): free before it runs out.
    assert await jobs.acquire("backup", "stale", NOW - 100, FRESH - 100, NOW + 86400)
    assert await jobs.acquire("backup", "a", NOW, FRESH, NOW + 86400)
    await jobs.release("a")
    assert await jobs.holder("backup") is None
    assert await jobs.holder("catalog") == ("b", NOW + 171)
