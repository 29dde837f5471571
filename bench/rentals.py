"""Rentals at scale: 300 live rentals polled within the SMSPool budget.

What it measures
    N live rentals (default 300) are polled by the real bot (RentalPoller -> claim_due ->
    RentalService.poll -> SMSPoolRentals: retrieve_status, then retrieve_messages ->
    RequestBudget -> httpx -> FakeSMSPool) with SMSPool limited to L requests a minute.
    M messages (default 300, unique texts) reach random rentals at uniformly random times;
    the delay from a message's arrival upstream to its sendMessage at the fake Telegram is
    recorded (the fake's handler is wrapped; stamped when the request arrives).

Time is compressed by --scale S (default 10): the bot polls every RENTAL_POLL_SECONDS / S,
its budget is L x S a minute and the fake SMSPool admits L requests per 60 / S seconds, so
every ratio is the real one and a 5-minute (scaled) run takes 30 s. Delays are reported in
real-time seconds (x S). The one-time-order share of the budget is left idle here.

Targets (chosen from the poll interval P = 55 s, the default, and the SMSPool limit
L = 1000/min, an assumption: the doc states no limit; the rentals' share is 0.75, so 750/min
>= the 655/min that 300 rentals need at 2 requests every 55 s)
    * HTTP 429 from SMSPool: 0
    * every message forwarded exactly once (0 missing, 0 twice)
    * upstream requests per poll: 2.0 (status + messages, the doc's order)
    * polls per rental per minute >= 1 ("at least once a minute")
    * p95 delay upstream -> chat <= 1.1 x P (60.5 s): a message waits at most one period
    * requests per forwarded message: reported against 2 x N x (run / P) / M, what polling
      costs whatever the traffic (rentals get few messages: polling, not messages, is the cost)

Run: ``python -m bench.rentals [--rentals 300] [--messages 300] [--scale 10] [--window 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench._common import (
    TOKEN,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    percentile,
    write_summary,
)
from bench.polling import Handler, start_bot, stop_bot
from bot.app import App, build_app
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.telegram import FakeTelegram

PERIOD = 55.0  # RENTAL_POLL_SECONDS (its default), real time
LIMIT = 1000  # SMSPool requests a minute (assumed; the doc is silent)
POLLED = ("rental/retrieve_status", "rental/retrieve_messages")
_TEXT_RE = re.compile(r"bench-msg-(\d+)")


class MessageWatcher:
    """Wraps FakeTelegram's sendMessage and stamps each forwarded bench message."""

    def __init__(self, telegram: FakeTelegram) -> None:
        self.seen: dict[int, float] = {}
        self.twice = 0
        handlers: dict[str, Handler] = telegram._handlers  # the fake's own dispatch table
        original = handlers["sendmessage"]

        async def send_message(params: dict[str, Any], files: dict[str, Any]) -> Any:
            arrived = time.monotonic()
            for number in _TEXT_RE.findall(str(params.get("text") or "")):
                if int(number) in self.seen:
                    self.twice += 1
                else:
                    self.seen[int(number)] = arrived
            return await original(params, files)

        handlers["sendmessage"] = send_message


async def rent_all(app: App, telegram: FakeTelegram, count: int) -> list[str]:
    assert app.rentals is not None
    rentals = app.rentals
    semaphore = asyncio.Semaphore(20)

    async def one(user_id: int) -> None:
        async with semaphore:
            telegram.user(user_id, first_name=f"User{user_id}")
            await app.users.seen(user_id, None, f"User{user_id}", "en")
            await app.wallet.adjust(user_id, 100_000, "benchmark funds")
            quote = await rentals.quote(True, "0", 30)
            await rentals.rent(
                user_id, True, "0", 30, None, quote.price, quote.token, chat_id=user_id
            )

    await asyncio.gather(*(one(10_000 + i) for i in range(count)))
    return []


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    scale = args.scale
    pool = FakeSMSPool(rate_limit=LIMIT, window_seconds=60.0 / scale)
    pool.balance = Decimal(10_000_000)
    telegram = FakeTelegram(token=TOKEN)
    await pool.start()
    await telegram.start()
    watcher = MessageWatcher(telegram)
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp) / "bot.db",
            telegram_api_url=telegram.base_url,
            smspalm_api_key=None,
            smspalm_rate=None,
            smspool_api_key=pool.api_key,
            smspool_base_url=pool.base_url,
            smspool_rate_limit=LIMIT * scale,
            rental_poll_seconds=PERIOD / scale,
            poll_interval_seconds=5.0 / scale,
        )
        app = await build_app(settings)
        task = await start_bot(app, telegram)
        try:
            started = time.monotonic()
            await rent_all(app, telegram, args.rentals)
            setup_s = time.monotonic() - started
            codes = list(pool.rentals)
            await asyncio.sleep(2 * PERIOD / scale)  # settle into the cycle
            requests_before = sum(pool.count(path) for path in POLLED)
            rejected_before = pool.rejected_429
            window = args.window
            rng = random.Random(1)
            plan = sorted((rng.uniform(0, window), i) for i in range(args.messages))
            delivered: dict[int, float] = {}
            begin = time.monotonic()
            for at, number in plan:
                await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
                pool.deliver_rental_message(
                    rng.choice(codes), "Bench", f"bench-msg-{number} your code"
                )
                delivered[number] = time.monotonic()
            deadline = time.monotonic() + 3 * PERIOD / scale
            while len(watcher.seen) < len(delivered) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(PERIOD / scale)  # a full period more: nothing may come twice
            elapsed = time.monotonic() - begin
            requests = sum(pool.count(path) for path in POLLED) - requests_before
            rejected = pool.rejected_429 - rejected_before
            statuses = pool.count("rental/retrieve_status")
            messages = pool.count("rental/retrieve_messages")
        finally:
            await stop_bot(app, task)
            await telegram.stop()
            await pool.stop()

    delays = [(watcher.seen[n] - t) * scale for n, t in delivered.items() if n in watcher.seen]
    missing = len(delivered) - len(delays)
    p50, p95 = percentile(delays, 50), percentile(delays, 95)
    polls = requests / 2
    real_minutes = elapsed * scale / 60
    per_rental_minute = polls / args.rentals / real_minutes
    per_message = requests / max(1, len(delays))
    # next_poll_at is whole seconds: at scale x10 a 5.5 s period becomes 5 s (real: 55 -> 55)
    effective = max(1, int(PERIOD / scale)) * scale
    expected = 2 * args.rentals * (elapsed * scale / effective) / max(1, len(delivered))
    print(f"bench.rentals: {args.rentals} live rentals, {len(delivered)} messages, scale x{scale}")
    print(line("setup (rent all), s", f"{setup_s:.1f}"))
    print(line("HTTP 429 from SMSPool", str(rejected), "0", rejected == 0))
    print(line("messages missing", str(missing), "0", missing == 0))
    print(line("messages forwarded twice", str(watcher.twice), "0", watcher.twice == 0))
    per_poll = (statuses + messages) / max(1, statuses)
    print(line("requests per poll", f"{per_poll:.2f}", "2.00", abs(per_poll - 2) < 0.01))
    print(
        line(
            "polls per rental per minute",
            f"{per_rental_minute:.2f}",
            ">= 1",
            per_rental_minute >= 1,
        )
    )
    print(line("p50 delay upstream -> chat, s", f"{p50:.1f}"))
    print(
        line(
            "p95 delay upstream -> chat, s",
            f"{p95:.1f}",
            f"<= {1.1 * PERIOD:.1f}",
            p95 <= 1.1 * PERIOD,
        )
    )
    print(
        line(
            "requests per forwarded message",
            f"{per_message:.1f}",
            f"~{expected:.1f}",
            per_message <= 1.1 * expected,
        )
    )
    print(line("warnings logged", str(logs.total)))
    for entry in logs.summary():
        print(entry)
    return {
        "rejected_429": rejected,
        "missing": missing,
        "twice": watcher.twice,
        "p95_s": p95,
        "requests_per_message": per_message,
        "polls_per_rental_minute": per_rental_minute,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rentals", type=int, default=300)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0, help="real seconds of delivery")
    add_summary_arg(parser)
    args = parser.parse_args()
    write_summary(args.summary_json, asyncio.run(bench(args)))


if __name__ == "__main__":
    main()
