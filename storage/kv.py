"""Small shared flags, such as alert throttles, kept in the database rather than in memory."""

from __future__ import annotations

import time

from storage.db import Database


class KeyValueRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> str | None:
        value = await self.db.fetchval("SELECT value FROM kv WHERE key = :key", {"key": key})
        return None if value is None else str(value)

    async def set(self, key: str, value: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (:key, :value, :now) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                {"key": key, "value": value, "now": int(time.time())},
            )

    async def claim_every(self, key: str, seconds: int) -> bool:
        """True at most once per `seconds` for `key` (atomic, so safe across workers)."""
        now = int(time.time())
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (:key, '', :now) "
                "ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at "
                "WHERE kv.updated_at <= :before",
                {"key": key, "now": now, "before": now - seconds},
            )
        return changed == 1
