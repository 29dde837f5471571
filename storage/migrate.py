"""Migrations: Alembic revisions in `storage/alembic/versions/`, on SQLite and PostgreSQL.

`upgrade(db)` runs at every start (and `python -m bot migrate`). On PostgreSQL it holds an
advisory lock meanwhile, so instances starting together take turns: one applies the revisions,
the others wait and then find them applied.

A SQLite database made before Alembic (versioned by `PRAGMA user_version` and the plain
`storage/migrations/NNN_*.sql` files) is first brought to 010 by those files, then stamped
with the baseline revision, which describes exactly that schema; later revisions follow.

A database already at the newest revision (every restart but the first after a deploy with a
new revision) is recognised without Alembic: the head revision ids are read from the revision
files as text and compared with `alembic_version`. Alembic (about 12 MB of memory once
imported, with its script directory) is imported and run only when something is to be done.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from alembic.config import Config

    from storage.db import Database

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x6E756D62  # "numb": the advisory lock instances take turns on
BASELINE = "0001"
LEGACY_LAST = 10  # the last plain-SQL migration; everything after it is an Alembic revision


# `revision: str = "0004"` and `down_revision: str | None = "0003"` (or a tuple, or None), as
# Alembic's template writes them at the top of each revision file.
_REVISION = re.compile(r"^revision\b[^=\n]*=\s*(.+)$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=\s*(.+)$", re.M)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def script_heads(versions: Traversable | None = None) -> frozenset[str]:
    """The head revision(s) of `storage/alembic/versions` (or of `versions`), read from the
    files as text (no Alembic import): every revision no other names as its down_revision."""
    revisions: set[str] = set()
    parents: set[str] = set()
    folder = versions if versions is not None else resources.files("storage.alembic.versions")
    for file in folder.iterdir():
        if not file.name.endswith(".py") or file.name.startswith("_"):
            continue
        source = file.read_text(encoding="utf-8")
        revision = _REVISION.search(source)
        if revision is None:
            continue
        revisions.update(_QUOTED.findall(revision.group(1)))
        down = _DOWN_REVISION.search(source)
        if down is not None:
            parents.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - parents)


def _stored_versions(connection: Any) -> frozenset[str] | None:
    """The revision(s) in `alembic_version`; None when the table is not there."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(str(row[0]) for row in rows)


async def at_head(db: Database) -> bool:
    """Whether the database is at the newest revision of the files, so nothing is to be done
    (a read; the revisions only ever move forward)."""
    async with db.snapshot() as conn:
        stored = await conn.run_sync(_stored_versions)
    return stored is not None and stored == script_heads()


def alembic_config(connection: Any = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "storage:alembic")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def open_database(db: Database) -> Database:
    """Connect `db` and bring its schema to the newest revision: what every start does."""
    await db.connect()
    await upgrade(db)
    return db


async def upgrade(db: Database) -> None:
    if db.is_sqlite:
        assert db.path is not None
        await asyncio.to_thread(legacy_upgrade, db.path)
    if await at_head(db):
        return
    async with db.connection() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: Any) -> None:
    from alembic import command

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
