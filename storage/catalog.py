"""The cached catalog: services, countries and each route's offers."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from decimal import Decimal

from shop.models import Country, Offer, OfferRow, RouteCountry, RouteService, Service
from storage.db import Database, in_list
from storage.db import Record as Row
from storage.orders import ORDERS_OF


def _offer(row: Row) -> Offer:
    return Offer(
        route=row["route"],
        service_id=row["service_id"],
        country=row["country"],
        cost=Decimal(row["cost"]),
        stock=row["stock"],
        updated_at=row["updated_at"],
        looked_up=bool(row["looked_up"]),
    )


class CatalogRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save_route_catalog(
        self, route: str, services: Sequence[RouteService], countries: Sequence[RouteCountry]
    ) -> None:
        """Record what a route sells and where; canonical rows are created on first sight."""
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO services (slug, name) VALUES (:slug, :name) "
                "ON CONFLICT (slug) DO NOTHING",
                [{"slug": s.slug, "name": s.name} for s in services],
            )
            await tx.execute("DELETE FROM route_services WHERE route = :route", {"route": route})
            await tx.executemany(
                "INSERT INTO route_services (route, code, service_id) "
                "SELECT CAST(:route AS TEXT), CAST(:code AS TEXT), id FROM services "
                "WHERE slug = :slug ON CONFLICT (route, code) DO NOTHING",
                [{"route": route, "code": s.code, "slug": s.slug} for s in services],
            )
            await tx.executemany(
                "INSERT INTO countries (code, name, flag) VALUES (:code, :name, :flag) "
                "ON CONFLICT (code) DO NOTHING",
                [{"code": c.code, "name": c.name, "flag": c.flag} for c in countries],
            )
            await tx.execute("DELETE FROM route_countries WHERE route = :route", {"route": route})
            await tx.executemany(
                "INSERT INTO route_countries (route, upstream_id, country) "
                "VALUES (:route, :upstream_id, :country) "
                "ON CONFLICT (route, upstream_id) DO UPDATE SET country = excluded.country",
                [
                    {"route": route, "upstream_id": c.upstream_id, "country": c.code}
                    for c in countries
                ],
            )

    async def save_offers(
        self,
        route: str,
        service_id: int,
        offers: Sequence[OfferRow],
        keep_looked_up_since: int | None = None,
    ) -> None:
        """Replace one route's bulk offers for one service. Offers looked up one pair at a
        time and updated at or after `keep_looked_up_since` stay (None: none stay), unless
        the bulk list now has their pair."""
        now = int(time.time())
        keep_since = now + 1 if keep_looked_up_since is None else keep_looked_up_since
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM offers WHERE route = :route AND service_id = :service_id "
                "AND (looked_up = 0 OR updated_at < :keep_since)",
                {"route": route, "service_id": service_id, "keep_since": keep_since},
            )
            # A bulk row replaces a looked-up one of the same pair (INSERT OR REPLACE did).
            await tx.executemany(
                "INSERT INTO offers (route, service_id, country, cost, stock, updated_at) "
                "VALUES (:route, :service_id, :country, :cost, :stock, :now) "
                "ON CONFLICT (service_id, country, route) DO UPDATE SET "
                "cost = excluded.cost, stock = excluded.stock, updated_at = excluded.updated_at, "
                "looked_up = 0",
                [
                    {
                        "route": route,
                        "service_id": service_id,
                        "country": o.country,
                        "cost": str(o.cost),
                        "stock": o.stock,
                        "now": now,
                    }
                    for o in offers
                ],
            )
            await tx.execute(
                "INSERT INTO offer_refresh (route, service_id, refreshed_at) "
                "VALUES (:route, :service_id, :now) "
                "ON CONFLICT (route, service_id) "
                "DO UPDATE SET refreshed_at = excluded.refreshed_at",
                {"route": route, "service_id": service_id, "now": now},
            )

    async def pair_checks(
        self, routes: Sequence[str], service_id: int, country: str
    ) -> dict[str, int]:
        """When each route was last asked for this one pair (absent: never)."""
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            "SELECT route, checked_at FROM offer_checks WHERE service_id = :service_id "
            f"AND country = :country AND route IN ({marks})",
            {**params, "service_id": service_id, "country": country},
        )
        return {r["route"]: int(r["checked_at"]) for r in rows}

    async def save_pair_offer(
        self, route: str, service_id: int, country: str, offer: OfferRow | None
    ) -> bool:
        """Record that a route was asked for one pair and what it said: its offer (kept as
        looked up, never over a bulk one), or None for "not sold there" (a looked-up offer
        goes). True if the offers changed."""
        now = int(time.time())
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO offer_checks (route, service_id, country, checked_at) "
                "VALUES (:route, :service_id, :country, :now) "
                "ON CONFLICT (route, service_id, country) "
                "DO UPDATE SET checked_at = excluded.checked_at",
                {"route": route, "service_id": service_id, "country": country, "now": now},
            )
            if offer is None:
                changed = await tx.execute(
                    "DELETE FROM offers WHERE route = :route AND service_id = :service_id "
                    "AND country = :country AND looked_up = 1",
                    {"route": route, "service_id": service_id, "country": country},
                )
            else:
                changed = await tx.execute(
                    "INSERT INTO offers (route, service_id, country, cost, stock, updated_at, "
                    "looked_up) VALUES (:route, :service_id, :country, :cost, :stock, :now, 1) "
                    "ON CONFLICT (service_id, country, route) DO UPDATE SET "
                    "cost = excluded.cost, stock = excluded.stock, "
                    "updated_at = excluded.updated_at WHERE offers.looked_up = 1",
                    {
                        "route": route,
                        "service_id": service_id,
                        "country": offer.country,
                        "cost": str(offer.cost),
                        "stock": offer.stock,
                        "now": now,
                    },
                )
        return changed > 0

    async def mark_viewed(self, routes: Sequence[str], service_id: int) -> None:
        now = int(time.time())
        async with self.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO offer_refresh (route, service_id, refreshed_at, last_viewed) "
                "VALUES (:route, :service_id, 0, :now) ON CONFLICT (route, service_id) "
                "DO UPDATE SET last_viewed = excluded.last_viewed",
                [{"route": route, "service_id": service_id, "now": now} for route in routes],
            )

    async def set_route_status(self, route: str, ok: bool, error: str | None = None) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO routes (route, ok, checked_at, error) "
                "VALUES (:route, :ok, :now, :error) "
                "ON CONFLICT (route) DO UPDATE SET ok = excluded.ok, "
                "checked_at = excluded.checked_at, error = excluded.error",
                {"route": route, "ok": int(ok), "now": int(time.time()), "error": error},
            )

    async def healthy_routes(self, routes: Sequence[str]) -> list[str]:
        """The given routes minus those marked down (a route never checked counts as up)."""
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            f"SELECT route FROM routes WHERE ok = 0 AND route IN ({marks})", params
        )
        down = {r["route"] for r in rows}
        return [r for r in routes if r not in down]

    async def count_services(self, routes: Sequence[str], query: str = "") -> int:
        marks, params = in_list("r", routes)
        return int(
            await self.db.fetchval(
                f"""
                SELECT COUNT(*) FROM services s
                WHERE EXISTS (SELECT 1 FROM route_services rs
                              WHERE rs.service_id = s.id AND rs.route IN ({marks}))
                  AND lower(s.name) LIKE :query ESCAPE '\\'
                """,
                {**params, "query": _like(query)},
            )
        )

    async def services(
        self, routes: Sequence[str], query: str, limit: int, offset: int, last: Sequence[int] = ()
    ) -> list[Service]:
        """Services some route sells, by name, those in `last` after the others; `query`
        filters names."""
        marks, params = in_list("r", routes)
        sink, sunk = in_list("last", last)
        rows = await self.db.fetchall(
            f"""
            SELECT s.id, s.slug, s.name FROM services s
            WHERE EXISTS (SELECT 1 FROM route_services rs
                          WHERE rs.service_id = s.id AND rs.route IN ({marks}))
              AND lower(s.name) LIKE :query ESCAPE '\\'
            ORDER BY CASE WHEN s.id IN ({sink}) THEN 1 ELSE 0 END, lower(s.name), s.name
            LIMIT :limit OFFSET :offset
            """,
            {**params, **sunk, "query": _like(query), "limit": limit, "offset": offset},
        )
        return [Service(r["id"], r["slug"], r["name"]) for r in rows]

    async def sold_out_services(self, routes: Sequence[str]) -> list[int]:
        """Services with no number anywhere: every one of `routes` that sells the service has
        had its prices read (a route never read for it may have numbers), and none of them
        has stock in any country."""
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            f"""
            SELECT rs.service_id FROM route_services rs
            LEFT JOIN offer_refresh r ON r.route = rs.route AND r.service_id = rs.service_id
            WHERE rs.route IN ({marks})
            GROUP BY rs.service_id
            HAVING MIN(COALESCE(r.refreshed_at, 0)) > 0
               AND NOT EXISTS (SELECT 1 FROM offers o
                               WHERE o.service_id = rs.service_id AND o.route IN ({marks})
                                 AND o.stock > 0)
            """,
            params,
        )
        return [int(r["service_id"]) for r in rows]

    async def service(self, service_id: int) -> Service | None:
        row = await self.db.fetchone("SELECT * FROM services WHERE id = :id", {"id": service_id})
        return None if row is None else Service(row["id"], row["slug"], row["name"])

    async def service_by_slug(self, slug: str) -> Service | None:
        row = await self.db.fetchone("SELECT * FROM services WHERE slug = :slug", {"slug": slug})
        return None if row is None else Service(row["id"], row["slug"], row["name"])

    async def unmapped_countries(self) -> list[Country]:
        """Countries keyed `x-...` (not ISO 3166)."""
        rows = await self.db.fetchall("SELECT * FROM countries WHERE code LIKE 'x-%'")
        return [Country(r["code"], r["name"], r["flag"]) for r in rows]

    async def rekey_country(self, old: str, new: Country) -> None:
        """Move everything kept under the country key `old` to `new` in one transaction.

        Orders, quotes and stock watches follow; the cached offers and upstream ids under `old`
        are dropped and their (route, service) marked never fetched, so the next view or
        refresh fetches them again under the current keys.
        """
        async with self.db.transaction() as tx:
            keys = {"old": old, "new": new.code}
            await tx.execute(
                "INSERT INTO countries (code, name, flag) VALUES (:code, :name, :flag) "
                "ON CONFLICT (code) DO NOTHING",
                {"code": new.code, "name": new.name, "flag": new.flag},
            )
            await tx.execute(
                "UPDATE offer_refresh SET refreshed_at = 0 WHERE EXISTS (SELECT 1 FROM offers o "
                "WHERE o.route = offer_refresh.route AND o.service_id = offer_refresh.service_id "
                "AND o.country = :old)",
                keys,
            )
            await tx.execute("DELETE FROM offers WHERE country = :old", keys)
            await tx.execute("DELETE FROM offer_checks WHERE country = :old", keys)
            await tx.execute("DELETE FROM route_countries WHERE country = :old", keys)
            moved = await tx.fetchall(
                "UPDATE orders SET country = :new WHERE country = :old RETURNING user_id", keys
            )
            tx.changed(ORDERS_OF, *{row["user_id"] for row in moved})
            await tx.execute("UPDATE quotes SET country = :new WHERE country = :old", keys)
            # A watch moves unless the user watches the new key already (then it just goes).
            await tx.execute(
                "INSERT INTO stock_watches (user_id, service_id, country, created_at) "
                "SELECT user_id, service_id, CAST(:new AS TEXT), created_at FROM stock_watches "
                "WHERE country = :old ON CONFLICT (user_id, service_id, country) DO NOTHING",
                keys,
            )
            await tx.execute("DELETE FROM stock_watches WHERE country = :old", keys)
            await tx.execute("DELETE FROM countries WHERE code = :old", keys)

    async def country(self, code: str) -> Country | None:
        row = await self.db.fetchone("SELECT * FROM countries WHERE code = :code", {"code": code})
        return None if row is None else Country(row["code"], row["name"], row["flag"])

    async def countries(self, codes: Sequence[str]) -> dict[str, Country]:
        marks, params = in_list("r", codes)
        rows = await self.db.fetchall(f"SELECT * FROM countries WHERE code IN ({marks})", params)
        return {r["code"]: Country(r["code"], r["name"], r["flag"]) for r in rows}

    async def offers_for_service(self, routes: Sequence[str], service_id: int) -> list[Offer]:
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            f"SELECT * FROM offers WHERE service_id = :service_id AND route IN ({marks})",
            {**params, "service_id": service_id},
        )
        return [_offer(r) for r in rows]

    async def pair_offers(
        self, routes: Sequence[str], pairs: Collection[tuple[int, str]]
    ) -> list[Offer]:
        """The offers of a few (service, country) pairs on `routes`."""
        marks, params = in_list("r", routes)
        ids, id_params = in_list("s", sorted({service_id for service_id, _ in pairs}))
        codes, code_params = in_list("c", sorted({country for _, country in pairs}))
        rows = await self.db.fetchall(
            f"SELECT * FROM offers WHERE service_id IN ({ids}) AND country IN ({codes}) "
            f"AND route IN ({marks})",
            {**params, **id_params, **code_params},
        )
        wanted = set(pairs)
        offers = [_offer(r) for r in rows]
        return [offer for offer in offers if (offer.service_id, offer.country) in wanted]

    async def offers(self, routes: Sequence[str], service_id: int, country: str) -> list[Offer]:
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            "SELECT * FROM offers WHERE service_id = :service_id AND country = :country "
            f"AND route IN ({marks})",
            {**params, "service_id": service_id, "country": country},
        )
        return [_offer(r) for r in rows]

    async def upstream_service(self, route: str, service_id: int) -> str | None:
        value = await self.db.fetchval(
            "SELECT code FROM route_services WHERE route = :route AND service_id = :service_id",
            {"route": route, "service_id": service_id},
        )
        return None if value is None else str(value)

    async def upstream_country(self, route: str, country: str) -> str | None:
        value = await self.db.fetchval(
            "SELECT upstream_id FROM route_countries WHERE route = :route AND country = :country",
            {"route": route, "country": country},
        )
        return None if value is None else str(value)

    async def route_countries(self, route: str) -> dict[str, str]:
        """Upstream country id -> canonical country code."""
        rows = await self.db.fetchall(
            "SELECT upstream_id, country FROM route_countries WHERE route = :route",
            {"route": route},
        )
        return {r["upstream_id"]: r["country"] for r in rows}

    async def refresh_candidates(self, route: str, older_than: int, limit: int) -> list[int]:
        """Services of a route whose offers are older than `older_than`, viewed ones first."""
        rows = await self.db.fetchall(
            """
            SELECT rs.service_id FROM route_services rs
            LEFT JOIN offer_refresh r ON r.route = rs.route AND r.service_id = rs.service_id
            WHERE rs.route = :route AND COALESCE(r.refreshed_at, 0) < :older_than
            ORDER BY COALESCE(r.last_viewed, 0) DESC,
                     (SELECT COUNT(*) FROM orders o WHERE o.service_id = rs.service_id) DESC,
                     COALESCE(r.refreshed_at, 0), rs.service_id
            LIMIT :limit
            """,
            {"route": route, "older_than": older_than, "limit": limit},
        )
        return [int(r["service_id"]) for r in rows]

    async def refreshed_times(self, routes: Sequence[str], service_id: int) -> dict[str, int]:
        """When each route's offers for a service were last fetched (absent: never)."""
        marks, params = in_list("r", routes)
        rows = await self.db.fetchall(
            "SELECT route, refreshed_at FROM offer_refresh WHERE service_id = :service_id "
            f"AND route IN ({marks})",
            {**params, "service_id": service_id},
        )
        return {r["route"]: int(r["refreshed_at"]) for r in rows}


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"
