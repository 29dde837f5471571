"""Scale-out: one and two `python -m bot` processes in webhook mode on one database and Redis.

What it measures
    * **Dispatch capacity, one vs two instances** (target: two >= 1.6 x one). The fake Bot API
      delivers buy-flow callbacks by webhook, round-robin over the instances, with
      ``--connections`` deliveries in flight per instance (Telegram's ``max_connections``);
      the offered load is the same for both runs: a backlog of pending updates kept at
      ``--backlog`` per connection, refilled as fast as they are answered. The figure is the
      number of updates answered 200 per second over ``--updates`` updates after a warm-up,
      the median of ``--rounds`` rounds. The callbacks are the mix of ``bench.dispatch``
      (services, countries, routes, Buy, main menu, My orders: the database's read path), each
      answered and its screen edited at the fake over real HTTP.
    * **Code delivery with ``--orders`` live orders over two instances** (target: p95 <= the
      bound of ``bench.polling``, 1.2 x max(N / (R / 60), poll interval)): the orders are
      bought beforehand, then two instances start and poll them (each picks the live orders
      up from the database), codes arrive upstream at random times within ``--window`` and
      the delay to the code message at the fake is recorded (``bench.polling``'s pieces).
      Also: HTTP 429s from the upstream (target 0) and codes sent twice (target 0).
    * The time from a SIGKILL to the first code the other instance sends is
      ``bench.failover``'s (order leases).

How
    Everything but the bots runs in this process: FakeTelegram (webhook delivery), FakeSMSPalm,
    the harness of ``tests/e2e/multiproc.py`` that starts, kills and stops the instances. The
    CPU each instance and this process used during the measured span is printed: on this
    2-core machine the load generator takes a share too, and the ratio means something only
    while it is not the bottleneck (its CPU well under one core). Needs Redis (``REDIS_URL``,
    default ``redis://127.0.0.1:6379/0``).

    The database (``--database``): PostgreSQL, what several instances are meant to run on, in
    a database of its own created for each part and dropped afterwards (the server at
    ``--pg-url``, default ``NUMBOT_BENCH_PG_URL`` or ``postgresql://postgres@127.0.0.1:5432/
    postgres``, used only to create and drop it); or a SQLite file in a temporary directory.
    The default, ``auto``, takes PostgreSQL when that server answers and says so when it falls
    back to SQLite.

    Per-instance share: which instance holds the lease of each live order (the instance that
    polls it), read from the database when the codes begin to arrive and when the last one
    has.

Run: ``python -m bench.scale [--database auto|postgresql|sqlite] [--updates 3000] [--rounds 3]
[--orders 1000] [--no-dispatch] [--no-delivery]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import make_url

from bench._common import (
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    percentile,
    write_summary,
)
from bench.dispatch import Mix, build_mix
from bench.polling import CodeDelays, CodeWatcher, create_orders, fmt, poll_target
from bot.app import build_app
from bot.config import Settings
from storage.db import safe_url
from tests.conftest import TOKEN  # the token the harness gives the instances
from tests.databases import pg_admin
from tests.e2e.multiproc import Cluster, SharedDatabase
from tests.fakes.smspalm import SERVER_TWO, FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser
from tests.redis_support import SharedRedis

TARGET_RATIO = 1.6
SIX_DIGITS = re.compile(r"(?<!\d)\d{6}(?!\d)")  # the codes the bench delivers
US = 187  # FakeSMSPalm's country id of the orders bench.polling buys (WhatsApp, US)
FIRST_USER = 300_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class CpuMeter:
    """CPU used by the instances and by this process between `start` and `stop`."""

    pids: list[int]
    wall: float = 0.0
    used: list[float] = field(default_factory=list)
    here: float = 0.0

    def start(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._used = [cpu_seconds(pid) for pid in self.pids]
        self._here = time.process_time()
        return self

    def stop(self) -> CpuMeter:
        self.wall = time.monotonic() - self._wall
        self.used = [cpu_seconds(p) - u for p, u in zip(self.pids, self._used, strict=True)]
        self.here = time.process_time() - self._here
        return self

    def text(self) -> str:
        shares = ", ".join(f"{u / self.wall:.0%}" for u in self.used)
        return f"bots {shares}; load generator {self.here / self.wall:.0%} (of one core)"


async def make_redis(url: str) -> SharedRedis:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        raise SystemExit(
            f"Redis at {url} is not reachable ({type(exc).__name__}): several instances need "
            "it; set REDIS_URL"
        ) from exc
    return SharedRedis(url, f"numbot-bench-{uuid.uuid4().hex}", client)


async def drop_keys(redis: SharedRedis) -> None:
    keys = [key async for key in redis.client.scan_iter(match=f"{redis.prefix}:*")]
    if keys:
        await redis.client.delete(*keys)
    await redis.client.aclose()


PG_URL = os.environ.get("NUMBOT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def pick_database(args: argparse.Namespace) -> str:
    """`sqlite` or `postgresql`: `auto` takes PostgreSQL when its server answers."""
    if args.database == "sqlite":
        return "sqlite"
    try:
        await pg_admin(None, args.pg_url)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if args.database == "postgresql":
            raise SystemExit(
                f"PostgreSQL at {safe_url(args.pg_url)} is not reachable ({type(exc).__name__})"
            ) from exc
        print(
            f"PostgreSQL at {safe_url(args.pg_url)} is not reachable ({type(exc).__name__}): "
            "running on SQLite (--pg-url, or --database sqlite to say so)"
        )
        return "sqlite"
    return "postgresql"


@asynccontextmanager
async def bench_database(
    kind: str, path: Path, pg_url: str = PG_URL
) -> AsyncIterator[SharedDatabase]:
    """Where the instances keep their data for one part: a SQLite file at `path`, or a
    PostgreSQL database of its own, created empty here and dropped afterwards."""
    if kind == "sqlite":
        yield SharedDatabase("sqlite", {"DATABASE_PATH": str(path)}, {"database_path": path})
        return
    name = f"numbot_bench_{uuid.uuid4().hex[:16]}"
    await pg_admin(f'CREATE DATABASE "{name}"', pg_url)
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield SharedDatabase("postgresql", {"DATABASE_URL": url}, {"database_url": url})
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', pg_url)


def database_settings(database: SharedDatabase, path: Path) -> dict[str, Any]:
    """The settings that open `database` in this process (`make_settings` wants a path; a
    DATABASE_URL wins over it)."""
    return {"database_path": path, **database.values}


def bot_env(palm: FakeSMSPalm, **overrides: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "LOG_LEVEL": "WARNING",
        "SMSPALM_API_KEY": palm.api_key,
        "SMSPALM_BASE_URL": palm.base_url,
        "SMSPALM_RATE": "0.001",
        "SMSPALM_RATE_LIMIT": 6000,
        "MARKUP_PERCENT": 30,
        "HTTP_TIMEOUT_SECONDS": 10,
        **overrides,
    }
    return {key: str(value) for key, value in values.items()}


async def start_cluster(cluster: Cluster, ready_seconds: float) -> None:
    """Start the instances; if one never gets ready, kill them all (none is left behind)."""
    try:
        await cluster.start(ready_seconds=ready_seconds)
    except BaseException:
        await cluster.kill_all()
        raise


# -- dispatch capacity ------------------------------------------------------------------------


def setup_settings(
    values: dict[str, Any], telegram: FakeTelegram, palm: FakeSMSPalm, redis: SharedRedis
) -> Settings:
    """Settings for set-up work done in this process (the catalog, users, orders bought before
    the instances start), on the same fakes, database and Redis prefix as the instances."""
    return make_settings(
        **values,
        bot_token=TOKEN,
        telegram_api_url=telegram.base_url,
        smspalm_api_key=palm.api_key,
        smspalm_base_url=palm.base_url,
        redis_url=redis.url,
        redis_prefix=redis.prefix,
    )


async def prepare_catalog(
    settings_values: dict[str, Any],
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    redis: SharedRedis,
    users: int,
) -> Mix:
    """Fill the database (catalog, users) once, in this process, and build the callback mix."""
    app = await build_app(setup_settings(settings_values, telegram, palm, redis))
    try:
        await app.catalog.refresh()
        mix = await build_mix(app)
        for user_id in range(FIRST_USER, FIRST_USER + users):
            await app.users.seen(user_id, f"user{user_id}", f"User {user_id}", "en")
    finally:
        await app.close()
    return mix


async def offer(
    telegram: FakeTelegram,
    users: list[FakeUser],
    turn: Iterator[int],
    mix: Mix,
    rng: random.Random,
    count: int,
    backlog: int,
) -> tuple[float, int]:
    """Push `count` callbacks, keeping `backlog` pending; (seconds until all were answered
    200, deliveries that were not)."""
    delivered = len(telegram.deliveries)
    began = time.monotonic()
    pushed = 0
    while pushed < count:
        room = min(backlog - telegram.pending_updates, count - pushed)
        for _ in range(room):
            # Users in turn: with more users than updates in flight, no update waits for the
            # same user's previous one (aiogram's per-user event isolation, in Redis).
            user = users[next(turn) % len(users)]
            base = user.last
            assert base is not None, f"{user} has no message to click on"
            await user.click_data(base, mix.pick(rng)[1])
        pushed += max(room, 0)
        await asyncio.sleep(0.002)
    await telegram.wait_webhook_idle(timeout=600)
    seconds = time.monotonic() - began
    failed = sum(1 for d in telegram.deliveries[delivered:] if not d.ok)
    return seconds, failed


async def capacity_with(
    count: int,
    args: argparse.Namespace,
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    redis: SharedRedis,
    database: SharedDatabase,
    mix: Mix,
    workdir: Path,
) -> dict[str, Any]:
    env = bot_env(palm, THROTTLE_BURST=1_000_000, CATALOG_REFRESH_SECONDS=3600)
    cluster = Cluster(telegram, redis, database, workdir / f"x{count}", count, env, [palm.api_key])
    telegram.webhook_connections = args.connections
    rng = random.Random(args.seed)
    users = [
        telegram.user(uid, first_name=f"User {uid}")
        for uid in range(FIRST_USER, FIRST_USER + args.users)
    ]
    backlog = args.backlog * args.connections * count
    if len(users) < 2 * backlog:
        raise SystemExit(f"--users must be at least {2 * backlog} (twice the backlog)")
    turn = itertools.count()
    await start_cluster(cluster, args.ready)
    try:
        for user in users:  # a screen each to click on (and the instances warmed up)
            await user.send("/start")
        for user in users:
            await user.wait_for("👋 Hi", timeout=300)
        await telegram.wait_webhook_idle(timeout=300)
        await offer(telegram, users, turn, mix, rng, args.warmup, backlog)
        rates, failures, meters = [], 0, []
        for _ in range(args.rounds):
            meter = CpuMeter([bot.process.pid for bot in cluster.bots if bot.process]).start()
            seconds, failed = await offer(telegram, users, turn, mix, rng, args.updates, backlog)
            meters.append(meter.stop())
            rates.append(args.updates / seconds)
            failures += failed
    finally:
        await cluster.stop()
    return {"rates": rates, "rate": statistics.median(rates), "failed": failures, "cpu": meters}


async def dispatch_part(args: argparse.Namespace, redis: SharedRedis, tmp: Path) -> dict[str, Any]:
    telegram = FakeTelegram(token=TOKEN)
    palm = FakeSMSPalm()
    telegram.webhook_retry_delay, telegram.webhook_retry_max = 0.05, 0.5
    await telegram.start()
    await palm.start()
    try:
        path = tmp / "dispatch" / "bot.db"
        async with bench_database(args.kind, path, args.pg_url) as database:
            values = database_settings(database, path)
            mix = await prepare_catalog(values, telegram, palm, redis, args.users)
            one = await capacity_with(1, args, telegram, palm, redis, database, mix, tmp)
            two = await capacity_with(2, args, telegram, palm, redis, database, mix, tmp)
    finally:
        await palm.stop()
        await telegram.stop()
    ratio = two["rate"] / one["rate"]
    print(f"Dispatch capacity in webhook mode (fake Bot API -> N x python -m bot, {args.kind})")
    print(line("updates per round / rounds", f"{args.updates} / {args.rounds}"))
    print(line("deliveries in flight per instance", f"{args.connections}"))
    for name, result in (("one instance", one), ("two instances", two)):
        rounds = ", ".join(f"{r:.0f}" for r in result["rates"])
        print(line(f"{name}, median", f"{result['rate']:.0f} upd/s") + f"   rounds: {rounds}")
        for meter in result["cpu"]:
            print(f"      CPU: {meter.text()}")
        if result["failed"]:
            print(f"      deliveries answered non-2xx (retried): {result['failed']}")
    ok = ratio >= TARGET_RATIO
    print(line("two / one", f"{ratio:.2f} x", f">= {TARGET_RATIO} x", ok))
    return {
        "one_upd_s": one["rate"],
        "two_upd_s": two["rate"],
        "ratio": ratio,
        "ratio_pass": ok,
    }


# -- code delivery over two instances ---------------------------------------------------------


async def held_by(cluster: Cluster) -> dict[str, int]:
    """Live orders by the instance that holds their lease (polls them), by instance name."""
    async with cluster.db() as db:
        pids = {
            str(r["id"]): int(r["pid"]) for r in await db.fetchall("SELECT id, pid FROM instances")
        }
        rows = await db.fetchall(
            "SELECT lease_owner, COUNT(*) AS n FROM orders "
            "WHERE status IN ('number_issued', 'code_received') GROUP BY lease_owner"
        )
    names = {bot.process.pid: bot.name for bot in cluster.bots if bot.process is not None}
    held = {bot.name: 0 for bot in cluster.bots}
    for row in rows:
        owner = row["lease_owner"]
        name = names.get(pids.get(str(owner), -1), "nobody") if owner is not None else "nobody"
        held[name] = held.get(name, 0) + int(row["n"])
    return held


def share_text(held: dict[str, int]) -> str:
    total = sum(held.values()) or 1
    return ", ".join(f"{name} {n} ({n / total:.0%})" for name, n in held.items())


async def delivery_part(args: argparse.Namespace, redis: SharedRedis, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    telegram = FakeTelegram(token=TOKEN)
    palm = FakeSMSPalm(rate_limit=args.rate, window_seconds=60.0)
    palm.balance = Decimal("10000000")
    palm.prices[SERVER_TWO][(US, "wa")][1] = args.orders + 100  # numbers in stock upstream
    telegram.webhook_retry_delay, telegram.webhook_retry_max = 0.05, 0.5
    await telegram.start()
    await palm.start()
    watcher = CodeWatcher(telegram)
    env = bot_env(palm, SMSPALM_RATE_LIMIT=args.rate, POLL_INTERVAL_SECONDS=args.interval)
    path = tmp / "delivery" / "bot.db"
    try:
        async with bench_database(args.kind, path, args.pg_url) as database:
            cluster = Cluster(telegram, redis, database, tmp / "delivery", 2, env, [palm.api_key])
            # The orders are bought in this process (no bot running), then both instances
            # start and find them live in the database, as after a deploy.
            values = {**database_settings(database, path), "smspalm_rate_limit": args.rate}
            app = await build_app(setup_settings(values, telegram, palm, redis))
            try:
                await app.catalog.refresh()
                setup = await create_orders(app, telegram, palm, args.orders)
            finally:
                await app.close()
            activations = setup.activations
            await start_cluster(cluster, args.ready)
            try:
                await asyncio.sleep(args.settle)
                shares = [await held_by(cluster)]
                meter = CpuMeter([bot.process.pid for bot in cluster.bots if bot.process]).start()
                watcher.deliver_at_random(palm, activations, rng, args.window)
                began = time.monotonic()
                await watcher.wait(args.window + args.grace)
                ended = time.monotonic()
                shares.append(await held_by(cluster))
                await asyncio.sleep(2 * args.interval)  # a second message would come now
                meter.stop()
            finally:
                await cluster.stop()
    finally:
        await palm.stop()
        await telegram.stop()

    delays, waits, _, missing = CodeDelays.measure(watcher, palm, activations)
    sent = Counter(
        code
        for call in telegram.calls_to("sendMessage")
        if call.ok  # messages the customer got (a refused attempt is no message)
        for code in set(SIX_DIGITS.findall(str(call.params.get("text", ""))))
        if code in watcher.expected
    )
    twice = sum(1 for n in sent.values() if n > 1)
    allowed_cycle, target = poll_target(args.orders, args.rate, args.interval)
    p50, p95, worst = (percentile(delays, p) for p in (50, 95, 100))
    complete = not missing and len(activations) == args.orders
    ok = complete and p95 <= target and palm.rejected_429 == 0 and twice == 0
    statuses = sum(1 for r in palm.requests if r.action == "getStatus" and began <= r.at <= ended)
    print()
    print(f"Code delivery with live orders over two instances ({args.kind})")
    bought = f"{len(activations)} of {args.orders}"
    print(line("live orders N / upstream limit R", f"{bought} / {args.rate}/min"))
    if setup.failures:
        print(f"      purchases that failed: {dict(setup.failures)}")
    print(line("poll interval", f"{args.interval:.1f} s"))
    print(line("HTTP 429 from upstream", f"{palm.rejected_429}", "0", palm.rejected_429 == 0))
    print(line("codes delivered / reached Telegram", f"{len(activations)} / {len(delays)}"))
    print(line("codes sent twice", f"{twice}", "0", twice == 0))
    print(line("poll cycle the budget allows", f"{allowed_cycle:.2f} s"))
    print(line("delay p50", f"{fmt(p50)} s"))
    print(line("delay p95", f"{fmt(p95)} s", f"<= {target:.2f} s", complete and p95 <= target))
    print(line("delay max", f"{fmt(worst)} s"))
    waited = f"{fmt(percentile(waits, 50))} / {fmt(percentile(waits, 95))} s"
    print(line("  code upstream -> polled p50 / p95", waited))
    print(line("getStatus during the window", f"{statuses}") + f"   ({ended - began:.1f} s)")
    for when, held in zip(("codes begin", "last code"), shares, strict=True):
        print(line(f"live orders held per instance, {when}", share_text(held)))
    print(f"      CPU: {meter.text()}")
    return {
        "delivery_p95_s": p95,
        "delivery_target_s": target,
        "delivery_429": palm.rejected_429,
        "delivery_twice": twice,
        "delivery_missing": missing,
        "delivery_pass": ok,
        "delivery_held": shares,
    }


# -- main -------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    install_log_counter()  # this process's warnings are not the figures
    redis = await make_redis(args.redis_url)
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="numbot-scale-") as tmp:
            if not args.no_dispatch:
                figures.update(await dispatch_part(args, redis, Path(tmp)))
            if not args.no_delivery:
                figures.update(await delivery_part(args, redis, Path(tmp)))
    finally:
        await drop_keys(redis)
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--database",
        choices=("auto", "postgresql", "sqlite"),
        default="auto",
        help="auto: PostgreSQL when --pg-url answers, else SQLite",
    )
    parser.add_argument("--pg-url", default=PG_URL, help="server to create the databases on")
    parser.add_argument("--updates", type=int, default=3000, help="measured per round")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument(
        "--connections", type=int, default=40, help="per instance (Telegram's default)"
    )
    parser.add_argument("--backlog", type=int, default=2, help="pending per connection")
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=6000, help="upstream limit per 60 s")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    parser.add_argument("--window", type=float, default=20.0, help="codes arrive within, s")
    parser.add_argument("--settle", type=float, default=5.0, help="polling before codes, s")
    parser.add_argument("--grace", type=float, default=10.0, help="wait after the window, s")
    parser.add_argument(
        "--ready", type=float, default=300.0, help="wait for each instance to be ready, s"
    )
    parser.add_argument("--no-dispatch", action="store_true")
    parser.add_argument("--no-delivery", action="store_true")
    parser.add_argument("--seed", type=int, default=14)
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.kind = asyncio.run(pick_database(args))
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
