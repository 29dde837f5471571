"""The databases every test that builds the bot runs on: SQLite (the embedded default), and
PostgreSQL + Redis (`database_target` is parametrised over both; ids `[sqlite]`, `[postgresql]`).

On PostgreSQL the migrated schema is built once per worker as a template database
(`t_numbot_tpl_<worker>_<pid>`); each test gets `CREATE DATABASE ... TEMPLATE` of it, dropped
after the test, and its own Redis key prefix. NUMBOT_TEST_PG_URL / NUMBOT_TEST_REDIS_URL point at
the servers (default: postgres@127.0.0.1:5432, redis://127.0.0.1:6379/0); when they are not
reachable the `[postgresql]` variants are skipped with one line saying so. `-k sqlite` or
`-k postgresql` picks one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import make_url

from storage.db import Database, safe_url
from storage.migrate import open_database

PG_URL = os.environ.get("NUMBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NUMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KINDS = ("sqlite", "postgresql")
_counter = itertools.count(1)


def _tag() -> str:
    """Unique to this process (and xdist worker), for database names."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def pg_admin(sql: str | None = None, server: str = PG_URL) -> None:
    """Run one statement on the PostgreSQL server at `server` (None: only connect, to see
    that it answers); the benches use it too."""
    url = make_url(server)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=3,
    )
    try:
        if sql is not None:
            await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str, template: str | None = None) -> None:
    suffix = f" TEMPLATE {template}" if template else ""
    await pg_admin(f"CREATE DATABASE {name}{suffix}")


async def drop_database(name: str) -> None:
    await pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _make_template(name: str) -> None:
    await drop_database(name)
    await create_database(name)
    db = Database(pg_url(name), pool_size=1)
    await open_database(db)  # migrates
    await db.close()


@dataclass(frozen=True)
class DatabaseTarget:
    """What a test's settings need: DATABASE_URL (None: SQLite at DATABASE_PATH) and Redis."""

    url: str | None
    redis_url: str | None = None
    redis_prefix: str | None = None

    def settings(self) -> dict[str, object]:
        values: dict[str, object] = {}
        if self.url is not None:
            values["database_url"] = self.url
            values["database_pool_size"] = 4
        if self.redis_url is not None:
            values["redis_url"] = self.redis_url
            values["redis_prefix"] = self.redis_prefix
        return values


class _Template:
    """The migrated template database, made on first use (once per xdist worker)."""

    def __init__(self) -> None:
        self.name = f"t_numbot_tpl_{_tag()}"
        self.made = False
        self.skip: str | None = None

    async def get(self) -> str:
        if self.skip is not None:
            pytest.skip(self.skip)
        if not self.made:
            try:
                await _reachable_redis()
                await _make_template(self.name)
            except (OSError, asyncpg.PostgresError, TimeoutError, RedisError) as exc:
                self.skip = (
                    f"PostgreSQL at {safe_url(PG_URL)} or Redis at {REDIS_URL} not reachable "
                    f"({type(exc).__name__}); start them or set NUMBOT_TEST_PG_URL / "
                    "NUMBOT_TEST_REDIS_URL"
                )
                pytest.skip(self.skip)
            self.made = True
        return self.name


@pytest.fixture(scope="session")
def pg_template() -> Iterator[_Template]:
    template = _Template()
    yield template
    if template.made:
        asyncio.run(drop_database(template.name))


@pytest.fixture(params=KINDS)
async def database_target(
    request: pytest.FixtureRequest, pg_template: _Template
) -> AsyncIterator[DatabaseTarget]:
    """Every test that builds the bot runs twice: on SQLite (the embedded default), and on
    PostgreSQL + Redis (a fresh database from the template, a fresh Redis key prefix)."""
    if request.param == "sqlite":
        yield DatabaseTarget(None)
        return
    template = await pg_template.get()
    name = f"t_numbot_{_tag()}_{next(_counter)}"
    await create_database(name, template)
    prefix = f"numbot-test-{uuid.uuid4().hex}"
    yield DatabaseTarget(pg_url(name), REDIS_URL, prefix)
    await drop_database(name)
    await _clear_redis(prefix)


async def _reachable_redis() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _clear_redis(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def database(database_target: DatabaseTarget, tmp_path: Path) -> AsyncIterator[Database]:
    """A connected, migrated `Database` of the run's kind (SQLite file or PostgreSQL)."""
    db = Database(database_target.url or f"sqlite:///{tmp_path / 'bot.db'}", pool_size=4)
    await open_database(db)
    yield db
    await db.close()
