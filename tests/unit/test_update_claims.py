"""Update claims (web.updates): each update_id handled once, in one process and across
instances through Redis (skipped without Redis)."""

from __future__ import annotations

import asyncio

from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture
from web.updates import LocalUpdateClaims, RedisUpdateClaims, Seen


async def test_local_claims_new_busy_done_and_released() -> None:
    claims = LocalUpdateClaims()
    first = await claims.claim(7)
    assert first.seen is Seen.NEW
    assert (await claims.claim(7)).seen is Seen.BUSY
    await claims.release(first)  # failed: the next delivery handles it
    again = await claims.claim(7)
    assert again.seen is Seen.NEW
    await claims.done(again)
    assert (await claims.claim(7)).seen is Seen.DONE
    assert (await claims.claim(8)).seen is Seen.NEW


async def test_local_claims_remember_a_bounded_number_of_updates() -> None:
    claims = LocalUpdateClaims(limit=3)
    for update_id in range(5):
        await claims.done(await claims.claim(update_id))
    assert [(await claims.claim(i)).seen for i in (2, 3, 4)] == [Seen.DONE] * 3
    assert (await claims.claim(0)).seen is Seen.NEW  # the oldest were forgotten


async def test_local_claims_forget_after_the_keep_time() -> None:
    claims = LocalUpdateClaims(keep_seconds=0)
    await claims.done(await claims.claim(1))
    assert (await claims.claim(1)).seen is Seen.NEW


async def test_redis_claims_are_shared_by_instances(shared_redis: SharedRedis) -> None:  # noqa: F811
    one = RedisUpdateClaims(shared_redis.client, shared_redis.prefix, bot_id=42)
    two = RedisUpdateClaims(shared_redis.client, shared_redis.prefix, bot_id=42)
    other_bot = RedisUpdateClaims(shared_redis.client, shared_redis.prefix, bot_id=43)
    claim = await one.claim(100)
    assert claim.seen is Seen.NEW
    assert (await two.claim(100)).seen is Seen.BUSY
    assert (await other_bot.claim(100)).seen is Seen.NEW  # another bot's update 100
    await one.release(claim)
    again = await two.claim(100)
    assert again.seen is Seen.NEW
    await two.done(again)
    assert (await one.claim(100)).seen is Seen.DONE
    ttl = await shared_redis.client.ttl(one.key(100))
    assert 86000 < ttl <= 86400  # "done" is kept a day


async def test_a_running_claim_is_renewed_and_a_dead_ones_lapses(
    shared_redis: SharedRedis,  # noqa: F811
) -> None:
    one = RedisUpdateClaims(shared_redis.client, shared_redis.prefix, bot_id=1, claim_seconds=0.6)
    two = RedisUpdateClaims(shared_redis.client, shared_redis.prefix, bot_id=1, claim_seconds=0.6)
    alive = await one.claim(1)
    await asyncio.sleep(1.5)  # longer than the claim's life: renewed meanwhile
    assert (await two.claim(1)).seen is Seen.BUSY
    await one.done(alive)

    dead = await one.claim(2)
    assert dead._renewal is not None
    dead._renewal.cancel()  # the instance dies: nobody renews, nobody releases
    assert (await two.claim(2)).seen is Seen.BUSY
    for _ in range(100):
        taken = await two.claim(2)
        if taken.seen is Seen.NEW:
            break
        await asyncio.sleep(0.05)
    assert taken.seen is Seen.NEW  # within one claim's life after the death
    await two.done(taken)
    # The dead instance's late release does not undo the other's work.
    await one.release(dead)
    assert (await one.claim(2)).seen is Seen.DONE
