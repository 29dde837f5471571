"""Outbound SMS sends, their recipients and per-country prices."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from aiosqlite import Row

from shop.models import FINAL, SmsMessage, SmsSend
from storage.db import Database, Tx

_FINAL_IN = ",".join("?" for _ in FINAL)


def _send(row: Row) -> SmsSend:
    return SmsSend(
        id=row["id"],
        user_id=row["user_id"],
        text=row["text"],
        sender=row["sender"],
        encoding=row["encoding"],
        segments=row["segments"],
        total_price=row["total_price"],
        status=row["status"],
        error=row["error"],
        needs_attention=bool(row["needs_attention"]),
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        quote_expires_at=row["quote_expires_at"],
        deadline=row["deadline"],
        created_at=row["created_at"],
    )


_MESSAGE_SELECT = """
SELECT m.*, EXISTS (SELECT 1 FROM ledger l WHERE l.sms_message_id = m.id AND l.kind = 'refund')
       AS refunded
FROM sms_messages m
"""


def _message(row: Row) -> SmsMessage:
    return SmsMessage(
        id=row["id"],
        send_id=row["send_id"],
        to_number=row["to_number"],
        country=row["country"],
        price=row["price"],
        upstream_id=row["upstream_id"],
        status=row["status"],
        refunded=bool(row["refunded"]),
    )


class SmsRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_draft(
        self,
        user_id: int,
        text: str,
        sender: str,
        encoding: str,
        segments: int,
        recipients: Sequence[tuple[str, str, int]],
        ttl: int,
        keep: int | None = None,
    ) -> int:
        """A priced send waiting for the user's confirmation; recipients are (digits, country,
        price). With `keep`, the user's drafts beyond the newest `keep` (this one included)
        are deleted in the same transaction."""
        now = int(time.time())
        total = sum(price for *_, price in recipients)
        async with self.db.transaction() as tx:
            send_id = await tx.insert(
                """
                INSERT INTO sms_sends (user_id, text, sender, encoding, segments, total_price,
                                       status, quote_expires_at, created_at)
                VALUES (?, ?, ?, ?, ?, ?, 'draft', ?, ?)
                """,
                (user_id, text, sender, encoding, segments, total, now + ttl, now),
            )
            await tx.executemany(
                "INSERT INTO sms_messages (send_id, to_number, country, price, status, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                [(send_id, digits, country, price, now) for digits, country, price in recipients],
            )
            if keep is not None:
                await self._delete_drafts(
                    tx,
                    """
                    SELECT id FROM sms_sends WHERE user_id = ? AND status = 'draft' AND id NOT IN (
                        SELECT id FROM sms_sends WHERE user_id = ? AND status = 'draft'
                        ORDER BY id DESC LIMIT ?)
                    """,
                    (user_id, user_id, keep),
                )
        return send_id

    async def purge_expired_drafts(self, now: int, batch: int = 200) -> int:
        """Delete drafts whose price expired unconfirmed (a draft was never charged), with
        their recipients, `batch` drafts per transaction. Returns how many."""
        purged = 0
        while True:
            async with self.db.transaction() as tx:
                deleted = await self._delete_drafts(
                    tx,
                    "SELECT id FROM sms_sends WHERE status = 'draft' AND quote_expires_at <= ? "
                    "LIMIT ?",
                    (now, batch),
                )
            purged += deleted
            if deleted < batch:
                return purged

    @staticmethod
    async def _delete_drafts(tx: Tx, select: str, params: Sequence[object]) -> int:
        """Delete the drafts `select` names (ids), recipients first."""
        ids = [int(r[0]) for r in await tx.fetchall(select, params)]
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        await tx.execute(f"DELETE FROM sms_messages WHERE send_id IN ({marks})", ids)
        return await tx.execute(
            f"DELETE FROM sms_sends WHERE id IN ({marks}) AND status = 'draft'", ids
        )

    async def get(self, send_id: int) -> SmsSend | None:
        row = await self.db.fetchone("SELECT * FROM sms_sends WHERE id = ?", (send_id,))
        return None if row is None else _send(row)

    @staticmethod
    async def get_in(tx: Tx, send_id: int) -> SmsSend | None:
        row = await tx.fetchone("SELECT * FROM sms_sends WHERE id = ?", (send_id,))
        return None if row is None else _send(row)

    async def messages(self, send_id: int) -> list[SmsMessage]:
        rows = await self.db.fetchall(
            _MESSAGE_SELECT + " WHERE m.send_id = ? ORDER BY m.id", (send_id,)
        )
        return [_message(r) for r in rows]

    @staticmethod
    async def messages_in(tx: Tx, send_id: int) -> list[SmsMessage]:
        rows = await tx.fetchall(
            _MESSAGE_SELECT + " WHERE m.send_id = ? ORDER BY m.id", (send_id,)
        )
        return [_message(r) for r in rows]

    @staticmethod
    async def pending_count(tx: Tx, send_id: int) -> int:
        """Messages of a send that have no final status yet."""
        row = await tx.fetchone(
            f"SELECT COUNT(*) FROM sms_messages WHERE send_id = ? AND status NOT IN ({_FINAL_IN})",
            (send_id, *FINAL),
        )
        return int(row[0]) if row else 0

    async def by_upstream_id(self, upstream_id: str) -> SmsMessage | None:
        row = await self.db.fetchone(_MESSAGE_SELECT + " WHERE m.upstream_id = ?", (upstream_id,))
        return None if row is None else _message(row)

    @staticmethod
    async def start_sending(
        tx: Tx,
        send_id: int,
        user_id: int,
        now: int,
        deadline: int,
        chat_id: int | None,
        message_id: int | None,
    ) -> bool:
        """draft -> sending, if it is this user's and its price is still held."""
        changed = await tx.execute(
            """
            UPDATE sms_sends SET status = 'sending', deadline = ?, chat_id = ?, message_id = ?,
                                 charged_at = ?
            WHERE id = ? AND user_id = ? AND status = 'draft' AND quote_expires_at > ?
            """,
            (deadline, chat_id, message_id, now, send_id, user_id, now),
        )
        return changed == 1

    @staticmethod
    async def set_send_status(
        tx: Tx,
        send_id: int,
        status: str,
        error: str | None = None,
        needs_attention: bool | None = None,
    ) -> None:
        finished = int(time.time()) if status in ("done", "failed") else None
        await tx.execute(
            "UPDATE sms_sends SET status = ?, error = COALESCE(?, error), "
            "needs_attention = COALESCE(?, needs_attention), "
            "finished_at = COALESCE(?, finished_at) WHERE id = ?",
            (
                status,
                error,
                None if needs_attention is None else int(needs_attention),
                finished,
                send_id,
            ),
        )

    @staticmethod
    async def accept(tx: Tx, message_id: int, upstream_id: str) -> None:
        await tx.execute(
            "UPDATE sms_messages SET upstream_id = ?, status = 'queued', updated_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (upstream_id, int(time.time()), message_id),
        )

    @staticmethod
    async def set_status(tx: Tx, message_id: int, status: str, cost: str | None = None) -> bool:
        """Move a message forward; a final status never changes again."""
        changed = await tx.execute(
            f"""
            UPDATE sms_messages SET status = ?, cost = COALESCE(?, cost), updated_at = ?
            WHERE id = ? AND status NOT IN ({",".join("?" for _ in FINAL)}) AND status <> ?
            """,
            (status, cost, int(time.time()), message_id, *FINAL, status),
        )
        return changed == 1

    async def live_sends(self) -> list[SmsSend]:
        rows = await self.db.fetchall(
            "SELECT * FROM sms_sends WHERE status IN ('sending', 'sent') ORDER BY id"
        )
        return [_send(r) for r in rows]

    async def stuck_sending(self, charged_before: int) -> list[int]:
        """Sends still `sending` that were charged before `charged_before` (epoch s)."""
        rows = await self.db.fetchall(
            "SELECT id FROM sms_sends WHERE status = 'sending' "
            "AND COALESCE(charged_at, created_at) < ? ORDER BY id",
            (charged_before,),
        )
        return [int(r[0]) for r in rows]

    async def for_user(self, user_id: int, limit: int) -> list[SmsSend]:
        rows = await self.db.lookup(
            "SELECT * FROM sms_sends WHERE user_id = ? AND status <> 'draft' "
            "ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        )
        return [_send(r) for r in rows]

    async def stats(self, since: int) -> tuple[int, int, Decimal]:
        """(sends, revenue after refunds, upstream cost in EUR) of sends charged since `since`."""
        row = await self.db.fetchone(
            """
            SELECT COUNT(*), COALESCE(SUM(s.total_price), 0) - COALESCE((
                       SELECT SUM(l.amount) FROM ledger l JOIN sms_sends t ON t.id = l.sms_send_id
                       WHERE l.kind = 'refund' AND t.created_at >= ?), 0)
            FROM sms_sends s
            WHERE s.created_at >= ? AND s.status IN ('sending', 'sent', 'done', 'failed')
            """,
            (since, since),
        )
        costs = await self.db.fetchall(
            "SELECT m.cost FROM sms_messages m JOIN sms_sends s ON s.id = m.send_id "
            "WHERE s.created_at >= ? AND m.cost IS NOT NULL",
            (since,),
        )
        assert row is not None
        return int(row[0]), int(row[1]), sum((Decimal(c[0]) for c in costs), Decimal(0))

    async def prices(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT country, price FROM sms_prices")
        return {r[0]: r[1] for r in rows}

    async def set_price(self, country: str, price: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO sms_prices (country, price, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (country) DO UPDATE SET price = excluded.price, "
                "updated_at = excluded.updated_at",
                (country, price, int(time.time())),
            )
