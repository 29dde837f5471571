from __future__ import annotations

import asyncio

from shop.providers.budget import RequestBudget


async def test_priority_goes_first_when_queued() -> None:
    budget = RequestBudget(per_minute=60 * 50, safety=1.0)  # 20 ms apart
    order: list[str] = []
    await budget.acquire(3)  # takes the free slot

    async def take(name: str, priority: int) -> None:
        await budget.acquire(priority)
        order.append(name)

    tasks = [asyncio.create_task(take(f"poll{i}", 1)) for i in range(3)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("purchase", 0)))
    await asyncio.gather(*tasks)
    assert order[0] == "purchase"
    budget.close()
