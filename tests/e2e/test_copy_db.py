"""`python -m bot copy-db`: a shop made through the bot on one database is copied into an empty
database of the other kind (SQLite -> PostgreSQL, and back), every table, balances equal to
ledgers; the bot then runs on the copy as it did (new ids do not collide with copied ones). A
target that is not empty is refused."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import BotHarness, fund
from tests.databases import _Template, create_database, drop_database, pg_url
from tests.e2e.helpers import buy, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeUser

ROOT = Path(__file__).resolve().parents[2]


async def _copy(source: str, target: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "copy-db",
        "--from",
        source,
        "--to",
        target,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_shop_is_copied_to_an_empty_database_of_the_other_kind(
    harness_factory: Callable[..., BotHarness],
    pg_template: _Template,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
    tmp_path: Path,
) -> None:
    harness = harness_factory()
    source = harness.settings.database
    app = await harness.start()
    await start(alice)
    await start(bob)
    await fund(admin, alice, "10")
    await fund(admin, bob, "3")
    await buy(alice)
    activation = next(iter(palm.activations.values()))
    palm.deliver_code(activation.id, "739214")
    await alice.wait_for("739214")
    balances = {u.id: await app.wallet.balance(u.id) for u in (alice, bob)}
    await harness.stop()

    pg_target = None
    if source.startswith("sqlite"):  # -> a new, empty PostgreSQL database
        template = await pg_template.get()
        pg_target = f"{template}_copy"
        await drop_database(pg_target)
        await create_database(pg_target)
        target = pg_url(pg_target)
    else:  # -> a new SQLite file
        target = f"sqlite:///{tmp_path / 'copy' / 'bot.db'}"
    try:
        code, out, err = await _copy(source, target)
        assert code == 0, err
        assert "users" in out and "ledger" in out and "MISMATCH" not in out
        assert "Every balance equals its ledger's sum." in out
        assert "postgres@" not in err or ":" not in err.split("postgres@")[0][-20:]

        again = await _copy(source, target)
        assert again[0] == 2 and "not empty" in again[2]

        moved = harness_factory(database_url=target, redis_url=None)
        app = await moved.start(refresh_catalog=False)
        for user_id, balance in balances.items():
            assert await app.wallet.balance(user_id) == balance
        (order,), _ = await app.orders.page_for_user(alice.id, 0, 5)
        assert order.phone is not None
        assert [c.code for c in await app.orders.codes(order.id)] == ["739214"]
        await buy(bob)  # new rows get fresh ids after the copied ones
        (second,), _ = await app.orders.page_for_user(bob.id, 0, 5)
        assert second.id > order.id
        await moved.check_ledger()
        await moved.stop()
    finally:
        if pg_target is not None:
            await drop_database(pg_target)
