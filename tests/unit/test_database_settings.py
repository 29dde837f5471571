"""DATABASE_URL and DATABASE_PATH; concurrent starts on one new PostgreSQL database."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.config import Settings
from storage.db import Database
from storage.migrate import open_database
from tests.databases import DatabaseTarget, create_database, drop_database, pg_url

TOKEN = "123456789:AAH-secret-token-value-0000000000"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, bot_token=TOKEN, **values)  # type: ignore[arg-type]


def test_database_url_defaults_to_the_sqlite_path_and_wins_over_it() -> None:
    assert _settings().database == "sqlite:///data/bot.db"
    assert _settings(database_path="x/shop.db").database == "sqlite:///x/shop.db"
    url = "postgresql://shop:s3cret-pw@db:5432/numbot"
    settings = _settings(database_path="x/shop.db", database_url=url)
    assert settings.database == url
    assert "s3cret-pw" in settings.secrets()  # redacted from every log line
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in repr(Database(url))


def test_a_database_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        _settings(database_url="mysql://u@h/d")


async def test_instances_starting_together_migrate_once(database_target: DatabaseTarget) -> None:
    if database_target.url is None:
        pytest.skip("PostgreSQL: the advisory lock around migrations")
    name = f"t_numbot_race_{uuid.uuid4().hex[:8]}"
    await create_database(name)  # empty: no template
    try:
        dbs = [Database(pg_url(name), pool_size=2) for _ in range(4)]
        await asyncio.gather(*(open_database(db) for db in dbs))
        versions = [await db.fetchval("SELECT version_num FROM alembic_version") for db in dbs]
        assert len(set(versions)) == 1 and versions[0] is not None
        assert await dbs[0].fetchval("SELECT COUNT(*) FROM alembic_version") == 1
        for db in dbs:
            await db.close()
    finally:
        await drop_database(name)
