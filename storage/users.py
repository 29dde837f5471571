"""Users and their wallets: the balance column and the ledger change together, always."""

from __future__ import annotations

import time

from shop.models import LedgerEntry, LedgerKind, User
from storage.db import Database, KeptReads, Tx
from storage.db import Record as Row

ROW = "row"  # the key of a user's own row in `UserRows`
MAX_USER_ROWS = 10_000  # users whose row this process keeps; the least recent are forgotten


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        first_name=row["first_name"],
        language=row["language"],
        balance=row["balance"],
        is_active=bool(row["is_active"]),
        created_at=row["created_at"],
        referrer_id=row["referrer_id"],
        is_banned=bool(row["is_banned"]),
        locale=row["locale"],
        last_seen=row["last_seen"],
    )


def _entry(row: Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        user_id=row["user_id"],
        amount=row["amount"],
        kind=LedgerKind(row["kind"]),
        reason=row["reason"],
        order_id=row["order_id"],
        actor_id=row["actor_id"],
        created_at=row["created_at"],
        topup_id=row["topup_id"],
        promo_code=row["promo_code"],
        sms_send_id=row["sms_send_id"],
        rental_id=row["rental_id"],
    )


class UserRows(KeptReads):
    """The users rows this process read lately: the sender of an update is looked up here
    first (`UserRepo.current`), so a tap of a known user reads no row.

    Kept only where one process owns the database (without `REDIS_URL` the instance registry
    refuses a second instance; with it, this is not used), as `storage.fsm` keeps states.
    Every write to a users row says so (`Tx.changed("users", id)`: the profile, the balance,
    the ban, the referrer, active or not), and the row is dropped once that transaction has
    ended; a read that a drop overlapped is not kept, so a copy is never older than the last
    write. Money is never decided from here: debits and credits are conditional updates in
    their transaction, and a screen's balance is what the last committed write left."""

    def __init__(self, db: Database, size: int = MAX_USER_ROWS) -> None:
        super().__init__(db, ("users",), size)


class UserRepo:
    def __init__(self, db: Database, rows: UserRows | None = None) -> None:
        self.db = db
        self.rows = rows

    async def get(self, user_id: int) -> User | None:
        row = await self.db.lookup_one("SELECT * FROM users WHERE id = :id", {"id": user_id})
        return None if row is None else _user(row)

    async def current(self, user_id: int) -> User | None:
        """The user's row as last written, from this process's copy when it keeps one
        (`UserRows`), else read."""
        if self.rows is None:
            return await self.get(user_id)
        user: User | None = await self.rows.read(user_id, ROW, lambda: self.get(user_id))
        return user

    async def upsert(
        self, user_id: int, username: str | None, first_name: str, language: str | None
    ) -> User:
        """Create the user or refresh their profile; marks them active again."""
        now = int(time.time())
        async with self.db.transaction() as tx:
            tx.changed("users", user_id)
            row = await tx.fetchone(
                """
                INSERT INTO users (id, username, first_name, language, created_at, last_seen)
                VALUES (:id, :username, :first_name, :language, :now, :now)
                ON CONFLICT (id) DO UPDATE SET
                    username = excluded.username, first_name = excluded.first_name,
                    language = excluded.language, is_active = 1,
                    last_seen = excluded.last_seen
                RETURNING *
                """,
                {
                    "id": user_id,
                    "username": username,
                    "first_name": first_name,
                    "language": language,
                    "now": now,
                },
            )
        assert row is not None
        return _user(row)

    async def set_locale(self, user_id: int, locale: str | None) -> User | None:
        """Store the language chosen with /language (None follows Telegram's language)."""
        async with self.db.transaction() as tx:
            tx.changed("users", user_id)
            row = await tx.fetchone(
                "UPDATE users SET locale = :locale WHERE id = :id RETURNING *",
                {"locale": locale, "id": user_id},
            )
        return None if row is None else _user(row)

    async def set_active(self, user_id: int, active: bool) -> None:
        async with self.db.transaction() as tx:
            tx.changed("users", user_id)
            await tx.execute(
                "UPDATE users SET is_active = :active WHERE id = :id",
                {"active": int(active), "id": user_id},
            )

    async def count(self, since: int = 0) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM users WHERE created_at >= :since", {"since": since}
            )
        )


class LedgerRepo:
    """Balance changes. Call the write methods inside a transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def apply(
        tx: Tx,
        user_id: int,
        amount: int,
        kind: LedgerKind,
        reason: str = "",
        order_id: int | None = None,
        actor_id: int | None = None,
        sms_send_id: int | None = None,
        sms_message_id: int | None = None,
        topup_id: int | None = None,
        promo_code: str | None = None,
        rental_id: int | None = None,
        rental_extension_id: int | None = None,
    ) -> bool:
        """Move `amount` (negative = debit) and write its ledger row.

        Returns False, changing nothing, when a debit would take the balance below zero.
        The uniqueness of a purchase or refund per order is enforced by the schema.
        """
        tx.changed("users", user_id)
        changed = await tx.execute(
            "UPDATE users SET balance = balance + :amount"
            " WHERE id = :id AND balance + :amount >= 0",
            {"amount": amount, "id": user_id},
        )
        if changed != 1:
            return False
        await tx.execute(
            """
            INSERT INTO ledger (user_id, amount, kind, reason, order_id, actor_id, sms_send_id,
                                sms_message_id, topup_id, promo_code, rental_id,
                                rental_extension_id, created_at)
            VALUES (:user_id, :amount, :kind, :reason, :order_id, :actor_id, :sms_send_id,
                    :sms_message_id, :topup_id, :promo_code, :rental_id, :rental_extension_id,
                    :created_at)
            """,
            {
                "user_id": user_id,
                "amount": amount,
                "kind": kind.value,
                "reason": reason,
                "order_id": order_id,
                "actor_id": actor_id,
                "sms_send_id": sms_send_id,
                "sms_message_id": sms_message_id,
                "topup_id": topup_id,
                "promo_code": promo_code,
                "rental_id": rental_id,
                "rental_extension_id": rental_extension_id,
                "created_at": int(time.time()),
            },
        )
        return True

    @classmethod
    async def refund_once(
        cls,
        tx: Tx,
        user_id: int,
        amount: int,
        reason: str,
        order_id: int | None = None,
        sms_send_id: int | None = None,
        sms_message_id: int | None = None,
    ) -> int:
        """Refund an order, or one SMS recipient, unless it was refunded before.

        Returns what was refunded (0 the second time). The schema's unique indexes allow one
        refund per order and per SMS recipient; this checks first so callers need not catch,
        under the user's row lock (PostgreSQL), so a refund racing this one is seen.
        """
        await tx.lock_user(user_id)
        if order_id is not None:
            row = await tx.fetchone(
                "SELECT 1 FROM ledger WHERE order_id = :id AND kind = 'refund'", {"id": order_id}
            )
        else:
            row = await tx.fetchone(
                "SELECT 1 FROM ledger WHERE sms_message_id = :id AND kind = 'refund'",
                {"id": sms_message_id},
            )
        if row is not None:
            return 0
        await cls.apply(
            tx,
            user_id,
            amount,
            LedgerKind.REFUND,
            reason,
            order_id,
            sms_send_id=sms_send_id,
            sms_message_id=sms_message_id,
        )
        return amount

    async def history(self, user_id: int, limit: int, offset: int = 0) -> list[LedgerEntry]:
        rows = await self.db.fetchall(
            "SELECT * FROM ledger WHERE user_id = :user_id ORDER BY id DESC"
            " LIMIT :limit OFFSET :offset",
            {"user_id": user_id, "limit": limit, "offset": offset},
        )
        return [_entry(r) for r in rows]

    async def balance(self, user_id: int) -> int:
        return int(
            await self.db.fetchval("SELECT balance FROM users WHERE id = :id", {"id": user_id})
            or 0
        )

    async def count_for(self, user_id: int) -> int:
        """How many ledger rows the user has."""
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM ledger WHERE user_id = :id", {"id": user_id}
            )
        )

    async def sum(self, user_id: int) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE user_id = :id", {"id": user_id}
            )
        )

    async def mismatches(self) -> list[tuple[int, int, int]]:
        """(user, balance, ledger sum) for every user whose balance is not its ledger's sum."""
        rows = await self.db.fetchall(
            """
            SELECT u.id, u.balance, COALESCE(SUM(l.amount), 0) AS total
            FROM users u LEFT JOIN ledger l ON l.user_id = u.id
            GROUP BY u.id, u.balance HAVING u.balance <> COALESCE(SUM(l.amount), 0)
            """
        )
        return [(int(r["id"]), int(r["balance"]), int(r["total"])) for r in rows]
