"""The audit log: every admin action, who did it and when."""

from __future__ import annotations

import time

from shop.models import AuditEntry
from storage.db import Database, Tx


class AuditRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def write(
        tx: Tx, actor_id: int, action: str, target: object = "", detail: str = ""
    ) -> None:
        """Record an action in the caller's transaction: it lands with the change or not at all."""
        await tx.execute(
            "INSERT INTO audit_log (actor_id, action, target, detail, created_at) "
            "VALUES (:actor_id, :action, :target, :detail, :now)",
            {
                "actor_id": actor_id,
                "action": action,
                "target": str(target),
                "detail": detail,
                "now": int(time.time()),
            },
        )

    async def record(
        self, actor_id: int, action: str, target: object = "", detail: str = ""
    ) -> None:
        """Record an action in a transaction of its own."""
        async with self.db.transaction() as tx:
            await self.write(tx, actor_id, action, target, detail)

    async def recent(self, limit: int = 20, offset: int = 0) -> list[AuditEntry]:
        rows = await self.db.fetchall(
            "SELECT * FROM audit_log ORDER BY id DESC LIMIT :limit OFFSET :offset",
            {"limit": limit, "offset": offset},
        )
        return [
            AuditEntry(
                r["id"], r["actor_id"], r["action"], r["target"], r["detail"], r["created_at"]
            )
            for r in rows
        ]
