"""Failover: from a SIGKILL of one instance to the first code the other delivers for its orders.

What it measures
    Instance A runs as its own process (`python -m bot`, long polling FakeTelegram) and sells
    N numbers through the real buy flow (FakeUsers tapping the menus): each order is held by
    A's lease. Instance B runs in this process on the same SQLite file and Redis, without
    serving updates: it only runs its jobs (leases, polls). A is killed with SIGKILL (no
    shutdown, its registry row and leases stay) at a random point of its renewal cycle, and
    at that moment a code arrives upstream for every one of A's orders. The figures are the
    times from the kill to the first and to the last code message B sends (stamped as the
    request reaches FakeTelegram), and how many times each code was sent.

Target
    first code within one lease plus one poll interval (ORDER_LEASE_SECONDS +
    POLL_INTERVAL_SECONDS) of the kill; every code sent exactly once.

Needs Redis at 127.0.0.1:6379 (or NUMBOT_BENCH_REDIS_URL): two instances refuse to share a
database without it. Keys live under a unique prefix and are deleted afterwards.

Run: ``python -m bench.failover [--runs 3] [--orders 10] [--lease 6] [--interval 1]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench._common import (
    TOKEN,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    write_summary,
)
from bench.polling import CodeWatcher
from bot.app import App, build_app
from tests.e2e.helpers import buy
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser

REDIS_URL = os.environ.get("NUMBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_ID = 1


def _env(
    tmp: Path, telegram: FakeTelegram, palm: FakeSMSPalm, prefix: str, args: Any
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": telegram.base_url,
        "DATABASE_PATH": str(tmp / "bot.db"),
        "ADMIN_IDS": str(ADMIN_ID),
        "SMSPALM_API_KEY": palm.api_key,
        "SMSPALM_BASE_URL": palm.base_url,
        "SMSPALM_RATE": "0.001",
        "SMSPALM_RATE_LIMIT": "6000",
        "POLL_INTERVAL_SECONDS": str(args.interval),
        "ORDER_LEASE_SECONDS": str(args.lease),
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "HTTP_PORT": "0",
        "THROTTLE_BURST": "10000",
        "LOG_LEVEL": "WARNING",
    }


async def _wait(check: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def _sell(telegram: FakeTelegram, count: int, first_id: int) -> None:
    """N customers start the bot, get funds from the admin and buy a number each."""
    admin = telegram.user(ADMIN_ID, first_name="Owner", username="owner")
    users: list[FakeUser] = telegram.make_users(count, first_id=first_id)

    for user in users:
        await user.send("/start")
        await user.wait_for("👋 Hi", timeout=30)
        await admin.send(f"/addbalance {user.id} 5")
        await admin.wait_for("Credited", timeout=30)
    await asyncio.gather(*(buy(user) for user in users))


async def one_run(args: argparse.Namespace, rng: random.Random, run: int) -> dict[str, Any]:
    telegram = FakeTelegram(token=TOKEN)
    palm = FakeSMSPalm()
    palm.balance = Decimal("10000000")
    await telegram.start()
    await palm.start()
    watcher = CodeWatcher(telegram)
    prefix = f"numbot-bench-{uuid.uuid4().hex}"
    b: App | None = None
    a: asyncio.subprocess.Process | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="numbot-bench-") as name:
            tmp = Path(name)
            polls = len(telegram.calls_to("getUpdates"))
            a = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=tmp,
                env=_env(tmp, telegram, palm, prefix, args),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await _wait(lambda: len(telegram.calls_to("getUpdates")) > polls, 60, "A polls")
            await _wait(lambda: palm.count("getPrices") > 0, 30, "A's catalog")
            await asyncio.sleep(0.5)
            await _sell(telegram, args.orders, 10_000 * (run + 1))
            activations = list(palm.activations)

            settings = make_settings(
                tmp / "bot.db",
                telegram_api_url=telegram.base_url,
                admin_ids=str(ADMIN_ID),
                smspalm_api_key=palm.api_key,
                smspalm_base_url=palm.base_url,
                poll_interval_seconds=args.interval,
                order_lease_seconds=args.lease,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
            )
            b = await build_app(settings)
            await b.catalog.refresh()
            await b.on_startup(b.bot)  # jobs, recovery (claims nothing: A holds all), leases
            held_by_b_before = len(b.jobs.held_ids())

            await asyncio.sleep(rng.uniform(0, args.lease / 3))  # any point of A's cycle
            for activation, code in zip(
                activations, rng.sample(range(100_000, 1_000_000), len(activations)), strict=True
            ):
                watcher.expected[f"{code:06d}"] = activation
            a.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            for code, activation in watcher.expected.items():
                palm.deliver_code(activation, code)
            await a.wait()
            await watcher.wait(args.lease + args.interval + 30)
            sends = [str(c.params.get("text") or "") for c in telegram.calls_to("sendMessage")]
            per_code = [sum(code in text for text in sends) for code in watcher.expected]
            delays = sorted(at - killed for at in watcher.seen.values())
            held_by_b = len(b.jobs.held_ids())
            await b.close()  # before its database goes with the directory
            b = None
    finally:
        if a is not None and a.returncode is None:
            a.kill()
            await a.wait()
        if b is not None:
            await b.close()
        await palm.stop()
        await telegram.stop()
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return {
        "orders": len(activations),
        "first_s": delays[0] if delays else float("nan"),
        "last_s": delays[-1] if delays else float("nan"),
        "delivered": len(delays),
        "sent_once": all(n == 1 for n in per_code),
        "max_sends": max(per_code, default=0),
        "held_by_b_before": held_by_b_before,
        "held_by_b_after": held_by_b,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    probe = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await probe.ping()
    except Exception as exc:
        print(f"Failover: skipped, Redis at {REDIS_URL} unreachable ({type(exc).__name__})")
        return {"skipped": True}
    finally:
        await probe.aclose()
    rng = random.Random(args.seed)
    target = args.lease + args.interval
    runs = [await one_run(args, rng, n) for n in range(args.runs)]
    firsts = [r["first_s"] for r in runs]
    lasts = [r["last_s"] for r in runs]
    ok = all(f <= target for f in firsts) and all(
        r["sent_once"] and r["delivered"] == r["orders"] for r in runs
    )
    print("Failover: SIGKILL of instance A -> codes for its orders sent by instance B")
    print(line("orders held by A (per run)", f"{args.orders}"))
    print(line("ORDER_LEASE_SECONDS / poll interval", f"{args.lease} s / {args.interval} s"))
    for n, r in enumerate(runs, 1):
        print(
            line(
                f"run {n}: first code / last code",
                f"{r['first_s']:.2f} / {r['last_s']:.2f} s",
                f"first <= {target:.0f} s",
                r["first_s"] <= target,
            )
        )
        print(
            line(
                f"run {n}: delivered, each exactly once",
                f"{r['delivered']}/{r['orders']} {'yes' if r['sent_once'] else 'NO'}",
            )
            + f"   (B held {r['held_by_b_before']} before, {r['held_by_b_after']} after)"
        )
    print(
        line(
            "first code, range over runs",
            f"{min(firsts):.2f}–{max(firsts):.2f} s",
            f"<= {target:.0f} s",
            all(f <= target for f in firsts),
        )
    )
    print(line("last code, range over runs", f"{min(lasts):.2f}–{max(lasts):.2f} s"))
    if logs.total:
        print(f"  warnings logged: {logs.total}")
        for text in logs.summary(4):
            print(text)
    return {"first_s": firsts, "last_s": lasts, "target_s": target, "pass": ok}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=10, help="orders A holds when killed")
    parser.add_argument("--lease", type=int, default=6, help="ORDER_LEASE_SECONDS")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    parser.add_argument("--seed", type=int, default=14)
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
