"""Broadcast: does the bot hold the configured pace, and stay under Telegram's flood limit?

The real bot (long polling, SQLite, the broadcast runner) runs against FakeTelegram. N users
are registered through the app's user service; the admin sends /broadcast, a text, and taps
Send. The fake's copyMessage handler is wrapped to timestamp every accepted copy.

Two runs, each with a fresh database:

1. the fake answers at once: the achieved rate (copies between the first and the last accepted
   one) against BROADCAST_RATE (target: within 5 %);
2. the fake enforces Telegram's limit, 30 new messages per second (HTTP 429 ``retry after 1``
   beyond it): the number of 429s (target: 0) and the busiest one-second window.

Also printed: confirm tap -> "done" on the progress message, SQLite write transactions during
the broadcast (recipients are claimed and settled in batches), and progress edits.

Run: ``python -m bench.broadcast [--users 500] [--rate 25]``
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench._common import (
    TOKEN,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    write_summary,
)
from bot.app import build_app
from storage.db import Database, Tx
from tests.fakes.telegram import FakeTelegram, Message

ADMIN_ID = 1
TELEGRAM_LIMIT = 30  # messages/s, what the fake enforces in the second run
TEXT = "Bench broadcast"


def _count_transactions(db: Database) -> list[int]:
    """Wrap the database's transaction() to count write transactions."""
    counter = [0]
    original = db.transaction

    @asynccontextmanager
    async def counted() -> AsyncIterator[Tx]:
        counter[0] += 1
        async with original() as tx:
            yield tx

    db.transaction = counted  # type: ignore[method-assign]
    return counter


def _busiest_second(times: list[float]) -> int:
    """The most copies accepted within any one-second window."""
    best = 0
    for index, began in enumerate(times):
        best = max(best, bisect.bisect_left(times, began + 1.0) - index)
    return best


async def run(users: int, rate: float, limit: int | None) -> dict[str, Any]:
    telegram = FakeTelegram(token=TOKEN)
    await telegram.start()
    if limit is not None:
        telegram.limit_rate(limit, retry_after=1)
    accepted: list[float] = []
    handlers = telegram._handlers  # the fake's own dispatch table
    copy_message = handlers["copymessage"]

    async def timed_copy(params: dict[str, Any], files: dict[str, Any]) -> Any:
        result = await copy_message(params, files)
        accepted.append(time.monotonic())
        return result

    handlers["copymessage"] = timed_copy
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp) / "bot.db",
            telegram_api_url=telegram.base_url,
            admin_ids=str(ADMIN_ID),
            broadcast_rate=rate,
        )
        app = await build_app(settings)
        task = asyncio.create_task(app.run_polling(handle_signals=False, polling_timeout=1))
        try:
            admin = telegram.user(ADMIN_ID, first_name="Owner")
            for user in telegram.make_users(users - 1, 100_001):
                await app.users.seen(user.id, None, user.first_name, "en")
            await admin.send("/broadcast")
            await admin.wait_for("Send me the message")
            await admin.send(TEXT)
            confirm = await admin.wait_for("This is how it will look")
            transactions = _count_transactions(app.db)
            edits_before = len(telegram.calls_to("editMessageText"))

            accepted.clear()  # the admin's preview
            started = time.monotonic()
            await admin.click(confirm, "Send to")

            def finished(m: Message) -> bool:
                return m.message_id == confirm.message_id and "done" in m.plain

            final = await admin.wait_for(finished, timeout=users / rate * 3 + 60)
            total_s = time.monotonic() - started
            span = accepted[-1] - accepted[0] if len(accepted) > 1 else float("nan")
            return {
                "users": users,
                "rate": rate,
                "limit": limit,
                "copies": len(accepted),
                "achieved_rate": (len(accepted) - 1) / span,
                "total_s": total_s,
                "rejected_429": telegram.rate_limited,
                "busiest_second": _busiest_second(accepted),
                "transactions": transactions[0],
                "edits": len(telegram.calls_to("editMessageText")) - edits_before,
                "final": final.plain.splitlines()[1],
            }
        finally:
            await app.dp.stop_polling()
            await task
            await app.close()
            await telegram.stop()


def _report(title: str, figures: dict[str, Any]) -> None:
    print(title)
    print(line("copies accepted", f"{figures['copies']:,}", f"{figures['users']:,}"))
    print(line("final progress message", figures["final"]))
    print(line("confirm -> done", f"{figures['total_s']:.1f} s"))
    print(line("SQLite write transactions", f"{figures['transactions']}"))
    print(line("progress edits", f"{figures['edits']}"))
    print(line("busiest one-second window", f"{figures['busiest_second']} copies"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=500, help="recipients, the admin included")
    parser.add_argument("--rate", type=float, default=25.0, help="BROADCAST_RATE (messages/s)")
    add_summary_arg(parser)
    args = parser.parse_args()
    logs = install_log_counter()

    free = asyncio.run(run(args.users, args.rate, None))
    deviation = (free["achieved_rate"] - args.rate) / args.rate * 100
    _report(f"Broadcast to {args.users} users at {args.rate:g}/s, fake answering at once", free)
    print(
        line(
            "achieved rate",
            f"{free['achieved_rate']:.2f}/s ({deviation:+.1f} %)",
            f"{args.rate:g}/s ± 5 %",
            abs(deviation) <= 5,
        )
    )
    print()
    limited = asyncio.run(run(args.users, args.rate, TELEGRAM_LIMIT))
    _report(
        f"Broadcast to {args.users} users at {args.rate:g}/s, fake enforcing "
        f"{TELEGRAM_LIMIT} messages/s",
        limited,
    )
    print(line("achieved rate", f"{limited['achieved_rate']:.2f}/s"))
    print(
        line(
            "HTTP 429 answers",
            f"{limited['rejected_429']}",
            "0",
            limited["rejected_429"] == 0,
        )
    )
    if logs.total:
        print(f"  warnings logged: {logs.total}")
        print("\n".join(logs.summary()))
    write_summary(
        args.summary_json,
        {
            "rate": args.rate,
            "achieved_rate": free["achieved_rate"],
            "deviation_pct": deviation,
            "rejected_429": limited["rejected_429"],
            "busiest_second": limited["busiest_second"],
            "transactions": free["transactions"],
            "users": args.users,
        },
    )


if __name__ == "__main__":
    main()
