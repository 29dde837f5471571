"""Polling at the rate limit: how long a code waits upstream before the customer sees it.

What it measures
    N live orders are polled by the real bot (the route's poll queue -> OrderService.poll ->
    RequestBudget -> httpx -> FakeSMSPalm) with the upstream limited to R requests per 60 s.
    Codes are delivered upstream at random times; for each order the delay from
    ``palm.code_delivered_at[activation]`` to the moment the code message reaches the fake
    Telegram server is recorded (the fake's sendMessage handler is wrapped; the timestamp is
    taken when the request arrives, before the fake processes it).

How
    * FakeTelegram + FakeSMSPalm(rate_limit=R, window_seconds=60) on 127.0.0.1, the bot built
      with ``build_app`` and run with ``run_polling`` in a task (like tests/conftest.py).
    * N users are registered and funded through the app's services, then each buys a
      WhatsApp/US number on SMSPalm Server 2 through ``OrderService.quote`` + ``confirm``
      (a real getPrices + getNumber against the fake).
    * Once all N are live and polled for a couple of cycles, one unique code per activation
      is delivered at a uniformly random time within the delivery window.
    * The delay is split into "code upstream -> first getStatus that returned it" (waiting
      for the poll cycle) and "that poll -> sendMessage at the fake" (the bot's handling).

Targets
    * no HTTP 429 from the upstream;
    * p95 delay <= 1.2 x the poll cycle the budget allows, max(N / (R / 60), poll interval).

Run: ``python -m bench.polling [--orders 200] [--rate 6000] [--window 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from bench._common import (
    TOKEN,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    percentile,
    write_summary,
)
from bot.app import App, build_app
from shop.errors import NotFound
from tests.fakes.smspalm import FakeSMSPalm, Request
from tests.fakes.telegram import FakeTelegram

ROUTE = "smspalm2"
COUNTRY = "US"
SERVICE_SLUG = "whatsapp"
CYCLE_FACTOR = 1.2
_CODE_RE = re.compile(r"(?<!\d)\d{6}(?!\d)")
Handler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[Any]]


class CodeWatcher:
    """Wraps FakeTelegram's sendMessage handler and stamps the arrival of each known code."""

    def __init__(self, telegram: FakeTelegram) -> None:
        self.expected: dict[str, str] = {}  # code -> activation id
        self.seen: dict[str, float] = {}  # activation id -> time.monotonic() of arrival
        self.all_seen = asyncio.Event()
        handlers: dict[str, Handler] = telegram._handlers  # the fake's own dispatch table
        original = handlers["sendmessage"]

        async def send_message(params: dict[str, Any], files: dict[str, Any]) -> Any:
            arrived = time.monotonic()
            for code in _CODE_RE.findall(str(params.get("text") or "")):
                activation = self.expected.get(code)
                if activation is not None and activation not in self.seen:
                    self.seen[activation] = arrived
                    if len(self.seen) == len(self.expected):
                        self.all_seen.set()
            return await original(params, files)

        handlers["sendmessage"] = send_message

    def deliver_at_random(
        self, palm: FakeSMSPalm, activations: list[str], rng: random.Random, window: float
    ) -> None:
        """One unique six-digit code per activation, delivered upstream at a uniformly random
        time within `window` seconds from now."""
        codes = rng.sample(range(100_000, 1_000_000), len(activations))
        loop = asyncio.get_running_loop()
        for activation, code in zip(activations, codes, strict=True):
            self.expected[f"{code:06d}"] = activation
            loop.call_later(rng.uniform(0, window), palm.deliver_code, activation, f"{code:06d}")

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a bench's deadline
        """Until every expected code has reached the fake, or `timeout` seconds."""
        try:
            await asyncio.wait_for(self.all_seen.wait(), timeout)
        except TimeoutError:
            pass


class CodeDelays(NamedTuple):
    """Per code: upstream -> Telegram (`delays`) and upstream -> the first poll that returned
    it (`waits`); `polled` holds each activation's first such poll, `missing` counts the codes
    that never reached Telegram."""

    delays: list[float]
    waits: list[float]
    polled: dict[str, float]
    missing: int

    @classmethod
    def measure(
        cls, watcher: CodeWatcher, palm: FakeSMSPalm, activations: list[str]
    ) -> CodeDelays:
        delivered_at = palm.code_delivered_at
        seen = watcher.seen
        delays = [seen[a] - delivered_at[a] for a in activations if a in seen]
        polled = first_code_polls(palm.requests)
        waits = [polled[a] - delivered_at[a] for a in activations if a in polled]
        return cls(delays, waits, polled, len(activations) - len(delays))


def poll_target(orders: int, rate: int, interval: float) -> tuple[float, float]:
    """The poll cycle the budget allows, max(N / (R / 60), poll interval), and the bound on
    the p95 delay (CYCLE_FACTOR times that)."""
    allowed_cycle = max(orders / (rate / 60), interval)
    return allowed_cycle, CYCLE_FACTOR * allowed_cycle


async def start_bot(app: App, telegram: FakeTelegram) -> asyncio.Task[None]:
    """Run long polling in a task and wait for the first getUpdates (as BotHarness does)."""
    polls_before = len(telegram.calls_to("getUpdates"))
    task = asyncio.create_task(app.run_polling(handle_signals=False, polling_timeout=1))
    for _ in range(500):
        if len(telegram.calls_to("getUpdates")) > polls_before:
            break
        await asyncio.sleep(0.01)
    return task


async def stop_bot(app: App, task: asyncio.Task[None]) -> None:
    if not task.done():
        try:
            await app.dp.stop_polling()
        except RuntimeError:
            pass
        await asyncio.wait_for(task, 10)
    await app.close()


@dataclass
class Setup:
    activations: list[str] = field(default_factory=list)
    stale_quote_retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)


async def create_orders(
    app: App, telegram: FakeTelegram, palm: FakeSMSPalm, count: int, concurrency: int = 20
) -> Setup:
    """Register, fund and buy one number per user through the services.

    A ``NotFound`` from ``confirm`` for a quote created a moment before (a stale read of the
    shared reader connection under concurrency) is retried with a fresh quote and counted.
    The activations are taken from the fake upstream, which records every number bought.
    """
    services = await app.catalog.services()
    service = next(s for s in services.items if s.slug == SERVICE_SLUG)
    semaphore = asyncio.Semaphore(concurrency)
    setup = Setup()

    async def buy(user_id: int) -> None:
        async with semaphore:
            telegram.user(user_id, first_name=f"User{user_id}")
            await app.users.seen(user_id, None, f"User{user_id}", "en")
            await app.wallet.adjust(user_id, 10_000, "benchmark funds")
            for _ in range(5):
                view = await app.orders.quote(user_id, ROUTE, service.id, COUNTRY)
                try:
                    await app.orders.confirm(user_id, view.quote.id, chat_id=user_id)
                except NotFound:
                    setup.stale_quote_retries += 1
                    continue
                except Exception as exc:  # recorded: the figures must still come out
                    setup.failures[type(exc).__name__] += 1
                return
            setup.failures["NotFound x5"] += 1

    await asyncio.gather(*(buy(200_000 + i) for i in range(count)))
    setup.activations = list(palm.activations)
    return setup


def fmt(value: float, digits: int = 2) -> str:
    """Seconds with `digits` decimals, or n/a when there was nothing to measure."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def first_code_polls(requests: list[Request]) -> dict[str, float]:
    """Activation id -> arrival time of the first getStatus that was answered with a code."""
    first: dict[str, float] = {}
    for request in requests:
        if request.action != "getStatus" or not (request.body or "").startswith("STATUS_OK"):
            continue
        first.setdefault(request.params.get("id", ""), request.at)
    return first


def peak_in_window(times: list[float], window: float) -> int:
    """The largest number of requests inside any sliding window of `window` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def observed_cycle(requests: list[Request], since: float, until: float) -> float:
    """Median gap between consecutive getStatus requests for the same activation."""
    last: dict[str, float] = {}
    gaps: list[float] = []
    for request in requests:
        if request.action != "getStatus" or not since <= request.at <= until:
            continue
        activation = request.params.get("id", "")
        if activation in last:
            gaps.append(request.at - last[activation])
        last[activation] = request.at
    return percentile(gaps, 50)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    rng = random.Random(args.seed)
    telegram = FakeTelegram(token=TOKEN)
    palm = FakeSMSPalm(rate_limit=args.rate, window_seconds=60.0)
    palm.balance = Decimal("10000000")
    await telegram.start()
    await palm.start()
    watcher = CodeWatcher(telegram)
    try:
        with tempfile.TemporaryDirectory(prefix="numbot-bench-") as tmp:
            settings = make_settings(
                Path(tmp) / "bot.db",
                telegram_api_url=telegram.base_url,
                smspalm_api_key=palm.api_key,
                smspalm_base_url=palm.base_url,
                smspalm_rate_limit=args.rate,
                poll_interval_seconds=args.interval,
            )
            app = await build_app(settings)
            await app.catalog.refresh()
            task = await start_bot(app, telegram)
            try:
                began = time.monotonic()
                setup = await create_orders(app, telegram, palm, args.orders)
                activations = setup.activations
                live_after = time.monotonic() - began
                await asyncio.sleep(args.settle)
                jobs = app.jobs.counts()["watched"]
                watcher.deliver_at_random(palm, activations, rng, args.window)
                delivery_started = time.monotonic()
                await watcher.wait(args.window + args.grace)
                delivery_ended = time.monotonic()
                jobs_end = app.jobs.counts()["watched"]
                measured_warnings = Counter(logs.counts)
            finally:
                await stop_bot(app, task)
    finally:
        await palm.stop()
        await telegram.stop()

    delays, waits, polled, missing = CodeDelays.measure(watcher, palm, activations)
    seen = watcher.seen
    handling = [seen[a] - polled[a] for a in activations if a in polled and a in seen]
    window_requests = [r for r in palm.requests if delivery_started <= r.at <= delivery_ended]
    statuses = sum(1 for r in window_requests if r.action == "getStatus")
    allowed_cycle, target = poll_target(args.orders, args.rate, args.interval)
    p50, p95, worst = (percentile(delays, p) for p in (50, 95, 100))
    cycle = observed_cycle(palm.requests, delivery_started, delivery_ended)
    times = [r.at for r in palm.requests]
    p95_ok = not missing and p95 <= target

    print("Polling at the rate limit (real bot, FakeTelegram + FakeSMSPalm)")
    print(line("live orders N", f"{args.orders}"))
    print(line("upstream limit R", f"{args.rate}/min") + f"   ({args.rate / 60:.0f} req/s)")
    print(line("poll interval", f"{args.interval:.1f} s"))
    print(line("all N live after", f"{live_after:.1f} s"))
    print(
        line(
            "setup: stale-quote retries / failures",
            f"{setup.stale_quote_retries} / {sum(setup.failures.values())}",
        )
        + (f"   {dict(setup.failures)}" if setup.failures else "")
    )
    print(line("watched orders (all live / at end)", f"{jobs} / {jobs_end}"))
    print(line("HTTP 429 from upstream", f"{palm.rejected_429}", "0", palm.rejected_429 == 0))
    print(line("codes delivered / reached Telegram", f"{len(activations)} / {len(delays)}"))
    print(line("poll cycle the budget allows", f"{allowed_cycle:.2f} s"))
    print(line("observed poll cycle (median gap)", f"{fmt(cycle)} s"))
    print(line("delay p50", f"{fmt(p50)} s"))
    print(line("delay p95", f"{fmt(p95)} s", f"<= {target:.2f} s", p95_ok))
    print(line("delay max", f"{fmt(worst)} s"))
    waited = f"{fmt(percentile(waits, 50))} / {fmt(percentile(waits, 95))} s"
    print(line("  code upstream -> polled p50 / p95", waited))
    handled = f"{fmt(percentile(handling, 50), 3)} / {fmt(percentile(handling, 95), 3)} s"
    print(line("  polled -> reached Telegram p50 / p95", handled))
    per_code = len(window_requests) / max(len(delays), 1)
    print(
        line("upstream requests per delivered code", f"{per_code:.1f}")
        + f"   ({len(window_requests)} in {delivery_ended - delivery_started:.1f} s, "
        f"{statuses} getStatus)"
    )
    print(
        line(
            "peak requests in any 1 s / 60 s",
            f"{peak_in_window(times, 1.0)} / {peak_in_window(times, 60.0)}",
        )
        + f"   (limit {args.rate / 60:.0f} / {args.rate}; run {times[-1] - times[0]:.0f} s)"
    )
    shutdown_warnings = logs.counts - measured_warnings
    for title, counts in (("", measured_warnings), (" at shutdown", shutdown_warnings)):
        if counts:
            print(f"  warnings logged{title}: {sum(counts.values())}")
            for (name, msg), count in counts.most_common(4):
                print(f"    {count:>6} × {name}: {msg[:90]}")
    return {
        "p50_s": p50,
        "p95_s": p95,
        "max_s": worst,
        "target_s": target,
        "rejected_429": palm.rejected_429,
        "missing": missing,
        "pass": p95_ok and palm.rejected_429 == 0,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--rate", type=int, default=6000, help="upstream limit per 60 s")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    parser.add_argument("--window", type=float, default=20.0, help="codes arrive within, s")
    parser.add_argument("--settle", type=float, default=3.0, help="polling before codes, s")
    parser.add_argument("--grace", type=float, default=5.0, help="wait after the window, s")
    parser.add_argument("--seed", type=int, default=11)
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
