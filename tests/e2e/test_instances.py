"""The instance registry: every running bot has a random id and a heartbeat in the database
(and in Redis with `REDIS_URL`). Without `REDIS_URL` a second live instance on the same
database refuses to start with a clear message, because budgets, throttle and FSM would not be
shared; with `REDIS_URL` on every instance, several run together."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import App, build_app
from shop.services.instances import INSTANCE_TTL_SECONDS, AnotherInstanceRunning
from tests.conftest import TOKEN, BotHarness
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeTelegram, FakeUser
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture


def shared(redis: SharedRedis) -> dict[str, str]:
    return {"redis_url": redis.url, "redis_prefix": redis.prefix}


# Without REDIS_URL, also on the PostgreSQL variant of a test (which has Redis otherwise).
NO_REDIS: dict[str, None] = {"redis_url": None}


async def _add_row(app: App, **changes: object) -> None:
    """Register a made-up instance in `app`'s database (what another bot would have left)."""
    registry = app.instances
    fields: dict[str, object] = {"seen_at": int(time.time()), **changes}
    ghost = replace(registry.instance, **fields)
    async with app.db.transaction() as tx:
        await registry.repo.add(tx, ghost)


async def test_a_second_instance_without_redis_refuses_to_start(
    harness_factory: Callable[..., BotHarness], alice: FakeUser
) -> None:
    first = harness_factory(**NO_REDIS)
    app = await first.start()
    second = harness_factory(**NO_REDIS)
    with pytest.raises(AnotherInstanceRunning) as refused:
        await second.start()
    message = str(refused.value)
    me = app.instances.instance
    assert me.id in message and me.host in message and f"pid {me.pid}" in message
    assert "REDIS_URL" in message
    assert second.app is None
    await start(alice)  # the first one serves on
    assert [i.id for i in await app.instances.live()] == [me.id]


async def test_instances_sharing_redis_run_together(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    alice: FakeUser,
) -> None:
    first = harness_factory(**shared(shared_redis))
    app = await first.start()
    other = await build_app(harness_factory(**shared(shared_redis)).settings)
    try:
        ids = {app.instances.instance.id, other.instances.instance.id}
        assert len(ids) == 2  # a random id each
        assert {i.id for i in await app.instances.live()} == ids
        assert all(i.shared for i in await other.instances.live())
        # Each also shows in Redis, with a TTL.
        key = f"{shared_redis.prefix}:instance:{other.instances.instance.id}"
        assert 0 < await shared_redis.client.ttl(key) <= INSTANCE_TTL_SECONDS
    finally:
        await other.close()
    assert not await shared_redis.client.exists(key)  # gone with its instance
    assert [i.id for i in await app.instances.live()] == [app.instances.instance.id]
    await start(alice)


async def test_with_and_without_redis_never_mix(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
) -> None:
    plain = harness_factory(**NO_REDIS).settings
    with_redis = harness_factory(**shared(shared_redis)).settings
    app = await build_app(plain)
    try:
        with pytest.raises(AnotherInstanceRunning, match="without REDIS_URL"):
            await build_app(with_redis)
    finally:
        await app.close()
    app = await build_app(with_redis)
    try:
        with pytest.raises(AnotherInstanceRunning, match="REDIS_URL"):
            await build_app(plain)
    finally:
        await app.close()


async def test_a_stopped_or_crashed_instance_makes_way(
    harness_factory: Callable[..., BotHarness], alice: FakeUser
) -> None:
    first = harness_factory()
    await first.start()
    await first.stop()
    second = harness_factory()
    await second.start()
    await second.crash()
    third = harness_factory()
    await third.start()
    await start(alice)


async def test_a_killed_instance_on_this_machine_makes_way_at_once(
    harness_factory: Callable[..., BotHarness],
) -> None:
    """Its heartbeat is fresh, but its process is gone: no need to wait for the TTL."""
    first = harness_factory()
    app = await first.start()
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    await _add_row(app, id="killed0", pid=gone.pid)
    await first.stop()
    second = harness_factory()
    app = await second.start()
    assert [i.id for i in await app.instances.live()] == [app.instances.instance.id]


async def test_a_live_instance_elsewhere_blocks(
    harness_factory: Callable[..., BotHarness],
) -> None:
    first = harness_factory(**NO_REDIS)
    app = await first.start()
    await _add_row(app, id="fresh0", host="shop-2", node="shop-2", pid=7)
    await first.stop()
    with pytest.raises(AnotherInstanceRunning, match=r"fresh0 on shop-2 \(pid 7"):
        await harness_factory(**NO_REDIS).start()


async def test_an_instance_silent_for_the_ttl_is_gone(
    harness_factory: Callable[..., BotHarness],
) -> None:
    first = harness_factory()
    app = await first.start()
    silent_since = int(time.time()) - INSTANCE_TTL_SECONDS - 1
    await _add_row(app, id="stale0", host="shop-3", node="shop-3", pid=8, seen_at=silent_since)
    await first.stop()
    second = harness_factory()
    app = await second.start()
    assert [i.id for i in await app.instances.live()] == [app.instances.instance.id]
    assert await app.instances.repo.get("stale0") is None


async def test_the_heartbeat_keeps_the_row_fresh(running: BotHarness) -> None:
    assert running.app is not None
    registry = running.app.instances
    me = registry.instance
    async with running.app.db.transaction() as tx:
        await registry.repo.remove(tx, [me.id])
        await registry.repo.add(tx, replace(me, seen_at=1))
    before = int(time.time())
    await registry.beat()
    row = await registry.repo.get(me.id)
    assert row is not None and row.seen_at >= before
    # Taken for gone (its row deleted by another instance's start): registered again.
    async with running.app.db.transaction() as tx:
        await registry.repo.remove(tx, [me.id])
    await registry.beat()
    assert await registry.repo.get(me.id) is not None


def _env(telegram: FakeTelegram, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_PATH": str(tmp_path / "db" / "bot.db"),
        "SANDBOX": "1",
        "ADMIN_IDS": "1",
        "HTTP_PORT": "0",  # no listener: nothing inbound in these tests
    }


async def _serving(telegram: FakeTelegram, tmp_path: Path) -> asyncio.subprocess.Process:
    """`python -m bot` started and long-polling."""
    polls = len(telegram.calls_to("getUpdates"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=_env(telegram, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    for _ in range(1200):
        if len(telegram.calls_to("getUpdates")) > polls or process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    return process


async def test_python_m_bot_twice_on_one_database(telegram: FakeTelegram, tmp_path: Path) -> None:
    first = await _serving(telegram, tmp_path)
    try:
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=_env(telegram, tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(second.communicate(), 60)
        logs = output.decode()
        assert second.returncode not in (0, None), logs[-2000:]
        assert "Not starting" in logs and "REDIS_URL" in logs and f"pid {first.pid}" in logs
        assert "Traceback" not in logs
        user = telegram.user(4243, first_name="Eve")
        await user.send("/start")
        await user.wait_for("Hi, Eve", timeout=20)  # the first one serves on
    finally:
        first.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(first.communicate(), 30)
    assert first.returncode == 0, output.decode()[-2000:]


async def test_python_m_bot_restarts_at_once_after_a_kill(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    killed = await _serving(telegram, tmp_path)
    killed.kill()  # SIGKILL: no shutdown, its heartbeat row stays behind
    await killed.communicate()
    restarted = await _serving(telegram, tmp_path)
    try:
        assert restarted.returncode is None
        user = telegram.user(4244, first_name="Finn")
        await user.send("/start")
        await user.wait_for("Hi, Finn", timeout=20)
    finally:
        restarted.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(restarted.communicate(), 30)
    assert restarted.returncode == 0, output.decode()[-2000:]
