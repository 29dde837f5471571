"""Memory with 10,000 live orders scheduled: the bot process's RSS must stay under 200 MB.

What it measures
    The resident set size (``psutil.Process().memory_info().rss``) of the bot's process
    before and after ``OrderService.recover()`` puts 10,000 live orders under watch (an entry
    in the route's poll queue and one in the deadline queue each), and while those polls run
    for ~10 s (at most ``POLLS_IN_FLIGHT`` at a time, the rest due in the heap).

How
    * FakeSMSPalm runs in a *separate process* (``bench._fake_upstream``) holding 10,000
      waiting activations, so its own memory (activations, request log) does not count
      against the bot. It listens on 127.0.0.1 and has no rate limit.
    * What is measured is a *restart*: the bot comes up on a database that already holds the
      orders, as after a deploy or a crash with 10,000 live orders. A child process
      (``python -m bench.memory --prepare``) builds the app once (SQLite in a temporary
      directory, migrated), refreshes the catalog from the fake, inserts 10,000 orders in
      state ``number_issued`` (deadline 20 minutes ahead, quote_id NULL, one per existing
      activation) for 1,000 users through the storage layer (``Database.transaction`` /
      ``Tx.executemany``), closes the app and exits. Nothing of that preparation is in the
      measured process.
    * The measured process then builds the app on that database with ``build_app`` as
      ``python -m bot`` does (``settle_heap()`` included), starts the scheduler and calls
      ``app.orders.recover()``, as the dispatcher startup does; RSS is sampled every 0.25 s
      for ``--seconds``. If recover() has not returned after ``--recover-timeout`` s,
      sampling starts anyway and the script exits without the (minute-long) drain of the
      SQLite queue.
    * Watched orders and pending deadlines are counted with ``app.jobs.counts()``.
    * Finally the 60-second safety net ``app.jobs.sweep()`` is run once, and the orders it
      re-watches (logged "had no poll job") are counted: it should find none.

Target: peak RSS < 200 MB.

Run: ``python -m bench.memory [--orders 10000] [--seconds 10] [--rate 6000]``
(``--prepare DB`` is the child's part: it reads the fake's address from stdin.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench._common import (
    LogCounter,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    write_summary,
)
from bot.app import App, build_app, settle_heap
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB = 200.0
MB = 1024 * 1024
USERS = 1000


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / MB


# -- the fake upstream, in its own process ------------------------------------------------------


class Upstream:
    """bench._fake_upstream as a child process, spoken to in JSON lines."""

    def __init__(self, activations: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._fake_upstream", "--activations", str(activations)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    async def read(self, wait: float = 60.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        text = await asyncio.wait_for(
            loop.run_in_executor(None, self.process.stdout.readline), wait
        )
        if not text:
            raise RuntimeError(f"the fake upstream exited ({self.process.poll()})")
        return dict(json.loads(text))

    async def stop(self) -> dict[str, Any]:
        """Ask for its request counts and let it exit."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
            return await self.read(wait=10.0)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the bot ------------------------------------------------------------------------------------


async def insert_orders(app: App, orders: int) -> None:
    """Users and live orders straight into SQLite through the storage layer."""
    from bench._fake_upstream import US_ID
    from tests.fakes.smspalm import FIRST_ACTIVATION_ID, make_phone

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
    """(APScheduler jobs, watched orders, pending deadlines): orders live in due-queues."""
    counts = app.jobs.counts()
    return counts["scheduler_jobs"], counts["watched"], counts["deadlines"]


@dataclass
class Figures:
    rss_start: float
    rss_before: float = math.nan
    rss_recovered: float = math.nan
    rss_after: float = math.nan
    peak: float = math.nan
    recover_seconds: float = math.nan
    recover_done: bool = False
    jobs_after_recover: tuple[int, int, int] = (0, 0, 0)
    jobs_end: tuple[int, int, int] = (0, 0, 0)
    queued: int = 0
    tasks: int = 0
    close_seconds: float = math.nan
    sweep_seconds: float = math.nan
    rewatched: int = 0
    tasks_after_sweep: int = 0
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    warnings: Counter[tuple[str, str]] = field(default_factory=Counter)
    snapshot: tracemalloc.Snapshot | None = None


async def measure(
    app: App, args: argparse.Namespace, figures: Figures, logs: LogCounter
) -> asyncio.Task[None]:
    """Recover the orders already in the database, sample RSS; returns the recover() task
    (maybe running)."""
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start(1)
    figures.rss_before = rss_mb()
    app.jobs.start()
    began = time.perf_counter()
    recovering = asyncio.create_task(app.orders.recover())
    await asyncio.wait({recovering}, timeout=args.recover_timeout)
    figures.recover_seconds = time.perf_counter() - began
    figures.recover_done = recovering.done()
    if recovering.done():
        recovering.result()  # a crash in recover() must not pass silently
    figures.jobs_after_recover = count_jobs(app)
    figures.rss_recovered = figures.peak = rss_mb()
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < args.seconds:
        await asyncio.sleep(0.25)
        rss = rss_mb()
        figures.peak = max(figures.peak, rss)
        figures.samples.append((elapsed, rss, app.budgets[0].queued))
    figures.rss_after = rss_mb()
    figures.jobs_end = count_jobs(app)
    figures.queued = app.budgets[0].queued
    figures.tasks = len(asyncio.all_tasks())
    if recovering.done():
        # The 60-second safety net, once: it must find every live order watched.
        before = sum(n for (_, msg), n in figures.warnings.items() if "no poll job" in msg)
        began = time.perf_counter()
        await app.jobs.sweep()
        figures.sweep_seconds = time.perf_counter() - began
        figures.rewatched = sum(n for (_, msg), n in logs.counts.items() if "no poll job" in msg)
        figures.rewatched -= before
        figures.tasks_after_sweep = len(asyncio.all_tasks())
    if args.tracemalloc:
        figures.snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
    return recovering


def bench_settings(database: Path, fake: dict[str, Any], args: argparse.Namespace) -> Settings:
    return make_settings(
        database,
        smspalm_api_key=fake["api_key"],
        smspalm_base_url=fake["base_url"],
        smspalm_rate_limit=args.rate,
        poll_interval_seconds=args.interval,
    )


async def prepare(args: argparse.Namespace) -> None:
    """The child's part: the database as the bot left it, 10,000 orders live."""
    install_log_counter()
    fake = json.loads(sys.stdin.readline())
    app = await build_app(bench_settings(args.prepare, fake, args))
    try:
        await app.catalog.refresh()
        await insert_orders(app, args.orders)
    finally:
        await app.close()


def run_prepare(database: Path, fake: dict[str, Any], args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", "bench.memory", "--prepare", str(database)]
    command += ["--orders", str(args.orders), "--rate", str(args.rate)]
    command += ["--interval", str(args.interval)]
    subprocess.run(command, input=json.dumps(fake) + "\n", text=True, cwd=ROOT, check=True)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    figures = Figures(rss_start=rss_mb())
    upstream = Upstream(args.orders)
    try:
        fake = await upstream.read()
    except BaseException:
        upstream.process.kill()
        upstream.close()
        raise
    tmp = tempfile.TemporaryDirectory(prefix="numbot-bench-")
    database = Path(tmp.name) / "bot.db"
    recovering: asyncio.Task[None] | None = None
    stuck = False
    try:
        await asyncio.to_thread(run_prepare, database, fake, args)
        app = await build_app(bench_settings(database, fake, args))
        settle_heap()  # as `python -m bot` does before serving
        try:
            recovering = await measure(app, args, figures, logs)
        finally:
            figures.warnings = Counter(logs.counts)
            stuck = recovering is not None and not recovering.done()
            if not stuck:
                closing = time.perf_counter()
                await app.close()
                await asyncio.sleep(0.2)  # let cancelled job tasks unwind
                figures.close_seconds = time.perf_counter() - closing
    finally:
        counts = await upstream.stop()
    result = report(args, figures, counts)
    if stuck:
        # recover() is still waiting behind tens of thousands of queued SQLite calls; closing
        # the app would drain them for about a minute. Report, clean up, and leave at once.
        tmp.cleanup()
        write_summary(args.summary_json, result)
        sys.stdout.flush()
        os._exit(0)
    tmp.cleanup()
    return result


def report(args: argparse.Namespace, f: Figures, upstream: dict[str, Any]) -> dict[str, Any]:
    ok = f.peak < TARGET_MB
    print("Memory with live orders scheduled (bot process only; FakeSMSPalm in a child)")
    print(line("live orders", f"{args.orders:,}") + f"   ({USERS:,} users)")
    print(line("upstream limit / poll interval", f"{args.rate}/min / {args.interval:.0f} s"))
    print(line("RSS at start (imports)", f"{f.rss_start:.1f} MB"))
    print(line("RSS app built, before recover", f"{f.rss_before:.1f} MB"))
    recovered = (
        f"recover() took {f.recover_seconds:.2f} s"
        if f.recover_done
        else f"recover() still running after {f.recover_seconds:.0f} s: measured from there"
    )
    print(line("RSS right after recover()", f"{f.rss_recovered:.1f} MB") + f"   ({recovered})")
    print(line(f"RSS after {args.seconds:.0f} s of polling", f"{f.rss_after:.1f} MB"))
    print(line("RSS peak", f"{f.peak:.1f} MB", f"< {TARGET_MB:.0f} MB", ok))
    print(line("RSS growth from recover + polling", f"{f.peak - f.rss_before:.1f} MB"))
    for label, (jobs, watched, deadlines) in (
        ("watched orders after recover", f.jobs_after_recover),
        ("watched orders at the end", f.jobs_end),
    ):
        print(
            line(label, f"{watched:,}")
            + f"   ({deadlines:,} deadlines pending; {jobs} APScheduler jobs)"
        )
    print(line("polls queued in the request budget", f"{f.queued:,}"))
    print(line("asyncio tasks alive at the end", f"{f.tasks:,}"))
    if not math.isnan(f.sweep_seconds):
        print(
            line("sweep(): orders re-watched", f"{f.rewatched:,}", "0", f.rewatched == 0)
            + f"   (took {f.sweep_seconds:.1f} s; tasks after: {f.tasks_after_sweep:,})"
        )
    stuck = math.isnan(f.close_seconds)
    print(line("shutdown (app.close)", "skipped" if stuck else f"{f.close_seconds:.1f} s"))
    by_action = upstream["by_action"]
    print(
        line("upstream getStatus requests", f"{by_action.get('getStatus', 0):,}")
        + f"   (429s: {upstream['rejected_429']})"
    )
    step = max(1, len(f.samples) // 6)
    trace = ", ".join(f"{t:.1f}s {rss:.0f}MB q{q}" for t, rss, q in f.samples[::step])
    print(f"  samples (time RSS queued): {trace}")
    if f.warnings:
        print(f"  warnings logged: {sum(f.warnings.values())}")
        for (name, msg), count in f.warnings.most_common(4):
            print(f"    {count:>6} × {name}: {msg[:90]}")
    if f.snapshot is not None:
        print_allocations(f.snapshot)
    return {
        "rss_before_mb": f.rss_before,
        "rss_after_mb": f.rss_after,
        "rss_peak_mb": f.peak,
        "jobs": f.jobs_end[1],  # watched orders (run_all reads "jobs")
        "recover_s": f.recover_seconds,
        "recover_done": f.recover_done,
        "pass": ok,
    }


def print_allocations(snapshot: tracemalloc.Snapshot, limit: int = 12) -> None:
    """Python allocations made since recover() started and still alive, by file and line."""
    stats = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    top = stats.statistics("lineno")
    total = sum(stat.size for stat in top)
    print(f"  live Python allocations since recover(): {total / MB:.1f} MB (tracemalloc)")
    for stat in top[:limit]:
        frame = stat.traceback[0]
        where = "/".join(Path(frame.filename).parts[-2:])
        print(f"    {stat.size / MB:6.1f} MB {stat.count:>8,} blocks  {where}:{frame.lineno}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=6000, help="bot's SMSPalm limit per 60 s")
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval, s")
    parser.add_argument(
        "--recover-timeout", type=float, default=20.0, help="stop waiting for recover(), s"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="list what recover() and polling allocated"
    )
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare is not None:
        asyncio.run(prepare(args))
        return 0
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
