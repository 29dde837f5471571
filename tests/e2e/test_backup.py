"""Backups: /backup sends a valid SQLite copy; the daily job keeps the newest N files. On
PostgreSQL the bot does not copy the database (the operator runs pg_dump): it says so."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import App
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeUser


def _app(harness: BotHarness) -> App:
    assert harness.app is not None
    return harness.app


def _sqlite_only(harness: BotHarness) -> None:
    if not harness.settings.database.startswith("sqlite"):
        pytest.skip("SQLite online backup; PostgreSQL is backed up with pg_dump by the operator")


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_backup_command_sends_a_valid_database(
    running: BotHarness, admin: FakeUser, alice: FakeUser, bob: FakeUser, tmp_path: Path
) -> None:
    _sqlite_only(running)
    app = _app(running)
    await start(alice)
    await start(bob)
    await fund(admin, alice, "2.50")
    await admin.send("/backup")
    document = await admin.wait_for(lambda m: m.kind == "document")
    assert "Database backup numbot-" in document.plain
    assert document.file is not None and document.file.filename.endswith(".db")
    copy = tmp_path / "received.db"
    copy.write_bytes(document.file.content)
    assert _count(copy, "users") == 3  # the owner, Alice and Bob
    assert _count(copy, "ledger") == 1
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT balance FROM users WHERE id = ?", (alice.id,)).fetchone() == (
            250,
        )
    (kept,) = app.admin.backups.backups()
    assert kept.name == document.file.filename
    entries = await app.admin.audit.recent()
    assert (entries[0].actor_id, entries[0].action, entries[0].target) == (1, "backup", kept.name)

    await alice.send("/backup")
    await alice.wait_for("Unknown command")
    assert len(app.admin.backups.backups()) == 1


async def test_daily_backup_keeps_the_newest_files(
    harness_factory: Callable[..., BotHarness], alice: FakeUser, tmp_path: Path
) -> None:
    directory = tmp_path / "daily"
    harness = harness_factory(backup_keep=2, backup_dir=directory)
    _sqlite_only(harness)
    await harness.start()
    app = _app(harness)
    await start(alice)
    made = []
    for _ in range(4):
        await app.daily_backup()
        made.append(sorted(directory.glob("numbot-*.db"))[-1])
    kept = sorted(directory.glob("numbot-*.db"))
    assert kept == made[-2:]
    assert list(directory.glob("*.part")) == []
    for path in kept:
        assert _count(path, "users") == 1
    assert await app.admin.audit.recent() == []  # the scheduled job is not an admin action
    assert "daily-backup" in {job.id for job in app.jobs.scheduler.get_jobs()}


async def test_backup_during_an_open_transaction_is_consistent(
    running: BotHarness, alice: FakeUser
) -> None:
    _sqlite_only(running)
    app = _app(running)
    await start(alice)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with app.db.transaction() as tx:
            await tx.execute(
                "UPDATE users SET first_name = 'Half-written' WHERE id = ?", (alice.id,)
            )
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    # The backup does not wait for the writer.
    path = await asyncio.wait_for(app.admin.backups.backup(), timeout=10)
    release.set()
    await task
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT first_name FROM users WHERE id = ?", (alice.id,)).fetchone()
    assert row == ("Alice",)  # only committed data


async def test_on_postgresql_backup_says_the_operator_runs_pg_dump(
    harness_factory: Callable[..., BotHarness], admin: FakeUser, tmp_path: Path
) -> None:
    directory = tmp_path / "daily"
    harness = harness_factory(backup_dir=directory)
    if harness.settings.database.startswith("sqlite"):
        pytest.skip("the PostgreSQL variant")
    app = await harness.start()
    await start(admin)
    await admin.send("/backup")
    reply = await admin.wait_for("pg_dump")
    assert "PostgreSQL" in reply.plain
    await app.daily_backup()  # nothing to do, nothing raised
    assert not directory.exists() or list(directory.iterdir()) == []
    assert await app.admin.audit.recent() == []
