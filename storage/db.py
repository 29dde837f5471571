"""The database: SQLAlchemy 2 (async Core) on SQLite (aiosqlite) or PostgreSQL (asyncpg).

`DATABASE_URL` picks the dialect; the repositories are the same on both. Statements are
`text()` with named parameters (`:name`, dict params) or Core constructs; rows come back as
`Record`s, read by column name (`row["col"]`; an index works too).

SQLite: one writer connection behind an asyncio lock, whose transactions open with
`BEGIN IMMEDIATE` (SQLAlchemy's documented recipe: the driver's own transaction handling off,
BEGIN emitted from the `begin` event), so a read-then-write holds the write lock from its first
read; WAL, busy_timeout and foreign keys on every connection; a small pool of reader
connections in autocommit for plain reads. No SQLite call runs on the event loop's thread.

PostgreSQL: an asyncpg pool of `DATABASE_POOL_SIZE`, READ COMMITTED. Write transactions are NOT
serialized there: a read-then-write that must not race takes a row lock (`lock_user`) or is one
conditional statement (see docs/storage.md, "Concurrency").

A transaction whose task is cancelled at any await (begin, a statement, commit) ends rolled
back, and its connection goes back to the pool clean (or is discarded): the cleanup is
shielded from the cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import URL, event, make_url, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause

log = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any]
T = TypeVar("T")
Statement = str | Any  # SQL text, or a Core construct (select(), insert(), ...)

# SQLite page cache per connection, in KiB (PRAGMA cache_size=-N); SQLite's default is 2,000
# KiB each, kept for as long as the connection is open, so five connections grow to ~10 MB. A
# page missing from it is read again from the OS page cache, not from disk. The readers' share
# of the hot pages is small (indexed point reads, menus are cached above them); the writer
# keeps more, for the indexes every write transaction updates.
READER_CACHE_KIB = 512
WRITER_CACHE_KIB = 1024

# Held (pg_advisory_xact_lock) while migrations run, so instances starting together take
# turns: the first applies them, the others then find them applied.


class BackupUnsupported(RuntimeError):
    """This database is not backed up by the bot (PostgreSQL: the operator runs pg_dump)."""


def async_url(url: str | URL) -> URL:
    """`sqlite:///p` -> `sqlite+aiosqlite:///p`, `postgresql://` -> `postgresql+asyncpg://`."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and messages."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


class Record:
    """One row: by column name (`row["id"]`) or position (`row[0]`)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: Mapping[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Record({dict(zip(self._index, self._values, strict=False))!r})"


def _records(result: CursorResult[Any]) -> list[Record]:
    if not result.returns_rows:
        return []
    index = {name: i for i, name in enumerate(result.keys())}
    return [Record(tuple(row), index) for row in result.all()]


def in_list(prefix: str, values: Iterable[object]) -> tuple[str, dict[str, object]]:
    """`:prefix0, :prefix1, ...` for an `IN (...)` list and their parameters; `NULL` when
    empty (an `IN (NULL)` matches nothing, where `IN ()` is a syntax error)."""
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{key}" for key in params) or "NULL", params


_QMARK = re.compile(r"'(?:[^']|'')*'|\?")


@lru_cache(maxsize=1024)
def _named(sql: str) -> tuple[str, int]:
    """`?` placeholders (outside string literals) -> `:p0, :p1, ...` (older call sites)."""
    count = 0

    def sub(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f":p{count - 1}"

    return _QMARK.sub(sub, sql), count


def _statement(sql: Statement, params: Params | None) -> tuple[Any, dict[str, Any]]:
    """The statement to execute and its parameters as a dict."""
    if not isinstance(sql, str):
        return sql, dict(params or {})
    if params is None or isinstance(params, Mapping):
        return _text(sql), dict(params or {})
    converted, count = _named(sql)
    values = list(params)
    if count != len(values):
        raise ValueError(f"{count} placeholders, {len(values)} parameters")
    return _text(converted), {f"p{i}": v for i, v in enumerate(values)}


@lru_cache(maxsize=2048)
def _text(sql: str) -> TextClause:
    return text(sql)


async def _complete(work: Awaitable[T]) -> T:
    """Await `work` to its end even if our task is cancelled meanwhile, then raise the
    cancellation. A statement already handed to the driver runs on regardless (aiosqlite's
    thread, the server), so waiting for it costs nothing, and the connection is never left
    mid-statement: the caller's cleanup then finds it in a known state and rolls back."""
    task = asyncio.ensure_future(work)
    interrupted = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    return result


async def _direct(work: Awaitable[T]) -> T:
    """PostgreSQL: a cancelled statement is cancelled on the server too (asyncpg), and a
    connection interrupted that way is discarded by the pool; a task waiting on a lock stops
    waiting."""
    return await work


async def _settle(work: Awaitable[Any]) -> None:
    """Run cleanup to its end even if our task is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(work)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                interrupted = True
        except Exception:
            pass  # the task is done: its exception is read below
    if not task.cancelled() and task.exception() is not None:
        log.warning("Database cleanup failed: %r", task.exception())
    if interrupted:
        raise asyncio.CancelledError


class Database:
    """Owns the engines. Repositories receive it; nothing else touches SQL."""

    def __init__(self, url: str | URL | Path, pool_size: int = 10) -> None:
        if isinstance(url, Path):
            url = f"sqlite:///{url}"
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.path: Path | None = (
            Path(self.url.database or "") if self.dialect == "sqlite" else None
        )
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None  # writes (SQLite: the one writer)
        self._reader: AsyncEngine | None = None  # reads (PostgreSQL: the same pool)
        self._write_lock: asyncio.Lock | None = None
        # Table -> what keeps copies of its rows (`on_change`), told after each transaction.
        self._on_change: dict[str, list[Callable[[set[Any]], None]]] = {}
        # SQLite: a statement runs to its end on aiosqlite's thread whatever happens to our
        # task, so a cancelled task waits for it and then rolls back (`_complete`).
        self._guard = _complete if self.dialect == "sqlite" else _direct

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "database is not connected"
        return self._engine

    def __repr__(self) -> str:
        return f"Database({safe_url(self.url)})"

    async def connect(self) -> None:
        """Open the engines (the schema is `storage.migrate`'s: `open_database`)."""
        if self.is_sqlite:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_async_engine(self.url, pool_size=1, max_overflow=0)
            # Readers are in autocommit (see `_sqlite_events`): a rollback there ends nothing,
            # yet each is a round trip to aiosqlite's thread (two per read: ours and the pool's
            # reset), so SQLAlchemy skips them (documented: `skip_autocommit_rollback`).
            self._reader = create_async_engine(
                self.url, pool_size=4, max_overflow=0, skip_autocommit_rollback=True
            )
            _sqlite_events(self._engine, writer=True)
            _sqlite_events(self._reader, writer=False)
            self._write_lock = asyncio.Lock()
        else:
            self._engine = create_async_engine(
                self.url,
                pool_size=self.pool_size,
                max_overflow=0,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED",
            )
            self._reader = self._engine

    async def close(self) -> None:
        for engine in {id(e): e for e in (self._reader, self._engine) if e is not None}.values():
            await engine.dispose()
        self._engine = self._reader = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A write connection with a transaction open (SQLite: the writer, BEGIN IMMEDIATE,
        under the write lock), committed when the block ends, rolled back when it raises or
        its task is cancelled."""
        engine = self.engine
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            checkout = asyncio.ensure_future(engine.connect())
            try:
                conn = await self._guard(checkout)
            except asyncio.CancelledError:
                if checkout.done() and not checkout.cancelled() and not checkout.exception():
                    await _settle(checkout.result().close())
                raise
            try:
                await self._guard(conn.begin())
                yield conn
                await self._guard(conn.commit())
            except BaseException:
                await _settle(_discard(conn))
                raise
            else:
                await _settle(conn.close())
        finally:
            if lock is not None:
                lock.release()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection that sees one consistent state for as long as it is open
        (SQLite: a DEFERRED read transaction, no write lock; PostgreSQL: REPEATABLE READ)."""
        assert self._reader is not None, "database is not connected"
        async with self._reader.connect() as conn:
            if self.is_sqlite:
                await conn.exec_driver_sql("BEGIN")
            else:
                await conn.execution_options(isolation_level="REPEATABLE READ")
            try:
                yield conn
            finally:
                if self.is_sqlite:  # the reader skips rollbacks in autocommit: end our BEGIN
                    await conn.exec_driver_sql("ROLLBACK")
                await conn.rollback()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One write transaction; commits on success, rolls back on error or cancellation.
        Once it has ended either way, the rows it said it changed (`Tx.changed`) are
        reported to whatever keeps copies of them (`on_change`)."""
        tx: Tx | None = None
        try:
            async with self.connection() as conn:
                tx = Tx(conn, self.dialect, self._guard)
                yield tx
        finally:
            if tx is not None and tx.changes:
                for table, keys in tx.changes.items():
                    for listener in self._on_change.get(table, ()):
                        listener(keys)

    def on_change(self, table: str, listener: Callable[[set[Any]], None]) -> None:
        """Call `listener` with the keys of the rows of `table` that a transaction said it
        changed (`Tx.changed`), after that transaction has ended (committed or not)."""
        self._on_change.setdefault(table, []).append(listener)

    async def write(self, sql: Statement, params: Params | None = None) -> int:
        """One statement that is its own transaction (an upsert that reads nothing first);
        returns the affected row count. Anything that reads before it writes uses
        `transaction()`."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def fetchall(self, sql: Statement, params: Params | None = None) -> list[Record]:
        """A read in autocommit: it sees everything committed before it starts."""
        assert self._reader is not None, "database is not connected"
        statement, values = _statement(sql, params)
        return await self._guard(self._read(self._reader, statement, values))

    @staticmethod
    async def _read(engine: AsyncEngine, statement: Any, values: dict[str, Any]) -> list[Record]:
        async with engine.connect() as conn:
            rows = _records(await conn.execute(statement, values))
            await conn.rollback()
        return rows

    async def fetchone(self, sql: Statement, params: Params | None = None) -> Record | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: Statement, params: Params | None = None) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    # Reads an index answers at once. Once run on the loop's thread (blocking SQLite); now
    # plain reads like the others (issue 13: no blocking call on the event loop).
    lookup = fetchall
    lookup_one = fetchone
    lookup_val = fetchval

    async def backup_to(self, target: Path) -> None:
        """A consistent copy (SQLite online backup) through a connection of its own, which sees
        only committed data: never the writer, which may be inside another transaction.

        PostgreSQL: raises BackupUnsupported (backups are the operator's pg_dump)."""
        if not self.is_sqlite or self.path is None:
            raise BackupUnsupported("PostgreSQL is backed up with pg_dump by the operator")
        async with aiosqlite.connect(self.path) as source, aiosqlite.connect(target) as dest:
            await source.execute("PRAGMA busy_timeout=5000")
            await source.backup(dest)  # all pages in one step: one read snapshot


async def _discard(conn: AsyncConnection) -> None:
    """Roll back and return the connection; one that cannot roll back is thrown away."""
    try:
        if not conn.invalidated:
            await conn.rollback()
    except Exception:
        await conn.invalidate()
    finally:
        await conn.close()


def _sqlite_events(engine: AsyncEngine, writer: bool) -> None:
    """Per-connection pragmas; the writer's transactions begin IMMEDIATE (the documented
    recipe for pysqlite/aiosqlite: the driver's implicit BEGIN off, ours from `begin`)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA busy_timeout=5000",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        if writer:
            cursor.execute("PRAGMA journal_mode=WAL")
        cache = WRITER_CACHE_KIB if writer else READER_CACHE_KIB
        cursor.execute(f"PRAGMA cache_size=-{cache}")
        cursor.close()

    if writer:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Tx:
    """The connection of one open write transaction."""

    def __init__(
        self,
        conn: AsyncConnection,
        dialect: str,
        guard: Callable[[Awaitable[Any]], Awaitable[Any]] = _direct,
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self._guard = guard
        self.changes: dict[str, set[Any]] = {}  # table -> keys of the rows written

    def changed(self, table: str, *keys: Any) -> None:
        """Say that this transaction writes these rows of `table`, so that copies kept of
        them are dropped once it ends (`Database.on_change`)."""
        self.changes.setdefault(table, set()).update(keys)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def _run(self, sql: Statement, params: Params | None) -> CursorResult[Any]:
        statement, values = _statement(sql, params)
        result: CursorResult[Any] = await self._guard(self.conn.execute(statement, values))
        return result

    async def execute(self, sql: Statement, params: Params | None = None) -> int:
        """Run a statement; returns the affected row count."""
        result = await self._run(sql, params)
        return int(result.rowcount)

    async def insert(self, sql: Statement, params: Params | None = None) -> int:
        """Run an `INSERT ... RETURNING id` (added when the SQL has none); returns the new id
        (no `lastrowid`: PostgreSQL has none)."""
        if isinstance(sql, str) and "RETURNING" not in sql.upper():
            sql = sql.rstrip().rstrip(";") + " RETURNING id"
        result = await self._run(sql, params)
        return int(result.scalar_one())

    async def executemany(self, sql: Statement, rows: Iterable[Params]) -> None:
        batch = [_statement(sql, row) for row in rows]
        if batch:
            await self._guard(self.conn.execute(batch[0][0], [values for _, values in batch]))

    async def fetchone(self, sql: Statement, params: Params | None = None) -> Record | None:
        rows = _records(await self._run(sql, params))
        return rows[0] if rows else None

    async def fetchall(self, sql: Statement, params: Params | None = None) -> list[Record]:
        return _records(await self._run(sql, params))

    async def lock_user(self, user_id: int) -> None:
        """Serialize this transaction with every other one that locks the same user (a
        per-user mutex: `SELECT ... FOR UPDATE` of the user's row). SQLite's writer already
        runs one transaction at a time."""
        if self.is_postgres:
            await self._run("SELECT id FROM users WHERE id = :id FOR UPDATE", {"id": user_id})

    async def lock_key(self, key: int) -> None:
        """A transaction-scoped advisory lock on PostgreSQL (released at commit/rollback)."""
        if self.is_postgres:
            await self._run("SELECT pg_advisory_xact_lock(:k)", {"k": key})


class KeptReads:
    """What this process read lately of each user's rows, by user and key, so that a tap
    reads no row while nothing of theirs changed. Only where one process owns the database
    (with `REDIS_URL` several instances write, and none is made). A transaction that writes
    one of `tables` for a user says so (`Tx.changed(table, user_id)`); the user's reads are
    dropped once it has ended, and a read that a drop overlapped is not kept, so a kept read
    is never older than the last write. The least recently used users go past `size`."""

    def __init__(self, db: Database, tables: Iterable[str], size: int) -> None:
        self._users: OrderedDict[int, dict[Hashable, Any]] = OrderedDict()
        self._size = size
        self.drops = 0  # drops so far: a read that saw this number change keeps nothing
        for table in tables:
            db.on_change(table, self.drop)

    def get(self, user_id: int, key: Hashable) -> Any | None:
        reads = self._users.get(user_id)
        if reads is None:
            return None
        self._users.move_to_end(user_id)
        return reads.get(key)

    def keep(self, user_id: int, key: Hashable, value: Any, drops_before: int) -> None:
        """Keep `value`, read after `drops_before` drops, unless a drop came meanwhile."""
        if drops_before != self.drops:
            return
        self._users.setdefault(user_id, {})[key] = value
        self._users.move_to_end(user_id)
        while len(self._users) > self._size:
            self._users.popitem(last=False)

    def drop(self, user_ids: set[int]) -> None:
        self.drops += 1
        for user_id in user_ids:
            self._users.pop(user_id, None)

    async def read(
        self,
        user_id: int,
        key: Hashable,
        load: Callable[[], Awaitable[Any]],
        usable: Callable[[Any], bool] | None = None,
    ) -> Any:
        """What `load()` reads of the user's orders: kept (when `usable` by this caller), or
        read now and kept unless a drop came while it was read."""
        value = self.get(user_id, key)
        if value is None or (usable is not None and not usable(value)):
            drops = self.drops
            value = await load()
            if value is not None:
                self.keep(user_id, key, value, drops)
        return value
