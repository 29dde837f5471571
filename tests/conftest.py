"""Shared fixtures: the fakes on 127.0.0.1 and a harness that runs the real bot against them."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.app import App, build_app
from bot.config import Settings
from tests.fakes.cryptopay import FakeCryptoPay
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser

if TYPE_CHECKING:
    from tests.databases import DatabaseTarget

pytest_plugins = ["tests.databases"]  # the database fixtures (SQLite, or PostgreSQL + Redis)

TOKEN = "123456789:AAH-test-token-for-numbot-e2e-000000"
ADMIN_ID = 1


class BotHarness:
    """Starts and stops the whole bot (long polling or webhook mode, scheduler, database) like
    `python -m bot`."""

    def __init__(self, settings: Settings, telegram: FakeTelegram) -> None:
        self.settings = settings
        self.telegram = telegram
        self.app: App | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, refresh_catalog: bool = True) -> App:
        app = await build_app(self.settings)
        if refresh_catalog:
            await app.catalog.refresh()
        self.app = app
        polls_before = len(self.telegram.calls_to("getUpdates"))
        self._task = asyncio.create_task(app.run(handle_signals=False, polling_timeout=1))
        for _ in range(500):
            if self._task.done():
                await self._task  # start-up failed: raise its error here
            if app.webhook is not None and app.readiness.serving:
                break  # webhook mode: setWebhook done
            if len(self.telegram.calls_to("getUpdates")) > polls_before:
                break
            await asyncio.sleep(0.01)
        return app

    async def stop(self, graceful: bool = True) -> None:
        if self.app is None:
            return
        await self._stop_polling(self.app)
        await self.app.close(graceful=graceful)
        self.app = None

    async def crash(self) -> None:
        """As close to a kill as a test gets: the work running now (handlers, jobs, broadcast
        copies) is cancelled where it stands, as `App.close(graceful=False)` does, and only
        then does polling stop. Stopping polling first would close the bot session under that
        work, so its requests would fail (and be recorded as failed) before it is cancelled."""
        if self.app is None:
            return
        app, self.app = self.app, None
        await app.close(graceful=False)
        await self._stop_polling(app)

    async def _stop_polling(self, app: App) -> None:
        """Stop long polling (or webhook serving) and wait for it to end."""
        if self._task is not None and not self._task.done():
            await app.stop()
            await asyncio.wait_for(self._task, 10)

    async def restart(self) -> App:
        await self.stop()
        return await self.start()

    async def check_ledger(self) -> None:
        """Every balance equals the sum of its ledger rows."""
        assert self.app is not None
        mismatches = await self.app.wallet.ledger.mismatches()
        assert mismatches == [], mismatches


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(token=TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def palm() -> AsyncIterator[FakeSMSPalm]:
    fake = FakeSMSPalm()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def cryptopay() -> AsyncIterator[FakeCryptoPay]:
    fake = FakeCryptoPay()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def smspm() -> AsyncIterator[FakeSMSPM]:
    fake = FakeSMSPM()
    await fake.start()
    yield fake
    await fake.stop()


_ports = random.SystemRandom()  # not the seedable module state: workers must not agree


def free_port() -> int:
    """A port free now for a listener a test starts later (often another process).

    Not from the kernel's ephemeral range (`bind(0)`): outgoing connections of the other xdist
    workers take ports from that range too, and one of them can take this port before the
    listener binds it. Below the range only explicit binds compete."""
    for _ in range(200):
        port = _ports.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def sms_settings(smspm: FakeSMSPM, **overrides: Any) -> dict[str, Any]:
    """Settings that turn on outbound SMS against the fake, with the report endpoint."""
    port = free_port()
    values: dict[str, Any] = {
        "smspm_hash": smspm.hash,
        "smspm_token": smspm.token,
        "smspm_base_url": smspm.base_url,
        "smspm_price_default": "0.10",
        "smspm_rate_limit": 6000,
        "smspm_poll_seconds": 30,
        "http_port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
    }
    values.update(overrides)
    return values


@pytest.fixture
def make_settings(
    tmp_path: Path, telegram: FakeTelegram, palm: FakeSMSPalm, database_target: DatabaseTarget
) -> Callable[..., Settings]:
    """Settings for the bot under test; on PostgreSQL (NUMBOT_TEST_DATABASE=postgresql) with
    the test's own database and Redis prefix (tests/databases.py)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "telegram_api_url": telegram.base_url,
            "database_path": tmp_path / "data" / "bot.db",
            "admin_ids": str(ADMIN_ID),
            "smspalm_api_key": palm.api_key,
            "smspalm_base_url": palm.base_url,
            "smspalm_rate": "0.001",
            "smspalm_rate_limit": 6000,
            "markup_percent": 30,
            "poll_interval_seconds": 0.2,
            "order_timeout_seconds": 600,
            "http_timeout_seconds": 2,
            # Tests click faster than any person: throttling is tested on its own
            # (tests/e2e/test_protection.py sets a real bucket).
            "throttle_burst": 10_000,
            "backup_dir": tmp_path / "backups",  # never the checkout's data/backups
            # No HTTP listener unless a test asks for one (http_port=free_port()).
            "http_port": 0,
            **database_target.settings(),
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def harness_factory(
    make_settings: Callable[..., Settings], telegram: FakeTelegram
) -> AsyncIterator[Callable[..., BotHarness]]:
    harnesses: list[BotHarness] = []

    def make(**overrides: Any) -> BotHarness:
        harness = BotHarness(make_settings(**overrides), telegram)
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        if harness.app is not None:
            await harness.check_ledger()
        await harness.stop()


@pytest.fixture
async def running(harness_factory: Callable[..., BotHarness]) -> AsyncIterator[BotHarness]:
    harness = harness_factory()
    await harness.start()
    yield harness


@pytest.fixture
def admin(telegram: FakeTelegram) -> FakeUser:
    return telegram.user(ADMIN_ID, first_name="Owner", username="owner")


@pytest.fixture
def alice(telegram: FakeTelegram) -> FakeUser:
    return telegram.user(1001, first_name="Alice", username="alice")


@pytest.fixture
def bob(telegram: FakeTelegram) -> FakeUser:
    return telegram.user(1002, first_name="Bob", username="bob")


async def fund(admin: FakeUser, user: FakeUser, amount: str) -> None:
    """Credit a user through the real admin command (the user must have started the bot)."""
    await admin.send(f"/addbalance {user.id} {amount}")
    await admin.wait_for("Credited")
