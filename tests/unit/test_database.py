"""`storage.db.Database` on the run's database (SQLite, or PostgreSQL with
NUMBOT_TEST_DATABASE=postgresql): a transaction cancelled at any await ends rolled back and
leaves its connection clean for the next one."""

from __future__ import annotations

import asyncio

import pytest

from storage.db import (
    READER_CACHE_KIB,
    WRITER_CACHE_KIB,
    Database,
    Record,
    _named,
    async_url,
    safe_url,
)


async def _count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM kv WHERE key LIKE 'cancel-%'"))


async def _write_two(db: Database, n: int, started: asyncio.Event | None = None) -> None:
    async with db.transaction() as tx:
        if started is not None:
            started.set()
        await tx.execute(
            "INSERT INTO kv (key, value, updated_at) VALUES (:k, 'a', 0)", {"k": f"cancel-{n}-a"}
        )
        await asyncio.sleep(0)
        await tx.execute(
            "INSERT INTO kv (key, value, updated_at) VALUES (:k, 'b', 0)", {"k": f"cancel-{n}-b"}
        )


async def _normal_transaction_works(db: Database, key: str) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO kv (key, value, updated_at) VALUES (:k, 'ok', 0)", {"k": key}
        )
    assert await db.fetchval("SELECT value FROM kv WHERE key = :k", {"k": key}) == "ok"


async def test_cancelled_at_every_await_rolls_back_and_leaves_the_connection_clean(
    database: Database,
) -> None:
    # Cancel after 0, 1, 2, ... turns of the loop: that lands on every await of the
    # transaction in turn (taking the lock, connecting, BEGIN, each statement, COMMIT).
    for n in range(60):
        task = asyncio.create_task(_write_two(database, n))
        for _ in range(n):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        rows = await database.fetchall(
            "SELECT key FROM kv WHERE key LIKE :p", {"p": f"cancel-{n}-%"}
        )
        assert len(rows) in (0, 2), (n, rows)  # all or nothing, never half
        await _normal_transaction_works(database, f"after-{n}")


async def test_cancelled_while_a_statement_runs(database: Database) -> None:
    slow = (
        "SELECT pg_sleep(0.3)"
        if not database.is_sqlite
        else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
        " SELECT COUNT(*) FROM c"
    )

    async def body() -> None:
        async with database.transaction() as tx:
            await tx.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES ('cancel-slow', 'x', 0)"
            )
            await tx.fetchall(slow)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await database.fetchval("SELECT COUNT(*) FROM kv WHERE key = 'cancel-slow'") == 0
    await _normal_transaction_works(database, "after-slow")


async def test_cancelled_while_waiting_for_another_transaction(database: Database) -> None:
    """SQLite: queued behind the write lock; PostgreSQL: blocked on a row lock."""
    await _normal_transaction_works(database, "row")
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with database.transaction() as tx:
            await tx.execute("UPDATE kv SET value = 'held' WHERE key = 'row'")
            holding.set()
            await release.wait()

    async def waiter() -> None:
        async with database.transaction() as tx:
            await tx.execute("UPDATE kv SET value = 'waiter' WHERE key = 'row'")

    first = asyncio.create_task(holder())
    await holding.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0.2)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    release.set()
    await first
    assert await database.fetchval("SELECT value FROM kv WHERE key = 'row'") == "held"
    await _normal_transaction_works(database, "after-wait")


async def test_an_error_rolls_back(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as tx:
            await tx.execute("INSERT INTO kv (key, value, updated_at) VALUES ('err', 'x', 0)")
            raise RuntimeError("boom")
    assert await database.fetchval("SELECT COUNT(*) FROM kv WHERE key = 'err'") == 0
    await _normal_transaction_works(database, "after-error")


async def test_insert_returns_the_new_id_and_rows_read_by_name(database: Database) -> None:
    async with database.transaction() as tx:
        first = await tx.insert(
            "INSERT INTO audit_log (actor_id, action, created_at) VALUES (:a, 'x', 0)", {"a": 1}
        )
        second = await tx.insert(
            "INSERT INTO audit_log (actor_id, action, created_at) VALUES (:a, 'y', 0) "
            "RETURNING id",
            {"a": 2},
        )
    assert second > first > 0
    row = await database.fetchone(
        "SELECT id, action FROM audit_log WHERE id = :id", {"id": second}
    )
    assert isinstance(row, Record)
    assert row["id"] == row[0] == second and row["action"] == "y"


def test_urls() -> None:
    assert str(async_url("sqlite:///data/bot.db")) == "sqlite+aiosqlite:///data/bot.db"
    assert async_url("postgresql://u:p@h:5432/d").drivername == "postgresql+asyncpg"
    assert async_url("postgres://u:p@h/d").drivername == "postgresql+asyncpg"
    assert async_url("postgresql+asyncpg://u:p@h/d").drivername == "postgresql+asyncpg"
    assert "secret" not in safe_url("postgresql://u:secret@h:5432/d")
    with pytest.raises(ValueError):
        async_url("mysql://u@h/d")


def test_question_marks_outside_literals_become_named() -> None:
    assert _named("SELECT '?' , x FROM t WHERE a = ? AND b = ?") == (
        "SELECT '?' , x FROM t WHERE a = :p0 AND b = :p1",
        2,
    )


async def test_a_snapshot_ends_its_transaction_and_reads_after_it_see_new_writes(
    database: Database,
) -> None:
    # SQLite's readers skip the DBAPI rollback in autocommit, so a snapshot must end its own
    # BEGIN: a connection handed back inside it would keep reading the old state.
    await _normal_transaction_works(database, "snap-before")
    async with database.snapshot() as conn:
        seen = (await conn.exec_driver_sql("SELECT COUNT(*) FROM kv")).scalar_one()
    await _normal_transaction_works(database, "snap-after")

    async def count() -> int:
        return int(await database.fetchval("SELECT COUNT(*) FROM kv"))

    # More reads at once than the pool has connections: every connection answers one.
    assert await asyncio.gather(*(count() for _ in range(12))) == [seen + 1] * 12


async def test_sqlite_connections_keep_a_bounded_page_cache(database: Database) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite's page cache per connection")
    readers = await asyncio.gather(*(database.fetchval("PRAGMA cache_size") for _ in range(6)))
    assert set(readers) == {-READER_CACHE_KIB}
    async with database.transaction() as tx:
        row = await tx.fetchone("PRAGMA cache_size")
    assert row is not None and row[0] == -WRITER_CACHE_KIB
