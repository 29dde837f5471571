"""What the owner's panel reads and writes: user lookups, bans, shop figures, balance snapshots."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from aiosqlite import Row

from shop.models import ReconOrder, RouteSuccess, Snapshot, TopService, TopupTotals, UserCounts
from storage.db import Database, Tx

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
            "SELECT id FROM users WHERE username = ? COLLATE NOCASE ORDER BY last_seen DESC",
            (username,),
        )
        return None if value is None else int(value)

    @staticmethod
    async def set_banned(tx: Tx, user_id: int, banned: bool) -> bool:
        """Ban or unban; False when the user already was. The notice is owed again either way."""
        changed = await tx.execute(
            "UPDATE users SET is_banned = ? WHERE id = ? AND is_banned <> ?",
            (int(banned), user_id, int(banned)),
        )
        await tx.execute("DELETE FROM kv WHERE key = ?", (ban_notice_key(user_id),))
        return changed == 1

    async def is_banned(self, user_id: int) -> bool:
        value = await self.db.fetchval("SELECT is_banned FROM users WHERE id = ?", (user_id,))
        return bool(value)

    async def claim_ban_notice(self, user_id: int) -> bool:
        """True exactly once per ban: the banned user is told once, then hears nothing."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "INSERT OR IGNORE INTO kv (key, value, updated_at) VALUES (?, '1', ?)",
                (ban_notice_key(user_id), int(time.time())),
            )
        return changed == 1

    async def last_ban(self, user_id: int) -> tuple[str, int] | None:
        """(reason, when) of the latest ban of this user, from the audit log."""
        row = await self.db.fetchone(
            "SELECT detail, created_at FROM audit_log WHERE action = 'ban' AND target = ? "
            "ORDER BY id DESC LIMIT 1",
            (str(user_id),),
        )
        return None if row is None else (str(row[0]), int(row[1]))

    async def user_counts(self, new_since: int, active_since: int) -> UserCounts:
        row = await self.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(created_at >= ?), 0), "
            "COALESCE(SUM(last_seen >= ?), 0), COALESCE(SUM(is_banned), 0) FROM users",
            (new_since, active_since),
        )
        assert row is not None
        return UserCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    # -- shop figures -----------------------------------------------------------------------------

    async def route_success(self, since: int) -> list[RouteSuccess]:
        """Per route, orders since `since` that got a number and are no longer waiting for a
        code, and how many of them got one."""
        rows = await self.db.fetchall(
            f"""
            SELECT o.route, COUNT(*), COALESCE(SUM({_HAS_CODE}), 0)
            FROM orders o
            WHERE o.created_at >= ? AND o.activation_id IS NOT NULL
              AND o.status <> 'number_issued'
            GROUP BY o.route ORDER BY o.route
            """,
            (since,),
        )
        return [RouteSuccess(r[0], int(r[1]), int(r[2])) for r in rows]

    async def top_services(self, since: int, limit: int) -> list[TopService]:
        """Services by paid orders (charged and not refunded) since `since`."""
        rows = await self.db.fetchall(
            f"""
            SELECT s.name, COUNT(*) AS paid, SUM(o.price) AS revenue
            FROM orders o JOIN services s ON s.id = o.service_id
            WHERE o.created_at >= ? AND {_CHARGED} AND NOT {_REFUNDED}
            GROUP BY o.service_id ORDER BY paid DESC, revenue DESC, s.name LIMIT ?
            """,
            (since, limit),
        )
        return [TopService(r[0], int(r[1]), int(r[2])) for r in rows]

    async def topups(self, since: int) -> TopupTotals:
        """Paid top-ups (not refunded) since `since`, in shop minor units."""
        row = await self.db.fetchone(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM topups "
            "WHERE status = 'paid' AND paid_at >= ?",
            (since,),
        )
        assert row is not None
        return TopupTotals(int(row[0]), int(row[1]))

    async def recon_orders(self, routes: list[str], since: int) -> list[ReconOrder]:
        """Orders on these routes created or finished since `since`."""
        if not routes:
            return []
        marks = ",".join("?" for _ in routes)
        rows = await self.db.fetchall(
            f"""
            SELECT o.route, o.status, o.activation_id IS NOT NULL, {_HAS_CODE},
                   o.needs_attention, {_CHARGED}, {_REFUNDED}, o.price, o.cost,
                   o.upstream_cost, o.created_at, o.finished_at
            FROM orders o
            WHERE o.route IN ({marks}) AND (o.created_at >= ? OR o.finished_at >= ?)
            """,
            (*routes, since, since),
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
                "INSERT OR REPLACE INTO balance_snapshots (account, currency, amount, taken_at) "
                "VALUES (?, ?, ?, ?)",
                (account, currency, str(amount), at),
            )

    async def prune_snapshots(self, before: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM balance_snapshots WHERE taken_at < ?", (before,))

    async def snapshot_window(self, account: str, since: int) -> tuple[Snapshot, Snapshot] | None:
        """The snapshot that opens the period (the last one at or before `since`, else the first
        after it) and the latest one; None without two distinct snapshots."""
        opening = await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = ? AND taken_at <= ? "
            "ORDER BY taken_at DESC LIMIT 1",
            (account, since),
        ) or await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = ? AND taken_at > ? "
            "ORDER BY taken_at LIMIT 1",
            (account, since),
        )
        closing = await self.db.fetchone(
            "SELECT * FROM balance_snapshots WHERE account = ? ORDER BY taken_at DESC LIMIT 1",
            (account,),
        )
        if opening is None or closing is None or opening["taken_at"] >= closing["taken_at"]:
            return None
        return _snapshot(opening), _snapshot(closing)

    # -- backups ---------------------------------------------------------------------------------

    async def backup(self, target: Path) -> None:
        """A consistent copy of the database (see `Database.backup_to`)."""
        await self.db.backup_to(target)

    # -- audit log -------------------------------------------------------------------------------

    async def audit_count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM audit_log"))
