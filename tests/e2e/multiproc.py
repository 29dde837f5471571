"""Several `python -m bot` processes behind the fake Bot API, as in production: webhook mode, one
database and one Redis shared by all of them, each instance on its own port, the fake delivering
updates round-robin across them as a reverse proxy would (`FakeTelegram.route_webhook`).

The fakes (Telegram, the upstreams) run in the test process; each subprocess's environment
points at them. A test can SIGKILL an instance (no shutdown at all: what a lost machine does),
start it again, and read the shared database directly afterwards through the storage layer.

The database is a parameter: SQLite in WAL mode shared by the processes (the default), or a
fresh PostgreSQL database per test with `NUMBOT_TEST_DATABASE=postgresql` (needs `DATABASE_URL`
support in the bot; PostgreSQL at `NUMBOT_TEST_PG_URL`, default
`postgresql://postgres@127.0.0.1:5432/postgres`, used only to create and drop the database).

Every log line of every process is kept in a file per start; `Cluster.stop()` SIGTERMs the
instances still running, expects a clean exit, and checks that no secret (the token, the
webhook secret, API keys) reached any log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

import bot as bot_package
from bot.config import Settings
from bot.factory.database import create_database, create_repositories
from storage.db import Database
from tests.conftest import ADMIN_ID, TOKEN, free_port
from tests.fakes.telegram import FakeTelegram
from tests.redis_support import SharedRedis

CHECKOUT = Path(bot_package.__file__).resolve().parent.parent
PUBLIC_URL = "https://shop.example.com"  # what every instance gives setWebhook
WEBHOOK_URL = f"{PUBLIC_URL}/telegram/webhook"
SECRET = "multiproc-Webhook_secret-7"
READY_SECONDS = 90.0  # a cold `python -m bot` on a busy 2-core machine
STOP_SECONDS = 45.0
PG_ADMIN_URL = os.environ.get(
    "NUMBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# -- the shared database ----------------------------------------------------------------------


@dataclass(frozen=True)
class SharedDatabase:
    """Where the instances keep their data: an environment for `python -m bot` and the same
    thing as Settings values for a test that reads the database directly."""

    kind: str  # "sqlite" | "postgresql"
    env: dict[str, str]
    values: dict[str, Any]


def _database_kind() -> str:
    kind = os.environ.get("NUMBOT_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
    if kind not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"NUMBOT_TEST_DATABASE={kind!r}: use sqlite or postgresql")
    return kind


@contextlib.asynccontextmanager
async def shared_database(
    tmp_path: Path, kind: str | None = None
) -> AsyncIterator[SharedDatabase]:
    """The database of one test: a SQLite file, or a PostgreSQL database made and dropped.
    `kind` comes from the test's `database_target` parameter (tests/databases.py); without it,
    from NUMBOT_TEST_DATABASE."""
    if (kind or _database_kind()) == "sqlite":
        path = tmp_path / "db" / "bot.db"
        yield SharedDatabase("sqlite", {"DATABASE_PATH": str(path)}, {"database_path": path})
        return
    if "database_url" not in Settings.model_fields:
        pytest.skip("NUMBOT_TEST_DATABASE=postgresql: this bot has no DATABASE_URL setting yet")
    try:
        import asyncpg  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        pytest.skip("NUMBOT_TEST_DATABASE=postgresql needs asyncpg installed")
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except Exception as exc:
        pytest.skip(
            f"PostgreSQL is not reachable ({type(exc).__name__}); start it or set "
            "NUMBOT_TEST_PG_URL, or unset NUMBOT_TEST_DATABASE to run on SQLite"
        )
    name = f"numbot_mp_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        url = f"{base}/{name}"
        yield SharedDatabase("postgresql", {"DATABASE_URL": url}, {"database_url": url})
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# -- one instance -----------------------------------------------------------------------------


@dataclass
class BotProcess:
    """One `python -m bot` instance: its port, its environment, its logs across restarts."""

    name: str
    port: int
    env: dict[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    log_paths: list[Path] = field(default_factory=list)
    _log: IO[bytes] | None = None

    @property
    def target(self) -> str:
        """Where the proxy (the fake) delivers this instance's share of the updates."""
        return f"http://127.0.0.1:{self.port}/telegram/webhook"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        path = self.workdir / f"{self.name}-{self.starts}.log"
        self.log_paths.append(path)
        self._log = path.open("wb")  # a file, not a pipe: nothing blocks, a SIGKILL loses nothing
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = READY_SECONDS) -> None:  # noqa: ASYNC109
        """Until `/readyz` answers 200 (setWebhook done, database and Redis answering)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.process.returncode} before it was "
                        f"ready:\n{self.logs()[-3000:]}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if answer.status_code == 200:
                        return
                if loop.time() > deadline:
                    raise AssertionError(
                        f"{self.name} not ready within {timeout}s:\n{self.logs()[-3000:]}"
                    )
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no shutdown, nothing released, no answer to what is in flight."""
        assert self.process is not None and self.running, f"{self.name} is not running"
        self.process.kill()
        await self.process.wait()
        self._close_log()

    async def terminate(self, timeout: float = STOP_SECONDS) -> int:  # noqa: ASYNC109
        """SIGTERM and wait for the exit; returns the exit code (SIGKILL after `timeout`)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._close_log()
        assert self.process.returncode is not None
        return self.process.returncode

    def logs(self) -> str:
        """Everything this instance logged, every start in order."""
        return "\n".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# -- several instances ------------------------------------------------------------------------


class Cluster:
    """N instances of the bot on one database and one Redis, behind the fake Bot API."""

    def __init__(
        self,
        telegram: FakeTelegram,
        redis: SharedRedis,
        database: SharedDatabase,
        workdir: Path,
        count: int = 2,
        env: dict[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.telegram = telegram
        self.redis = redis
        self.database = database
        self.workdir = workdir
        self.secrets = [TOKEN.split(":", 1)[1], SECRET, *secrets]
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # The instances run the code this test imported, whatever is installed.
            "PYTHONPATH": str(CHECKOUT),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram.base_url,
            "ADMIN_IDS": str(ADMIN_ID),
            "LOG_LEVEL": "INFO",
            "HTTP_HOST": "127.0.0.1",
            "WEBHOOK_BASE_URL": PUBLIC_URL,
            "WEBHOOK_SECRET": SECRET,
            "REDIS_URL": redis.url,
            "REDIS_PREFIX": redis.prefix,
            "BACKUP_DIR": str(workdir / "backups"),
            "HTTP_TIMEOUT_SECONDS": "5",
            # Tests click faster than any person (throttling has tests of its own).
            "THROTTLE_BURST": "10000",
            **database.env,
            **(env or {}),
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.bots = []
        for i in range(count):
            port = free_port()
            env = {**self.env, "HTTP_PORT": str(port)}
            self.bots.append(BotProcess(f"bot{i}", port, env, workdir))

    def __getitem__(self, index: int) -> BotProcess:
        return self.bots[index]

    async def start(self, at_once: bool = False, ready_seconds: float = READY_SECONDS) -> None:
        """Start every instance and wait until each is ready; the fake round-robins the
        deliveries across them. The first one creates the database alone, unless `at_once`
        (then they all migrate the fresh database concurrently)."""
        self.telegram.route_webhook(WEBHOOK_URL, *(bot.target for bot in self.bots))
        first, rest = (self.bots[:0], self.bots) if at_once else (self.bots[:1], self.bots[1:])
        for bot in first:
            await bot.start()
            await bot.wait_ready(ready_seconds)
        await asyncio.gather(*(bot.start() for bot in rest))
        await asyncio.gather(*(bot.wait_ready(ready_seconds) for bot in rest))

    async def restart(self, index: int) -> None:
        """Start instance `index` again (after a kill or a stop) and wait until it is ready."""
        bot = self.bots[index]
        if bot.running:
            assert await bot.terminate() == 0, bot.logs()[-3000:]
        await bot.start()
        await bot.wait_ready()

    def handled_by(self, update_id: int) -> BotProcess:
        """The instance that answered this update 2xx."""
        ok = [d for d in self.telegram.deliveries_of(update_id) if d.ok]
        assert ok, f"update {update_id} was not handled: {self.telegram.deliveries_of(update_id)}"
        return self.by_target(ok[-1].target)

    def by_target(self, target: str) -> BotProcess:
        return next(bot for bot in self.bots if bot.target == target)

    def logged(self, text: str) -> list[BotProcess]:
        """The instances whose logs contain `text`."""
        return [bot for bot in self.bots if text in bot.logs()]

    async def stop(self) -> None:
        """SIGTERM every running instance; each must exit 0. Then no secret in any log."""
        running = [bot for bot in self.bots if bot.running]
        codes = await asyncio.gather(*(bot.terminate() for bot in running))
        problems = [
            f"{bot.name} exited with {code}:\n{bot.logs()[-3000:]}"
            for bot, code in zip(running, codes, strict=True)
            if code != 0
        ]
        self.check_logs()
        assert not problems, "\n".join(problems)

    async def kill_all(self) -> None:
        for bot in self.bots:
            if bot.running:
                await bot.kill()

    def check_logs(self) -> None:
        for bot in self.bots:
            logs = bot.logs()
            leaked = [s for s in self.secrets if s and s in logs]
            assert not leaked, f"{bot.name} logged a secret ({len(leaked)} of them)"

    # -- the shared database, read directly -----------------------------------------------------

    def settings(self, **overrides: Any) -> Settings:
        """Settings that open the shared database (for reading it from the test)."""
        values: dict[str, Any] = {
            "bot_token": TOKEN,
            "telegram_api_url": self.telegram.base_url,
            "http_port": 0,
            **self.database.values,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[Database]:
        """The shared database through the storage layer (what the instances use)."""
        db = await create_database(self.settings())
        try:
            yield db
        finally:
            await db.close()

    async def ledger_mismatches(self) -> list[tuple[int, int, int]]:
        """(user, balance, ledger sum) for every balance that is not its ledger's sum."""
        async with self.db() as db:
            return await create_repositories(db).ledger.mismatches()

    async def check_ledger(self) -> None:
        mismatches = await self.ledger_mismatches()
        assert mismatches == [], mismatches


@contextlib.asynccontextmanager
async def cluster(
    telegram: FakeTelegram,
    redis: SharedRedis,
    tmp_path: Path,
    count: int = 2,
    env: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    at_once: bool = False,
    kind: str | None = None,
) -> AsyncIterator[Cluster]:
    """A started cluster (see `Cluster.start`); at the end every balance is checked against its
    ledger, then the instances are stopped with SIGTERM and their logs checked. On a failure
    they are killed."""
    async with shared_database(tmp_path, kind) as database:
        made = Cluster(telegram, redis, database, tmp_path / "cluster", count, env, secrets)
        try:
            await made.start(at_once=at_once)
            yield made
            await made.check_ledger()
            await made.stop()
        except BaseException:
            for bot in made.bots:  # shown by pytest with the failure
                print(f"---- {bot.name} (last lines) ----\n{bot.logs()[-4000:]}")
            raise
        finally:
            await made.kill_all()
