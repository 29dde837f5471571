"""Leases: which instance watches which live order (and SMS send), sends which stored code,
and runs which singleton job (issue 14).

Every claim is one conditional UPDATE (or an upsert with a condition), so two instances
claiming at once never both get a row: SQLite runs one writer at a time, and on PostgreSQL
(READ COMMITTED) an UPDATE re-checks its WHERE on the row it locks, so the loser's UPDATE
skips a row the winner changed. On PostgreSQL the candidates are picked once, in a CTE,
`FOR UPDATE SKIP LOCKED`, so concurrent claimers do not queue on each other (and the LIMIT
holds: PostgreSQL may run an IN subquery again per row).

A lease is free when it has no owner, when it ran out (`until <= now`, epoch seconds), or when
its owner has no fresh row in the instance registry (`instances.seen_at >= :fresh`): an
instance that stopped, or was killed and whose row another instance's start removed, or that
missed its heartbeats for the registry's TTL. That last rule lets a restarted bot take back
its orders at once instead of waiting for the leases of its previous process to run out.

Plain SQL that SQLite (3.35+, for RETURNING) and PostgreSQL both accept: named parameters,
explicit columns, epoch seconds from Python, `ON CONFLICT ... DO UPDATE ... WHERE`.
"""

from __future__ import annotations

from storage.db import Database, Tx

# The statuses a lease matters for: `created` (a purchase in flight, held by the instance
# buying), `number_issued` and `code_received` (watched: polled and expired).
_LIVE = "('created', 'number_issued', 'code_received')"
_WATCHED = "('number_issued', 'code_received')"


def _skip_locked(tx: Tx, table: str) -> str:
    """PostgreSQL: candidates another claimer is updating right now are skipped, not waited
    for (SQLite has one writer: nothing to skip)."""
    return f" FOR UPDATE OF {table} SKIP LOCKED" if tx.is_postgres else ""


def _free(table: str) -> str:
    """The condition for a lease on `table`'s row that nobody holds."""
    return (
        f"({table}.lease_owner IS NULL OR {table}.lease_until <= :now OR NOT EXISTS ("
        f"SELECT 1 FROM instances i WHERE i.id = {table}.lease_owner AND i.seen_at >= :fresh))"
    )


class LeaseRepo:
    """Order, code-send and SMS-send leases (columns on their own tables)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- orders ---------------------------------------------------------------------------------

    @staticmethod
    async def hold(tx: Tx, order_id: int, owner: str, until: int) -> None:
        """A new order is held by the instance that creates it (in the creating transaction)."""
        await tx.execute(
            "UPDATE orders SET lease_owner = :owner, lease_until = :until WHERE id = :id",
            {"owner": owner, "until": until, "id": order_id},
        )

    async def renew(self, owner: str, until: int) -> list[tuple[int, str, int | None, str]]:
        """Extend every live order's lease `owner` still holds: (id, status, deadline, route)
        of each (an order missing from the answer was taken by another instance, or closed)."""
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE orders SET lease_until = :until "
                f"WHERE lease_owner = :owner AND status IN {_LIVE} "
                "RETURNING id, status, deadline, route",
                {"owner": owner, "until": until},
            )
        return [(int(r["id"]), str(r["status"]), r["deadline"], str(r["route"])) for r in rows]

    async def claim(
        self, owner: str, now: int, fresh: int, until: int, limit: int
    ) -> list[tuple[int, str, int | None, str]]:
        """Take up to `limit` watched orders whose lease is free: (id, status, deadline,
        route) of each, oldest first."""
        free = _free("orders")
        times = {"now": now, "fresh": fresh}
        # Most rounds find nothing: look first (a read), take the write lock only to claim.
        if not await self.db.fetchone(
            f"SELECT 1 FROM orders WHERE status IN {_WATCHED} AND {free} LIMIT 1", times
        ):
            return []
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                f"""
                WITH picked AS (
                    SELECT orders.id FROM orders
                    WHERE orders.status IN {_WATCHED} AND {free}
                    ORDER BY orders.id LIMIT :limit{_skip_locked(tx, "orders")})
                UPDATE orders SET lease_owner = :owner, lease_until = :until
                WHERE id IN (SELECT id FROM picked)
                  AND status IN {_WATCHED} AND {free}
                RETURNING id, status, deadline, route
                """,
                {"owner": owner, "until": until, "now": now, "fresh": fresh, "limit": limit},
            )
        found = [(int(r["id"]), str(r["status"]), r["deadline"], str(r["route"])) for r in rows]
        return sorted(found)

    async def interrupted(self, now: int, fresh: int) -> list[tuple[int, str]]:
        """(id, route) of orders still `created` (charged, purchase outcome not recorded) that
        no live instance holds: the purchase was cut off by a crash or a stop."""
        rows = await self.db.fetchall(
            f"SELECT id, route FROM orders WHERE status = 'created' AND {_free('orders')} "
            "ORDER BY id",
            {"now": now, "fresh": fresh},
        )
        return [(int(r["id"]), str(r["route"])) for r in rows]

    async def release(self, owner: str) -> int:
        """Give up every live order lease `owner` holds (a graceful stop): the other
        instances claim them at their next round instead of after the lease runs out."""
        async with self.db.transaction() as tx:
            return await tx.execute(
                "UPDATE orders SET lease_owner = NULL, lease_until = NULL "
                f"WHERE lease_owner = :owner AND status IN {_LIVE}",
                {"owner": owner},
            )

    async def holders(self, order_ids: list[int]) -> dict[int, str | None]:
        """Who holds each order's lease now (for tests, logs and the admin)."""
        if not order_ids:
            return {}
        names = {f"id{n}": order_id for n, order_id in enumerate(order_ids)}
        marks = ", ".join(f":{name}" for name in names)
        rows = await self.db.fetchall(
            f"SELECT id, lease_owner FROM orders WHERE id IN ({marks})", names
        )
        return {int(r["id"]): r["lease_owner"] for r in rows}

    # -- sending a stored code ------------------------------------------------------------------

    async def claim_code(self, code_id: int, owner: str, now: int, fresh: int, until: int) -> bool:
        """Take the sending of an undelivered code; False if it was delivered, or another
        live instance is sending it now."""
        free = (
            "(send_owner IS NULL OR send_until <= :now OR NOT EXISTS (SELECT 1 FROM instances i "
            "WHERE i.id = order_codes.send_owner AND i.seen_at >= :fresh))"
        )
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE order_codes SET send_owner = :owner, send_until = :until "
                f"WHERE id = :id AND delivered_at IS NULL AND {free}",
                {"owner": owner, "until": until, "id": code_id, "now": now, "fresh": fresh},
            )
        return changed == 1

    async def unclaim_code(self, code_id: int, owner: str) -> None:
        """Sending failed (a flood limit, Telegram unreachable): the sweeper tries again."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE order_codes SET send_owner = NULL, send_until = NULL "
                "WHERE id = :id AND send_owner = :owner AND delivered_at IS NULL",
                {"id": code_id, "owner": owner},
            )

    # -- SMS sends ------------------------------------------------------------------------------

    @staticmethod
    async def hold_sms(tx: Tx, send_id: int, owner: str, until: int) -> None:
        await tx.execute(
            "UPDATE sms_sends SET lease_owner = :owner, lease_until = :until WHERE id = :id",
            {"owner": owner, "until": until, "id": send_id},
        )

    async def renew_sms(self, owner: str, until: int) -> set[int]:
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE sms_sends SET lease_until = :until "
                "WHERE lease_owner = :owner AND status IN ('sending', 'sent') RETURNING id",
                {"owner": owner, "until": until},
            )
        return {int(row["id"]) for row in rows}

    async def claim_sms(
        self, owner: str, now: int, fresh: int, until: int, limit: int
    ) -> list[tuple[int, str]]:
        """Take up to `limit` live SMS sends ('sending' or 'sent') nobody holds: (id, status)."""
        free = _free("sms_sends")
        times = {"now": now, "fresh": fresh}
        if not await self.db.fetchone(
            f"SELECT 1 FROM sms_sends WHERE status IN ('sending', 'sent') AND {free} LIMIT 1",
            times,
        ):
            return []
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                f"""
                WITH picked AS (
                    SELECT sms_sends.id FROM sms_sends
                    WHERE sms_sends.status IN ('sending', 'sent') AND {free}
                    ORDER BY sms_sends.id LIMIT :limit{_skip_locked(tx, "sms_sends")})
                UPDATE sms_sends SET lease_owner = :owner, lease_until = :until
                WHERE id IN (SELECT id FROM picked)
                  AND status IN ('sending', 'sent') AND {free}
                RETURNING id, status
                """,
                {"owner": owner, "until": until, "now": now, "fresh": fresh, "limit": limit},
            )
        return sorted((int(r["id"]), str(r["status"])) for r in rows)

    async def release_sms(self, owner: str) -> int:
        async with self.db.transaction() as tx:
            return await tx.execute(
                "UPDATE sms_sends SET lease_owner = NULL, lease_until = NULL "
                "WHERE lease_owner = :owner AND status IN ('sending', 'sent')",
                {"owner": owner},
            )


class JobLeaseRepo:
    """`job_leases`: one row per singleton job, naming the instance that runs it until when."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, name: str, owner: str, now: int, fresh: int, until: int) -> bool:
        """Take or renew the lease on job `name` until `until`; False while another live
        instance holds it. One upsert: it inserts, or updates only a lease that ran out, whose
        owner is gone, or that is `owner`'s own, and returns a row only when it wrote one."""
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                """
                INSERT INTO job_leases (name, owner, until) VALUES (:name, :owner, :until)
                ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                WHERE job_leases.until < :now OR job_leases.owner = :owner
                   OR NOT EXISTS (SELECT 1 FROM instances i
                                  WHERE i.id = job_leases.owner AND i.seen_at >= :fresh)
                RETURNING owner
                """,
                {"name": name, "owner": owner, "until": until, "now": now, "fresh": fresh},
            )
        return len(rows) == 1

    async def release(self, owner: str, name: str | None = None) -> None:
        """Give up `owner`'s lease on `name` (or on every job, at a graceful stop)."""
        sql = "DELETE FROM job_leases WHERE owner = :owner"
        params: dict[str, object] = {"owner": owner}
        if name is not None:
            sql += " AND name = :name"
            params["name"] = name
        async with self.db.transaction() as tx:
            await tx.execute(sql, params)

    async def holder(self, name: str) -> tuple[str, int] | None:
        """(owner, until) of job `name`'s lease, if any."""
        row = await self.db.fetchone(
            "SELECT owner, until FROM job_leases WHERE name = :name", {"name": name}
        )
        return None if row is None else (str(row["owner"]), int(row["until"]))
