"""aiogram FSM storage in SQLite, so half-typed input survives a restart (no process memory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from storage.db import Database


def _key(key: StorageKey) -> str:
    return ":".join(
        str(part)
        for part in (
            key.bot_id,
            key.chat_id,
            key.user_id,
            key.thread_id or "",
            key.business_connection_id or "",
            key.destiny,
        )
    )


class SQLiteStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        # One statement, one round trip: the buy screens write a state on many taps.
        await self.db.write(
            "INSERT INTO fsm (key, state) VALUES (:key, :state) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
            {"key": _key(key), "state": value},
        )

    async def get_state(self, key: StorageKey) -> str | None:
        value = await self.db.lookup_val(
            "SELECT state FROM fsm WHERE key = :key", {"key": _key(key)}
        )
        return None if value is None else str(value)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self.db.write(
            "INSERT INTO fsm (key, data) VALUES (:key, :data) "
            "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            {"key": _key(key), "data": json.dumps(dict(data))},
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = await self.db.lookup_val(
            "SELECT data FROM fsm WHERE key = :key", {"key": _key(key)}
        )
        return {} if value is None else dict(json.loads(value))

    async def close(self) -> None:
        return None
