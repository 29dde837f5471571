"""The instance registry: a row per running bot in the database (every instance can see it,
with or without Redis), and a key per instance in Redis when `REDIS_URL` is set."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shop.models import Instance
from storage.db import Database, Tx

if TYPE_CHECKING:
    from redis.asyncio import Redis  # only with REDIS_URL: imported when configured

_COLUMNS = "id, host, node, pid, shared, started_at, seen_at"


def _instance(row: Any) -> Instance:
    return Instance(
        id=row["id"],
        host=row["host"],
        node=row["node"],
        pid=int(row["pid"]),
        shared=bool(row["shared"]),
        started_at=int(row["started_at"]),
        seen_at=int(row["seen_at"]),
    )


class InstanceRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def others(tx: Tx, instance_id: str) -> list[Instance]:
        # Two instances starting together must not both find the registry empty: SQLite's
        # BEGIN IMMEDIATE (one writer) serializes their transactions; on PostgreSQL (READ
        # COMMITTED) the table lock does, held until this transaction ends.
        if tx.is_postgres:
            await tx.execute("LOCK TABLE instances IN EXCLUSIVE MODE")
        rows = await tx.fetchall(
            f"SELECT {_COLUMNS} FROM instances WHERE id <> :id ORDER BY started_at, id",
            {"id": instance_id},
        )
        return [_instance(row) for row in rows]

    @staticmethod
    async def add(tx: Tx, instance: Instance) -> None:
        await tx.execute(
            f"INSERT INTO instances ({_COLUMNS}) "
            "VALUES (:id, :host, :node, :pid, :shared, :started_at, :seen_at) "
            "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
            {
                "id": instance.id,
                "host": instance.host,
                "node": instance.node,
                "pid": instance.pid,
                "shared": int(instance.shared),
                "started_at": instance.started_at,
                "seen_at": instance.seen_at,
            },
        )

    @staticmethod
    async def remove(tx: Tx, instance_ids: Sequence[str]) -> None:
        await tx.executemany(
            "DELETE FROM instances WHERE id = :id", [{"id": i} for i in instance_ids]
        )

    async def seen(self, instance_id: str, at: int) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE instances SET seen_at = :at WHERE id = :id", {"at": at, "id": instance_id}
            )
        return changed == 1

    async def get(self, instance_id: str) -> Instance | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM instances WHERE id = :id", {"id": instance_id}
        )
        return None if row is None else _instance(row)

    async def all(self) -> list[Instance]:
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM instances ORDER BY started_at, id")
        return [_instance(row) for row in rows]


class RedisPresence:
    """`{prefix}:instance:{id}` for each live instance, expiring with its heartbeat's TTL
    (`redis-cli --scan --pattern '{prefix}:instance:*'` lists them)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:instance:"

    async def mark(self, instance: Instance, ttl: int) -> None:
        about = {"host": instance.host, "pid": instance.pid, "started_at": instance.started_at}
        await self.redis.set(self.prefix + instance.id, json.dumps(about), ex=ttl)

    async def clear(self, instance_id: str) -> None:
        await self.redis.delete(self.prefix + instance_id)
