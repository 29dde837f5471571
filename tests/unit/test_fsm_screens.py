"""The SQLite FSM keeps screen states (which buy screen is shown) in memory and every other
state (forms) in the database; a screen state never leaves a form's state behind in SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event
from sqlalchemy.engine import Engine

from storage.db import Database
from storage.fsm import SQLiteStorage
from storage.migrate import open_database

SCREEN = "BuyForm:country:"
KEY = StorageKey(bot_id=1, chat_id=5, user_id=5)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "shop.db")
    await open_database(database)
    yield database
    await database.close()


async def _rows(db: Database) -> list[tuple[str, str | None]]:
    return [(r["key"], r["state"]) for r in await db.fetchall("SELECT key, state FROM fsm")]


async def test_screen_states_are_not_written(db: Database) -> None:
    storage = SQLiteStorage(db, in_memory=[SCREEN])
    await storage.set_state(KEY, SCREEN + "12")
    assert await storage.get_state(KEY) == SCREEN + "12"
    await storage.set_state(KEY, SCREEN + "13")
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None
    assert await _rows(db) == []


async def test_forms_stay_in_the_database_and_screens_replace_them(db: Database) -> None:
    storage = SQLiteStorage(db, in_memory=[SCREEN])
    await storage.set_state(KEY, "TopupForm:amount")
    assert await SQLiteStorage(db).get_state(KEY) == "TopupForm:amount"  # survives a restart
    await storage.set_state(KEY, SCREEN + "12")  # the form is left for a screen
    assert await storage.get_state(KEY) == SCREEN + "12"
    assert await SQLiteStorage(db).get_state(KEY) is None  # no stale form after a restart
    await storage.set_state(KEY, "SmsForm:text")  # and from a screen into a form
    assert await storage.get_state(KEY) == "SmsForm:text"
    assert await SQLiteStorage(db).get_state(KEY) == "SmsForm:text"


async def test_the_oldest_screens_are_forgotten(db: Database) -> None:
    storage = SQLiteStorage(db, in_memory=[SCREEN], max_screens=2)
    keys = [StorageKey(bot_id=1, chat_id=n, user_id=n) for n in (1, 2, 3)]
    for key in keys:
        await storage.set_state(key, SCREEN + "7")
    assert [await storage.get_state(key) for key in keys] == [None, SCREEN + "7", SCREEN + "7"]


async def test_data_is_read_once_while_there_is_none(db: Database) -> None:
    """A key known to hold no data is answered without a read (the main menu clears the
    state of every buy screen); data written later is seen at once, by this storage and
    after a restart."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        statements.append(sql)

    storage = SQLiteStorage(db, in_memory=[SCREEN])
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        assert await storage.get_data(KEY) == {}
        reads = len(statements)
        assert await storage.get_data(KEY) == {}
        assert len(statements) == reads  # known: no data, nothing read
        await storage.set_data(KEY, {"amount": "5"})
        assert await storage.get_data(KEY) == {"amount": "5"}
        assert await SQLiteStorage(db).get_data(KEY) == {"amount": "5"}
        await storage.set_data(KEY, {})
        writes = len(statements)
        assert await storage.get_data(KEY) == {}
        assert len(statements) == writes
        assert await SQLiteStorage(db).get_data(KEY) == {}
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


async def test_a_read_overlapped_by_a_write_is_not_remembered(db: Database) -> None:
    """However a read and a write of the same key interleave, the data written is what the
    next read answers (a read that saw the row before the write keeps nothing)."""
    for turns in range(4):
        storage = SQLiteStorage(db)
        key = StorageKey(bot_id=1, chat_id=10 + turns, user_id=10 + turns)
        writing = asyncio.ensure_future(storage.set_data(key, {"recipients": "1"}))
        for _ in range(turns):
            await asyncio.sleep(0)
        read = await storage.get_data(key)
        await writing
        assert read in ({}, {"recipients": "1"})
        assert await storage.get_data(key) == {"recipients": "1"}
