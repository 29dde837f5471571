"""The SMS statements of storage/sms.py when two transactions change one send at once."""

from __future__ import annotations

import asyncio

import pytest

from storage.db import Database
from storage.sms import SmsRepo


async def _waits_for_a_lock(db: Database) -> bool:
    rows = await db.fetchall(
        "SELECT COUNT(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(rows[0]["n"]) > 0


async def test_the_last_of_two_statuses_at_once_sees_nothing_pending(database: Database) -> None:
    """Two transactions each give one of a send's last two messages its final status, the
    second starting before the first ends: the one that counts last sees no message pending,
    so the send is closed. (Each reads the send with `get_in` first.)"""
    if database.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time")
    db = database
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (id, created_at) VALUES (1, 0)")
    repo = SmsRepo(db)
    send_id = await repo.create_draft(
        1, "Hi", "SMSPM.com", "GSM-7", 1, [("3725100", "EE", 10), ("3725101", "EE", 10)], 600
    )
    first, second = await repo.messages(send_id)
    counts: dict[str, int] = {}
    first_counted = asyncio.Event()

    async def other() -> None:
        async with db.transaction() as tx:
            assert await repo.get_in(tx, send_id) is not None
            assert await repo.set_status(tx, second.id, "delivered")
            counts["second"] = await repo.pending_count(tx, send_id)
            await first_counted.wait()  # still open while the first one counts

    async with db.transaction() as tx:
        assert await repo.get_in(tx, send_id) is not None
        assert await repo.set_status(tx, first.id, "delivered")
        task = asyncio.create_task(other())
        for _ in range(1000):  # until the other one has counted, or waits for this one
            if "second" in counts or await _waits_for_a_lock(db):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second transaction neither counted nor waited")
        counts["first"] = await repo.pending_count(tx, send_id)
        first_counted.set()
    await task
    assert sorted(counts.values()) == [0, 1], counts
