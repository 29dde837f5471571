"""Admin broadcast: /broadcast, the next message is the content, preview, confirm, progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from storage.audit import AuditRepo
from storage.broadcasts import UNKNOWN, BroadcastRepo
from tests.conftest import BotHarness
from tests.e2e.helpers import start
from tests.fakes.telegram import FakeTelegram, FakeUser, Message

HTML = '<b>Big</b> news: <i>sale</i> &amp; <a href="https://example.com/x">more</a>'


async def _register(harness: BotHarness, users: list[FakeUser]) -> None:
    """Users who started the bot, registered through the service the middleware uses
    (thousands of /start updates would make the test slow without proving more)."""
    assert harness.app is not None
    for user in users:
        await harness.app.users.seen(user.id, user.username, user.first_name, "en")


def _copies(user: FakeUser, plain: str, after: Message | None = None) -> list[Message]:
    """Messages with this text; for the admin, `after` the confirm screen skips the preview."""
    first = after.message_id if after is not None else 0
    return [m for m in user.messages if m.plain == plain and m.message_id > first]


def _entity_types(message: Message) -> list[str]:
    return [e["type"] for e in message.entities]


async def _compose(admin: FakeUser, send: Callable[[], Awaitable[Message]]) -> Message:
    """/broadcast, then the content; returns the confirm screen (the preview came first)."""
    await admin.send("/broadcast")
    await admin.wait_for("Send me the message")
    await send()
    return await admin.wait_for("This is how it will look")


def _final(progress: Message, word: str) -> Callable[[Message], bool]:
    def check(m: Message) -> bool:
        return m.message_id == progress.message_id and word in m.plain

    check.__name__ = f"progress says {word!r}"
    return check


async def test_text_and_photo_broadcast_keep_formatting(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser
) -> None:
    users = telegram.make_users(3, 2001)
    for user in [admin, *users]:
        await start(user)

    confirm = await _compose(admin, lambda: admin.send(HTML, html=True))
    preview = admin.messages[-2]
    assert preview.plain == "Big news: sale & more"
    assert _entity_types(preview) == ["bold", "italic", "text_link"]
    assert "Send it to 4 users" in confirm.plain
    await admin.click(confirm, "Send to 4")
    done = await admin.wait_for(_final(confirm, "done"))
    assert "Sent: 4 · failed: 0 · blocked: 0 · left: 0 · total: 4" in done.plain
    for user in users:
        (copy,) = _copies(user, "Big news: sale & more")
        assert _entity_types(copy) == ["bold", "italic", "text_link"]
        assert copy.entities[2]["url"] == "https://example.com/x"

    confirm = await _compose(
        admin, lambda: admin.send_photo("<b>New</b> stock <u>today</u>", html=True)
    )
    await admin.click(confirm, "Send to")
    await admin.wait_for(_final(confirm, "done"))
    for user in users:
        (copy,) = _copies(user, "New stock today")
        assert copy.kind == "photo" and "photo" in copy.media
        assert _entity_types(copy) == ["bold", "underline"]
        assert len(user.messages) == 3  # the menu and one copy of each broadcast

    assert running.app is not None
    actions = [e.action for e in await AuditRepo(running.app.db).recent()]
    assert actions.count("broadcast_start") == 2


async def test_document_broadcast(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await start(admin)
    await start(alice)
    confirm = await _compose(
        admin, lambda: admin.send_document("Price list", filename="prices.pdf")
    )
    await admin.click(confirm, "Send to 2")
    await admin.wait_for(_final(confirm, "done"))
    (copy,) = _copies(alice, "Price list")
    assert copy.kind == "document" and copy.file is not None
    assert copy.file.filename == "prices.pdf"


async def test_cancel_before_confirm_sends_nothing(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await start(admin)
    await start(alice)
    confirm = await _compose(admin, lambda: admin.send("Never sent"))
    await admin.click(confirm, "Cancel")
    await admin.wait_for("Nothing was sent")
    # The prompt's own Cancel works too: the next message is then an ordinary message.
    await admin.send("/broadcast")
    prompt = await admin.wait_for("Send me the message")
    await admin.click(prompt, "Cancel")
    await admin.wait_for("Nothing was sent")
    await admin.send("Just chatting")
    await admin.wait_for("No service matches")  # an ordinary search, not a broadcast
    assert _copies(alice, "Never sent") == []
    assert len(telegram.calls_to("copyMessage")) == 1  # the preview only
    assert running.app is not None
    actions = [e.action for e in await AuditRepo(running.app.db).recent()]
    assert "broadcast_start" not in actions and "broadcast_cancel" in actions


async def test_non_admin_gets_unknown_command(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await start(alice)
    await alice.send("/broadcast")
    await alice.wait_for("Unknown command")
    await alice.send("Hello")
    await alice.wait_for("No service matches")
    assert telegram.calls_to("copyMessage") == []


async def test_two_thousand_users_with_floods_blocks_and_failures(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=1000)
    await harness.start()
    assert harness.app is not None
    users = telegram.make_users(2000, 10_001)
    await _register(harness, users)
    await start(admin)
    blocked = users[::50]  # 40 users blocked the bot
    for user in blocked:
        telegram.block(user.id)

    confirm = await _compose(admin, lambda: admin.send("<b>Hello</b> everyone", html=True))
    assert "Send it to 2001 users" in confirm.plain
    await admin.click(confirm, "Send to 2001")
    await users[501].wait_for("Hello everyone", timeout=20)
    telegram.flood("copyMessage", retry_after=1, times=3)
    telegram.fail("copyMessage", 400, "Bad Request: chat not found", times=2)
    progress = await admin.wait_for(_final(confirm, "done"), timeout=60)

    assert "Sent: 1959 · failed: 2 · blocked: 40 · left: 0 · total: 2001" in progress.plain
    flooded = [
        c for c in telegram.calls_to("copyMessage") if (c.response or {}).get("error_code") == 429
    ]
    assert len(flooded) == 3
    got = [u for u in users if _copies(u, "Hello everyone")]
    assert all(len(_copies(u, "Hello everyone")) == 1 for u in got)
    assert len(got) + len(_copies(admin, "Hello everyone", after=confirm)) == 1959
    for user in blocked:
        stored = await harness.app.users.get(user.id)
        assert stored is not None and not stored.is_active

    # The next broadcast skips them.
    before = len(telegram.calls_to("copyMessage"))
    confirm = await _compose(admin, lambda: admin.send("Second"))
    assert "Send it to 1961 users" in confirm.plain
    await admin.click(confirm, "Send to 1961")
    progress = await admin.wait_for(_final(confirm, "done"), timeout=60)
    assert "Sent: 1961 · failed: 0 · blocked: 0" in progress.plain
    targets = {c.params["chat_id"] for c in telegram.calls_to("copyMessage")[before:]}
    assert not targets & {u.id for u in blocked}


async def test_restart_mid_broadcast_messages_nobody_twice(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=20)
    await harness.start()
    users = telegram.make_users(99, 3001)
    await _register(harness, users)
    await start(admin)
    confirm = await _compose(admin, lambda: admin.send("Restart-proof"))
    await admin.click(confirm, "Send to 100")
    await users[10].wait_for("Restart-proof")

    await harness.stop()  # graceful: in-flight copies finish, the rest goes back to pending
    received = sum(len(_copies(u, "Restart-proof")) for u in users)
    assert 0 < received < len(users)
    await harness.start()
    progress = await admin.wait_for(_final(confirm, "done"), timeout=30)

    assert "Sent: 100 · failed: 0 · blocked: 0 · left: 0 · total: 100" in progress.plain
    assert "unknown" not in progress.plain
    assert len(_copies(admin, "Restart-proof", after=confirm)) == 1
    for user in users:
        assert len(_copies(user, "Restart-proof")) == 1, user


async def test_crash_mid_broadcast_never_resends_unknown_outcomes(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=20)
    await harness.start()
    users = telegram.make_users(79, 4001)
    await _register(harness, users)
    await start(admin)
    confirm = await _compose(admin, lambda: admin.send("Crash-proof"))
    await admin.click(confirm, "Send to 80")
    await users[3].wait_for("Crash-proof")

    await harness.crash()  # the runner dies with a batch claimed as 'sending'
    await harness.start()
    progress = await admin.wait_for(_final(confirm, "done"), timeout=30)

    assert harness.app is not None
    deliveries = await BroadcastRepo(harness.app.db).deliveries(1)
    unknown = {uid for uid, (status, error) in deliveries.items() if error == UNKNOWN}
    assert unknown and all(deliveries[u][0] == "sent" for u in unknown)
    assert f"{len(unknown)} of the sent were being sent when the bot stopped" in progress.plain
    assert "Sent: 80 · failed: 0 · blocked: 0 · left: 0 · total: 80" in progress.plain
    for user in [admin, *users]:
        copies = len(_copies(user, "Crash-proof", after=confirm if user is admin else None))
        assert copies <= 1 if user.id in unknown else copies == 1, user


async def test_cancel_button_stops_the_broadcast(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=10)
    await harness.start()
    users = telegram.make_users(49, 5001)
    await _register(harness, users)
    await start(admin)
    confirm = await _compose(admin, lambda: admin.send("Stop me"))
    await admin.click(confirm, "Send to 50")
    progress = await admin.wait_for(
        lambda m: m.message_id == confirm.message_id and "sending" in m.plain
    )
    await users[2].wait_for("Stop me")
    query = await admin.click(progress, "Cancel broadcast")
    await admin.wait_answer(query)
    final = await admin.wait_for(_final(confirm, "cancelled"))

    received = [u for u in users if _copies(u, "Stop me")]
    received += [admin] if _copies(admin, "Stop me", after=confirm) else []
    assert 0 < len(received) < 50
    assert f"Sent: {len(received)} · failed: 0 · blocked: 0" in final.plain
    assert final.buttons == []
    assert harness.app is not None
    await harness.app.broadcasts.wait(1)  # the runner has ended: nothing more goes out
    assert await harness.app.broadcasts.running() is None
    assert len(telegram.calls_to("copyMessage")) == 1 + len(received)  # the preview + copies
    actions = [e.action for e in await AuditRepo(harness.app.db).recent()]
    assert actions[:2] == ["broadcast_cancel", "broadcast_start"]


async def test_only_one_broadcast_at_a_time(
    harness_factory: Callable[..., BotHarness], telegram: FakeTelegram, admin: FakeUser
) -> None:
    harness = harness_factory(broadcast_rate=5)
    await harness.start()
    await _register(harness, telegram.make_users(30, 6001))
    await start(admin)
    first = await _compose(admin, lambda: admin.send("First"))
    second = await _compose(admin, lambda: admin.send("Second"))
    await admin.click(first, "Send to")
    await admin.wait_for(_final(first, "sending"))
    query = await admin.click(second, "Send to")
    refusal = await admin.wait_answer(query)
    assert refusal.text is not None and "Broadcast #1 is running" in refusal.text
    await admin.send("/broadcast")
    await admin.wait_for("Broadcast #1 is running")
    await admin.click(first, "Cancel broadcast")
    await admin.wait_for(_final(first, "cancelled"))
