"""What the owner's panel reads and writes: user lookups, bans, shop figures, balance snapshots."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from shop.models import ReconOrder, RouteSuccess, Snapshot, TopService, TopupTotals, UserCounts
from storage.db import Database, Tx
from storage.db import Record as Row

_CHARGED = "EXISTS (SELECT 1 FROM ledger l WHERE l.order_id = o.id AND l.kind = 'purchase')"
_REFUNDED = "EXISTS (SELECT 1 FROM ledger l WHERE l.order_id = o.id AND l.kind = 'refund')"
_HAS_CODE = "EXISTS (SELECT 1 FROM order_codes c WHERE c.order_id = o.id)"


def ban_notice_key(user_id: int) -> str:
    return f"ban-notice:{user_id}"


def _snapshot(row: Row) -> Snapshot:
    return Snapshot(row["account"], row["currency"], Decimal(row["amount"]), row["taken_at"])


class AdminRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users -----------------------------------------------------------------------------------

    async def user_id_by_username(self, username: str) -> int | None:
        value = await self.db.fetchval(
            "SELECT id FROM users WHERE lower(username) = lower(:username) "
            "ORDER BY last_seen DESC",
            {"username": username},
        )
        return None if value is None else int(value)

    @staticmethod
    async def set_banned(tx: Tx, user_id: int, banned: bool) -> bool:
        """Ban or unban; False when the user already was. The notice is owed again either way."""
        tx.changed("users", user_id)
        changed = await tx.execute(
            "UPDATE users SET is_banned = :banned WHERE id = :id AND is_banned <> :banned",
            {"banned": int(banned), "id": user_id},
        )
        await tx.execute("DELETE FROM kv WHERE key = :key", {"key": ban_notice_key(user_id)})
        return changed == 1

    async def is_banned(self, user_id: int) -> bool:
        value = await self.db.fetchval(
            "SELECT is_banned FROM users WHERE id = :id", {"id": user_id}
        )
        return bool(value)

    async def claim_ban_notice(self, user_id: int) -> bool:
        """True exactly once per ban: the banned user is told once, then hears nothing."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (:key, '1', :now) "
                "ON CONFLICT (key) DO NOTHING",
                {"key": ban_notice_key(user_id), "now": int(time.time())},
            )
        return changed == 1

    async def last_ban(self, user_id: int) -> tuple[str, int] | None:
        """(reason, when) of the latest ban of this user, from the audit log."""
        row = await self.db.fetchone(
            "SELECT detail, created_at FROM audit_log WHERE action = 'ban' AND target = :target "
            "ORDER BY id DESC LIMIT 1",
            {"target": str(user_id)},
        )
        return None if row is None else (str(row[0]), int(row[1]))

    async def user_counts(self, new_since: int, active_since: int) -> UserCounts:
        row = await self.db.fetchone(
            "SELECT COUNT(*), "
            "COALESCE(SUM(CASE WHEN created_at >= :new_since THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN last_seen >= :active_since THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(is_banned), 0) FROM users",
            {"new_since": new_since, "active_since": active_since},
        )
        assert row is not None
        return UserCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    # -- shop figures -----------------------------------------------------------------------------

    async def route_success(self, since: int) -> list[RouteSuccess]:
        """Per route, orders since `since` that got a number and are no longer waiting for a
        code, and how many of them got one."""
        rows = await self.db.fetchall(
            f"""
            SELECT o.route, COUNT(*), COALESCE(SUM(CASE WHEN {_HAS_CODE} THEN 1 ELSE 0 END), 0)
            FROM orders o
            WHERE o.created_at >= :since AND o.activation_id IS NOT NULL
              AND o.status <> 'number_issued'
            GROUP BY o.route ORDER BY o.route
            """,
            {"since": since},
        )
        return [RouteSuccess(r[0], int(r[1]), int(r[2])) for r in rows]

    async def top_services(self, since: int, limit: int) -> list[TopService]:
        """Services by paid orders (charged and not refunded) since `since`."""
        rows = await self.db.fetchall(
            f"""
            SELECT s.name, COUNT(*) AS paid, SUM(o.price) AS revenue
            FROM orders o JOIN services s ON s.id = o.service_id
            WHERE o.created_at >= :since AND {_CHARGED} AND NOT {_REFUNDED}
            GROUP BY s.id, s.name ORDER BY paid DESC, revenue DESC, s.name LIMIT :limit
            """,
            {"since": since, "limit": limit},
        )
        return [TopService(r[0], int(r[1]), int(r[2])) for r in rows]

    async def topups(self, since: int) -> TopupTotals:
        """Paid top-ups (not refunded) since `since`, in shop minor units."""
        row = await self.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM topups "
            "WHERE status = 'paid' AND paid_at >= :since",
            {"since": since},
        )
        assert row is not None
        return TopupTotals(int(row[0]), int(row[1]))

    async def recon_orders(self, routes: list[str], since: int) -> list[ReconOrder]:
        """Orders on these routes created or finished since `since`."""
        if not routes:
            return []
        params: dict[str, object] = {f"r{i}": route for i, route in enumerate(routes)}
        marks = ", ".join(f":{key}" for key in params)
        rows = await self.db.fetchall(
            f"""
            SELECT o.route, o.status, o.activation_id IS NOT NULL, {_HAS_CODE},
                   o.needs_attention, {_CHARGED}, {_REFUNDED}, o.price, o.cost,
                   o.upstream_cost, o.created_at, o.finished_at
            FROM orders o
            WHERE o.route IN ({marks}) AND (o.created_at >= :since OR o.finished_at >= :since)
            """,
            {**params, "since": since},
        )
        return [
            ReconOrder(
                route=r[0],
                status=r[1],
                has_number=bool(r[2]),
                has_code=bool(r[3]),
                needs_attention=bool(r[4]),
                charged=bool(r[5]),
                refunded=bool(r[6]),
                price=int(r[7]),
                cost=int(r[8]),
                upstream_cost=Decimal(r[9]),
                created_at=int(r[10]),
                finished_at=None if r[11] is None else int(r[11]),
            )
            for r in rows
        ]

    async def markup_rules(self) -> list[tuple[str, str, Decimal]]:
        """(provider or '', service name or '', percent) of every markup override."""
        rows = await self.db.fetchall(
            "SELECT m.provider, COALESCE(s.name, ''), m.percent FROM markups m "
            "LEFT JOIN services s ON s.id = m.service_id AND m.service_id <> 0 "
            "ORDER BY m.provider, s.name"
        )
        return [(r[0], r[1], Decimal(r[2])) for r in rows]

    # -- balance snapshots ------------------------------------------------------------------------

    async def add_snapshot(self, account: str, currency: str, amount: Decimal, at: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO balance_snapshots (account, currency, amount, taken_at) "
                "VALUES (:account, :currency, :amount, :at) "
                "ON CONFLICT (account, taken_at) DO UPDATE SET "
                "currency = excluded.currency, amount = excluded.amount",
                {"account": account, "currency": currency, "amount": str(amount), "at": at},
            )

    async def prune_snapshots(self, before: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM balance_snapshots WHERE taken_at < :before", {"before": before}
            )

    async def snapshot_window(self, account: str, since: int) -> tuple[Snapshot, Snapshot] | None:
        """The snapshot that opens the period (the last one at or before `since`, else the first
        after it) and the latest one; None without two distinct snapshots."""
        opening = await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = :account AND taken_at <= :since "
            "ORDER BY taken_at DESC LIMIT 1",
            {"account": account, "since": since},
        ) or await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = :account AND taken_at > :since "
            "ORDER BY taken_at LIMIT 1",
            {"account": account, "since": since},
        )
        closing = await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = :account "
            "ORDER BY taken_at DESC LIMIT 1",
            {"account": account},
        )
        if opening is None or closing is None or opening["taken_at"] >= closing["taken_at"]:
            return None
        return _snapshot(opening), _snapshot(closing)

    # -- backups ---------------------------------------------------------------------------------

    @property
    def can_back_up(self) -> bool:
        return self.db.is_sqlite

    async def backup(self, target: Path) -> None:
        """A consistent copy of the database (see `Database.backup_to`)."""
        await self.db.backup_to(target)

    # -- audit log -------------------------------------------------------------------------------

    async def audit_count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM audit_log"))
