"""A database already at the newest revision starts without Alembic: the head is read from the
revision files as text (`storage.migrate.script_heads`), and must agree with Alembic's own
script directory; a database behind it is still migrated by Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import alembic_config, at_head, script_heads, upgrade

REVISION = '''"""{doc}

Revision ID: {rev}
Revises: {down}
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "{rev}"
down_revision: str | Sequence[str] | None = {down}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def _write(folder: Path, rev: str, down: str) -> None:
    (folder / f"{rev}_x.py").write_text(REVISION.format(doc=rev, rev=rev, down=down))


def _alembic_heads(script_location: Path | str) -> frozenset[str]:
    config = alembic_config()
    config.set_main_option("script_location", str(script_location))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def test_the_heads_read_as_text_are_alembics() -> None:
    assert script_heads() == _alembic_heads("storage:alembic")
    assert len(script_heads()) == 1


def test_branches_and_merges_are_read_as_alembic_reads_them(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (tmp_path / "script.py.mako").write_text("")
    _write(versions, "a1", "None")
    _write(versions, "b2", '"a1"')
    _write(versions, "c3", "'a1'")
    assert script_heads(versions) == _alembic_heads(tmp_path) == {"b2", "c3"}
    _write(versions, "d4", '("b2", "c3")')
    assert script_heads(versions) == _alembic_heads(tmp_path) == {"d4"}


def _downgrade_one(connection: Any) -> None:
    command.downgrade(alembic_config(connection), "-1")


def _has_index(connection: Any, table: str, name: str) -> bool:
    return name in {index["name"] for index in inspect(connection).get_indexes(table)}


async def test_a_database_behind_the_head_is_still_migrated(database: Database) -> None:
    assert await at_head(database)
    async with database.connection() as conn:
        await conn.run_sync(_downgrade_one)  # 0004 dropped its two indexes
    assert not await at_head(database)
    async with database.snapshot() as conn:
        assert not await conn.run_sync(_has_index, "orders", "orders_bought_since")
    await upgrade(database)
    assert await at_head(database)
    assert await database.fetchval("SELECT version_num FROM alembic_version") in script_heads()
    async with database.snapshot() as conn:
        assert await conn.run_sync(_has_index, "orders", "orders_bought_since")


PROBE = """
import asyncio, sys
from pathlib import Path
from storage.db import Database
from storage.migrate import open_database

async def main():
    db = Database(Path(sys.argv[1]))
    await open_database(db)
    await db.close()

asyncio.run(main())
print("alembic" in sys.modules)
"""


def _start_imports_alembic(path: Path) -> bool:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip() == "True"


def test_a_start_on_a_database_at_the_head_does_not_import_alembic(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    assert _start_imports_alembic(path)  # a new database: Alembic builds it
    assert not _start_imports_alembic(path)  # a restart: nothing to do, nothing imported
