"""Markup overrides, stock watches, route statistics and upstream push events."""

from __future__ import annotations

import time
from decimal import Decimal

from shop.models import RouteStats
from storage.db import Database
from storage.orders import UserOrderReads


class RoutingRepo:
    def __init__(self, db: Database, kept: UserOrderReads | None = None) -> None:
        self.db = db
        self.kept = kept

    async def markups(self) -> dict[tuple[str, int], Decimal]:
        rows = await self.db.fetchall("SELECT provider, service_id, percent FROM markups")
        return {(r["provider"], int(r["service_id"])): Decimal(r["percent"]) for r in rows}

    async def set_markup(self, provider: str, service_id: int, percent: Decimal) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO markups (provider, service_id, percent, updated_at) "
                "VALUES (:provider, :service_id, :percent, :now) "
                "ON CONFLICT (provider, service_id) DO UPDATE SET "
                "percent = excluded.percent, updated_at = excluded.updated_at",
                {
                    "provider": provider,
                    "service_id": service_id,
                    "percent": str(percent),
                    "now": int(time.time()),
                },
            )

    async def route_stats(self) -> dict[str, RouteStats]:
        """Per route: orders that got a number and ended, and how many of them got a code."""
        rows = await self.db.fetchall(
            """
            SELECT o.route, COUNT(*),
                   SUM(CASE WHEN EXISTS (SELECT 1 FROM order_codes c WHERE c.order_id = o.id)
                       THEN 1 ELSE 0 END)
            FROM orders o
            WHERE o.activation_id IS NOT NULL AND o.status <> 'number_issued'
            GROUP BY o.route
            """
        )
        return {r[0]: RouteStats(int(r[1]), int(r[2] or 0)) for r in rows}

    async def recent_picks(self, user_id: int, limit: int) -> list[tuple[int, str, str]]:
        """The user's latest distinct (service, country, route) choices, newest first; kept
        while none of the user's orders changes (`UserOrderReads`)."""
        kept = self.kept
        if kept is None:
            return await self._recent_picks(user_id, limit)
        picks: list[tuple[int, str, str]] = await kept.read(
            user_id, ("recent picks", limit), lambda: self._recent_picks(user_id, limit)
        )
        return list(picks)

    async def _recent_picks(self, user_id: int, limit: int) -> list[tuple[int, str, str]]:
        rows = await self.db.lookup(
            """
            SELECT o.service_id, o.country, o.route FROM orders o
            WHERE o.id IN (SELECT MAX(id) FROM orders WHERE user_id = :user_id
                           GROUP BY service_id, country)
            ORDER BY o.id DESC LIMIT :limit
            """,
            {"user_id": user_id, "limit": limit},
        )
        return [(int(r["service_id"]), r["country"], r["route"]) for r in rows]

    async def watch(self, user_id: int, service_id: int, country: str, most: int) -> bool:
        """Add the watch unless the user has `most` already; True when it is in place (added
        now or before)."""
        keys = {"user_id": user_id, "service_id": service_id, "country": country}
        async with self.db.transaction() as tx:
            await tx.lock_user(user_id)  # the count below is the user's cap
            await tx.execute(
                "INSERT INTO stock_watches (user_id, service_id, country, created_at) "
                "SELECT CAST(:user_id AS BIGINT), CAST(:service_id AS BIGINT), "
                "CAST(:country AS TEXT), CAST(:now AS BIGINT) "
                "WHERE (SELECT COUNT(*) FROM stock_watches WHERE user_id = :user_id) < :most "
                "ON CONFLICT (user_id, service_id, country) DO NOTHING",
                {**keys, "now": int(time.time()), "most": most},
            )
            row = await tx.fetchone(
                "SELECT 1 FROM stock_watches WHERE user_id = :user_id "
                "AND service_id = :service_id AND country = :country",
                keys,
            )
        return row is not None

    async def watches(self) -> list[tuple[int, int, str]]:
        rows = await self.db.fetchall(
            "SELECT user_id, service_id, country FROM stock_watches "
            "ORDER BY created_at, user_id, service_id, country"
        )
        return [(int(r["user_id"]), int(r["service_id"]), r["country"]) for r in rows]

    async def drop_watch(self, user_id: int, service_id: int, country: str) -> bool:
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "DELETE FROM stock_watches WHERE user_id = :user_id "
                "AND service_id = :service_id AND country = :country",
                {"user_id": user_id, "service_id": service_id, "country": country},
            )
        return changed == 1

    async def record_event(self, route: str, event_key: str, activation_id: str) -> bool:
        """Store an upstream push once; False when it was seen before."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "INSERT INTO upstream_events (route, event_key, activation_id, received_at) "
                "VALUES (:route, :event_key, :activation_id, :now) "
                "ON CONFLICT (route, event_key) DO NOTHING",
                {
                    "route": route,
                    "event_key": event_key,
                    "activation_id": activation_id,
                    "now": int(time.time()),
                },
            )
        return changed == 1

    async def order_by_activation(self, route: str, activation_id: str) -> int | None:
        value = await self.db.fetchval(
            "SELECT id FROM orders WHERE route = :route AND activation_id = :activation_id",
            {"route": route, "activation_id": activation_id},
        )
        return None if value is None else int(value)
