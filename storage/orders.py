"""Quotes, orders and the codes they received. Each state transition is one conditional UPDATE."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal

from shop.models import LIVE_STATUSES, USER_CANCEL, Order, OrderCode, OrderStatus, Quote
from storage.db import Database, KeptReads, Tx, in_list
from storage.db import Record as Row

_ORDER_FROM = """
o.*, s.name AS service_name,
       EXISTS (SELECT 1 FROM ledger l WHERE l.order_id = o.id AND l.kind = 'refund') AS refunded
FROM orders o JOIN services s ON s.id = o.service_id
"""
_ORDER_SELECT = "SELECT" + _ORDER_FROM

# `Tx.changed(ORDERS_OF, user_id)`: this transaction writes (one of) the user's orders.
ORDERS_OF = "orders of user"
MAX_USERS_KEPT = 10_000  # users whose order reads this process keeps; the least recent go


class UserOrderReads(KeptReads):
    """What this process read lately from a user's own orders (their first page of orders,
    their recent picks, their own cancels), so that a tap of the orders screen or of Buy
    reads no row while nothing of theirs changed.

    Kept only where one process owns the database, as `storage.users.UserRows` is (with
    `REDIS_URL`, several instances write, and this is not used). Every write to an order says
    whose it is (`Tx.changed(ORDERS_OF, user_id)`: created, moved to another status, fields
    updated, its country re-keyed), and so does every ledger write (`"users"`: a refund shows
    on the order); the user's reads are dropped once that transaction has ended, and a read
    that a drop overlapped is not kept. Nothing charged or permitted is decided from here:
    the quote and the purchase read the user's cancels afresh (`fresh=True`)."""

    def __init__(self, db: Database, size: int = MAX_USERS_KEPT) -> None:
        super().__init__(db, (ORDERS_OF, "users"), size)


def _order(row: Row) -> Order:
    return Order(
        id=row["id"],
        user_id=row["user_id"],
        route=row["route"],
        service_id=row["service_id"],
        service_name=row["service_name"],
        country=row["country"],
        price=row["price"],
        upstream_cost=Decimal(row["upstream_cost"]),
        cost=row["cost"],
        status=OrderStatus(row["status"]),
        activation_id=row["activation_id"],
        phone=row["phone"],
        deadline=row["deadline"],
        error=row["error"],
        needs_attention=bool(row["needs_attention"]),
        close_attempts=row["close_attempts"],
        chat_id=row["chat_id"],
        message_id=row["message_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        refunded=bool(row["refunded"]),
    )


def _quote(row: Row) -> Quote:
    return Quote(
        id=row["id"],
        user_id=row["user_id"],
        route=row["route"],
        service_id=row["service_id"],
        country=row["country"],
        upstream_cost=Decimal(row["upstream_cost"]),
        price=row["price"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        consumed_at=row["consumed_at"],
    )


def _code(row: Row) -> OrderCode:
    return OrderCode(
        id=row["id"],
        order_id=row["order_id"],
        code=row["code"],
        text=row["text"],
        received_at=row["received_at"],
        delivered_at=row["delivered_at"],
    )


class QuoteRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        user_id: int,
        route: str,
        service_id: int,
        country: str,
        upstream_cost: Decimal,
        price: int,
        ttl: int,
        keep: int | None = None,
    ) -> Quote:
        """A new quote; with `keep`, the user's unconsumed quotes beyond the newest `keep`
        (this one included) are deleted in the same transaction."""
        now = int(time.time())
        async with self.db.transaction() as tx:
            if keep is not None:
                await tx.lock_user(user_id)  # the cap: one user's quotes one at a time
            quote_id = await tx.insert(
                """
                INSERT INTO quotes (user_id, route, service_id, country, upstream_cost, price,
                                    created_at, expires_at)
                VALUES (:user_id, :route, :service_id, :country, :upstream_cost, :price,
                        :now, :expires_at)
                RETURNING id
                """,
                {
                    "user_id": user_id,
                    "route": route,
                    "service_id": service_id,
                    "country": country,
                    "upstream_cost": str(upstream_cost),
                    "price": price,
                    "now": now,
                    "expires_at": now + ttl,
                },
            )
            if keep is not None:
                await tx.execute(
                    """
                    DELETE FROM quotes
                    WHERE user_id = :user_id AND consumed_at IS NULL AND id NOT IN (
                        SELECT id FROM quotes WHERE user_id = :user_id AND consumed_at IS NULL
                        ORDER BY id DESC LIMIT :keep)
                      AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.quote_id = quotes.id)
                    """,
                    {"user_id": user_id, "keep": keep},
                )
        return Quote(
            quote_id,
            user_id,
            route,
            service_id,
            country,
            upstream_cost,
            price,
            now,
            now + ttl,
            None,
        )

    async def get(self, quote_id: int) -> Quote | None:
        row = await self.db.fetchone("SELECT * FROM quotes WHERE id = :id", {"id": quote_id})
        return None if row is None else _quote(row)

    async def purge_expired(self, now: int, batch: int = 1000) -> int:
        """Delete quotes that expired unconsumed, `batch` per transaction; never one an order
        points to. Returns how many."""
        purged = 0
        while True:
            async with self.db.transaction() as tx:
                deleted = await tx.execute(
                    """
                    DELETE FROM quotes WHERE id IN (
                        SELECT q.id FROM quotes q
                        WHERE q.consumed_at IS NULL AND q.expires_at <= :now
                          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.quote_id = q.id)
                        LIMIT :batch)
                    """,
                    {"now": now, "batch": batch},
                )
            purged += deleted
            if deleted < batch:
                return purged

    @staticmethod
    async def consume(tx: Tx, quote_id: int, user_id: int, now: int) -> bool:
        """Mark the quote used; False if it is not this user's, was used, or has expired."""
        changed = await tx.execute(
            """
            UPDATE quotes SET consumed_at = :now
            WHERE id = :id AND user_id = :user_id AND consumed_at IS NULL AND expires_at > :now
            """,
            {"now": now, "id": quote_id, "user_id": user_id},
        )
        return changed == 1


class OrderRepo:
    def __init__(self, db: Database, kept: UserOrderReads | None = None) -> None:
        self.db = db
        self.kept = kept

    @staticmethod
    async def create(
        tx: Tx, quote: Quote, cost: int, chat_id: int | None, message_id: int | None, now: int
    ) -> int:
        tx.changed(ORDERS_OF, quote.user_id)
        return await tx.insert(
            """
            INSERT INTO orders (user_id, quote_id, route, service_id, country, price,
                                upstream_cost, cost, status, chat_id, message_id, created_at,
                                updated_at)
            VALUES (:user_id, :quote_id, :route, :service_id, :country, :price,
                    :upstream_cost, :cost, 'created', :chat_id, :message_id, :now, :now)
            RETURNING id
            """,
            {
                "user_id": quote.user_id,
                "quote_id": quote.id,
                "route": quote.route,
                "service_id": quote.service_id,
                "country": quote.country,
                "price": quote.price,
                "upstream_cost": str(quote.upstream_cost),
                "cost": cost,
                "chat_id": chat_id,
                "message_id": message_id,
                "now": now,
            },
        )

    async def get(self, order_id: int) -> Order | None:
        row = await self.db.fetchone(_ORDER_SELECT + " WHERE o.id = :id", {"id": order_id})
        return None if row is None else _order(row)

    @staticmethod
    async def get_in(tx: Tx, order_id: int) -> Order | None:
        row = await tx.fetchone(_ORDER_SELECT + " WHERE o.id = :id", {"id": order_id})
        return None if row is None else _order(row)

    async def for_user(self, user_id: int, limit: int, offset: int = 0) -> list[Order]:
        rows = await self.db.lookup(
            _ORDER_SELECT
            + " WHERE o.user_id = :user_id ORDER BY o.id DESC LIMIT :limit OFFSET :offset",
            {"user_id": user_id, "limit": limit, "offset": offset},
        )
        return [_order(r) for r in rows]

    async def page_for_user(
        self, user_id: int, limit: int, offset: int = 0
    ) -> tuple[list[Order], int]:
        """A page of the user's orders, newest first, and how many they have in all, in one
        read (a page past the end has no rows to carry the count: 0 then). The first page is
        kept while none of the user's orders changes (`UserOrderReads`)."""
        kept = self.kept if offset == 0 else None
        if kept is None:
            return await self._page_for_user(user_id, limit, offset)
        orders, total = await kept.read(
            user_id, ("first page", limit), lambda: self._page_for_user(user_id, limit, 0)
        )
        return list(orders), total

    async def _page_for_user(
        self, user_id: int, limit: int, offset: int
    ) -> tuple[list[Order], int]:
        rows = await self.db.lookup(
            "SELECT COUNT(*) OVER () AS orders_in_all,"
            + _ORDER_FROM
            + " WHERE o.user_id = :user_id ORDER BY o.id DESC LIMIT :limit OFFSET :offset",
            {"user_id": user_id, "limit": limit, "offset": offset},
        )
        return [_order(r) for r in rows], int(rows[0]["orders_in_all"]) if rows else 0

    async def count_for_user(self, user_id: int) -> int:
        return int(
            await self.db.lookup_val(
                "SELECT COUNT(*) FROM orders WHERE user_id = :id", {"id": user_id}
            )
        )

    async def live(self) -> list[Order]:
        marks, params = in_list("s", sorted(LIVE_STATUSES))
        rows = await self.db.fetchall(
            _ORDER_SELECT + f" WHERE o.status IN ({marks}) ORDER BY o.id", params
        )
        return [_order(r) for r in rows]

    async def live_brief(
        self, page: int = 1000
    ) -> AsyncIterator[tuple[int, OrderStatus, int | None, str]]:
        """(id, status, deadline, route) of every live order, read a page at a time: what the
        scheduler needs, without holding 10,000 `Order`s (several MB) in memory at once."""
        marks, params = in_list("s", sorted(LIVE_STATUSES))
        sql = (
            "SELECT id, status, deadline, route FROM orders"
            f" WHERE status IN ({marks}) AND id > :after ORDER BY id LIMIT :page"
        )
        after = 0
        while rows := await self.db.fetchall(sql, {**params, "after": after, "page": page}):
            for row in rows:
                yield row["id"], OrderStatus(row["status"]), row["deadline"], row["route"]
            after = rows[-1]["id"]

    async def created_before(self, before: int) -> list[tuple[int, str]]:
        """(id, route) of orders still `created` (charged, purchase outcome not recorded) that
        were created before `before`."""
        rows = await self.db.fetchall(
            "SELECT id, route FROM orders WHERE status = 'created' AND created_at < :before"
            " ORDER BY id",
            {"before": before},
        )
        return [(int(r["id"]), str(r["route"])) for r in rows]

    @staticmethod
    async def transition(
        tx: Tx,
        order_id: int,
        from_statuses: Iterable[OrderStatus],
        to: OrderStatus,
        **fields: object,
    ) -> bool:
        """Move the order to `to` if it is in one of `from_statuses`; set `fields` too."""
        marks, params = in_list("from", [s.value for s in from_statuses])
        now = int(time.time())
        assignments = ["status = :to", "updated_at = :now"]
        params.update(to=to.value, now=now, id=order_id)
        if not to.is_live:
            assignments.append("finished_at = :now")
            # Closing an order releases its lease (storage/leases.py).
            assignments.append("lease_owner = NULL, lease_until = NULL")
        for name, value in fields.items():
            assignments.append(f"{name} = :f_{name}")
            params[f"f_{name}"] = value
        row = await tx.fetchone(
            f"UPDATE orders SET {', '.join(assignments)} WHERE id = :id AND status IN ({marks})"
            " RETURNING user_id",
            params,
        )
        if row is None:
            return False
        tx.changed(ORDERS_OF, row["user_id"])
        return True

    async def update(self, order_id: int, **fields: object) -> None:
        """Set bookkeeping fields that are not part of the state machine."""
        names = ", ".join(f"{name} = :f_{name}" for name in fields)
        params = {f"f_{name}": value for name, value in fields.items()}
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                f"UPDATE orders SET {names} WHERE id = :id RETURNING user_id",
                {**params, "id": order_id},
            )
            if row is not None:
                tx.changed(ORDERS_OF, row["user_id"])

    @staticmethod
    async def add_code(tx: Tx, order_id: int, code: str, text: str | None, now: int) -> bool:
        """Store a received code; False if this order already has it."""
        changed = await tx.execute(
            "INSERT INTO order_codes (order_id, code, text, received_at) "
            "VALUES (:order_id, :code, :text, :now) ON CONFLICT (order_id, code) DO NOTHING",
            {"order_id": order_id, "code": code, "text": text, "now": now},
        )
        return changed == 1

    async def codes(self, order_id: int) -> list[OrderCode]:
        rows = await self.db.fetchall(
            "SELECT * FROM order_codes WHERE order_id = :id ORDER BY id", {"id": order_id}
        )
        return [_code(r) for r in rows]

    async def codes_for(self, order_ids: list[int]) -> dict[int, list[OrderCode]]:
        if not order_ids:
            return {}
        marks, params = in_list("o", order_ids)
        rows = await self.db.fetchall(
            f"SELECT * FROM order_codes WHERE order_id IN ({marks}) ORDER BY id", params
        )
        result: dict[int, list[OrderCode]] = {}
        for row in rows:
            result.setdefault(row["order_id"], []).append(_code(row))
        return result

    async def undelivered_codes(self) -> list[OrderCode]:
        rows = await self.db.fetchall(
            "SELECT * FROM order_codes WHERE delivered_at IS NULL ORDER BY id"
        )
        return [_code(r) for r in rows]

    async def mark_delivered(self, code_id: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE order_codes SET delivered_at = :now"
                " WHERE id = :id AND delivered_at IS NULL",
                {"now": int(time.time()), "id": code_id},
            )

    async def stats(self, since: int) -> tuple[int, int, int]:
        """(orders, revenue, upstream cost) of charged orders created since `since`.

        An order is charged when it has a purchase row and no refund.
        """
        row = await self.db.fetchone(
            """
            SELECT COUNT(*), COALESCE(SUM(o.price), 0), COALESCE(SUM(o.cost), 0)
            FROM orders o
            WHERE o.created_at >= :since
              AND EXISTS (SELECT 1 FROM ledger l WHERE l.order_id = o.id AND l.kind = 'purchase')
              AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.order_id = o.id AND l.kind = 'refund')
            """,
            {"since": since},
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def recent_user_cancels(
        self, user_id: int, limit: int, since: int, fresh: bool = False
    ) -> list[int]:
        """Finish times of the user's last `limit` own cancels since `since`, newest first.

        Kept while none of the user's orders changes (`UserOrderReads`), unless `fresh`: a
        later `since` only leaves out the older of the same cancels."""
        kept = self.kept
        if kept is None or fresh:
            return await self._recent_user_cancels(user_id, limit, since)

        async def load() -> tuple[int, list[int]]:
            return since, await self._recent_user_cancels(user_id, limit, since)

        _, cancels = await kept.read(
            user_id, ("own cancels", limit), load, lambda read: read[0] <= since
        )
        return [finished for finished in cancels if finished >= since]

    async def _recent_user_cancels(self, user_id: int, limit: int, since: int) -> list[int]:
        rows = await self.db.lookup(
            """
            SELECT finished_at FROM orders
            WHERE user_id = :user_id AND status = 'cancelled' AND error = :error
              AND finished_at >= :since
            ORDER BY finished_at DESC LIMIT :limit
            """,
            {"user_id": user_id, "error": USER_CANCEL, "since": since, "limit": limit},
        )
        return [int(r["finished_at"]) for r in rows]

    async def count_since(self, since: int) -> int:
        return int(
            await self.db.fetchval(
                "SELECT COUNT(*) FROM orders WHERE created_at >= :since", {"since": since}
            )
        )
