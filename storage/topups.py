"""Top-ups (Telegram Stars and Crypto Pay invoices) and the referral figures built on them."""

from __future__ import annotations

import time

from shop.models import StarCharge, Topup
from storage.db import Database, Tx
from storage.db import Record as Row


def _topup(row: Row) -> Topup:
    return Topup(
        id=row["id"],
        user_id=row["user_id"],
        method=row["method"],
        amount=row["amount"],
        pay_amount=row["pay_amount"],
        pay_currency=row["pay_currency"],
        status=row["status"],
        external_id=row["external_id"],
        pay_url=row["pay_url"],
        charge_id=row["charge_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        paid_at=row["paid_at"],
        refunded_at=row["refunded_at"],
    )


def _charge(row: Row) -> StarCharge:
    return StarCharge(
        charge_id=row["charge_id"],
        user_id=row["user_id"],
        topup_id=row["topup_id"],
        stars=row["stars"],
        currency=row["currency"],
        payload=row["payload"],
        status=row["status"],
        reason=row["reason"],
        error=row["error"],
        created_at=row["created_at"],
        settled_at=row["settled_at"],
    )


_FOR_UPDATE = {False: "", True: " FOR UPDATE"}


class TopupRepo:
    """Reads go through the reader connection; writes take the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads -----------------------------------------------------------------------------

    async def get(self, topup_id: int) -> Topup | None:
        row = await self.db.fetchone("SELECT * FROM topups WHERE id = :id", {"id": topup_id})
        return None if row is None else _topup(row)

    async def by_charge(self, charge_id: str) -> Topup | None:
        row = await self.db.fetchone(
            "SELECT * FROM topups WHERE charge_id = :id", {"id": charge_id}
        )
        return None if row is None else _topup(row)

    async def by_external(self, method: str, external_id: str) -> Topup | None:
        row = await self.db.fetchone(
            "SELECT * FROM topups WHERE method = :method AND external_id = :external_id",
            {"method": method, "external_id": external_id},
        )
        return None if row is None else _topup(row)

    async def pending(self, method: str) -> list[Topup]:
        rows = await self.db.fetchall(
            "SELECT * FROM topups WHERE status = 'pending' AND method = :method ORDER BY id",
            {"method": method},
        )
        return [_topup(r) for r in rows]

    async def unpaid(self, user_id: int, method: str, now: int) -> list[Topup]:
        """The user's pending top-ups of `method` that have not expired, newest first."""
        rows = await self.db.fetchall(
            "SELECT * FROM topups WHERE user_id = :user_id AND method = :method "
            "AND status = 'pending' AND expires_at > :now ORDER BY id DESC",
            {"user_id": user_id, "method": method, "now": now},
        )
        return [_topup(r) for r in rows]

    async def referral_stats(self, user_id: int) -> tuple[int, int]:
        """(users invited, total referral bonus earned) of an inviter."""
        invited = await self.db.fetchval(
            "SELECT COUNT(*) FROM users WHERE referrer_id = :id", {"id": user_id}
        )
        earned = await self.db.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger"
            " WHERE user_id = :id AND kind = 'referral'",
            {"id": user_id},
        )
        return int(invited or 0), int(earned or 0)

    async def charge(self, charge_id: str) -> StarCharge | None:
        row = await self.db.fetchone(
            "SELECT * FROM star_charges WHERE charge_id = :id", {"id": charge_id}
        )
        return None if row is None else _charge(row)

    async def charges_due(self, created_before: int) -> list[StarCharge]:
        """Charges whose refund got no answer yet, recorded before `created_before`."""
        rows = await self.db.fetchall(
            "SELECT * FROM star_charges WHERE status = 'refund_due' AND created_at < :before "
            "ORDER BY created_at",
            {"before": created_before},
        )
        return [_charge(r) for r in rows]

    # -- writes (inside a transaction) -----------------------------------------------------

    @staticmethod
    async def charge_in(tx: Tx, charge_id: str) -> StarCharge | None:
        row = await tx.fetchone(
            "SELECT * FROM star_charges WHERE charge_id = :id", {"id": charge_id}
        )
        return None if row is None else _charge(row)

    @staticmethod
    async def lock_payer(tx: Tx, user_id: int) -> None:
        """Serialize this user's payment transactions (PostgreSQL: the user's row lock)."""
        await tx.lock_user(user_id)

    @staticmethod
    async def insert_charge(
        tx: Tx,
        charge_id: str,
        user_id: int,
        topup_id: int | None,
        stars: int,
        currency: str,
        payload: str,
        status: str,
        reason: str | None,
        error: str | None = None,
    ) -> None:
        now = int(time.time())
        await tx.execute(
            """
            INSERT INTO star_charges (charge_id, user_id, topup_id, stars, currency, payload,
                                      status, reason, error, created_at, settled_at)
            VALUES (:charge_id, :user_id, :topup_id, :stars, :currency, :payload,
                    :status, :reason, :error, :now, :settled_at)
            """,
            {
                "charge_id": charge_id,
                "user_id": user_id,
                "topup_id": topup_id,
                "stars": stars,
                "currency": currency,
                "payload": payload,
                "status": status,
                "reason": reason,
                "error": error,
                "now": now,
                "settled_at": now if status in ("credited", "refunded") else None,
            },
        )

    @staticmethod
    async def settle_charge(
        tx: Tx, charge_id: str, status: str, error: str | None, from_statuses: tuple[str, ...]
    ) -> bool:
        """Move an uncredited charge on (refund_due -> refunded | refund_failed, ...), once."""
        params: dict[str, object] = {f"from{i}": v for i, v in enumerate(from_statuses)}
        marks = ", ".join(f":{key}" for key in params)
        settled_at = "CAST(:now AS BIGINT)" if status == "refunded" else "settled_at"
        changed = await tx.execute(
            f"""
            UPDATE star_charges SET status = :status, error = COALESCE(:error, error),
                   settled_at = {settled_at}
            WHERE charge_id = :charge_id AND status IN ({marks})
            """,
            {
                **params,
                "status": status,
                "error": error,
                "now": int(time.time()),
                "charge_id": charge_id,
            },
        )
        return changed == 1

    @staticmethod
    async def record_star_refund(tx: Tx, charge_id: str, user_id: int, stars: int) -> bool:
        """Telegram's refunded_payment for a charge, once: False if it was recorded before."""
        changed = await tx.execute(
            "INSERT INTO star_refunds (charge_id, user_id, stars, created_at) "
            "VALUES (:charge_id, :user_id, :stars, :now) ON CONFLICT (charge_id) DO NOTHING",
            {"charge_id": charge_id, "user_id": user_id, "stars": stars, "now": int(time.time())},
        )
        return changed == 1

    @staticmethod
    async def set_star_refund_debit(tx: Tx, charge_id: str, debited: int, shortfall: int) -> None:
        await tx.execute(
            "UPDATE star_refunds SET debited = :debited, shortfall = :shortfall"
            " WHERE charge_id = :charge_id",
            {"debited": debited, "shortfall": shortfall, "charge_id": charge_id},
        )

    @staticmethod
    async def lock(tx: Tx, topup_id: int) -> Topup | None:
        """The top-up, its row locked until the transaction ends (PostgreSQL)."""
        row = await tx.fetchone(
            "SELECT * FROM topups WHERE id = :id" + _FOR_UPDATE[tx.is_postgres], {"id": topup_id}
        )
        return None if row is None else _topup(row)

    @staticmethod
    async def payer_of(
        tx: Tx, topup_id: int | None = None, charge_id: str | None = None
    ) -> int | None:
        """Who pays the top-up (by id or by its charge), read without a lock: the payer never
        changes, and is what a payment transaction locks first (`lock_payer`)."""
        column, value = ("id", topup_id) if charge_id is None else ("charge_id", charge_id)
        row = await tx.fetchone(f"SELECT user_id FROM topups WHERE {column} = :v", {"v": value})
        return None if row is None else int(row["user_id"])

    @staticmethod
    async def lock_by_charge(tx: Tx, charge_id: str) -> Topup | None:
        row = await tx.fetchone(
            "SELECT * FROM topups WHERE charge_id = :id" + _FOR_UPDATE[tx.is_postgres],
            {"id": charge_id},
        )
        return None if row is None else _topup(row)

    @staticmethod
    async def count_unpaid(tx: Tx, user_id: int, method: str, now: int) -> int:
        """The user's open invoices of `method`, counted under the user's row lock, so the
        cap holds when two invoices are asked for at once (PostgreSQL)."""
        await tx.lock_user(user_id)
        row = await tx.fetchone(
            "SELECT COUNT(*) FROM topups WHERE user_id = :user_id AND method = :method "
            "AND status = 'pending' AND expires_at > :now",
            {"user_id": user_id, "method": method, "now": now},
        )
        return 0 if row is None else int(row[0])

    @staticmethod
    async def insert(
        tx: Tx,
        user_id: int,
        method: str,
        amount: int,
        pay_amount: str,
        pay_currency: str,
        ttl: int,
    ) -> int:
        now = int(time.time())
        return await tx.insert(
            """
            INSERT INTO topups (user_id, method, amount, pay_amount, pay_currency, status,
                                created_at, expires_at)
            VALUES (:user_id, :method, :amount, :pay_amount, :pay_currency, 'pending',
                    :now, :expires_at)
            RETURNING id
            """,
            {
                "user_id": user_id,
                "method": method,
                "amount": amount,
                "pay_amount": pay_amount,
                "pay_currency": pay_currency,
                "now": now,
                "expires_at": now + ttl,
            },
        )

    @staticmethod
    async def attach(tx: Tx, topup_id: int, external_id: str, pay_url: str) -> None:
        await tx.execute(
            "UPDATE topups SET external_id = :external_id, pay_url = :pay_url WHERE id = :id",
            {"external_id": external_id, "pay_url": pay_url, "id": topup_id},
        )

    @staticmethod
    async def mark_paid(tx: Tx, topup_id: int, charge_id: str | None) -> bool:
        """pending/expired -> paid, once. A paid invoice counts even if it expired meanwhile."""
        changed = await tx.execute(
            """
            UPDATE topups SET status = 'paid', paid_at = :now,
                   charge_id = COALESCE(:charge_id, charge_id)
            WHERE id = :id AND status IN ('pending', 'expired')
            """,
            {"now": int(time.time()), "charge_id": charge_id, "id": topup_id},
        )
        return changed == 1

    @staticmethod
    async def mark_expired(tx: Tx, topup_id: int) -> bool:
        changed = await tx.execute(
            "UPDATE topups SET status = 'expired' WHERE id = :id AND status = 'pending'",
            {"id": topup_id},
        )
        return changed == 1

    @staticmethod
    async def mark_refunded(tx: Tx, topup_id: int) -> bool:
        changed = await tx.execute(
            "UPDATE topups SET status = 'refunded', refunded_at = :now "
            "WHERE id = :id AND status = 'paid'",
            {"now": int(time.time()), "id": topup_id},
        )
        return changed == 1

    @staticmethod
    async def unmark_refunded(tx: Tx, topup_id: int) -> None:
        await tx.execute(
            "UPDATE topups SET status = 'paid', refunded_at = NULL "
            "WHERE id = :id AND status = 'refunded'",
            {"id": topup_id},
        )

    @staticmethod
    async def has_ledger(tx: Tx, topup_id: int, kind: str) -> bool:
        row = await tx.fetchone(
            "SELECT 1 FROM ledger WHERE topup_id = :id AND kind = :kind",
            {"id": topup_id, "kind": kind},
        )
        return row is not None

    @staticmethod
    async def referral_bonus(tx: Tx, topup_id: int) -> tuple[int, int] | None:
        """(inviter, amount) of the referral bonus a top-up earned, if it earned one."""
        row = await tx.fetchone(
            "SELECT user_id, amount FROM ledger WHERE topup_id = :id AND kind = 'referral'",
            {"id": topup_id},
        )
        return None if row is None else (int(row["user_id"]), int(row["amount"]))

    @staticmethod
    async def referrer_of(tx: Tx, user_id: int) -> int | None:
        row = await tx.fetchone("SELECT referrer_id FROM users WHERE id = :id", {"id": user_id})
        return None if row is None or row["referrer_id"] is None else int(row["referrer_id"])

    @staticmethod
    async def balance_in(tx: Tx, user_id: int) -> int:
        """The balance, its row locked until the transaction ends (PostgreSQL), so what is
        debited from it next is what was read."""
        row = await tx.fetchone(
            "SELECT balance FROM users WHERE id = :id" + _FOR_UPDATE[tx.is_postgres],
            {"id": user_id},
        )
        return 0 if row is None else int(row["balance"])

    @staticmethod
    async def link_referrer(tx: Tx, user_id: int, inviter_id: int, since: int) -> bool:
        """Link a new user (registered after `since`, no referrer, no ledger rows yet) to an
        existing inviter who is not the user and was not invited by the user."""
        tx.changed("users", user_id)
        changed = await tx.execute(
            """
            UPDATE users SET referrer_id = :inviter
            WHERE id = :id AND referrer_id IS NULL AND id <> :inviter AND created_at >= :since
              AND NOT EXISTS (SELECT 1 FROM ledger WHERE user_id = users.id)
              AND EXISTS (SELECT 1 FROM users AS i
                          WHERE i.id = :inviter
                            AND (i.referrer_id IS NULL OR i.referrer_id <> :id))
            """,
            {"inviter": inviter_id, "id": user_id, "since": since},
        )
        return changed == 1
