"""Migrations: the Alembic revisions build exactly `storage/schema.py`, on SQLite and on
PostgreSQL, and a SQLite database made by the old plain-SQL runner (user_version 10) is brought
under Alembic with its data intact."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shop.models import LedgerKind
from storage.db import Database
from storage.migrate import LEGACY_LAST, open_database
from storage.promos import PromoRepo
from storage.schema import metadata
from storage.users import LedgerRepo, UserRepo


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return [
        diff
        for diff in compare_metadata(context, metadata)
        # SQLite cannot reflect expression indexes (lower(...)): Alembic skips them.
        if not (
            isinstance(diff, tuple)
            and diff[0] in ("add_index", "remove_index")
            and connection.dialect.name == "sqlite"
            and "lower" in str(diff[1])
        )
    ]


async def test_the_revisions_build_the_schema_module(database: Database) -> None:
    async with database.engine.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []
    head = await database.fetchval("SELECT version_num FROM alembic_version")
    assert head is not None


def _legacy_database(path: Path) -> None:
    """What the old runner made: every .sql file up to 010, `PRAGMA user_version` = 10."""
    conn = sqlite3.connect(path, isolation_level=None)
    files = sorted(
        (f for f in resources.files("storage.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    for file in files:
        version = int(file.name.split("_", 1)[0])
        if version > LEGACY_LAST:
            continue
        conn.executescript(
            f"BEGIN;\n{file.read_text(encoding='utf-8')}\nPRAGMA user_version={version};\nCOMMIT;"
        )
    now = 1_700_000_000
    conn.execute(
        "INSERT INTO users (id, username, first_name, balance, created_at) "
        "VALUES (5000000001, 'Carol', 'Carol', 700, ?)",
        (now,),
    )
    conn.execute(
        "INSERT INTO ledger (user_id, amount, kind, reason, created_at) "
        "VALUES (5000000001, 700, 'credit', 'legacy', ?)",
        (now,),
    )
    conn.execute(
        "INSERT INTO promo_codes (code, amount, max_uses, created_at) "
        "VALUES ('Spring', 100, 5, ?)",
        (now,),
    )
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LEGACY_LAST
    conn.close()


async def test_a_database_made_by_the_old_runner_is_stamped_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    _legacy_database(path)
    db = Database(path)
    await open_database(db)  # applies nothing old twice, stamps the baseline, upgrades to head
    try:
        assert await db.fetchval("SELECT version_num FROM alembic_version") is not None
        users, ledger = UserRepo(db), LedgerRepo(db)
        carol = await users.get(5000000001)
        assert carol is not None and carol.balance == 700
        async with db.transaction() as tx:
            assert await ledger.apply(tx, carol.id, -200, LedgerKind.ADJUSTMENT, "after")
            promo = await PromoRepo.get(tx, "SPRING")  # case-insensitive, as before
        assert promo is not None and promo.code == "Spring"
        assert await ledger.mismatches() == []
        assert await ledger.balance(carol.id) == 500
    finally:
        await db.close()
    db = Database(path)
    await open_database(db)  # a second start changes nothing
    await db.close()


async def test_a_database_stopped_half_way_through_the_old_runs_is_finished(
    tmp_path: Path,
) -> None:
    path = tmp_path / "older.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for file in sorted(
        (f for f in resources.files("storage.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )[:3]:
        version = int(file.name.split("_", 1)[0])
        conn.executescript(
            f"BEGIN;\n{file.read_text(encoding='utf-8')}\nPRAGMA user_version={version};\nCOMMIT;"
        )
    conn.close()
    db = Database(path)
    await open_database(db)
    try:
        names = {r["name"] for r in await db.fetchall("SELECT name FROM sqlite_master")}
        assert {"instances", "star_charges", "offer_checks", "alembic_version"} <= names
    finally:
        await db.close()
