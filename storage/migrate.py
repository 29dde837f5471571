"""Migrations: Alembic revisions in `storage/alembic/versions/`, on SQLite and PostgreSQL.

`upgrade(db)` runs at every start (and `python -m bot migrate`). On PostgreSQL it holds an
advisory lock meanwhile, so instances starting together take turns: one applies the revisions,
the others wait and then find them applied.

A SQLite database made before Alembic (versioned by `PRAGMA user_version` and the plain
`storage/migrations/NNN_*.sql` files) is first brought to 010 by those files, then stamped
with the baseline revision, which describes exactly that schema; later revisions follow.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from storage.db import Database

log = logging.getLogger(__name__)

BASELINE = "0001"
LEGACY_LAST = 10  # the last plain-SQL migration; everything after it is an Alembic revision


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "storage:alembic")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(db: Database) -> None:
    from storage.db import MIGRATION_LOCK

    if db.is_sqlite:
        assert db.path is not None
        await asyncio.to_thread(legacy_upgrade, db.path)
    async with db.connection() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: Any) -> None:
    config = alembic_config(connection)
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables and "users" in tables:
        # The plain-SQL files that landed after 010 on some development databases are
        # revisions: 013_rentals 0002, 012_leases 0003, 014_popular 0004.
        indexes = {i["name"] for i in inspect(connection).get_indexes("orders")}
        made = BASELINE
        if "rentals" in tables:
            made = "0002"
        if made == "0002" and "job_leases" in tables:
            made = "0003"
        if made == "0003" and "orders_bought_since" in indexes:
            made = "0004"
        log.info("Stamping a database made before Alembic with revision %s", made)
        command.stamp(config, made)
    command.upgrade(config, "head")


def legacy_upgrade(path: Path) -> None:
    """Apply the plain-SQL migrations a pre-Alembic SQLite database has not had yet (up to
    010). Does nothing to a new database or one Alembic already manages."""
    if not path.exists():
        return
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alembic_version" in names or "users" not in names:
            return
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for file in sorted(
            (f for f in resources.files("storage.migrations").iterdir() if f.name[-4:] == ".sql"),
            key=lambda f: f.name,
        ):
            version = int(file.name.split("_", 1)[0])
            if version <= current or version > LEGACY_LAST:
                continue
            log.info("Applying legacy migration %s", file.name)
            script = file.read_text(encoding="utf-8")
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};\nCOMMIT;"
            )
    finally:
        conn.close()
