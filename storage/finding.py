"""What finding a service or a country reads: the names to search, and what was bought lately.

Every statement is portable SQL (named parameters, rows read by column name)."""

from __future__ import annotations

from collections.abc import Sequence

from shop.models import Country, Service
from storage.db import Database, in_list


class FindingRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def searchable(self, routes: Sequence[str]) -> tuple[list[Service], list[Country]]:
        """Every service and every country some of `routes` lists, by name."""
        names, params = in_list("route", routes)
        services = await self.db.fetchall(
            f"SELECT s.id, s.slug, s.name FROM services s WHERE EXISTS (SELECT 1 FROM "
            f"route_services rs WHERE rs.service_id = s.id AND rs.route IN ({names})) "
            f"ORDER BY s.name",
            params,
        )
        countries = await self.db.fetchall(
            f"SELECT c.code, c.name, c.flag FROM countries c WHERE EXISTS (SELECT 1 FROM "
            f"route_countries rc WHERE rc.country = c.code AND rc.route IN ({names})) "
            f"ORDER BY c.name",
            params,
        )
        return (
            [Service(r["id"], r["slug"], r["name"]) for r in services],
            [Country(r["code"], r["name"], r["flag"]) for r in countries],
        )

    async def services_bought(self, since: int, limit: int) -> list[tuple[int, int]]:
        """(service id, orders) of the services most ordered since `since`, most first
        (index orders_bought_since)."""
        rows = await self.db.fetchall(
            "SELECT service_id, COUNT(*) AS bought FROM orders WHERE created_at >= :since "
            "GROUP BY service_id ORDER BY bought DESC, service_id LIMIT :limit",
            {"since": since, "limit": limit},
        )
        return [(int(r["service_id"]), int(r["bought"])) for r in rows]

    async def countries_bought(
        self, service_id: int, since: int, limit: int
    ) -> list[tuple[str, int]]:
        """(country, orders) of the countries where a service was most ordered since `since`,
        most first (index orders_service_bought)."""
        rows = await self.db.fetchall(
            "SELECT country, COUNT(*) AS bought FROM orders "
            "WHERE service_id = :service_id AND created_at >= :since "
            "GROUP BY country ORDER BY bought DESC, country LIMIT :limit",
            {"service_id": service_id, "since": since, "limit": limit},
        )
        return [(str(r["country"]), int(r["bought"])) for r in rows]
