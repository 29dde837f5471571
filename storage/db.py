"""SQLite access: one writer connection behind a lock, one reader connection, WAL.

Every read-then-write runs inside `transaction()`, which opens `BEGIN IMMEDIATE` so the write
lock is taken up front (a DEFERRED read-then-write fails with SQLITE_BUSY, ignoring busy_timeout).

Reads that an index answers at once (`lookup`) run on the event loop's own thread instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

Params = Sequence[Any] | dict[str, Any]


class Database:
    """Owns the SQLite connections. Repositories receive it; nothing else touches SQL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._open()
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self.migrate()
        self._reader = await self._open()
        # busy_timeout=0: the loop never waits on a lock; `lookup` falls back to the reader.
        self._inline = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._inline.row_factory = sqlite3.Row
        self._inline.execute("PRAGMA busy_timeout=0")

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA busy_timeout=5000",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
        ):
            await conn.execute(pragma)
        return conn

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def migrate(self) -> None:
        """Apply `storage/migrations/NNN_*.sql` newer than `PRAGMA user_version`."""
        assert self._writer is not None
        async with self._writer.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        files = sorted(
            (
                f
                for f in resources.files("storage.migrations").iterdir()
                if f.name.endswith(".sql")
            ),
            key=lambda f: f.name,
        )
        for file in files:
            version = int(file.name.split("_", 1)[0])
            if version <= current:
                continue
            log.info("Applying migration %s", file.name)
            script = file.read_text(encoding="utf-8")
            await self._writer.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};\nCOMMIT;"
            )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One write transaction (BEGIN IMMEDIATE); commits on success, rolls back on error."""
        assert self._writer is not None, "database is not connected"
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # Cancelled while BEGIN was queued on the connection's thread: it still runs
                # there, so end it before the lock goes, or the next BEGIN finds it open.
                with contextlib.suppress(sqlite3.OperationalError):
                    await self._writer.execute("ROLLBACK")
                raise
            try:
                yield Tx(self._writer)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            else:
                await self._writer.execute("COMMIT")

    async def write(self, sql: str, params: Params = ()) -> int:
        """One statement that is its own transaction (an upsert that reads nothing first), in
        one round trip to the writer's thread instead of BEGIN, the statement and COMMIT;
        returns the affected row count. Anything that reads before it writes uses
        `transaction()`."""
        assert self._writer is not None, "database is not connected"
        async with self._write_lock:
            async with self._writer.execute(sql, params) as cur:
                return cur.rowcount

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        """One round trip to the SQLite thread, so no other read can interleave with this
        statement and keep an old snapshot open (reads must see what was just committed)."""
        assert self._reader is not None, "database is not connected"
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    async def lookup(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A read that an index answers in microseconds (a row by its key, a short page of one
        user's rows), run on the event loop's thread: the hop to the reader's thread and back
        costs several times the query itself, and most updates make two or three such reads.

        Never for a scan: this blocks the loop while it runs. In WAL mode a reader does not
        wait for writers; the rare lock it can meet (recovery after a crash) sends the read to
        the reader thread instead of blocking the loop."""
        conn = self._inline
        assert conn is not None, "database is not connected"
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return await self.fetchall(sql, params)

    async def lookup_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.lookup(sql, params)
        return rows[0] if rows else None

    async def lookup_val(self, sql: str, params: Params = ()) -> Any:
        row = await self.lookup_one(sql, params)
        return None if row is None else row[0]

    async def backup_to(self, target: Path) -> None:
        """A consistent copy (SQLite online backup) through a connection of its own, which sees
        only committed data. Not through the writer: it may be inside another coroutine's
        transaction, and a backup from a connection with an open write transaction never
        finishes (it would hold the writer thread, so that transaction could not commit)."""
        async with aiosqlite.connect(self.path) as source, aiosqlite.connect(target) as dest:
            await source.execute("PRAGMA busy_timeout=5000")
            await source.backup(dest)  # all pages in one step: one read snapshot


class Tx:
    """The connection of one open write transaction."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run a statement; returns the affected row count."""
        async with self._conn.execute(sql, params) as cur:
            return cur.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; returns the new rowid."""
        async with self._conn.execute(sql, params) as cur:
            return int(cur.lastrowid or 0)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> aiosqlite.Row | None:
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[aiosqlite.Row]:
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())
