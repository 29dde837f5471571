"""Two instances on one database and one Redis (`REDIS_URL`): what a user started on one
continues on the other. Typed input (FSM) and the flood throttle live in Redis, so an update
may reach either instance. Skipped without Redis.

Two bots cannot long-poll one Bot API at once (Telegram answers the older poll 409), so the
tests hand the updates over from one instance to the other, as a rolling restart does (that
two instances sharing Redis run at once is tests/e2e/test_instances.py's subject)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage

from handlers.topup.router import TopupForm
from storage.fsm import SQLiteStorage
from tests.conftest import BotHarness
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeUser, Message
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture

SLOW_DOWN = "too fast"


def shared(redis: SharedRedis, **overrides: Any) -> dict[str, Any]:
    return {"redis_url": redis.url, "redis_prefix": redis.prefix, **overrides}


async def hand_over(old: BotHarness, new: BotHarness) -> None:
    """From now on updates reach `new` (a new Dispatcher, its own Redis clients)."""
    await old.stop()
    await new.start()


def _hi(user: FakeUser) -> Callable[[Message], bool]:
    return lambda m: f"Hi, {user.first_name}" in m.plain


async def _seen(user: FakeUser, predicate: Callable[[Message], bool]) -> None:
    """Wait until some message of `user`'s (before the cursor or after) matches."""
    for _ in range(1000):
        if any(predicate(m) for m in user.messages):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"user {user.id}: no such message")


async def test_typed_input_started_on_one_instance_continues_on_the_other(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    alice: FakeUser,
) -> None:
    one = harness_factory(**shared(shared_redis))
    two = harness_factory(**shared(shared_redis))
    app = await one.start()
    assert isinstance(app.dp.storage, RedisStorage)
    assert isinstance(app.dp.fsm.events_isolation, RedisEventIsolation)
    await start(alice)
    await alice.send("/topup")
    screen = await alice.wait_for("Choose an amount")
    await alice.click(screen, "Other amount")
    await alice.wait_for("Send the amount")
    # The form is in Redis, not in the database the instances also share.
    key = StorageKey(bot_id=app.bot.id, chat_id=alice.id, user_id=alice.id)
    assert await app.dp.storage.get_state(key) == TopupForm.amount.state
    assert await SQLiteStorage(app.db).get_state(key) is None

    await hand_over(one, two)
    await alice.send("12.50")
    methods = await alice.wait_for("Top up $12.50")
    assert "⭐ Telegram Stars" in methods.button_texts
    assert two.app is not None and await two.app.dp.storage.get_state(key) is None


async def test_a_flood_spread_over_two_instances_meets_one_bucket(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    slow = {"throttle_per_second": 0.0001, "throttle_burst": 5}  # cannot refill in a test
    one = harness_factory(**shared(shared_redis, **slow))
    two = harness_factory(**shared(shared_redis, **slow))
    await one.start()
    for _ in range(3):
        await alice.send("/start")
    for _ in range(3):
        await alice.wait_for(_hi(alice))

    await hand_over(one, two)
    for _ in range(5):  # only two tokens are left, whichever instance counts them
        await alice.send("/start")
    await bob.send("/start")
    await bob.wait_for(_hi(bob))  # another user's bucket is untouched
    await _seen(alice, lambda m: SLOW_DOWN in m.plain.lower())
    await alice.wait_for(_hi(alice))
    await alice.wait_for(_hi(alice))
    # Counting is now final: the bucket cannot refill and the one notice was sent.
    assert sum(1 for m in alice.messages if _hi(alice)(m)) == 5
    assert sum(1 for m in alice.messages if SLOW_DOWN in m.plain.lower()) == 1
