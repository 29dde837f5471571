"""The database every test runs on: SQLite (default), or PostgreSQL with
NUMBOT_TEST_DATABASE=postgresql (then Redis too, with a key prefix per test).

On PostgreSQL the migrated schema is built once per session as a template database
(`t_numbot_tpl_<pid>`); each test gets `CREATE DATABASE t_numbot_<pid>_<n> TEMPLATE ...`, dropped
after it. NUMBOT_TEST_PG_URL points at the server (default the local one: postgres@127.0.0.1).
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
from sqlalchemy import make_url

from storage.db import Database

PG_URL = os.environ.get("NUMBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("NUMBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENABLE = (
    "set NUMBOT_TEST_DATABASE=postgresql (with PostgreSQL at NUMBOT_TEST_PG_URL and Redis at "
    "NUMBOT_TEST_REDIS_URL) to run the suite on PostgreSQL + Redis"
)
_counter = itertools.count(1)


def on_postgres() -> bool:
    return os.environ.get("NUMBOT_TEST_DATABASE", "sqlite").lower() in ("postgresql", "postgres")


def pg_url(database: str) -> str:
    return make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=3,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str, template: str | None = None) -> None:
    suffix = f" TEMPLATE {template}" if template else ""
    await _admin(f"CREATE DATABASE {name}{suffix}")


async def drop_database(name: str) -> None:
    await _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _make_template(name: str) -> None:
    await drop_database(name)
    await create_database(name)
    db = Database(pg_url(name), pool_size=1)
    await db.connect()  # migrates
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


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """The migrated template database's name (None on SQLite)."""
    if not on_postgres():
        yield None
        return
    name = f"t_numbot_tpl_{os.getpid()}"
    try:
        asyncio.run(_make_template(name))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}): {ENABLE}")
    yield name
    asyncio.run(drop_database(name))


@pytest.fixture
async def database_target(pg_template: str | None) -> AsyncIterator[DatabaseTarget]:
    if pg_template is None:
        yield DatabaseTarget(None)
        return
    name = f"t_numbot_{os.getpid()}_{next(_counter)}"
    await create_database(name, pg_template)
    prefix = f"numbot-test-{uuid.uuid4().hex}"
    yield DatabaseTarget(pg_url(name), REDIS_URL, prefix)
    await drop_database(name)
    await _clear_redis(prefix)


async def _clear_redis(prefix: str) -> None:
    from redis.asyncio import Redis

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
    await db.connect()
    yield db
    await db.close()
