"""This process's entry in the instance registry (see `shop.services.instances`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Settings
from shop.services.instances import InstanceRegistry
from storage.db import Database
from storage.instances import InstanceRepo, RedisPresence

if TYPE_CHECKING:
    from redis.asyncio import Redis  # only with REDIS_URL: imported when configured


async def join_registry(settings: Settings, db: Database, redis: Redis | None) -> InstanceRegistry:
    """Register this instance; raises `StartupRefused` when it must not run."""
    presence = None if redis is None else RedisPresence(redis, settings.redis_prefix)
    registry = InstanceRegistry(db, InstanceRepo(db), presence)
    await registry.join()
    return registry
