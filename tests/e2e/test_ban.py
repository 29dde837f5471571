"""Bans: one notice, then silence; no buying; live orders keep running; unban restores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.app import App
from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser

NOTICE = "You can't use this bot."


class Finished(BaseMiddleware):
    """Records every update the dispatcher is done with, so a test can wait for an update that,
    by design, gets no answer at all."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self._changed = asyncio.Event()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        finally:
            assert isinstance(event, Update)
            self.updates.append(event)
            self._changed.set()

    async def message(self, user_id: int, text: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until a message `text` from `user_id` has been handled."""

        def done() -> bool:
            return any(
                u.message is not None
                and u.message.from_user is not None
                and u.message.from_user.id == user_id
                and u.message.text == text
                for u in self.updates
            )

        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()


def _app(harness: BotHarness) -> App:
    assert harness.app is not None
    return harness.app


def _notices(user: FakeUser) -> int:
    return sum(1 for m in user.messages if m.plain == NOTICE)


async def test_banned_user_is_told_once_then_ignored_and_cannot_buy(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    telegram: FakeTelegram,
) -> None:
    app = _app(running)
    finished = Finished()
    app.dp.update.outer_middleware(finished)
    await start(alice)
    await fund(admin, alice, "1")
    confirm = await buy_to_confirm(alice)

    await admin.send("/ban @alice spam and chargebacks")
    await admin.wait_for("🚫 Banned Alice (1001).")

    pay = await alice.click(confirm, "Pay")  # the first contact after the ban
    answer = await alice.wait_answer(pay)
    assert answer.text is None and not answer.show_alert  # answered silently
    await alice.wait_for(NOTICE)

    for text in ("/start", "/buy", "/balance", "whatsapp"):
        await alice.send(text)
        await finished.message(alice.id, text)
    again = await alice.click(confirm, "Pay")
    assert (await alice.wait_answer(again)).text is None
    assert _notices(alice) == 1
    assert alice.last is not None and alice.last.plain == NOTICE  # nothing else, ever
    assert palm.count("getNumber") == 0
    assert await app.orders.page_for_user(alice.id, 0, 5) == ([], 1)
    assert await app.wallet.balance(alice.id) == 100

    await admin.send("/user 1001")
    card = await admin.wait_for("id 1001")
    assert "🚫 banned on" in card.plain and "spam and chargebacks" in card.plain

    await admin.send("/unban @alice")
    await admin.wait_for("✅ Unbanned Alice (1001).")
    await buy(alice)  # everything works again
    assert palm.count("getNumber") == 1

    await admin.send(f"/ban {alice.id}")  # a new ban owes a new notice
    await admin.wait_for("🚫 Banned Alice")
    await alice.send("/start")
    await alice.wait_for(NOTICE)
    await alice.send("/start")
    await finished.message(alice.id, "/start")
    assert _notices(alice) == 2
    assert telegram.unanswered_callbacks() == []
    actions = [(e.action, e.target, e.detail) for e in reversed(await app.admin.audit.recent())]
    assert actions[1:] == [
        ("ban", "1001", "spam and chargebacks"),
        ("unban", "1001", ""),
        ("ban", "1001", ""),
    ]


async def test_live_orders_of_a_banned_user_keep_running(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    await admin.send(f"/ban {alice.id}")
    banned = await admin.wait_for("Banned")
    assert "Their live orders keep running: 1." in banned.plain
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "555111")
    await alice.wait_for("555111")  # the code still reaches them: they paid for it
    assert await _app(running).wallet.balance(alice.id) == 67


async def test_ban_rules_and_malformed_commands(
    running: BotHarness, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    app = _app(running)
    await start(alice)
    await start(bob)
    for command, expect in (
        ("/ban", "Usage: /ban <id or @username> [reason]"),
        ("/unban", "Usage: /unban <id or @username>"),
        ("/ban @nobody", "No user @nobody has started the bot."),
        ("/ban 424242", "No user 424242 has started the bot."),
        ("/ban 1", "Admins cannot be banned."),
        ("/ban @owner", "Admins cannot be banned."),
        (f"/unban {alice.id}", "is not banned"),
    ):
        await admin.send(command)
        await admin.wait_for(expect)
    await admin.send("/ban @alice")
    await admin.wait_for("Banned Alice")
    await admin.send("/ban @alice")
    await admin.wait_for("already banned")
    await bob.send("/ban @alice")  # a customer cannot ban or unban
    await bob.wait_for("Unknown command")
    await bob.send("/unban @alice")
    await bob.wait_for("Unknown command")
    assert await app.admin.people.is_banned(alice.id)
    assert not await app.admin.people.is_banned(bob.id)
    assert [e.action for e in await app.admin.audit.recent()] == ["ban"]
