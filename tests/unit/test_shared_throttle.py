"""The flood throttle's buckets in Redis: the same verdicts as the in-process store, shared by
every instance (so a user cannot spread a flood over them), and idle buckets expire by
themselves. Skipped without Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from handlers.throttle_redis import RedisThrottleStore
from handlers.throttling import Verdict
from tests.redis_support import REDIS_URL, SharedRedis, shared_redis  # noqa: F401 - the fixture


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _hits(store: RedisThrottleStore, key: int, n: int, rate: float, burst: int) -> list:
    return [await store.hit(key, rate, burst) for _ in range(n)]


async def test_a_burst_passes_then_one_warning_then_drops(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    store = RedisThrottleStore(shared_redis.client, shared_redis.prefix, Clock())
    verdicts = await _hits(store, 7, 12, rate=2.0, burst=8)
    assert verdicts == [Verdict.ALLOW] * 8 + [Verdict.WARN] + [Verdict.DROP] * 3


async def test_a_full_bucket_ends_the_throttled_period(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    clock = Clock()
    store = RedisThrottleStore(shared_redis.client, shared_redis.prefix, clock)
    await _hits(store, 7, 3, rate=2.0, burst=2)  # allow, allow, warn
    clock.now += 0.25  # half a token: still throttled, already warned
    assert await store.hit(7, 2.0, 2) is Verdict.DROP
    clock.now += 0.25  # one token: allowed, but the period goes on
    assert await _hits(store, 7, 2, rate=2.0, burst=2) == [Verdict.ALLOW, Verdict.DROP]
    clock.now += 1.0  # idle until full: calmed down
    assert await _hits(store, 7, 4, rate=2.0, burst=2) == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
    ]


async def test_a_sustained_flood_gets_one_warning(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    clock = Clock()
    store = RedisThrottleStore(shared_redis.client, shared_redis.prefix, clock)
    verdicts = []
    for _ in range(100):  # ten per second for ten seconds, against two per second
        verdicts.append(await store.hit(7, 2.0, 8))
        clock.now += 0.1
    assert verdicts.count(Verdict.WARN) == 1
    assert verdicts.count(Verdict.ALLOW) in (27, 28)


async def test_refill_is_capped_at_the_burst(shared_redis: SharedRedis) -> None:  # noqa: F811
    clock = Clock()
    store = RedisThrottleStore(shared_redis.client, shared_redis.prefix, clock)
    await store.hit(7, 2.0, 3)
    clock.now += 3600
    assert await _hits(store, 7, 4, rate=2.0, burst=3) == [Verdict.ALLOW] * 3 + [Verdict.WARN]


async def test_a_flood_spread_over_instances_meets_one_bucket(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    """Two instances (two clients, Redis's own clock): one user's burst is spent once,
    whichever instance each update reaches; another user is untouched."""
    async with Redis.from_url(REDIS_URL) as other_client:
        one = RedisThrottleStore(shared_redis.client, shared_redis.prefix)
        two = RedisThrottleStore(other_client, shared_redis.prefix)
        verdicts = [await (one if i % 2 else two).hit(7, 0.001, 5) for i in range(10)]
        assert verdicts == [Verdict.ALLOW] * 5 + [Verdict.WARN] + [Verdict.DROP] * 4
        assert await one.hit(8, 0.001, 5) is Verdict.ALLOW


async def test_an_idle_bucket_expires_when_it_would_be_full(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    store = RedisThrottleStore(shared_redis.client, shared_redis.prefix)
    await _hits(store, 7, 3, rate=0.5, burst=4)  # one token left: 6 s to refill three
    keys = [key async for key in shared_redis.client.scan_iter(f"{shared_redis.prefix}:*")]
    assert len(keys) == 1 and b"7" in keys[0]
    ttl_ms = await shared_redis.client.pttl(keys[0])
    assert 5_000 < ttl_ms <= 7_000


async def test_redis_down_lets_updates_through() -> None:
    """The throttle protects the shop; it must not be what takes it down."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    store = RedisThrottleStore(dead, "numbot-test")
    assert await store.hit(7, 1.0, 1) is Verdict.ALLOW
    await dead.aclose()
