"""Redis for the tests that need it: redis://127.0.0.1:6379/0 (or NUMBOT_TEST_REDIS_URL), a
unique key prefix per test, its keys deleted afterwards; skipped when Redis is unreachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("NUMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class SharedRedis:
    url: str
    prefix: str
    client: Redis


@pytest.fixture
async def shared_redis() -> AsyncIterator[SharedRedis]:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(
            f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}); "
            "set NUMBOT_TEST_REDIS_URL to run the Redis tests"
        )
    prefix = f"numbot-test-{uuid.uuid4().hex}"
    yield SharedRedis(REDIS_URL, prefix, client)
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
