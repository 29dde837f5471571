"""The fake Bot API's webhook delivery, against small receivers on 127.0.0.1 (real HTTP both
ways; the bot's side is a real aiogram Bot)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from tests.conftest import free_port
from tests.fakes.telegram import SECRET_HEADER, FakeTelegram


@dataclass
class Receiver:
    """A webhook receiver: records each POST (update_id, secret header), answers the next
    scripted status (200 once the script is empty)."""

    statuses: deque[int] = field(default_factory=deque)
    received: list[tuple[int, str | None]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def update_ids(self) -> list[int]:
        return [update_id for update_id, _ in self.received]

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        assert request.content_type == "application/json"
        self.received.append((body["update_id"], request.headers.get(SECRET_HEADER)))
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.popleft() if self.statuses else 200
        return web.Response(status=status, text="x")

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.webhook_retry_delay = 0.02
        server.webhook_retry_max = 0.1
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    bot = Bot(fake.token, session=session)
    yield bot
    await bot.session.close()


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        await receiver.stop()


async def receiver(made: list[Receiver], *statuses: int) -> Receiver:
    created = Receiver(statuses=deque(statuses))
    await created.start()
    made.append(created)
    return created


async def test_pending_and_new_updates_are_posted_in_order_with_the_secret(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    alice = fake.user(1)
    await alice.send("before")
    await alice.send("before, too")
    assert await bot.set_webhook(hook.url, secret_token="s3cret_-X")
    await alice.send("after")
    await fake.wait_webhook_idle()
    assert hook.received == [(1, "s3cret_-X"), (2, "s3cret_-X"), (3, "s3cret_-X")]
    info = await bot.get_webhook_info()
    assert info.url == hook.url and info.pending_update_count == 0
    assert info.last_error_date is None
    assert fake.pending_updates == 0


async def test_get_updates_is_refused_while_a_webhook_is_set(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)  # the long poll is waiting
    await bot.set_webhook(hook.url)
    with pytest.raises(TelegramConflictError, match="terminated by setWebhook"):
        await poll
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates(timeout=0) == []
    assert (await bot.get_webhook_info()).url == ""


async def test_a_failed_delivery_is_retried_with_the_same_update_id(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers, 500, 503)
    await bot.set_webhook(hook.url)
    alice = fake.user(1)
    await alice.send("one")
    await alice.send("two")
    delivered = await fake.wait_delivered(1)
    await fake.wait_webhook_idle()
    assert delivered.status == 200
    # The second update waited behind the first one's retries.
    assert hook.update_ids == [1, 1, 1, 2]
    assert [d.status for d in fake.deliveries_of(1)] == [500, 503, 200]
    info = await bot.get_webhook_info()
    assert info.last_error_message == "Wrong response from the webhook: 503"
    assert info.last_error_date is not None


async def test_a_refused_connection_is_retried_until_the_receiver_listens(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    await bot.set_webhook(url)
    alice = fake.user(1)
    await alice.send("while nobody listens")
    for _ in range(500):
        if len(fake.deliveries_of(1)) >= 2:
            break
        await asyncio.sleep(0.01)
    failed = fake.deliveries_of(1)
    assert len(failed) >= 2 and all(d.status is None and d.error for d in failed)
    assert fake.pending_updates == 1
    late = Receiver()
    await late.start(port)
    receivers.append(late)
    await fake.wait_delivered(1)
    assert late.update_ids == [1]


async def test_drop_pending_updates_is_honoured(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    alice = fake.user(1)
    await alice.send("dropped by setWebhook")
    await bot.set_webhook(hook.url, drop_pending_updates=True)
    await alice.send("kept")
    await fake.wait_webhook_idle()
    assert hook.update_ids == [2]
    await bot.delete_webhook()
    await alice.send("dropped by deleteWebhook")
    await bot.delete_webhook(drop_pending_updates=True)
    assert fake.pending_updates == 0
    await alice.send("pending, not dropped")
    await bot.delete_webhook(drop_pending_updates=False)
    assert fake.pending_updates == 1


async def test_allowed_updates_filter_what_is_delivered_and_are_kept(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    await bot.set_webhook(hook.url, allowed_updates=["callback_query"])
    assert (await bot.get_webhook_info()).allowed_updates == ["callback_query"]
    await bot.set_webhook(hook.url, secret_token="other")  # no allowed_updates: kept
    assert (await bot.get_webhook_info()).allowed_updates == ["callback_query"]
    alice = fake.user(1)
    await alice.send("a message: not asked for")
    fake.push_update({"callback_query": {"id": "1", "from": alice.user_json(), "data": "x"}})
    await fake.wait_webhook_idle()
    assert hook.update_ids == [2]


async def test_bad_webhook_parameters_are_refused(fake: FakeTelegram, bot: Bot) -> None:
    for secret in ("has space", "ключ", "x" * 257):
        with pytest.raises(TelegramBadRequest, match="secret token"):
            await bot.set_webhook("https://example.com/hook", secret_token=secret)
    with pytest.raises(TelegramBadRequest, match="bad webhook"):
        await bot.set_webhook("ftp://example.com/hook")
    assert fake.webhook is None


async def test_several_targets_behind_one_url_share_the_updates_round_robin(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    first, second = await receiver(receivers), await receiver(receivers, 500)
    public = "https://shop.example.com/telegram/webhook"
    fake.route_webhook(public, first.url, second.url)
    await bot.set_webhook(public, secret_token="s")
    alice = fake.user(1)
    for n in range(6):
        await alice.send(f"message {n}")
    await fake.wait_webhook_idle()
    # Every update was answered 200 once; the one that failed at `second` went on to the next
    # target, as a proxy would send a retried request.
    ok = [d for d in fake.deliveries if d.ok]
    assert sorted(d.update_id for d in ok) == [1, 2, 3, 4, 5, 6]
    assert {d.target for d in ok} == {first.url, second.url}
    failed = [d for d in fake.deliveries if not d.ok]
    assert len(failed) == 1 and failed[0].target == second.url
    retried = fake.deliveries_of(failed[0].update_id)
    assert [d.target for d in retried] == [second.url, first.url]
    assert all(secret == "s" for r in (first, second) for _, secret in r.received)


async def test_one_request_at_a_time_per_target(
    fake: FakeTelegram, bot: Bot, receivers: list[Receiver]
) -> None:
    hook = await receiver(receivers)
    hook.hold = asyncio.Event()
    await bot.set_webhook(hook.url)
    alice = fake.user(1)
    for n in range(3):
        await alice.send(f"message {n}")
    for _ in range(100):
        if hook.received:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # more time for a second request that must not come
    assert hook.update_ids == [1]
    hook.hold.set()
    await fake.wait_webhook_idle()
    assert hook.update_ids == [1, 2, 3]


def test_the_webhook_url_and_secret_are_string_parameters() -> None:
    from tests.fakes.telegram import _decode_param

    assert _decode_param("secret_token", "12345") == "12345"
    params: dict[str, Any] = {"url": "https://x/y"}
    assert _decode_param("url", params["url"]) == "https://x/y"
