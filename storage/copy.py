"""`python -m bot copy-db`: move a shop from one database to another (SQLite to PostgreSQL).

Every table of `storage.schema` is copied, parents before children, in batches, from one
consistent read of the source into an EMPTY migrated target, all in one target transaction (a
failure leaves the target empty). PostgreSQL's identity sequences are then moved past the copied
ids. Afterwards the row counts of both sides are compared table by table and every balance is
checked against its ledger's sum on the target.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import Database, safe_url
from storage.migrate import open_database
from storage.schema import metadata, users
from storage.users import LedgerRepo

log = logging.getLogger(__name__)

BATCH = 1000


class CopyRefused(RuntimeError):
    """The target is not empty (or not at the source's revision): nothing was copied."""


@dataclass
class CopyReport:
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table: (source, target)
    mismatches: list[tuple[int, int, int]] = field(default_factory=list)  # balance != ledger

    @property
    def ok(self) -> bool:
        same = all(source == target for source, target in self.counts.values())
        return same and not self.mismatches

    def lines(self) -> list[str]:
        width = max((len(name) for name in self.counts), default=5)
        out = [f"{'table':<{width}}  {'source':>9}  {'target':>9}"]
        for name, (source, target) in self.counts.items():
            mark = "" if source == target else "  MISMATCH"
            out.append(f"{name:<{width}}  {source:>9}  {target:>9}{mark}")
        if self.mismatches:
            out.append(f"{len(self.mismatches)} balance(s) differ from their ledger:")
            out.extend(
                f"  user {user}: balance {balance}, ledger {total}"
                for user, balance, total in self.mismatches[:20]
            )
        else:
            out.append("Every balance equals its ledger's sum.")
        return out


def _coerce(table: Table) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """SQLite keeps what it is given; asyncpg wants each value in its column's type."""
    texts = {c.name for c in table.columns if isinstance(c.type, Text)}
    ints = {c.name for c in table.columns if isinstance(c.type, Integer | BigInteger)}

    def convert(row: dict[str, Any]) -> dict[str, Any]:
        for name, value in row.items():
            if value is None:
                continue
            if name in texts and not isinstance(value, str):
                row[name] = str(value)
            elif name in ints and not isinstance(value, int):
                row[name] = int(value)
        return row

    return convert


async def _count(conn: AsyncConnection, table: Table) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def copy_database(
    source_url: str, target_url: str, echo: Callable[[str], None] = print, batch: int = BATCH
) -> CopyReport:
    source = Database(source_url)
    target = Database(target_url)
    await open_database(source)  # an older SQLite shop is brought to the current schema first
    try:
        await open_database(target)  # creates the schema in a new database
        try:
            return await _copy(source, target, echo, batch)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy(
    source: Database, target: Database, echo: Callable[[str], None], batch: int
) -> CopyReport:
    echo(f"Copying {safe_url(source.url)} -> {safe_url(target.url)}")
    tables = list(metadata.sorted_tables)
    report = CopyReport()
    async with source.snapshot() as read, target.connection() as write:
        versions = []
        for conn in (read, write):
            result = await conn.execute(text("SELECT version_num FROM alembic_version"))
            versions.append(result.scalar_one_or_none())
        if versions[0] != versions[1]:
            raise CopyRefused(
                f"schema revisions differ: source {versions[0]}, target {versions[1]}"
            )
        busy = [t.name for t in tables if await _count(write, t)]
        if busy:
            raise CopyRefused(f"the target database is not empty ({', '.join(busy)})")
        for table in tables:
            await _copy_table(read, write, table, batch)
        if not target.is_sqlite:
            await _reset_sequences(write, tables)
        for table in tables:
            report.counts[table.name] = (await _count(read, table), await _count(write, table))
    report.mismatches = await LedgerRepo(target).mismatches()
    return report


async def _copy_table(
    read: AsyncConnection, write: AsyncConnection, table: Table, batch: int
) -> int:
    convert = _coerce(table)
    # users.referrer_id points into users: copied after every user is in.
    deferred = table is users
    referrers: list[dict[str, Any]] = []
    order = list(table.primary_key.columns)
    result = await read.stream(select(table).order_by(*order))
    copied = 0
    async for rows in result.mappings().partitions(batch):
        values = [convert(dict(row)) for row in rows]
        if deferred:
            for row in values:
                if row["referrer_id"] is not None:
                    referrers.append({"uid": row["id"], "ref": row["referrer_id"]})
                    row["referrer_id"] = None
        await write.execute(insert(table), values)
        copied += len(values)
    if referrers:
        statement = (
            update(users)
            .where(users.c.id == bindparam("uid"))
            .values(referrer_id=bindparam("ref"))
        )
        for start in range(0, len(referrers), batch):
            await write.execute(statement, referrers[start : start + batch])
    return copied


async def _reset_sequences(write: AsyncConnection, tables: list[Table]) -> None:
    """Move each identity sequence past the copied ids (PostgreSQL)."""
    for table in tables:
        column = table.c.get("id")
        if column is None or not column.autoincrement or column.type.python_type is not int:
            continue
        if table is users:
            continue  # Telegram's ids, not a sequence
        await write.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"
            )
        )
