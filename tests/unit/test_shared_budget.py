"""The request budget shared through Redis: the documented limits are per API key, so every
instance takes its slots from one schedule per key. Two budgets on one Redis play two
instances; the fake upstream enforces its limit and counts 429s. Skipped without Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from redis.asyncio import Redis

from shop.providers.base import Priority, UpstreamUnavailable
from shop.providers.budget import RequestBudget, budget_key
from shop.providers.budget_redis import RedisBudget
from shop.providers.smspalm import SERVER_TWO, SMSPalmClient, SMSPalmRoute
from tests.fakes.smspalm import FakeSMSPalm
from tests.redis_support import REDIS_URL, SharedRedis, shared_redis  # noqa: F401 - the fixture

# SMSPalm's documented limit, 100 requests a minute per token, with time running 20 times
# faster: 100 per 3-second sliding window, so a test sees several windows in seconds.
LIMIT = 100
WINDOW = 3.0
PER_MINUTE = LIMIT * 60 / WINDOW
REQUESTS = 150  # from both instances together: one and a half windows past the first


@pytest.fixture
async def palm() -> AsyncIterator[FakeSMSPalm]:
    async with FakeSMSPalm(rate_limit=LIMIT, window_seconds=WINDOW) as fake:
        yield fake


async def _full_load(clients: list[SMSPalmClient], total: int) -> tuple[list[int], float]:
    """Every client's instance sends as fast as its budget lets it (20 callers each) until
    `total` requests were answered; returns the answers per instance and the seconds taken."""
    done = [0] * len(clients)
    started = time.monotonic()

    async def caller(index: int, client: SMSPalmClient) -> None:
        while sum(done) < total:
            await client.call("getBalance", Priority.POLL)
            done[index] += 1

    await asyncio.gather(
        *(caller(i, client) for i, client in enumerate(clients) for _ in range(20))
    )
    return done, time.monotonic() - started


async def test_two_instances_share_the_key_limit_without_a_429(
    palm: FakeSMSPalm,
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    key = budget_key(shared_redis.prefix, "smspalm", palm.api_key)
    async with (
        httpx.AsyncClient() as http_one,
        httpx.AsyncClient() as http_two,
        Redis.from_url(REDIS_URL) as redis_two,
    ):
        budgets = [
            RedisBudget(shared_redis.client, key, PER_MINUTE),
            RedisBudget(redis_two, key, PER_MINUTE),
        ]
        clients = [
            SMSPalmClient(http, palm.base_url, palm.api_key, budget)
            for http, budget in zip((http_one, http_two), budgets, strict=True)
        ]
        try:
            answered, seconds = await _full_load(clients, REQUESTS)
        finally:
            for budget in budgets:
                budget.close()
    assert palm.rejected_429 == 0
    # Both instances were loaded, and together they ran close to the limit (spacing keeps
    # them at 95 % of it; the first request goes at once).
    assert min(answered) >= REQUESTS // 4, answered
    rate = (sum(answered) - 1) / seconds
    assert 0.75 * LIMIT / WINDOW <= rate <= LIMIT / WINDOW, rate
    assert palm.api_key not in key


async def test_one_budget_per_process_is_what_earns_429s(palm: FakeSMSPalm) -> None:
    """The contrast: today's in-process budget on each of two instances lets each spend the
    whole key's limit, and the upstream refuses the excess."""
    async with httpx.AsyncClient() as http_one, httpx.AsyncClient() as http_two:
        budgets = [RequestBudget(PER_MINUTE), RequestBudget(PER_MINUTE)]
        clients = [
            SMSPalmClient(http, palm.base_url, palm.api_key, budget, retry_delays=())
            for http, budget in zip((http_one, http_two), budgets, strict=True)
        ]
        with pytest.raises(UpstreamUnavailable):  # RateLimited, once the window is full
            await _full_load(clients, REQUESTS)
        for budget in budgets:
            budget.close()
    assert palm.rejected_429 > 0


async def test_priority_goes_first_within_an_instance(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    budget = RedisBudget(
        shared_redis.client, f"{shared_redis.prefix}:budget:test", 60 * 50, safety=1.0
    )
    order: list[str] = []
    await budget.acquire(Priority.BACKGROUND)  # takes the free slot

    async def take(name: str, priority: Priority) -> None:
        await budget.acquire(priority)
        order.append(name)

    tasks = [asyncio.create_task(take(f"poll{i}", Priority.POLL)) for i in range(3)]
    tasks.append(asyncio.create_task(take("menu", Priority.INTERACTIVE)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("purchase", Priority.PURCHASE)))
    await asyncio.gather(*tasks)
    budget.close()
    assert order[0] == "purchase" and order[-1] == "menu"


async def test_other_keys_keep_their_own_schedule(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    """One slow schedule (one request a minute) does not hold up another key's."""
    slow_key = budget_key(shared_redis.prefix, "papsms", "key-one")
    other_key = budget_key(shared_redis.prefix, "papsms", "key-two")
    assert slow_key != other_key
    slow = RedisBudget(shared_redis.client, slow_key, 1)
    other = RedisBudget(shared_redis.client, other_key, 1)
    await slow.acquire(Priority.POLL)
    waiting = asyncio.create_task(slow.acquire(Priority.POLL))
    await asyncio.wait_for(other.acquire(Priority.POLL), 5)  # its first slot is free
    assert not waiting.done()
    slow.close()
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_redis_down_means_nothing_was_sent(palm: FakeSMSPalm) -> None:
    """No slot, no request: a purchase fails as "unavailable" (nothing reached the upstream),
    never as "outcome unknown", and nothing is bought."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    budget = RedisBudget(dead, "numbot-test:budget:down", 600)
    async with httpx.AsyncClient() as http:
        client = SMSPalmClient(http, palm.base_url, palm.api_key, budget)
        route = SMSPalmRoute(client, SERVER_TWO, Decimal(1))
        with pytest.raises(UpstreamUnavailable) as raised:
            await client.get_number(service="wa", country="US", server=SERVER_TWO)
        assert "budget" in str(raised.value)
        with pytest.raises(UpstreamUnavailable):
            await route.balance()
    budget.close()
    await dead.aclose()
    assert palm.requests == [] and palm.activations == {}
