"""`OrderRepo.page_for_user`: a page of a user's orders and their number in one read."""

from __future__ import annotations

from storage.db import Database
from storage.orders import OrderRepo


async def _orders(db: Database, user_id: int, count: int) -> None:
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, first_name, created_at) VALUES (:id, 'U', 0)", {"id": user_id}
        )
        service = await tx.insert("INSERT INTO services (slug, name) VALUES ('wa', 'WhatsApp')")
        for n in range(count):
            await tx.execute(
                "INSERT INTO orders (user_id, route, service_id, country, price, upstream_cost,"
                " cost, status, created_at, updated_at)"
                " VALUES (:u, 'palm', :s, 'US', :n + 1, '0.1', 10, 'completed', :n, :n)",
                {"u": user_id, "s": service, "n": n},
            )


async def test_a_page_and_the_total_in_one_read(database: Database) -> None:
    repo = OrderRepo(database)
    await _orders(database, 7, 5)
    first, total = await repo.page_for_user(7, 2, 0)
    assert total == 5 and [o.price for o in first] == [5, 4]
    last, total = await repo.page_for_user(7, 2, 4)
    assert total == 5 and [o.price for o in last] == [1]
    assert await repo.page_for_user(7, 2, 6) == ([], 0)  # past the end: no row to count on
    assert await repo.page_for_user(8, 2, 0) == ([], 0)
