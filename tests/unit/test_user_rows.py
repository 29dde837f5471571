"""`UserRows`: the sender's row kept by the one process that owns the database, dropped by
every write to it (`Tx.changed`) once that write's transaction has ended."""

from __future__ import annotations

from shop.models import LedgerKind
from storage.admin import AdminRepo
from storage.db import Database
from storage.users import ROW, LedgerRepo, UserRepo, UserRows


async def _behind_its_back(db: Database, sql: str, user_id: int) -> None:
    """A write that does not say which rows it changes (as no code of ours does)."""
    async with db.transaction() as tx:
        await tx.execute(sql, {"id": user_id})


async def test_a_known_user_is_answered_from_the_copy_until_a_write_drops_it(
    database: Database,
) -> None:
    repo = UserRepo(database, UserRows(database))
    alice = await repo.upsert(1, "alice", "Alice", "en")
    assert await repo.current(1) == alice
    # Served from the copy: a row changed without saying so is not read again ...
    await _behind_its_back(database, "UPDATE users SET first_name = 'Changed' WHERE id = :id", 1)
    assert (await repo.current(1)) == alice
    # ... and every write of ours drops it: the balance, the ban, the profile.
    async with database.transaction() as tx:
        assert await LedgerRepo.apply(tx, 1, 250, LedgerKind.CREDIT, "test")
    user = await repo.current(1)
    assert user is not None and (user.balance, user.first_name) == (250, "Changed")
    async with database.transaction() as tx:
        assert await AdminRepo.set_banned(tx, 1, True)
    user = await repo.current(1)
    assert user is not None and user.is_banned
    await repo.set_locale(1, "ru")
    user = await repo.current(1)
    assert user is not None and user.locale == "ru"


async def test_a_rolled_back_write_drops_the_copy_too(database: Database) -> None:
    repo = UserRepo(database, UserRows(database))
    await repo.upsert(1, "alice", "Alice", "en")
    assert (await repo.current(1)) is not None
    try:
        async with database.transaction() as tx:
            await LedgerRepo.apply(tx, 1, 100, LedgerKind.CREDIT, "undone")
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    await _behind_its_back(database, "UPDATE users SET first_name = 'Fresh' WHERE id = :id", 1)
    user = await repo.current(1)
    assert user is not None and (user.balance, user.first_name) == (0, "Fresh")


async def test_a_read_that_a_drop_overlapped_is_not_kept(database: Database) -> None:
    rows = UserRows(database)
    repo = UserRepo(database, rows)
    alice = await repo.upsert(1, "alice", "Alice", "en")
    before = rows.drops
    rows.drop({2})  # another user's write ended while this read was under way
    rows.keep(1, ROW, alice, before)
    assert rows.get(1, ROW) is None
    rows.keep(1, ROW, alice, rows.drops)
    assert rows.get(1, ROW) == alice


async def test_without_a_copy_every_call_reads(database: Database) -> None:
    repo = UserRepo(database)
    await repo.upsert(1, "alice", "Alice", "en")
    await _behind_its_back(database, "UPDATE users SET first_name = 'Changed' WHERE id = :id", 1)
    user = await repo.current(1)
    assert user is not None and user.first_name == "Changed"


async def test_the_copy_is_bounded(database: Database) -> None:
    rows = UserRows(database, size=2)
    repo = UserRepo(database, rows)
    for user_id in (1, 2, 3):
        await repo.upsert(user_id, None, f"U{user_id}", None)
        await repo.current(user_id)
    assert rows.get(1, ROW) is None
    assert rows.get(2, ROW) is not None and rows.get(3, ROW) is not None
