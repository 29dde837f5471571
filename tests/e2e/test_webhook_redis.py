"""Two instances in webhook mode sharing Redis (and the database), behind the fake Bot API
playing Telegram and a proxy: a repeated update_id is handled once across them, an update in
progress on one is refused by the other with 503. Skipped when Redis is unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import BotHarness, free_port
from tests.e2e.test_webhook_mode import SECRET, greetings, start_update
from tests.fakes.telegram import SECRET_HEADER, FakeTelegram, FakeUser
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture

PUBLIC = "https://shop.example.com"


@pytest.fixture(autouse=True)
def quick_retries(telegram: FakeTelegram) -> None:
    telegram.webhook_retry_delay = 0.05
    telegram.webhook_retry_max = 0.5


async def two_instances(
    harness_factory: Callable[..., BotHarness], redis: SharedRedis
) -> tuple[BotHarness, BotHarness]:
    """Two bots on the same database and Redis, each with its own listener, both calling
    setWebhook with the one public URL (the fake routes it to both, as a proxy would)."""
    made = []
    for _ in range(2):
        values: dict[str, Any] = {
            "http_port": free_port(),
            "webhook_base_url": PUBLIC,
            "webhook_secret": SECRET,
            "redis_url": redis.url,
            "redis_prefix": redis.prefix,
        }
        made.append(harness_factory(**values))
    first, second = made
    telegram = first.telegram
    telegram.route_webhook(f"{PUBLIC}/telegram/webhook", url(first), url(second))
    await first.start()
    await second.start()
    return first, second


def url(harness: BotHarness) -> str:
    return f"http://127.0.0.1:{harness.settings.http_port}/telegram/webhook"


async def post(harness: BotHarness, update: dict[str, Any]) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(url(harness), json=update, headers={SECRET_HEADER: SECRET})
    return response.status_code


async def test_an_update_is_handled_once_across_instances(
    harness_factory: Callable[..., BotHarness],
    shared_redis: SharedRedis,  # noqa: F811
    telegram: FakeTelegram,
    bob: FakeUser,
) -> None:
    first, second = await two_instances(harness_factory, shared_redis)
    update = start_update(bob, 6_000_001)
    telegram.hold("sendMessage")
    on_first = asyncio.create_task(post(first, update))
    while not telegram.held:
        await asyncio.sleep(0.01)
    # Telegram delivers it again (to the other instance) while the first still handles it.
    assert await post(second, update) == 503
    telegram.release("sendMessage")
    assert await on_first == 200
    # Handled: any instance now answers 200 at once and does nothing.
    assert await post(second, update) == 200
    assert await post(first, update) == 200
    assert greetings(bob) == 1
    assert len(telegram.calls_to("sendMessage")) == 1


async def test_updates_through_the_proxy_are_each_handled_once(
    harness_factory: Callable[..., BotHarness],
    shared_redis: SharedRedis,  # noqa: F811
    telegram: FakeTelegram,
) -> None:
    await two_instances(harness_factory, shared_redis)
    users = telegram.make_users(6, first_id=3001)
    telegram.fail("sendMessage", 500, "Internal Server Error", times=2)  # two retries
    for user in users:
        await user.send("/start")
    for user in users:
        await user.wait_for("👋 Hi")
    await telegram.wait_webhook_idle()
    handled = [d for d in telegram.deliveries if d.ok]
    assert sorted(d.update_id for d in handled) == sorted({d.update_id for d in handled})
    assert len(handled) == len(users)
    assert len({d.target for d in telegram.deliveries}) == 2  # both instances served
    assert any(not d.ok for d in telegram.deliveries)  # some were retried
    assert all(greetings(user) == 1 for user in users)
    assert telegram.calls_to("getUpdates") == []
