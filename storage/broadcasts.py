"""Broadcasts and their deliveries: one row per recipient, leaving 'pending' at most once.

A delivery goes `pending -> sending -> sent | failed | blocked`. The runner reads pending
recipients without writing; a row becomes 'sending' in a commit made right before its own
copyMessage (the copies that start together share that commit), and outcomes are written in
batches with the next such commit. A row still in 'sending' when a broadcast resumes was in
flight when the process died: it is settled as 'sent' with `error = UNKNOWN` and never sent
again (at most once). A row never tried is still 'pending' and is sent after the restart. A copy
Telegram refused with a flood wait was not sent: its row goes back to 'pending'.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from shop.models import Broadcast, BroadcastStatus, Counts, DeliveryStatus, Outcome
from storage.audit import AuditRepo
from storage.db import Database, Tx
from storage.db import Record as Row

UNKNOWN = "outcome unknown (interrupted)"
BROADCAST_START_LOCK = 0x6E756D63  # advisory lock key: one broadcast start at a time
_FOR_UPDATE = {False: "", True: " FOR UPDATE"}


def _broadcast(row: Row) -> Broadcast:
    return Broadcast(
        id=row["id"],
        admin_id=row["admin_id"],
        from_chat_id=row["from_chat_id"],
        message_id=row["message_id"],
        progress_chat=row["progress_chat"],
        progress_msg=row["progress_msg"],
        status=BroadcastStatus(row["status"]),
        total=row["total"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


_RECIPIENTS = "FROM users WHERE is_active = 1 AND is_banned = 0"


class BroadcastRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, broadcast_id: int) -> Broadcast | None:
        row = await self.db.fetchone(
            "SELECT * FROM broadcasts WHERE id = :id", {"id": broadcast_id}
        )
        return None if row is None else _broadcast(row)

    async def running(self) -> list[Broadcast]:
        rows = await self.db.fetchall(
            "SELECT * FROM broadcasts WHERE status = 'running' ORDER BY id"
        )
        return [_broadcast(r) for r in rows]

    async def recipients(self) -> int:
        """How many users a broadcast started now would reach: active and not banned."""
        return int(await self.db.fetchval(f"SELECT COUNT(*) {_RECIPIENTS}"))

    async def create_draft(
        self, admin_id: int, from_chat_id: int, message_id: int, progress_chat: int
    ) -> Broadcast:
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                """
                INSERT INTO broadcasts (admin_id, from_chat_id, message_id, progress_chat,
                                        created_at)
                VALUES (:admin_id, :from_chat_id, :message_id, :progress_chat, :now)
                RETURNING *
                """,
                {
                    "admin_id": admin_id,
                    "from_chat_id": from_chat_id,
                    "message_id": message_id,
                    "progress_chat": progress_chat,
                    "now": int(time.time()),
                },
            )
        assert row is not None
        return _broadcast(row)

    async def start(
        self, broadcast_id: int, admin_id: int, progress_msg: int
    ) -> tuple[Broadcast | None, Broadcast | None]:
        """Draft -> running with one delivery per recipient, audited, in one transaction.

        Returns (started, None), or (None, the broadcast already running), or (None, None)
        when this draft is not the admin's or no longer a draft.
        """
        now = int(time.time())
        async with self.db.transaction() as tx:
            # One broadcast runs at a time: starts take turns (PostgreSQL; SQLite's writer
            # serializes them anyway), so two admins cannot both find none running.
            await tx.lock_key(BROADCAST_START_LOCK)
            busy = await tx.fetchone(
                "SELECT * FROM broadcasts WHERE status = 'running' AND id <> :id LIMIT 1",
                {"id": broadcast_id},
            )
            if busy is not None:
                return None, _broadcast(busy)
            changed = await tx.execute(
                """
                UPDATE broadcasts SET status = 'running', started_at = :now,
                       progress_msg = :progress_msg
                WHERE id = :id AND admin_id = :admin_id AND status = 'draft'
                """,
                {
                    "now": now,
                    "progress_msg": progress_msg,
                    "id": broadcast_id,
                    "admin_id": admin_id,
                },
            )
            if changed != 1:
                return None, None
            total = await tx.execute(
                f"""
                INSERT INTO broadcast_deliveries (broadcast_id, user_id, status, updated_at)
                SELECT CAST(:id AS BIGINT), id, 'pending', CAST(:now AS BIGINT) {_RECIPIENTS}
                """,
                {"id": broadcast_id, "now": now},
            )
            await tx.execute(
                "UPDATE broadcasts SET total = :total WHERE id = :id",
                {"total": total, "id": broadcast_id},
            )
            await AuditRepo.write(
                tx, admin_id, "broadcast_start", broadcast_id, f"{total} recipients"
            )
            row = await tx.fetchone(
                "SELECT * FROM broadcasts WHERE id = :id", {"id": broadcast_id}
            )
        assert row is not None
        return _broadcast(row), None

    async def cancel(self, broadcast_id: int, admin_id: int) -> Broadcast | None:
        """Draft or running -> cancelled, audited; None when it was neither."""
        async with self.db.transaction() as tx:
            before = await tx.fetchone(
                "SELECT status FROM broadcasts WHERE id = :id" + _FOR_UPDATE[tx.is_postgres],
                {"id": broadcast_id},
            )
            changed = await tx.execute(
                """
                UPDATE broadcasts SET status = 'cancelled', finished_at = :now
                WHERE id = :id AND status IN ('draft', 'running')
                """,
                {"now": int(time.time()), "id": broadcast_id},
            )
            if changed != 1 or before is None:
                return None
            await AuditRepo.write(
                tx, admin_id, "broadcast_cancel", broadcast_id, f"was {before['status']}"
            )
            row = await tx.fetchone(
                "SELECT * FROM broadcasts WHERE id = :id", {"id": broadcast_id}
            )
        assert row is not None
        return _broadcast(row)

    async def settle_interrupted(self, broadcast_id: int) -> int:
        """Rows left 'sending' by a crash: settled as sent with an unknown outcome, never
        resent. Returns how many."""
        async with self.db.transaction() as tx:
            return await tx.execute(
                """
                UPDATE broadcast_deliveries SET status = 'sent', error = :error, updated_at = :now
                WHERE broadcast_id = :id AND status = 'sending'
                """,
                {"error": UNKNOWN, "now": int(time.time()), "id": broadcast_id},
            )

    async def pending(self, broadcast_id: int, limit: int) -> list[int]:
        """Up to `limit` recipients not tried yet, in order. Reads only: a row is claimed by
        `claim` right before its copy."""
        rows = await self.db.fetchall(
            """
            SELECT user_id FROM broadcast_deliveries
            WHERE broadcast_id = :id AND status = 'pending' ORDER BY user_id LIMIT :limit
            """,
            {"id": broadcast_id, "limit": limit},
        )
        return [int(r["user_id"]) for r in rows]

    async def claim(
        self,
        broadcast_id: int,
        user_ids: Sequence[int],
        settled: Sequence[Outcome],
        release: Iterable[int] = (),
    ) -> list[int] | None:
        """Settle `settled`, put `release` back to pending, and mark those of `user_ids` still
        pending as 'sending', in one transaction: the copies to exactly the returned users
        must start right after it. None when the broadcast is no longer running (the outcomes
        are still written, nobody is claimed)."""
        async with self.db.transaction() as tx:
            await self._settle(tx, broadcast_id, settled)
            await self._release(tx, broadcast_id, release)
            status = await tx.fetchone(
                "SELECT status FROM broadcasts WHERE id = :id", {"id": broadcast_id}
            )
            if status is None or status["status"] != BroadcastStatus.RUNNING:
                return None
            wanted = list(dict.fromkeys(user_ids))
            if not wanted:
                return []
            params: dict[str, object] = {f"u{i}": user_id for i, user_id in enumerate(wanted)}
            marks = ", ".join(f":{key}" for key in params)
            rows = await tx.fetchall(
                f"""
                UPDATE broadcast_deliveries SET status = 'sending', updated_at = :now
                WHERE broadcast_id = :id AND status = 'pending' AND user_id IN ({marks})
                RETURNING user_id
                """,
                {**params, "now": int(time.time()), "id": broadcast_id},
            )
        claimed = {int(r["user_id"]) for r in rows}
        return [user_id for user_id in wanted if user_id in claimed]

    async def settle(
        self, broadcast_id: int, settled: Sequence[Outcome], release: Iterable[int] = ()
    ) -> None:
        """Write outcomes, and put claimed recipients that were never tried back to
        'pending', in one transaction."""
        async with self.db.transaction() as tx:
            await self._settle(tx, broadcast_id, settled)
            await self._release(tx, broadcast_id, release)

    async def finish(self, broadcast_id: int, settled: Sequence[Outcome]) -> Broadcast | None:
        """Write the last outcomes and mark the broadcast done (unless it was cancelled)."""
        async with self.db.transaction() as tx:
            await self._settle(tx, broadcast_id, settled)
            await tx.execute(
                """
                UPDATE broadcasts SET status = 'done', finished_at = :now
                WHERE id = :id AND status = 'running' AND NOT EXISTS (
                    SELECT 1 FROM broadcast_deliveries
                    WHERE broadcast_id = :id AND status IN ('pending', 'sending'))
                """,
                {"now": int(time.time()), "id": broadcast_id},
            )
            row = await tx.fetchone(
                "SELECT * FROM broadcasts WHERE id = :id", {"id": broadcast_id}
            )
        return None if row is None else _broadcast(row)

    @staticmethod
    async def _release(tx: Tx, broadcast_id: int, release: Iterable[int]) -> None:
        rows = [{"id": broadcast_id, "user_id": user_id} for user_id in release]
        if rows:
            await tx.executemany(
                """
                UPDATE broadcast_deliveries SET status = 'pending'
                WHERE broadcast_id = :id AND user_id = :user_id AND status = 'sending'
                """,
                rows,
            )

    @staticmethod
    async def _settle(tx: Tx, broadcast_id: int, settled: Sequence[Outcome]) -> None:
        if not settled:
            return
        now = int(time.time())
        await tx.executemany(
            """
            UPDATE broadcast_deliveries SET status = :status, error = :error, updated_at = :now
            WHERE broadcast_id = :id AND user_id = :user_id AND status = 'sending'
            """,
            [
                {
                    "status": o.status.value,
                    "error": o.error,
                    "now": now,
                    "id": broadcast_id,
                    "user_id": o.user_id,
                }
                for o in settled
            ],
        )
        blocked = [{"id": o.user_id} for o in settled if o.status == DeliveryStatus.BLOCKED]
        if blocked:
            # The user blocked the bot: skipped by later broadcasts until they write again.
            tx.changed("users", *(row["id"] for row in blocked))
            await tx.executemany("UPDATE users SET is_active = 0 WHERE id = :id", blocked)

    async def counts(self, broadcast_id: int) -> Counts:
        rows = await self.db.fetchall(
            """
            SELECT status, CASE WHEN error IS NULL THEN 0 ELSE 1 END AS has_error,
                   COUNT(*) AS n
            FROM broadcast_deliveries WHERE broadcast_id = :id
            GROUP BY status, CASE WHEN error IS NULL THEN 0 ELSE 1 END
            """,
            {"id": broadcast_id},
        )
        by: dict[str, int] = {}
        unknown = total = 0
        for row in rows:
            by[row["status"]] = by.get(row["status"], 0) + row["n"]
            total += row["n"]
            if row["status"] == DeliveryStatus.SENT and row["has_error"]:
                unknown += row["n"]
        return Counts(
            total=total,
            sent=by.get(DeliveryStatus.SENT, 0),
            failed=by.get(DeliveryStatus.FAILED, 0),
            blocked=by.get(DeliveryStatus.BLOCKED, 0),
            unknown=unknown,
            sending=by.get(DeliveryStatus.SENDING, 0),
        )

    async def deliveries(self, broadcast_id: int) -> dict[int, tuple[str, str | None]]:
        """user id -> (status, error), for tests and reports."""
        rows = await self.db.fetchall(
            "SELECT user_id, status, error FROM broadcast_deliveries WHERE broadcast_id = :id",
            {"id": broadcast_id},
        )
        return {r["user_id"]: (r["status"], r["error"]) for r in rows}
