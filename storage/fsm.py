"""aiogram FSM storage in SQLite, so half-typed input survives a restart (no process memory).

Screen states (`in_memory` prefixes: which buy screen a user is on, so that typed text means a
country there) are written on most menu taps; they live in this process only, in a bounded
map, so a tap never queues behind the single SQLite writer. Losing one (a restart, the bound)
only makes typed text a search from the services screen, and no money or form data lives in
one. Forms (amounts, SMS recipients and text, broadcasts) stay in SQLite.

The states read from the table are remembered too (a bounded map, written through), so an
update reads no row for a user whose state this process already knows; so are the keys known
to hold no data, so that leaving a screen state (the main menu clears it) reads no data row.
That is sound because one process owns this storage: with `REDIS_URL` several instances use
aiogram's RedisStorage instead, and without it the instance registry refuses a second instance
on the database.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
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


MAX_SCREEN_STATES = 10_000  # users remembered on a screen; the oldest are forgotten


class SQLiteStorage(BaseStorage):
    def __init__(
        self, db: Database, in_memory: Iterable[str] = (), max_screens: int = MAX_SCREEN_STATES
    ) -> None:
        self.db = db
        self._memory_prefixes = tuple(in_memory)
        self._max_screens = max_screens
        # Key -> a screen state. Invariant: the row of a key held here has no state.
        self._screens: OrderedDict[str, str] = OrderedDict()
        # Key -> the state its row holds (None: no row or no state), as last read or written.
        self._stored: OrderedDict[str, str | None] = OrderedDict()
        # Keys whose row holds no data (or that have no row), as last read or written.
        self._no_data: OrderedDict[str, None] = OrderedDict()
        self._data_writes = 0  # data writes begun and ended: a read overlapping one keeps nothing

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        row_key = _key(key)
        if value is not None and self._memory_prefixes and value.startswith(self._memory_prefixes):
            if row_key not in self._screens and await self._stored_state(row_key) is not None:
                await self._write_state(row_key, None)  # a form left for a screen
            self._screens[row_key] = value
            self._screens.move_to_end(row_key)
            while len(self._screens) > self._max_screens:
                self._screens.popitem(last=False)
            return
        if self._screens.pop(row_key, None) is not None and value is None:
            return  # from a screen to nothing: the row has no state already
        await self._write_state(row_key, value)

    async def get_state(self, key: StorageKey) -> str | None:
        row_key = _key(key)
        screen = self._screens.get(row_key)
        return screen if screen is not None else await self._stored_state(row_key)

    async def _stored_state(self, row_key: str) -> str | None:
        if row_key in self._stored:
            self._stored.move_to_end(row_key)
            return self._stored[row_key]
        value = await self.db.lookup_val(
            "SELECT state FROM fsm WHERE key = :key", {"key": row_key}
        )
        state = None if value is None else str(value)
        self._remember(row_key, state)
        return state

    def _remember(self, row_key: str, state: str | None) -> None:
        self._stored[row_key] = state
        self._stored.move_to_end(row_key)
        while len(self._stored) > self._max_screens:
            self._stored.popitem(last=False)

    async def _write_state(self, row_key: str, value: str | None) -> None:
        # One statement, one round trip.
        self._stored.pop(row_key, None)  # a failed write leaves nothing remembered
        await self.db.write(
            "INSERT INTO fsm (key, state) VALUES (:key, :state) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
            {"key": row_key, "state": value},
        )
        self._remember(row_key, value)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        row_key = _key(key)
        # A read that overlaps any part of the write keeps nothing, and one kept while the
        # write ran is dropped once it has ended (committed or not).
        self._no_data.pop(row_key, None)
        self._data_writes += 1
        try:
            await self.db.write(
                "INSERT INTO fsm (key, data) VALUES (:key, :data) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
                {"key": row_key, "data": json.dumps(dict(data))},
            )
        finally:
            self._data_writes += 1
            self._no_data.pop(row_key, None)
        if not data:
            self._remember_no_data(row_key)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row_key = _key(key)
        if row_key in self._no_data:
            self._no_data.move_to_end(row_key)
            return {}
        writes = self._data_writes
        value = await self.db.lookup_val("SELECT data FROM fsm WHERE key = :key", {"key": row_key})
        data = {} if value is None else dict(json.loads(value))
        if not data and writes == self._data_writes:
            self._remember_no_data(row_key)
        return data

    def _remember_no_data(self, row_key: str) -> None:
        self._no_data[row_key] = None
        self._no_data.move_to_end(row_key)
        while len(self._no_data) > self._max_screens:
            self._no_data.popitem(last=False)

    async def close(self) -> None:
        return None
