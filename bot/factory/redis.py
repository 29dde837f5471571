"""The Redis client when `REDIS_URL` is set (shared state of several instances), else None."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.config import Settings


def create_redis(settings: Settings) -> Redis | None:
    """A client pool; it connects on first use (closed with `aclose()` at shutdown)."""
    if settings.redis_url is None:
        return None
    return Redis.from_url(settings.redis_url.get_secret_value(), health_check_interval=30)
