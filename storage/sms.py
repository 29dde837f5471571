"""Outbound SMS sends, their recipients and per-country prices."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal

from shop.models import FINAL, SmsMessage, SmsSend
from storage.db import Database, Tx
from storage.db import Record as Row

_FINAL = {f"final{i}": status for i, status in enumerate(sorted(FINAL))}
_FINAL_IN = ", ".join(f":{key}" for key in _FINAL)
_FOR_UPDATE = {False: "", True: " FOR UPDATE"}  # a row lock where there is more than one writer


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
            if keep is not None:
                await tx.lock_user(user_id)  # the cap: one user's drafts one at a time
            send_id = await tx.insert(
                """
                INSERT INTO sms_sends (user_id, text, sender, encoding, segments, total_price,
                                       status, quote_expires_at, created_at)
                VALUES (:user_id, :text, :sender, :encoding, :segments, :total, 'draft',
                        :expires_at, :now)
                RETURNING id
                """,
                {
                    "user_id": user_id,
                    "text": text,
                    "sender": sender,
                    "encoding": encoding,
                    "segments": segments,
                    "total": total,
                    "expires_at": now + ttl,
                    "now": now,
                },
            )
            await tx.executemany(
                "INSERT INTO sms_messages (send_id, to_number, country, price, status, "
                "updated_at) VALUES (:send_id, :to_number, :country, :price, 'pending', :now)",
                [
                    {
                        "send_id": send_id,
                        "to_number": digits,
                        "country": country,
                        "price": price,
                        "now": now,
                    }
                    for digits, country, price in recipients
                ],
            )
            if keep is not None:
                await self._delete_drafts(
                    tx,
                    """
                    SELECT id FROM sms_sends WHERE user_id = :user_id AND status = 'draft'
                    AND id NOT IN (
                        SELECT id FROM sms_sends WHERE user_id = :user_id AND status = 'draft'
                        ORDER BY id DESC LIMIT :keep)
                    """,
                    {"user_id": user_id, "keep": keep},
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
                    "SELECT id FROM sms_sends WHERE status = 'draft' "
                    "AND quote_expires_at <= :now LIMIT :batch",
                    {"now": now, "batch": batch},
                )
            purged += deleted
            if deleted < batch:
                return purged

    @staticmethod
    async def _delete_drafts(tx: Tx, select: str, params: dict[str, object]) -> int:
        """Delete the drafts `select` names (ids), recipients first."""
        ids = {f"id{i}": int(r["id"]) for i, r in enumerate(await tx.fetchall(select, params))}
        if not ids:
            return 0
        marks = ", ".join(f":{key}" for key in ids)
        await tx.execute(f"DELETE FROM sms_messages WHERE send_id IN ({marks})", ids)
        return await tx.execute(
            f"DELETE FROM sms_sends WHERE id IN ({marks}) AND status = 'draft'", ids
        )

    async def get(self, send_id: int) -> SmsSend | None:
        row = await self.db.fetchone("SELECT * FROM sms_sends WHERE id = :id", {"id": send_id})
        return None if row is None else _send(row)

    @staticmethod
    async def get_in(tx: Tx, send_id: int) -> SmsSend | None:
        """The send, its row locked until `tx` ends: one send's write transactions run one
        at a time. (On PostgreSQL two reports committing together would otherwise each count
        the other's message as still pending, and neither would close the send.)"""
        row = await tx.fetchone(
            "SELECT * FROM sms_sends WHERE id = :id" + _FOR_UPDATE[tx.is_postgres],
            {"id": send_id},
        )
        return None if row is None else _send(row)

    async def messages(self, send_id: int) -> list[SmsMessage]:
        rows = await self.db.fetchall(
            _MESSAGE_SELECT + " WHERE m.send_id = :id ORDER BY m.id", {"id": send_id}
        )
        return [_message(r) for r in rows]

    @staticmethod
    async def messages_in(tx: Tx, send_id: int) -> list[SmsMessage]:
        rows = await tx.fetchall(
            _MESSAGE_SELECT + " WHERE m.send_id = :id ORDER BY m.id", {"id": send_id}
        )
        return [_message(r) for r in rows]

    @staticmethod
    async def pending_count(tx: Tx, send_id: int) -> int:
        """Messages of a send that have no final status yet."""
        row = await tx.fetchone(
            "SELECT COUNT(*) FROM sms_messages"
            f" WHERE send_id = :id AND status NOT IN ({_FINAL_IN})",
            {**_FINAL, "id": send_id},
        )
        return int(row[0]) if row else 0

    async def by_upstream_id(self, upstream_id: str) -> SmsMessage | None:
        row = await self.db.fetchone(
            _MESSAGE_SELECT + " WHERE m.upstream_id = :id", {"id": upstream_id}
        )
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
            UPDATE sms_sends SET status = 'sending', deadline = :deadline, chat_id = :chat_id,
                                 message_id = :message_id, charged_at = :now
            WHERE id = :id AND user_id = :user_id AND status = 'draft'
              AND quote_expires_at > :now
            """,
            {
                "deadline": deadline,
                "chat_id": chat_id,
                "message_id": message_id,
                "now": now,
                "id": send_id,
                "user_id": user_id,
            },
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
            "UPDATE sms_sends SET status = :status, error = COALESCE(:error, error), "
            "needs_attention = COALESCE(:attention, needs_attention), "
            "finished_at = COALESCE(:finished, finished_at) WHERE id = :id",
            {
                "status": status,
                "error": error,
                "attention": None if needs_attention is None else int(needs_attention),
                "finished": finished,
                "id": send_id,
            },
        )

    @staticmethod
    async def accept(tx: Tx, message_id: int, upstream_id: str) -> None:
        await tx.execute(
            "UPDATE sms_messages SET upstream_id = :upstream_id, status = 'queued', "
            "updated_at = :now WHERE id = :id AND status = 'pending'",
            {"upstream_id": upstream_id, "now": int(time.time()), "id": message_id},
        )

    @staticmethod
    async def set_status(tx: Tx, message_id: int, status: str, cost: str | None = None) -> bool:
        """Move a message forward; a final status never changes again."""
        changed = await tx.execute(
            f"""
            UPDATE sms_messages SET status = :status, cost = COALESCE(:cost, cost),
                   updated_at = :now
            WHERE id = :id AND status NOT IN ({_FINAL_IN}) AND status <> :status
            """,
            {**_FINAL, "status": status, "cost": cost, "now": int(time.time()), "id": message_id},
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
            "AND COALESCE(charged_at, created_at) < :before ORDER BY id",
            {"before": charged_before},
        )
        return [int(r["id"]) for r in rows]

    async def for_user(self, user_id: int, limit: int) -> list[SmsSend]:
        rows = await self.db.lookup(
            "SELECT * FROM sms_sends WHERE user_id = :user_id AND status <> 'draft' "
            "ORDER BY id DESC LIMIT :limit",
            {"user_id": user_id, "limit": limit},
        )
        return [_send(r) for r in rows]

    async def stats(self, since: int) -> tuple[int, int, Decimal]:
        """(sends, revenue after refunds, upstream cost in EUR) of sends charged since `since`."""
        row = await self.db.fetchone(
            """
            SELECT COUNT(*), COALESCE(SUM(s.total_price), 0) - COALESCE((
                       SELECT SUM(l.amount) FROM ledger l JOIN sms_sends t ON t.id = l.sms_send_id
                       WHERE l.kind = 'refund' AND t.created_at >= :since), 0)
            FROM sms_sends s
            WHERE s.created_at >= :since AND s.status IN ('sending', 'sent', 'done', 'failed')
            """,
            {"since": since},
        )
        costs = await self.db.fetchall(
            "SELECT m.cost FROM sms_messages m JOIN sms_sends s ON s.id = m.send_id "
            "WHERE s.created_at >= :since AND m.cost IS NOT NULL",
            {"since": since},
        )
        assert row is not None
        return int(row[0]), int(row[1]), sum((Decimal(c[0]) for c in costs), Decimal(0))

    async def prices(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT country, price FROM sms_prices")
        return {r["country"]: int(r["price"]) for r in rows}

    async def set_price(self, country: str, price: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO sms_prices (country, price, updated_at) "
                "VALUES (:country, :price, :now) "
                "ON CONFLICT (country) DO UPDATE SET price = excluded.price, "
                "updated_at = excluded.updated_at",
                {"country": country, "price": price, "now": int(time.time())},
            )
