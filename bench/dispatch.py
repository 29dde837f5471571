"""Dispatch throughput: buy-flow callback updates through the real Dispatcher.

What it measures
    Per-update latency (wall time around ``Dispatcher.feed_update``) and overall updates/s for
    a mix of buy-flow callbacks (services list, countries of a service, routes of a country,
    main menu, "My orders") from many users, processed with bounded concurrency the way
    aiogram's polling does it (``handle_as_tasks`` with a semaphore).

How
    * ``build_app`` with a real SQLite database in a temporary directory and a FakeSMSPalm
      on 127.0.0.1, used once to fill the catalog (``app.catalog.refresh()``).
    * The Bot talks to :class:`LocalSession`, which never opens a socket: it serializes each
      request exactly like aiogram's aiohttp session (``model_dump`` + ``prepare_value``) and
      parses a canned JSON answer through ``BaseSession.check_response``, so the aiogram
      (de)serialization cost stays in the figures and only the network is left out.
    * Users are registered with a ``/start`` message first; then a warm-up, then the measured
      run. Raw updates are parsed with ``Update.model_validate`` in the submitting loop (as
      the polling listener does), so throughput includes parsing; latency does not.
    * No purchases (Pay) are in the mix: they would hit the upstream.

Targets: >= 1,000 updates/s and p99 < 20 ms.

With a fixed number of updates in flight the mean latency is about concurrency / throughput
(Little's law), so a second, short run with one update at a time reports the service time.

Run: ``python -m bench.dispatch [--updates 5000] [--concurrency 32] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.filters.callback_data import CallbackData
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageText,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile, Update

from bench._common import (
    TOKEN,
    add_summary_arg,
    install_log_counter,
    line,
    make_settings,
    percentile,
    profile_report,
    write_summary,
)
from bot.app import App, build_app
from handlers.callbacks import CountryCb, MenuCb, OrdersCb, ServiceCb, ServicesCb
from tests.fakes.smspalm import FakeSMSPalm

TARGET_UPDATES_PER_SECOND = 1000.0
TARGET_P99_MS = 20.0
BOT_USER: dict[str, Any] = {
    "id": int(TOKEN.split(":")[0]),
    "is_bot": True,
    "first_name": "Numbot",
    "username": "numbot_bench",
}
TRUE_METHODS = (AnswerCallbackQuery, SetMyCommands, DeleteWebhook)


class LocalSession(BaseSession):
    """A Bot API session that answers in-process: canned results, no HTTP.

    Requests are serialized like ``AiohttpSession.build_form_data`` does and answers go
    through ``check_response`` (JSON decode + pydantic validation), as with the real server.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.alerts: Counter[str] = Counter()
        self._message_ids = itertools.count(1_000_000)

    async def make_request(  # the signature is BaseSession's
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109
    ) -> TelegramType:
        name = method.__api_method__
        self.calls[name] += 1
        files: dict[str, InputFile] = {}
        payload: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files)
            if prepared:
                payload[key] = prepared
        result: Any
        request: object = method  # narrowed below; `method` keeps its generic type
        if isinstance(request, (SendMessage, EditMessageText)):
            result = self._message(payload)
        elif isinstance(request, TRUE_METHODS):
            if isinstance(request, AnswerCallbackQuery) and request.show_alert:
                self.alerts[str(request.text)] += 1
            result = True
        else:
            raise NotImplementedError(f"LocalSession does not answer {name}")
        content = self.json_dumps({"ok": True, "result": result})
        response = self.check_response(bot=bot, method=method, status_code=200, content=content)
        return cast(TelegramType, response.result)

    def _message(self, payload: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(payload["chat_id"])
        message_id = int(payload.get("message_id") or next(self._message_ids))
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": payload.get("text", ""),
        }
        markup = payload.get("reply_markup")
        if markup:
            decoded = json.loads(markup)
            if "inline_keyboard" in decoded:
                message["reply_markup"] = decoded
        return message

    async def close(self) -> None:
        return None

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError("LocalSession does not download files")
        yield b""  # pragma: no cover


# -- updates ------------------------------------------------------------------------------------


def _user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "username": f"user{user_id}",
        "language_code": "en",
    }


def _chat(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": f"User{user_id}"}


def start_update(update_id: int, user_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": _chat(user_id),
            "from": _user(user_id),
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


def callback_update(update_id: int, user_id: int, data: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": str(9_000_000_000 + update_id),
            "from": _user(user_id),
            "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {
                "message_id": 500 + user_id % 1000,
                "date": int(time.time()),
                "chat": _chat(user_id),
                "from": BOT_USER,
                "text": "previous screen",
            },
        },
    }


@dataclass(frozen=True)
class Mix:
    """Weighted buy-flow callbacks; every callback_data is valid for the loaded catalog."""

    kinds: list[str]
    weights: list[float]
    makers: dict[str, Callable[[random.Random], CallbackData]]

    def pick(self, rng: random.Random) -> tuple[str, str]:
        kind = rng.choices(self.kinds, self.weights)[0]
        return kind, self.makers[kind](rng).pack()


async def build_mix(app: App) -> Mix:
    services = (await app.catalog.services()).items
    routes = await app.catalog.live_routes()
    pairs: list[tuple[int, str]] = []
    for service in services:
        offers = await app.catalog.repo.offers_for_service(routes, service.id)
        pairs.extend(sorted({(service.id, o.country) for o in offers}))
    if not services or not pairs:
        raise RuntimeError("the catalog is empty: the refresh against FakeSMSPalm failed")
    service_ids = [s.id for s in services]
    makers: dict[str, Callable[[random.Random], CallbackData]] = {
        "services": lambda rng: ServicesCb(page=0),
        "buy": lambda rng: MenuCb(to="buy"),
        "countries": lambda rng: ServiceCb(sid=rng.choice(service_ids)),
        "routes": lambda rng: CountryCb(sid=(p := rng.choice(pairs))[0], cc=p[1]),
        "main": lambda rng: MenuCb(to="main"),
        "orders": lambda rng: OrdersCb(page=0),
    }
    weights = {
        "services": 0.15,
        "buy": 0.05,
        "countries": 0.25,
        "routes": 0.25,
        "main": 0.15,
        "orders": 0.15,
    }
    return Mix(list(weights), list(weights.values()), makers)


# -- running ------------------------------------------------------------------------------------


@dataclass
class RunResult:
    latencies: list[float]
    by_kind: dict[str, list[float]]
    seconds: float
    errors: int


async def run_updates(
    app: App,
    bot: Bot,
    raw_updates: list[tuple[str, dict[str, Any]]],
    concurrency: int,
) -> RunResult:
    """Feed updates like aiogram's polling loop with a task limit; time each feed_update."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    errors = 0
    tasks: set[asyncio.Task[None]] = set()

    async def handle(kind: str, update: Update) -> None:
        nonlocal errors
        try:
            started = time.perf_counter()
            try:
                await app.dp.feed_update(bot, update)
            except Exception:
                errors += 1
            elapsed = time.perf_counter() - started
            latencies.append(elapsed)
            by_kind.setdefault(kind, []).append(elapsed)
        finally:
            semaphore.release()

    began = time.perf_counter()
    for kind, raw in raw_updates:
        update = Update.model_validate(raw, context={"bot": bot})
        await semaphore.acquire()
        task = asyncio.create_task(handle(kind, update))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    return RunResult(latencies, by_kind, time.perf_counter() - began, errors)


def make_callbacks(
    mix: Mix, users: list[int], count: int, first_id: int, rng: random.Random
) -> list[tuple[str, dict[str, Any]]]:
    updates = []
    for i in range(count):
        kind, data = mix.pick(rng)
        updates.append((kind, callback_update(first_id + i, rng.choice(users), data)))
    return updates


@dataclass
class Phases:
    registration: RunResult
    measured: RunResult
    serial: RunResult
    session: LocalSession
    mix: Mix
    upstream_requests: int
    profiler: cProfile.Profile | None


async def run_phases(
    args: argparse.Namespace, palm: FakeSMSPalm, database: Path, rng: random.Random
) -> Phases:
    """Registration, warm-up, the measured run and the one-at-a-time run, on a fresh app."""
    settings = make_settings(
        database,
        smspalm_api_key=palm.api_key,
        smspalm_base_url=palm.base_url,
        smspalm_rate_limit=100_000,
    )
    app = await build_app(settings)
    session = LocalSession()
    bot = Bot(
        TOKEN,
        session=session,
        default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True),
    )
    try:
        await app.catalog.refresh()
        mix = await build_mix(app)
        upstream_before = len(palm.requests)
        users = [100_000 + i for i in range(args.users)]
        starts = [("start", start_update(i + 1, uid)) for i, uid in enumerate(users)]
        registration = await run_updates(app, bot, starts, args.concurrency)
        next_id = len(starts) + 1
        warmup = make_callbacks(mix, users, args.warmup, next_id, rng)
        await run_updates(app, bot, warmup, args.concurrency)
        measured = make_callbacks(mix, users, args.updates, next_id + args.warmup, rng)
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        result = await run_updates(app, bot, measured, args.concurrency)
        if profiler is not None:
            profiler.disable()
        first_serial = next_id + args.warmup + args.updates
        serial_updates = make_callbacks(mix, users, args.serial, first_serial, rng)
        serial = await run_updates(app, bot, serial_updates, 1)
        upstream = len(palm.requests) - upstream_before
    finally:
        await bot.session.close()
        await app.close()
    return Phases(registration, result, serial, session, mix, upstream, profiler)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    rng = random.Random(args.seed)
    palm = FakeSMSPalm()
    await palm.start()
    try:
        with tempfile.TemporaryDirectory(prefix="numbot-bench-") as tmp:
            run = await run_phases(args, palm, Path(tmp) / "bot.db", rng)
    finally:
        await palm.stop()
    registration, result, serial = run.registration, run.measured, run.serial
    session, mix, profiler = run.session, run.mix, run.profiler

    throughput = len(result.latencies) / result.seconds
    p50, p95, p99 = (percentile(result.latencies, p) * 1000 for p in (50, 95, 99))
    print("Dispatch throughput (real Dispatcher + SQLite, local Bot API session)")
    print(line("users registered (/start)", f"{args.users}"))
    print(
        line(
            "registration",
            f"{registration.seconds:.2f} s",
        )
        + f"   ({args.users / registration.seconds:.0f} /start per s)"
    )
    print(line("warm-up / measured updates", f"{args.warmup} / {len(result.latencies)}"))
    print(line("concurrency (tasks in flight)", f"{args.concurrency}"))
    print(
        line(
            "throughput",
            f"{throughput:,.0f} upd/s",
            f">= {TARGET_UPDATES_PER_SECOND:,.0f}",
            throughput >= TARGET_UPDATES_PER_SECOND,
        )
    )
    print(line("latency p50", f"{p50:.2f} ms"))
    print(line("latency p95", f"{p95:.2f} ms"))
    print(line("latency p99", f"{p99:.2f} ms", f"< {TARGET_P99_MS:.0f} ms", p99 < TARGET_P99_MS))
    mean_ms = sum(result.latencies) / len(result.latencies) * 1000
    print(line("latency mean", f"{mean_ms:.2f} ms"))
    s50, s99 = (percentile(serial.latencies, p) * 1000 for p in (50, 99))
    print(
        line("service time, 1 in flight p50 / p99", f"{s50:.2f} / {s99:.2f} ms")
        + f"   ({len(serial.latencies)} updates, {len(serial.latencies) / serial.seconds:.0f}/s)"
    )
    print(f"  per kind: count, p50 / p99 ms with {args.concurrency} in flight; p50 ms alone")
    for kind in mix.kinds:
        values = result.by_kind.get(kind, [])
        alone = serial.by_kind.get(kind, [])
        print(
            f"    {kind:<10} {len(values):>5}  "
            f"{percentile(values, 50) * 1000:7.2f} / {percentile(values, 99) * 1000:7.2f}"
            f"   {percentile(alone, 50) * 1000:6.2f}"
        )
    calls = ", ".join(f"{name}={count}" for name, count in sorted(session.calls.items()))
    print(f"  Bot API calls (whole run): {calls}")
    alerts = sum(session.alerts.values())
    print(
        line("errors / alert answers", f"{result.errors} / {alerts}", "0 / 0", not result.errors)
    )
    for text, count in session.alerts.most_common(3):
        print(f"    {count} × alert {text!r}")
    print(line("upstream requests during the run", f"{run.upstream_requests}"))
    if logs.total:
        print(f"  warnings logged: {logs.total}")
        print("\n".join(logs.summary()))
    if profiler is not None:
        print(profile_report(profiler))
    return {
        "throughput": throughput,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "pass": throughput >= TARGET_UPDATES_PER_SECOND and p99 < TARGET_P99_MS,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    # Enough users that no one taps faster than the throttle allows (2/s each) at 1,000/s.
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serial", type=int, default=500, help="updates run one at a time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile the measured run")
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
