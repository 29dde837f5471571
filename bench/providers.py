"""Every provider, one catalog: upstream requests per delivered code, per provider.

What it measures
    The real bot runs with SMSPool, SpotSMS and PapSMS configured (no SMSPalm), each fake
    limited to R requests per 60 s and the bot's budget for it set to the same R. N live
    orders are spread over the three routes (WhatsApp / United States on each). Codes are
    then delivered upstream to a random subset of each provider's orders at random times
    within a window, and for every provider the script records, during that window:

    * the upstream requests by endpoint (SMSPool ``request/active`` vs ``sms/check``,
      SpotSMS ``getMsg``, PapSMS ``numbers/status``) and per delivered code;
    * the delay from the code arriving upstream to the code message reaching the fake
      Telegram (PapSMS: from ``deliver_code(webhook=True)``, which sends the webhook POST);
    * HTTP 429s answered by each fake (over the whole run and within the window).

How
    * FakeTelegram + FakeSMSPool/FakeSpotSMS/FakePapSMS on 127.0.0.1, stock and balances
      raised for N orders; the bot built with ``build_app`` and run with ``run_polling`` in a
      task, as bench.polling does. The PapSMS webhook is served by the bot's HTTP
      listener on a free port (``http_port``, ``papsms_webhook=1``); the fake is pointed at it.
    * Poll interval 1 s for SMSPool and SpotSMS, ``papsms_poll_seconds`` 30 (the webhook is
      the fast path); orders do not time out during the run.
    * Each order is a user registered and funded through the services, then
      ``OrderService.quote`` + ``confirm`` with bounded concurrency.

Targets
    * SMSPool: at most one ``request/active`` per poll tick for all its orders (ticks = window
      / poll interval, one partial tick allowed at each end) and no ``sms/check``;
    * PapSMS: p95 delay <= 1 s from the webhook;
    * zero HTTP 429 from every fake.

Run: ``python -m bench.providers [--pool 200] [--spot 150] [--pap 150] [--codes 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench._common import (
    TOKEN,
    add_summary_arg,
    free_port,
    install_log_counter,
    line,
    make_settings,
    percentile,
    write_summary,
)
from bench.polling import CodeWatcher, fmt, start_bot, stop_bot
from bot.app import App, build_app
from shop.errors import NotFound
from shop.services.orders import PriceChanged
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.spotsms import FakeSpotSMS
from tests.fakes.telegram import FakeTelegram

COUNTRY = "US"
SERVICE = "WhatsApp"
WEBHOOK_SECRET = "bench-papsms-hook-secret"
PAP_TARGET_S = 1.0
ROUTES = ("smspool", "spotsms", "papsms")
TITLES = {"smspool": "SMSPool", "spotsms": "SpotSMS", "papsms": "PapSMS"}
PLENTY = 1_000_000
_PAP_ENDPOINT = re.compile(r"^/?([^/]+(?:/[a-z]+)?)")


@dataclass
class Upstreams:
    pool: FakeSMSPool
    spot: FakeSpotSMS
    pap: FakePapSMS

    @property
    def all(self) -> tuple[FakeSMSPool, FakeSpotSMS, FakePapSMS]:
        return self.pool, self.spot, self.pap

    def rejected(self, route: str) -> int:
        fakes: dict[str, FakeSMSPool | FakeSpotSMS | FakePapSMS] = {
            "smspool": self.pool,
            "spotsms": self.spot,
            "papsms": self.pap,
        }
        return fakes[route].rejected_429

    def activations(self, route: str) -> list[str]:
        if route == "smspool":
            return list(self.pool.orders)
        if route == "spotsms":
            return list(self.spot.activations)
        return list(self.pap.activations)

    def deliver(self, route: str, activation: str, code: str) -> None:
        if route == "smspool":
            self.pool.deliver_code(activation, code)
        elif route == "spotsms":
            self.spot.deliver_code(activation, code)
        else:
            self.pap.deliver_code(activation, code, webhook=True)

    def requests(self, route: str, since: float, until: float) -> list[tuple[str, float, int]]:
        """(endpoint, arrival, HTTP status or 0 in flight) of one upstream's requests."""
        rows: Iterable[tuple[str, float, int | None]]
        if route == "smspool":
            rows = ((r.path, r.at, r.http_status) for r in self.pool.requests)
        elif route == "spotsms":
            rows = ((r.action, r.at, r.http_status) for r in self.spot.requests)
        else:
            rows = ((pap_endpoint(r.path), r.at, r.http_status) for r in self.pap.requests)
        return [(name, at, status or 0) for name, at, status in rows if since <= at <= until]


def pap_endpoint(path: str) -> str:
    """``/numbers/status/12345678`` -> ``numbers/status``; ``/prices`` -> ``prices``."""
    match = _PAP_ENDPOINT.match(path)
    return match.group(1) if match else path


def make_upstreams(rate: int) -> Upstreams:
    pool = FakeSMSPool(rate_limit=rate, window_seconds=60.0)
    spot = FakeSpotSMS(rate_limit=rate, window_seconds=60.0)
    pap = FakePapSMS(rate_limit=rate, window_seconds=60.0)
    for row in pool.prices.values():
        row.stock = PLENTY
    for countries in spot.countries.values():
        for country in countries:
            country["count"] = PLENTY
    for price_and_stock in pap.prices.values():
        price_and_stock[1] = PLENTY
    for fake in (pool, spot, pap):
        fake.balance = Decimal(PLENTY)
    return Upstreams(pool, spot, pap)


@dataclass
class Setup:
    bought: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


async def create_orders(
    app: App,
    telegram: FakeTelegram,
    plan: list[str],
    rng: random.Random,
    concurrency: int,
) -> Setup:
    """One user per order: registered, funded, then quote + confirm on the planned route.

    A stale quote (``NotFound``) or a ``PriceChanged`` is retried with a fresh quote and
    counted; anything else is recorded as a failure so that the figures still come out.
    """
    service = await app.catalog.find_service(SERVICE)
    assert service is not None, f"{SERVICE} is not in the catalog"
    semaphore = asyncio.Semaphore(concurrency)
    setup = Setup()
    order = list(enumerate(plan))
    rng.shuffle(order)

    async def buy(user_id: int, route: str) -> None:
        async with semaphore:
            telegram.user(user_id, first_name=f"User{user_id}")
            await app.users.seen(user_id, None, f"User{user_id}", "en")
            await app.wallet.adjust(user_id, 100_000, "benchmark funds")
            for _ in range(5):
                try:
                    view = await app.orders.quote(user_id, route, service.id, COUNTRY)
                    await app.orders.confirm(user_id, view.quote.id, chat_id=user_id)
                except (NotFound, PriceChanged) as exc:
                    setup.retries[type(exc).__name__] += 1
                    continue
                except Exception as exc:  # recorded: the figures must still come out
                    setup.failures[f"{route}: {type(exc).__name__}"] += 1
                    return
                setup.bought[route] += 1
                return
            setup.failures[f"{route}: retries exhausted"] += 1

    await asyncio.gather(*(buy(300_000 + i, route) for i, route in order))
    return setup


def median_gap(times_by_key: dict[str, list[float]]) -> float:
    gaps = [b - a for times in times_by_key.values() for a, b in itertools.pairwise(times)]
    return percentile(gaps, 50)


@dataclass
class Figures:
    """One provider's figures over the measurement window."""

    route: str
    live: int
    codes: int
    seen: int
    delays: list[float]
    endpoints: Counter[str]
    rejected_window: int
    rejected_total: int

    @property
    def requests(self) -> int:
        return sum(self.endpoints.values())

    @property
    def per_code(self) -> float:
        return self.requests / self.seen if self.seen else math.nan

    def pct(self, p: float) -> float:
        return percentile(self.delays, p)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    logs = install_log_counter()
    rng = random.Random(args.seed)
    telegram = FakeTelegram(token=TOKEN)
    up = make_upstreams(args.rate)
    await telegram.start()
    for fake in up.all:
        await fake.start()
    watcher = CodeWatcher(telegram)
    counts = {"smspool": args.pool, "spotsms": args.spot, "papsms": args.pap}
    plan = [route for route in ROUTES for _ in range(counts[route])]
    delivered_at: dict[str, float] = {}  # "route:activation" -> monotonic
    chosen: dict[str, list[str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="numbot-bench-") as tmp:
            settings = make_settings(
                Path(tmp) / "bot.db",
                telegram_api_url=telegram.base_url,
                smspalm_api_key=None,
                smspalm_rate=None,
                smspool_api_key=up.pool.api_key,
                smspool_base_url=up.pool.base_url,
                smspool_rate_limit=args.rate,
                spotsms_api_key=up.spot.api_key,
                spotsms_base_url=up.spot.base_url,
                spotsms_rate_limit=args.rate,
                papsms_api_key=up.pap.api_key,
                papsms_base_url=up.pap.base_url,
                papsms_rate_limit=args.rate,
                papsms_poll_seconds=args.pap_poll,
                http_port=free_port(),
                papsms_webhook=True,
                papsms_webhook_secret=WEBHOOK_SECRET,
                poll_interval_seconds=args.interval,
                order_timeout_seconds=3600,
            )
            app = await build_app(settings)
            await app.catalog.refresh()
            task = await start_bot(app, telegram)
            try:
                up.pap.webhook_url = (
                    f"http://127.0.0.1:{settings.http_port}/papsms/webhook/{WEBHOOK_SECRET}"
                )
                began = time.monotonic()
                setup = await create_orders(app, telegram, plan, rng, args.concurrency)
                live_after = time.monotonic() - began
                await asyncio.sleep(args.settle)
                jobs = app.jobs.counts()["watched"]
                rejected_before = {route: up.rejected(route) for route in ROUTES}
                codes = iter(rng.sample(range(100_000, 1_000_000), 3 * args.codes))
                loop = asyncio.get_running_loop()

                def deliver(route: str, activation: str, code: str) -> None:
                    delivered_at[f"{route}:{activation}"] = time.monotonic()
                    up.deliver(route, activation, code)

                for route in ROUTES:
                    live = up.activations(route)
                    chosen[route] = rng.sample(live, min(args.codes, len(live)))
                    for activation in chosen[route]:
                        code = f"{next(codes):06d}"
                        watcher.expected[code] = f"{route}:{activation}"
                        at = rng.uniform(0, args.window)
                        loop.call_later(at, deliver, route, activation, code)
                started = time.monotonic()
                if watcher.expected:
                    await watcher.wait(args.window + args.grace)
                # Never shorter than the delivery window: the per-tick figures need whole ticks.
                remaining = started + args.window - time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(remaining)
                ended = time.monotonic()
                await up.pap.wait_webhooks()
                jobs_end = app.jobs.counts()["watched"]
                measured_warnings = Counter(logs.counts)
                window_rejected = {
                    route: up.rejected(route) - rejected_before[route] for route in ROUTES
                }
            finally:
                await stop_bot(app, task)
    finally:
        for fake in up.all:
            await fake.stop()
        await telegram.stop()

    window = ended - started
    ticks = window / args.interval
    figures: dict[str, Figures] = {}
    for route in ROUTES:
        keys = [f"{route}:{a}" for a in chosen[route]]
        delays = [watcher.seen[k] - delivered_at[k] for k in keys if k in watcher.seen]
        figures[route] = Figures(
            route=route,
            live=setup.bought[route],
            codes=len(keys),
            seen=len(delays),
            delays=delays,
            endpoints=Counter(name for name, _, _ in up.requests(route, started, ended)),
            rejected_window=window_rejected[route],
            rejected_total=up.rejected(route),
        )
    report(args, setup, figures, ticks, window, live_after, jobs, jobs_end)
    print_cycles(up, started, ended, args.pap_poll)
    webhooks = Counter(
        "200" if a.http_status == 200 else (a.error or str(a.http_status))
        for a in up.pap.webhooks_sent
    )
    print(line("PapSMS webhooks sent (by outcome)", f"{len(up.pap.webhooks_sent)}"), end="")
    print(f"   {dict(webhooks)}")
    shutdown_warnings = logs.counts - measured_warnings
    for title, found in (("", measured_warnings), (" at shutdown", shutdown_warnings)):
        if found:
            print(f"  warnings logged{title}: {sum(found.values())}")
            for (name, msg), count in found.most_common(4):
                print(f"    {count:>6} × {name}: {msg[:90]}")
    return summary(figures, ticks, args)


def pool_verdicts(pool: Figures, ticks: float) -> tuple[float, int, bool, bool]:
    active = pool.endpoints["request/active"]
    checks = pool.endpoints["sms/check"]
    per_tick = active / ticks if ticks else math.nan
    # One partial tick at each end of the window.
    return per_tick, checks, active <= math.ceil(ticks) + 1, checks == 0


def report(
    args: argparse.Namespace,
    setup: Setup,
    figures: dict[str, Figures],
    ticks: float,
    window: float,
    live_after: float,
    jobs: int,
    jobs_end: int,
) -> None:
    print("Every provider, one catalog (real bot, FakeTelegram + SMSPool/SpotSMS/PapSMS fakes)")
    bought = " / ".join(f"{setup.bought[r]}" for r in ROUTES)
    print(line("live orders pool / spot / pap", bought) + f"   (asked {len(ROUTES)} routes)")
    print(line("upstream limit R (each, bot = fake)", f"{args.rate}/min"))
    print(
        line("poll interval / PapSMS poll", f"{args.interval:.1f} / {args.pap_poll:.0f} s")
        + "   (PapSMS webhook on)"
    )
    print(line("all orders live after", f"{live_after:.1f} s"))
    retries = sum(setup.retries.values())
    failures = sum(setup.failures.values())
    extra = f"   {dict(setup.failures)}" if setup.failures else ""
    print(line("setup: quote retries / failures", f"{retries} / {failures}") + extra)
    print(line("orders watched (all live / at end)", f"{jobs} / {jobs_end}"))
    print(line("measurement window", f"{window:.1f} s") + f"   ({ticks:.1f} poll ticks)")

    for route in ROUTES:
        f = figures[route]
        print(f"  -- {TITLES[route]}")
        print(line("codes delivered / reached Telegram", f"{f.codes} / {f.seen}"))
        endpoints = ", ".join(f"{n} {c}" for n, c in f.endpoints.most_common())
        print(line("requests in window", f"{f.requests}") + f"   ({endpoints or 'none'})")
        print(line("upstream requests per delivered code", fmt(f.per_code, 1)))
        delays = f"{fmt(f.pct(50))} / {fmt(f.pct(95))} / {fmt(f.pct(100))} s"
        if route == "papsms":
            ok = f.seen == f.codes and f.pct(95) <= PAP_TARGET_S
            print(line("delay p50 / p95 / max", delays, f"p95 <= {PAP_TARGET_S:.1f} s", ok))
        else:
            print(line("delay p50 / p95 / max", delays))
        if route == "smspool":
            per_tick, checks, active_ok, checks_ok = pool_verdicts(f, ticks)
            active = f.endpoints["request/active"]
            print(
                line(
                    "request/active per tick",
                    f"{per_tick:.2f}",
                    f"<= 1 ({active} in {ticks:.1f} ticks)",
                    active_ok,
                )
            )
            print(line("sms/check calls", f"{checks}", "0", checks_ok))
        print(
            line(
                "HTTP 429 (window / whole run)",
                f"{f.rejected_window} / {f.rejected_total}",
                "0",
                f.rejected_total == 0,
            )
        )
    total = sum(f.rejected_total for f in figures.values())
    print(line("HTTP 429 from all upstreams", f"{total}", "0", total == 0))


def print_cycles(up: Upstreams, since: float, until: float, pap_poll: float) -> None:
    """Observed cycles: the shared SMSPool fetch, and per-order polls on the other two."""
    fetches = sorted(r.at for r in up.pool.requests if r.path == "request/active")
    fetches = [at for at in fetches if since <= at <= until]
    pool_gap = percentile([b - a for a, b in itertools.pairwise(fetches)], 50)
    spot: dict[str, list[float]] = {}
    for r in up.spot.requests:
        if r.action == "getMsg" and since <= r.at <= until:
            spot.setdefault(r.params.get("rsid", ""), []).append(r.at)
    print("  -- cycles observed in the window (median gaps)")
    print(line("SMSPool request/active", f"{fmt(pool_gap)} s"))
    print(line("SpotSMS getMsg per order", f"{fmt(median_gap(spot))} s"))
    statuses = [r.at for r in up.pap.requests if pap_endpoint(r.path) == "numbers/status"]
    hooks = len(up.pap.webhooks_sent)
    scheduled = sum(1 for at in statuses if since <= at <= until) - hooks
    steady = len(up.pap.activations) / pap_poll
    print(
        line("PapSMS scheduled status calls", f"{max(scheduled, 0)}")
        + f"   (steady state {steady:.1f}/s: one per order per {pap_poll:.0f} s)"
    )


def summary(figures: dict[str, Figures], ticks: float, args: argparse.Namespace) -> dict[str, Any]:
    pool, pap = figures["smspool"], figures["papsms"]
    per_tick, checks, active_ok, checks_ok = pool_verdicts(pool, ticks)
    rejected = {route: f.rejected_total for route, f in figures.items()}
    missing = {route: f.codes - f.seen for route, f in figures.items()}
    pap_ok = not missing["papsms"] and pap.pct(95) <= PAP_TARGET_S
    figures_out: dict[str, Any] = {
        "orders": {route: f.live for route, f in figures.items()},
        "ticks": ticks,
        "pool_active_per_tick": per_tick,
        "pool_active": pool.endpoints["request/active"],
        "pool_checks": checks,
        "pool_ok": active_ok and checks_ok,
        "pap_p95_s": pap.pct(95),
        "pap_target_s": PAP_TARGET_S,
        "pap_ok": pap_ok,
        "rejected_429": sum(rejected.values()),
        "rejected_by_route": rejected,
        "missing": sum(missing.values()),
        "pap_missing": missing["papsms"],
        "per_code": {route: _clean(f.per_code) for route, f in figures.items()},
        "p95_s": {route: _clean(f.pct(95)) for route, f in figures.items()},
    }
    figures_out["pass"] = figures_out["pool_ok"] and pap_ok and figures_out["rejected_429"] == 0
    return figures_out


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=200, help="live SMSPool orders")
    parser.add_argument("--spot", type=int, default=150, help="live SpotSMS orders")
    parser.add_argument("--pap", type=int, default=150, help="live PapSMS orders")
    parser.add_argument("--codes", type=int, default=100, help="codes delivered per provider")
    parser.add_argument("--rate", type=int, default=6000, help="upstream limit per 60 s, each")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    parser.add_argument("--pap-poll", type=float, default=30.0, help="PapSMS poll interval, s")
    parser.add_argument("--window", type=float, default=15.0, help="codes arrive within, s")
    parser.add_argument("--settle", type=float, default=3.0, help="polling before codes, s")
    parser.add_argument("--grace", type=float, default=5.0, help="wait after the window, s")
    parser.add_argument("--concurrency", type=int, default=20, help="purchases in flight")
    parser.add_argument("--seed", type=int, default=17)
    add_summary_arg(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write_summary(args.summary_json, asyncio.run(bench(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
