"""Broadcast after a crash (issue 12, item 8): only the copies really in flight are uncertain.

A recipient becomes 'sending' in a commit made right before its own copyMessage, so a kill
leaves 'sending' only rows whose request had gone out: every recipient never tried still gets
the broadcast after the restart, and nobody gets it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from storage.broadcasts import UNKNOWN, BroadcastRepo
from tests.conftest import BotHarness
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeTelegram, FakeUser, Message


async def _until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(20):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


def _copies(user: FakeUser, plain: str, after: Message | None = None) -> list[Message]:
    first = after.message_id if after is not None else 0
    return [m for m in user.messages if m.plain == plain and m.message_id > first]


async def test_crash_leaves_only_in_flight_copies_unknown_and_resends_the_rest(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=20)
    app = await harness.start()
    users = telegram.make_users(79, 7001)
    for user in users:
        await app.users.seen(user.id, user.username, user.first_name, "en")
    await start(admin)
    await admin.send("/broadcast")
    await admin.wait_for("Send me the message")
    await admin.send("Crash once")
    confirm = await admin.wait_for("This is how it will look")
    preview_calls = len(telegram.calls_to("copyMessage"))
    await admin.click(confirm, "Send to 80")
    await users[3].wait_for("Crash once")

    # From now on copies reach Telegram but get no answer: the runner fills its in-flight
    # slots and then waits. Those (and only those) are the sends a crash leaves uncertain.
    telegram.hold("copyMessage")
    slots = app.broadcasts.max_in_flight
    await _until(lambda: len(telegram.held) == slots, "the in-flight slots are full")
    attempted = [c.params["chat_id"] for c in telegram.calls_to("copyMessage")[preview_calls:]]
    in_flight = {c.params["chat_id"] for c in telegram.held}
    await harness.crash()  # the process dies with those copies in flight
    telegram.release("copyMessage")  # Telegram delivers them after all; the bot never knew
    app = await harness.start()
    await admin.wait_for(
        lambda m: m.message_id == confirm.message_id and "done" in m.plain, timeout=30
    )
    progress = admin.get(confirm.message_id)
    assert progress is not None

    deliveries = await BroadcastRepo(app.db).deliveries(1)
    unknown = {uid for uid, (_status, error) in deliveries.items() if error == UNKNOWN}
    assert unknown == in_flight
    assert len(set(attempted)) < 80  # the crash really came mid-broadcast
    assert "Sent: 80 · failed: 0 · blocked: 0 · left: 0 · total: 80" in progress.plain
    assert f"{len(in_flight)} of the sent were being sent when the bot stopped" in progress.plain
    # Every recipient got exactly one copy, and no chat was ever asked twice.
    targets = [c.params["chat_id"] for c in telegram.calls_to("copyMessage")[preview_calls:]]
    assert sorted(targets) == sorted([admin.id, *(u.id for u in users)])
    for user in users:
        assert len(_copies(user, "Crash once")) == 1, user
    assert len(_copies(admin, "Crash once", after=confirm)) == 1


async def test_crash_during_a_flood_wait_loses_nobody(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    """A copy Telegram refused with 429 was not sent: it goes back to pending at once, so a
    crash during the pause does not turn it into an 'unknown' that is never sent."""
    harness = harness_factory(broadcast_rate=20)
    app = await harness.start()
    users = telegram.make_users(39, 7101)
    for user in users:
        await app.users.seen(user.id, user.username, user.first_name, "en")
    await start(admin)
    await admin.send("/broadcast")
    await admin.wait_for("Send me the message")
    await admin.send("Flood then crash")
    confirm = await admin.wait_for("This is how it will look")
    preview_calls = len(telegram.calls_to("copyMessage"))
    await admin.click(confirm, "Send to 40")
    await users[3].wait_for("Flood then crash")
    telegram.flood("copyMessage", retry_after=30, times=1)
    before = len(telegram.calls_to("copyMessage"))

    def flooded() -> bool:
        calls = telegram.calls_to("copyMessage")[before:]
        return any((c.response or {}).get("error_code") == 429 for c in calls)

    await _until(flooded, "a copy was refused with 429")
    repo = BroadcastRepo(app.db)
    # The copies in flight when the 429 came back get their answers, and the runner pauses.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while (await repo.counts(1)).sending:
                await asyncio.sleep(0.05)
    await harness.crash()
    app = await harness.start()
    await admin.wait_for(
        lambda m: m.message_id == confirm.message_id and "done" in m.plain, timeout=60
    )
    deliveries = await BroadcastRepo(app.db).deliveries(1)
    assert not [uid for uid, (_status, error) in deliveries.items() if error == UNKNOWN]
    for user in users:
        assert len(_copies(user, "Flood then crash")) == 1, user
    assert len(_copies(admin, "Flood then crash", after=confirm)) == 1
    ok_targets = [
        c.params["chat_id"]
        for c in telegram.calls_to("copyMessage")[preview_calls:]
        if (c.response or {}).get("ok")
    ]
    assert len(ok_targets) == len(set(ok_targets)) == 40
