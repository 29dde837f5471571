"""Redis when `REDIS_URL` is set: the state several instances share (request budgets, the
flood throttle, FSM, the instance registry's presence keys), each under `REDIS_PREFIX`.
Without it, every part keeps its in-process or SQL implementation, exactly as one process
has always run.

The Redis client (and everything built on it) is imported only when `REDIS_URL` is set: it
weighs some 6 MB of memory, which a single process without Redis has no use for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder

from bot.config import Settings
from bot.factory.providers import BudgetFactory, local_budget
from handlers.throttling import ThrottleStore
from shop.providers.budget import Budget, budget_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

FSM_TTL_SECONDS = 86400  # typed input left unfinished for a day is forgotten
_TIMEOUTS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_timeout": 5,
    "health_check_interval": 30,
}


def create_redis(settings: Settings) -> Redis | None:
    """A client pool; it connects on first use (closed with `aclose()` at shutdown)."""
    if settings.redis_url is None:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(settings.redis_url.get_secret_value(), **_TIMEOUTS)


def create_shared_fsm(settings: Settings) -> tuple[BaseStorage, BaseEventIsolation] | None:
    """aiogram's `RedisStorage` and its `RedisEventIsolation` (one chat's updates one at a
    time, whichever instance each reaches). Its own pool: the Dispatcher closes the storage
    when it shuts down, while the app still uses the shared client."""
    if settings.redis_url is None:
        return None
    from aiogram.fsm.storage.redis import RedisStorage

    storage = RedisStorage.from_url(
        settings.redis_url.get_secret_value(),
        connection_kwargs=_TIMEOUTS,
        key_builder=DefaultKeyBuilder(prefix=f"{settings.redis_prefix}:fsm", with_bot_id=True),
        state_ttl=FSM_TTL_SECONDS,
        data_ttl=FSM_TTL_SECONDS,
    )
    return storage, storage.create_isolation()


def create_throttle_store(settings: Settings, redis: Redis | None) -> ThrottleStore | None:
    """The throttle's buckets in Redis; None: the in-process store."""
    if redis is None:
        return None
    from handlers.throttle_redis import RedisThrottleStore

    return RedisThrottleStore(redis, settings.redis_prefix)


def budget_factory(settings: Settings, redis: Redis | None) -> BudgetFactory:
    """Request budgets: one schedule per upstream key in Redis, or in this process."""
    if redis is None:
        return local_budget
    from shop.providers.budget_redis import RedisBudget

    shared: Redis = redis

    def shared_budget(upstream: str, per_minute: float, *credentials: str) -> Budget:
        key = budget_key(settings.redis_prefix, upstream, *credentials)
        return RedisBudget(shared, key, per_minute)

    return shared_budget
