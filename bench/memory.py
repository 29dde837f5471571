"""Memory with 10,000 live orders scheduled: the bot process's RSS must stay under 200 MB.

What it measures
    The resident set size (``psutil.Process().memory_info().rss``) of the bot's process
    before and after ``OrderService.recover()`` puts 10,000 live orders under watch (a poll
    job and a deadline job each), and while those polls run for ~10 s, i.e. while they are
    in flight or queued in the SMSPalm request budget.

How
    * FakeSMSPalm runs in a *separate process* (multiprocessing, spawn) holding 10,000
      waiting activations, so its own memory (activations, request log) does not count
      against the bot. It listens on 127.0.0.1 and has no rate limit.
    * The app is built with ``build_app`` (SQLite in a temporary directory) and the catalog
      refreshed from the fake. 10,000 orders in state ``number_issued`` (deadline 20 minutes
      ahead, quote_id NULL, one per existing activation) are inserted for 1,000 users through
      the storage layer (``Database.transaction`` / ``Tx.executemany``).
    * Then the scheduler is started and ``app.orders.recover()`` called, as the dispatcher
      startup does; RSS is sampled every 0.25 s for ``--seconds``.

Target: RSS < 200 MB at every sample (peak), with all 20,000 jobs accounted for.

Run: ``python -m bench.memory [--orders 10000] [--seconds 10] [--rate 6000]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import tempfile
import time
from collections import Counter
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from bench._common import install_log_counter, line, make_settings
from bot.app import App, build_app
from tests.fakes.smspalm import FIRST_ACTIVATION_ID, Activation, FakeSMSPalm, make_phone

TARGET_MB = 200.0
MB = 1024 * 1024
US_ID = 187  # FakeSMSPalm's id for the United States
USERS = 1000


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


# -- the fake upstream, in its own process ------------------------------------------------------


def serve_fake(conn: Connection, activations: int) -> None:
    """Child process entry point: serve FakeSMSPalm until the parent says stop."""
    asyncio.run(_serve_fake(conn, activations))


async def _serve_fake(conn: Connection, activations: int) -> None:
    palm = FakeSMSPalm(rate_limit=None)
    await palm.start()
    now = time.monotonic()
    for number in range(FIRST_ACTIVATION_ID, FIRST_ACTIVATION_ID + activations):
        activation_id = str(number)
        palm.activations[activation_id] = Activation(
            id=activation_id,
            server="servertwo",
            service="wa",
            country_id=US_ID,
            phone=make_phone(US_ID, number),
            cost=Decimal("250.00"),
            ref=None,
            created_at=now,
        )
    conn.send({"base_url": palm.base_url, "api_key": palm.api_key})
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    conn.send(
        {
            "requests": len(palm.requests),
            "by_action": dict(Counter(r.action for r in palm.requests)),
            "rejected_429": palm.rejected_429,
        }
    )
    await palm.stop()


# -- the bot ------------------------------------------------------------------------------------


async def insert_orders(app: App, orders: int) -> None:
    """Users and live orders straight into SQLite through the storage layer."""
    services = await app.catalog.services()
    service = next(s for s in services.items if s.slug == "whatsapp")
    now = int(time.time())
    deadline = now + 20 * 60
    users = [(100_000 + i, f"user{i}", f"User{i}", "en", now) for i in range(USERS)]
    rows = []
    for i in range(orders):
        number = FIRST_ACTIVATION_ID + i
        user_id = users[i % USERS][0]
        rows.append(
            (
                user_id,
                "smspalm2",
                service.id,
                "US",
                33,
                "250.00",
                25,
                "number_issued",
                str(number),
                make_phone(US_ID, number),
                deadline,
                user_id,
                now,
                now,
            )
        )
    async with app.db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO users (id, username, first_name, language, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            users,
        )
        await tx.executemany(
            """
            INSERT INTO orders (user_id, route, service_id, country, price, upstream_cost, cost,
                                status, activation_id, phone, deadline, chat_id, created_at,
                                updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            rows,
        )


def count_jobs(app: App) -> tuple[int, int, int]:
    """(all jobs, poll jobs, deadline jobs) in the scheduler's store."""
    jobs = app.jobs.scheduler.get_jobs()
    polls = sum(1 for job in jobs if job.id.startswith("poll:"))
    deadlines = sum(1 for job in jobs if job.id.startswith("deadline:"))
    return len(jobs), polls, deadlines


async def bench(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    logs = install_log_counter()
    rss_start = rss_mb()
    fake = conn.recv()
    with tempfile.TemporaryDirectory(prefix="numbot-bench-") as tmp:
        settings = make_settings(
            Path(tmp) / "bot.db",
            smspalm_api_key=fake["api_key"],
            smspalm_base_url=fake["base_url"],
            smspalm_rate_limit=args.rate,
            poll_interval_seconds=args.interval,
        )
        app = await build_app(settings)
        try:
            await app.catalog.refresh()
            await insert_orders(app, args.orders)
            gc.collect()
            rss_before = rss_mb()
            app.jobs.start()
            began = time.perf_counter()
            await app.orders.recover()
            recover_seconds = time.perf_counter() - began
            jobs_after_recover = count_jobs(app)
            rss_recovered = rss_mb()
            peak = rss_recovered
            samples: list[tuple[float, float, int]] = []
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.seconds:
                await asyncio.sleep(0.25)
                rss = rss_mb()
                peak = max(peak, rss)
                samples.append((elapsed, rss, app.budgets[0].queued))
            rss_after = rss_mb()
            jobs_end = count_jobs(app)
            queued = app.budgets[0].queued
            tasks = len(asyncio.all_tasks())
            warnings = Counter(logs.counts)
        finally:
            await app.close()
            await asyncio.sleep(0.2)  # let cancelled job tasks unwind
    conn.send("stop")
    upstream = conn.recv()

    ok = peak < TARGET_MB
    print("Memory with live orders scheduled (bot process only; FakeSMSPalm in a child)")
    print(line("live orders", f"{args.orders:,}") + f"   ({USERS:,} users)")
    print(line("upstream limit / poll interval", f"{args.rate}/min / {args.interval:.0f} s"))
    print(line("RSS at start (imports)", f"{rss_start:.1f} MB"))
    print(line("RSS before recover (app + DB)", f"{rss_before:.1f} MB"))
    print(
        line("RSS right after recover()", f"{rss_recovered:.1f} MB")
        + f"   (recover took {recover_seconds:.2f} s)"
    )
    print(line(f"RSS after {args.seconds:.0f} s of polling", f"{rss_after:.1f} MB"))
    print(line("RSS peak", f"{peak:.1f} MB", f"< {TARGET_MB:.0f} MB", ok))
    print(line("RSS growth from recover + polling", f"{peak - rss_before:.1f} MB"))
    total, polls, deadlines = jobs_after_recover
    print(line("jobs after recover (poll / deadline)", f"{total:,}") + f"   ({polls} / {deadlines})")
    total, polls, deadlines = jobs_end
    print(line("jobs at the end (poll / deadline)", f"{total:,}") + f"   ({polls} / {deadlines})")
    print(line("polls queued in the request budget", f"{queued:,}"))
    print(line("asyncio tasks alive at the end", f"{tasks:,}"))
    by_action = upstream["by_action"]
    print(
        line("upstream getStatus requests", f"{by_action.get('getStatus', 0):,}")
        + f"   (429s: {upstream['rejected_429']})"
    )
    trace = ", ".join(f"{t:.1f}s={rss:.0f}MB/q{q}" for t, rss, q in samples[:: max(1, len(samples) // 6)])
    print(f"  samples (time=RSS/queued): {trace}")
    if warnings:
        print(f"  warnings logged while running: {sum(warnings.values())}")
        for (name, msg), count in warnings.most_common(4):
            print(f"    {count:>6} × {name}: {msg[:90]}")
    return {
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "rss_peak_mb": peak,
        "jobs": jobs_end[0],
        "pass": ok,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=6000, help="bot's SMSPalm limit per 60 s")
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval, s")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_fake, args=(child, args.orders), daemon=True)
    process.start()
    try:
        return asyncio.run(bench(args, parent))
    finally:
        process.join(5)
        if process.is_alive():
            process.terminate()


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
