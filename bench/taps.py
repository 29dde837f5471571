"""Taps: how many button presses and typed messages a new customer needs from /start to the
confirm screen, for the 20 most popular services x 20 most popular countries (issue 16).

How
    * The real bot (``build_app``, long polling, SQLite in a temporary directory) against
      FakeTelegram and FakeSMSPalm on 127.0.0.1; FakeSMSPalm sells the tests' catalog of 193
      services x 146 countries (``tests/fakes/catalog.load_into_palm``), every measured pair in
      stock.
    * The shop's history: orders of the last 30 days written into the database before the bot
      starts (a fixture, like the catalog): service rank i and country rank j, both in the
      catalog's order, get round(K / ((i+1)(j+1))) orders, so the shop has a clear favourite
      list. The 20 most popular services and countries are then read back from those orders,
      as the bot's own popularity query counts them.
    * Each pair is bought by a new customer (no recent picks) who sends /start, then:
      - **buttons**: presses, by callback data, the buttons of the keyboards the bot sent:
        Buy, the service (following "All services A-Z" and its pages when it is not on the
        screen), the country (likewise), the first route in stock;
      - **one line**: types "<service> <country>" in lower case (for example "whatsapp
        united states"), then presses the first route in stock (or first, when the bot offers
        several readings, the button of the right pair: one tap more);
      - **one line, ISO code**: the same with the country's code ("whatsapp us", "tinder gb").
      A press counts one tap, a typed message one; /start itself is not counted.

Targets: <= 4 taps by buttons for every pair; 1 typed line + 1 tap for every pair.

Run: ``python -m bench.taps [--parallel 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._common import TOKEN, line, make_settings
from bot.app import App, build_app
from handlers.callbacks import AzCb, CountryCb, MenuCb, RouteCb, ServiceCb
from tests.fakes.catalog import (
    COUNTRIES,
    SERVICES,
    load_into_palm,
    palm_code,
    palm_country_id,
    stock,
)
from tests.fakes.smspalm import SERVER_TWO, FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

TOP = 20
BUTTONS_TARGET = 4
LINE_TARGET = 2  # one typed line + one tap
HISTORY_K = 1000
HISTORY_RANKS = 40
HISTORY_USER = 999_999
FIRST_CUSTOMER = 100_000
MAX_STEPS = 60


@dataclass(frozen=True)
class Pair:
    service_id: int  # the shop's id
    service: str
    country: str  # the shop's key (ISO code)
    country_name: str


class Stuck(Exception):
    """The bot did not lead to the confirm screen."""


async def seed_history(app: App) -> None:
    """Orders of the last 30 days, most for the services and countries listed first."""
    services = {s.name: s.id for s in (await app.catalog.services(per_page=1000)).items}
    now = int(time.time())
    rows = []
    for i, (_, name) in enumerate(SERVICES[:HISTORY_RANKS]):
        for j, (code, _) in enumerate(COUNTRIES[:HISTORY_RANKS]):
            for n in range(round(HISTORY_K / ((i + 1) * (j + 1)))):
                created = now - (n * 7919 + i * 31 + j) % (29 * 86400)
                rows.append(
                    {
                        "user": HISTORY_USER,
                        "route": "smspalm2",
                        "service": services[name],
                        "country": code,
                        "created": created,
                    }
                )
    async with app.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO users (id, first_name, created_at) VALUES (:id, 'History', :now)",
            {"id": HISTORY_USER, "now": now},
        )
        await tx.executemany(
            "INSERT INTO orders (user_id, route, service_id, country, price, upstream_cost, "
            "cost, status, created_at, updated_at) VALUES (:user, :route, :service, :country, "
            "100, '100', 100, 'completed', :created, :created)",
            rows,
        )
    print(f"  history: {len(rows):,} orders over {HISTORY_RANKS} x {HISTORY_RANKS} pairs")


async def popular_pairs(app: App) -> list[Pair]:
    """The 20 most ordered services x the 20 most ordered countries, as the orders say."""
    since = int(time.time()) - 30 * 86400
    services = await app.db.fetchall(
        "SELECT s.id, s.name, COUNT(*) AS n FROM orders o JOIN services s ON s.id = o.service_id "
        "WHERE o.created_at >= :since GROUP BY s.id, s.name ORDER BY n DESC, s.id LIMIT :top",
        {"since": since, "top": TOP},
    )
    countries = await app.db.fetchall(
        "SELECT c.code, c.name, COUNT(*) AS n FROM orders o "
        "JOIN countries c ON c.code = o.country WHERE o.created_at >= :since "
        "GROUP BY c.code, c.name ORDER BY n DESC, c.code LIMIT :top",
        {"since": since, "top": TOP},
    )
    return [Pair(s["id"], s["name"], c["code"], c["name"]) for s in services for c in countries]


def in_stock(palm: FakeSMSPalm) -> None:
    """Every pair of the first ranks in stock: a sold-out pair cannot reach a confirm screen."""
    for service_id, _ in SERVICES[:HISTORY_RANKS]:
        for index in range(HISTORY_RANKS):
            entry = palm.prices[SERVER_TWO][(palm_country_id(index), palm_code(service_id))]
            entry[1] = entry[1] or stock(service_id, index)


# -- a customer ----------------------------------------------------------------------------------


def _find(message: Message, wanted: Callable[[str], bool]) -> str | None:
    for row in message.buttons:
        for _, data in row:
            if data is not None and wanted(data):
                return data
    return None


class Customer:
    def __init__(self, user: FakeUser) -> None:
        self.user = user
        self.taps = 0
        self.screen: Message | None = None

    async def start(self) -> Message:
        await self.user.send("/start")
        self.screen = await self.user.wait_for("👋 Hi")
        return self.screen

    async def press(self, data: str) -> Message:
        assert self.screen is not None
        self.taps += 1
        seen = self._seen()
        await self.user.click_data(self.screen, data)
        self.screen = await self.user.wait_for(lambda m: self._changed(m, seen))
        return self.screen

    async def type(self, text: str) -> Message:
        self.taps += 1
        seen = self._seen()
        await self.user.send(text)
        self.screen = await self.user.wait_for(lambda m: self._changed(m, seen))
        return self.screen

    def _seen(self) -> tuple[int, str, int]:
        screen = self.screen
        assert screen is not None
        return screen.message_id, screen.plain, screen.edits

    @staticmethod
    def _changed(message: Message, seen: tuple[int, str, int]) -> bool:
        """A new message, or the shown one edited (a page may keep the same text)."""
        return bool(message.buttons) and (message.message_id, message.edits) != (
            seen[0],
            seen[2],
        )

    async def pick(self, wanted: Callable[[str], bool], more: Callable[[str], bool]) -> None:
        """Press the wanted button; else the way to more (A-Z, then the next page)."""
        for _ in range(MAX_STEPS):
            assert self.screen is not None
            data = _find(self.screen, wanted)
            if data is not None:
                await self.press(data)
                return
            step = _find(self.screen, more)
            if step is None:
                raise Stuck(self.screen.plain[:80])
            await self.press(step)
        raise Stuck("too many pages")

    async def to_confirm(self) -> int:
        """From a routes screen: the first route in stock."""
        assert self.screen is not None
        data = _find(self.screen, lambda d: d.startswith(RouteCb.__prefix__ + ":"))
        if data is None:
            raise Stuck(self.screen.plain[:80])
        confirm = await self.press(data)
        if "Confirm your purchase" not in confirm.plain:
            raise Stuck(confirm.plain[:80])
        return self.taps


def _next_page(current: list[int]) -> Callable[[str], bool]:
    """A-Z first; then the ▶ of its pager (the page after the one shown)."""

    def more(data: str) -> bool:
        if not data.startswith(AzCb.__prefix__ + ":"):
            return False
        page = AzCb.unpack(data).page
        if page > current[0] or (page == 0 and current[0] == -1):
            current[0] = page
            return True
        return False

    return more


async def by_buttons(user: FakeUser, pair: Pair) -> int:
    customer = Customer(user)
    menu = await customer.start()
    await customer.press(MenuCb(to="buy").pack())
    assert menu is not None
    service = ServiceCb(sid=pair.service_id).pack()
    await customer.pick(lambda d: d == service, _next_page([-1]))
    country = CountryCb(sid=pair.service_id, cc=pair.country).pack()
    await customer.pick(lambda d: d == country, _next_page([-1]))
    return await customer.to_confirm()


async def by_line(user: FakeUser, pair: Pair) -> int:
    return await _line(user, pair, f"{pair.service.lower()} {pair.country_name.lower()}")


async def by_code(user: FakeUser, pair: Pair) -> int:
    return await _line(user, pair, f"{pair.service.lower()} {pair.country.lower()}")


async def _line(user: FakeUser, pair: Pair, text: str) -> int:
    customer = Customer(user)
    await customer.start()
    screen = await customer.type(text)
    country = CountryCb(sid=pair.service_id, cc=pair.country).pack()
    if _find(screen, lambda d: d.startswith(RouteCb.__prefix__ + ":")) is None:
        await customer.pick(lambda d: d == country, lambda d: False)  # a reading offered
    return await customer.to_confirm()


async def measure(
    telegram: FakeTelegram,
    pairs: list[Pair],
    way: Callable[[FakeUser, Pair], object],
    first_id: int,
    parallel: int,
) -> tuple[list[int], list[tuple[Pair, str]]]:
    taps: list[int] = []
    stuck: list[tuple[Pair, str]] = []
    gate = asyncio.Semaphore(parallel)

    async def one(index: int, pair: Pair) -> None:
        async with gate:
            user = telegram.user(first_id + index, first_name=f"C{index}")
            try:
                taps.append(await way(user, pair))  # type: ignore[misc]
            except (Stuck, AssertionError) as exc:
                stuck.append((pair, str(exc)[:120]))

    await asyncio.gather(*(one(index, pair) for index, pair in enumerate(pairs)))
    return taps, stuck


def report(name: str, taps: list[int], stuck: list[tuple[Pair, str]], target: int) -> None:
    worst = max(taps) if taps else 0
    spread = ", ".join(f"{n} taps: {c}" for n, c in sorted(Counter(taps).items()))
    ok = not stuck and worst <= target
    print(line(f"{name}: pairs reaching confirm", f"{len(taps)}/{len(taps) + len(stuck)}"))
    print(line(f"{name}: taps, worst pair", str(worst), f"<= {target} every pair", ok))
    print(line(f"{name}: taps, mean", f"{sum(taps) / max(1, len(taps)):.2f}"))
    print(f"    ({spread})")
    for pair, why in stuck[:5]:
        print(f"    stuck: {pair.service} / {pair.country_name}: {why}")


async def main_async(parallel: int) -> None:
    telegram, palm = FakeTelegram(token=TOKEN), FakeSMSPalm()
    load_into_palm(palm)
    in_stock(palm)
    await telegram.start()
    await palm.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp) / "bot.db",
            telegram_api_url=telegram.base_url,
            smspalm_api_key=palm.api_key,
            smspalm_base_url=palm.base_url,
            throttle_burst=100_000,
            poll_interval_seconds=5,
        )
        app = await build_app(settings)
        await app.catalog.refresh()
        await seed_history(app)
        task = asyncio.create_task(app.run(handle_signals=False, polling_timeout=1))
        try:
            pairs = await popular_pairs(app)
            print(
                f"taps: {len(SERVICES)} services x {len(COUNTRIES)} upstream countries; "
                f"{TOP} x {TOP} popular pairs, {parallel} customers at a time"
            )
            started = time.monotonic()
            taps, stuck = await measure(telegram, pairs, by_buttons, FIRST_CUSTOMER, parallel)
            report("buttons", taps, stuck, BUTTONS_TARGET)
            taps, stuck = await measure(telegram, pairs, by_line, 2 * FIRST_CUSTOMER, parallel)
            report("one line", taps, stuck, LINE_TARGET)
            taps, stuck = await measure(telegram, pairs, by_code, 3 * FIRST_CUSTOMER, parallel)
            report("one line, ISO code", taps, stuck, LINE_TARGET)
            print(line("run time", f"{time.monotonic() - started:.1f} s"))
        finally:
            await app.stop()
            await task
            await app.close()
            await palm.stop()
            await telegram.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parallel", type=int, default=20, help="customers at a time")
    args = parser.parse_args()
    asyncio.run(main_async(args.parallel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
