"""The FSM storage in the database (used without Redis) on SQLite and on PostgreSQL."""

from __future__ import annotations

from aiogram.fsm.storage.base import StorageKey

from storage.db import Database
from storage.fsm import SQLiteStorage


async def test_state_and_data_round_trip(database: Database) -> None:
    storage = SQLiteStorage(database)
    key = StorageKey(bot_id=1, chat_id=7_000_000_001, user_id=7_000_000_001)
    other = StorageKey(bot_id=1, chat_id=2, user_id=2)
    assert await storage.get_state(key) is None and await storage.get_data(key) == {}
    await storage.set_state(key, "Search:query")
    await storage.set_data(key, {"page": 2, "q": "what's up"})
    assert await storage.get_state(key) == "Search:query"
    assert await storage.get_data(key) == {"page": 2, "q": "what's up"}
    await storage.set_state(key, None)
    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {"page": 2, "q": "what's up"}
    assert await storage.get_state(other) is None
    await storage.close()
