"""Two instances on one database (SQLite file) and one Redis, in webhook mode behind the fake
Bot API playing a proxy: each live order is watched by exactly one instance (the one holding
its lease), a crashed instance's orders are taken over by the other, codes are sent and
refunds made exactly once, and a singleton job runs on one instance at a time and moves when
its holder dies. Skipped without Redis.

The second instance talks to the fake SMSPalm as `localhost` and the first as `127.0.0.1`,
so the fake's record of each request (its Host header) says which instance sent it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from bot.app import App
from shop.models import OrderStatus
from storage.leases import JobLeaseRepo, LeaseRepo
from tests.conftest import BotHarness, free_port, fund, sms_settings
from tests.e2e.helpers import buy_to_confirm, start
from tests.e2e.test_webhook_mode import SECRET
from tests.fakes.smspalm import FakeSMSPalm, Request
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture

PUBLIC = "https://shop.example.com"
HOOK = f"{PUBLIC}/telegram/webhook"
LEASE = 3  # seconds: renewed every second
CATALOG_PERIOD = 1  # the singleton job watched here: catalog refresh every second


@pytest.fixture(autouse=True)
def quick_retries(telegram: FakeTelegram) -> None:
    telegram.webhook_retry_delay = 0.05
    telegram.webhook_retry_max = 0.5


class Pair:
    """Two bots on the same database and Redis, each with its own listener behind the one
    public webhook URL (the fake routes updates to both in turn)."""

    def __init__(
        self,
        factory: Callable[..., BotHarness],
        redis: SharedRedis,
        palm: FakeSMSPalm,
        smspm: FakeSMSPM | None = None,
        **overrides: Any,
    ) -> None:
        self.palm = palm
        made = []
        for host in ("127.0.0.1", "localhost"):
            values: dict[str, Any] = {"order_lease_seconds": LEASE}
            if smspm is not None:  # outbound SMS on, followed by polling (no reports)
                values.update(sms_settings(smspm), public_base_url=None, smspm_poll_seconds=0.3)
                values["smspm_base_url"] = smspm.base_url.replace("127.0.0.1", host)
            values.update(overrides)
            values.update(
                http_port=free_port(),
                webhook_base_url=PUBLIC,
                webhook_secret=SECRET,
                redis_url=redis.url,
                redis_prefix=redis.prefix,
                smspalm_base_url=palm.base_url.replace("127.0.0.1", host),
            )
            made.append(factory(**values))
        self.a, self.b = made
        self.telegram = self.a.telegram
        self.telegram.route_webhook(HOOK, url(self.a), url(self.b))

    async def start(self) -> tuple[App, App]:
        return await self.a.start(), await self.b.start()

    async def crash(self, dead: BotHarness) -> None:
        """Kill `dead` with no clean-up (its leases stay until they run out), its registry row
        kept as an instance on another machine would leave it (`keep_row_of`)."""
        alive = self.b if dead is self.a else self.a
        app, other = dead.app, alive.app
        assert app is not None and other is not None
        await dead.crash()
        await keep_row_of(app, other)

    async def restart(self, harness: BotHarness) -> App:
        """Start `harness` again (a new process, a new id) and run a few of its lease rounds."""
        app = await harness.start()
        for _ in range(3):
            await app.jobs.keep_leases()
        return app

    def host(self, harness: BotHarness) -> str:
        return "localhost" if harness is self.b else "127.0.0.1"

    def sent_by(self, request: Request) -> str:
        return "b" if request.host.startswith("localhost") else "a"

    def status_calls(self, activation_id: str) -> list[Request]:
        return [
            r
            for r in self.palm.requests
            if r.action == "getStatus" and r.params.get("id") == activation_id
        ]


def url(harness: BotHarness) -> str:
    return f"http://127.0.0.1:{harness.settings.http_port}/telegram/webhook"


async def eventually(
    check: Callable[[], Any],
    timeout: float = 20.0,  # noqa: ASYNC109 - a test helper
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


async def buy_on(pair: Pair, target: BotHarness, user: FakeUser) -> int:
    """The user buys through the menus; the Pay click reaches `target`. Returns the order."""
    confirm = await buy_to_confirm(user)
    await pair.telegram.wait_webhook_idle()
    pair.telegram.steer_webhook(HOOK, url(target))
    await user.click(confirm, "Pay")
    await user.wait_for("Waiting for the SMS")
    app = target.app
    assert app is not None
    orders, _ = await app.orders.page_for_user(user.id, 0, 10)
    return orders[0].id


async def holders(app: App, order_ids: list[int]) -> dict[int, str | None]:
    return await LeaseRepo(app.db).holders(order_ids)


def code_messages(user: FakeUser, code: str) -> int:
    return sum(1 for m in user.messages if "📩" in m.plain and code in m.plain)


async def keep_row_of(dead: App, alive: App) -> None:
    """A killed instance on another machine leaves its registry row with a fresh heartbeat:
    put it back (the harness's crash removes it), so only its leases running out free its
    orders, not its row's absence."""
    me = dead.instances.instance
    row = replace(me, node="elsewhere", seen_at=int(time.time()))
    async with alive.db.transaction() as tx:
        await alive.instances.repo.add(tx, row)


async def test_orders_spread_over_two_instances_are_each_polled_by_one(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    telegram: FakeTelegram,
    admin: FakeUser,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm)
    app_a, app_b = await pair.start()
    users = telegram.make_users(4, first_id=5001)
    placed: dict[int, BotHarness] = {}
    for n, user in enumerate(users):
        await start(user)
        await fund(admin, user, "5")
        target = pair.a if n % 2 == 0 else pair.b
        placed[await buy_on(pair, target, user)] = target
    owner = {pair.a: app_a.instances.instance.id, pair.b: app_b.instances.instance.id}
    assert await holders(app_a, list(placed)) == {i: owner[h] for i, h in placed.items()}
    # Several renewals and many polls later, each order is still polled by its holder only.
    activations = {o.activation_id: o.id for o in await app_a.orders.orders.live()}
    assert len(activations) == 4

    def polled_enough() -> bool:
        return all(len(pair.status_calls(a)) >= 10 for a in activations if a)

    await eventually(polled_enough, what="10 polls of each order")
    for activation, order_id in activations.items():
        assert activation is not None
        senders = {pair.sent_by(r) for r in pair.status_calls(activation)}
        assert senders == {"a" if placed[order_id] is pair.a else "b"}, (order_id, senders)
    assert app_a.jobs.held_ids() == {i for i, h in placed.items() if h is pair.a}
    assert app_b.jobs.held_ids() == {i for i, h in placed.items() if h is pair.b}
    assert await holders(app_a, list(placed)) == {i: owner[h] for i, h in placed.items()}


async def test_a_crashed_instances_order_gets_its_code_from_the_other_once(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm)
    _, app_b = await pair.start()
    await start(alice)
    await fund(admin, alice, "5")
    order_id = await buy_on(pair, pair.a, alice)
    (activation,) = palm.activations.values()
    await eventually(lambda: len(pair.status_calls(activation.id)) >= 2, what="A polls")

    await pair.crash(pair.a)  # no clean-up: its lease stays until it runs out
    crashed_at = len(palm.requests)
    palm.deliver_code(activation.id, "424242")
    await alice.wait_for("424242", timeout=LEASE + 10)
    after = [r for r in pair.status_calls(activation.id) if palm.requests.index(r) >= crashed_at]
    assert {pair.sent_by(r) for r in after} == {"b"}
    assert await holders(app_b, [order_id]) == {order_id: app_b.instances.instance.id}
    order = await app_b.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CODE_RECEIVED

    # A comes back (a new process, a new id): B holds the order, so A takes nothing and
    # sends nothing again.
    restarted = await pair.restart(pair.a)
    await asyncio.sleep(0.5)
    assert restarted.jobs.held_ids() == set()
    assert await holders(app_b, [order_id]) == {order_id: app_b.instances.instance.id}
    assert code_messages(alice, "424242") == 1
    codes = await app_b.orders.codes(order_id)
    assert [c.code for c in codes] == ["424242"] and codes[0].delivered_at is not None


async def test_a_timeout_refund_happens_once_across_a_crash_and_a_restart(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm, order_timeout_seconds=6)
    _, app_b = await pair.start()
    for user in (alice, bob):
        await start(user)
        await fund(admin, user, "5")
    on_a = await buy_on(pair, pair.a, alice)
    on_b = await buy_on(pair, pair.b, bob)
    await pair.crash(pair.a)  # before alice's deadline
    for user in (alice, bob):
        await user.wait_for("No code arrived in time", timeout=20)
    restarted = await pair.restart(pair.a)
    await restarted.jobs.sweep()
    await asyncio.sleep(0.5)
    for user, order_id in ((alice, on_a), (bob, on_b)):
        order = await app_b.orders.get(order_id)
        assert order is not None and order.status is OrderStatus.EXPIRED and order.refunded
        assert sum("No code arrived in time" in m.plain for m in user.messages) == 1
        wallet = await app_b.users.get(user.id)
        assert wallet is not None and wallet.balance == 500  # funded $5, all back
        cancels = [
            r for r in palm.requests if r.action == "setStatus" and r.params.get("status") == "8"
        ]
        activation = order.activation_id
        assert sum(r.params.get("id") == activation for r in cancels) == 1
    await pair.b.check_ledger()


async def test_a_singleton_job_runs_on_one_instance_and_moves_when_it_dies(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm, catalog_refresh_seconds=CATALOG_PERIOD)
    app_a, app_b = await pair.start()
    started = len(palm.requests)  # from here on, only the scheduled refresh asks for lists
    jobs = JobLeaseRepo(app_a.db)
    await eventually(lambda: jobs.holder("catalog"), what="a holder of the catalog job")
    first = await jobs.holder("catalog")
    assert first is not None
    ids = {app_a.instances.instance.id: pair.a, app_b.instances.instance.id: pair.b}
    holder, other = ids[first[0]], pair.b if ids[first[0]] is pair.a else pair.a
    name = {pair.a: "a", pair.b: "b"}

    def refreshes() -> list[Request]:
        return [r for r in palm.requests[started:] if r.action == "getServicesList"]

    await eventually(lambda: len(refreshes()) >= 4, what="four scheduled refreshes")
    assert {pair.sent_by(r) for r in refreshes()} == {name[holder]}

    assert other.app is not None
    await pair.crash(holder)
    moved = len(refreshes())
    await eventually(
        lambda: any(pair.sent_by(r) == name[other] for r in refreshes()[moved:]),
        what="the other instance refreshes",
    )
    senders = [pair.sent_by(r) for r in refreshes()]
    # One at a time: the first holder's runs, then the other's, never interleaved.
    changes = sum(1 for x, y in itertools.pairwise(senders) if x != y)
    assert changes == 1, senders
    now_held = await JobLeaseRepo(other.app.db).holder("catalog")
    assert now_held is not None and now_held[0] == other.app.instances.instance.id


async def test_a_graceful_stop_hands_orders_over_at_once(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm, order_lease_seconds=600)
    _, app_b = await pair.start()
    await start(alice)
    await fund(admin, alice, "5")
    order_id = await buy_on(pair, pair.a, alice)
    await pair.a.stop()  # releases its leases: no need to wait 600 s
    await app_b.jobs.keep_leases()
    assert await holders(app_b, [order_id]) == {order_id: app_b.instances.instance.id}
    assert app_b.jobs.held_ids() == {order_id}
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "515151")
    await alice.wait_for("515151")


async def test_a_crashed_instances_sms_send_is_followed_by_the_other(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    smspm: FakeSMSPM,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    pair = Pair(harness_factory, shared_redis, palm, smspm)
    app_a, app_b = await pair.start()
    await start(alice)
    await fund(admin, alice, "1")
    await alice.send("/sms")
    await alice.wait_for("Send SMS")
    await alice.send("+372 5678 9045")
    await alice.wait_for("Now send the text")
    await alice.send("Hello from two instances")
    confirm = await alice.wait_for("Confirm your SMS")
    await pair.telegram.wait_webhook_idle()
    pair.telegram.steer_webhook(HOOK, url(pair.a))
    await alice.click(confirm, "Send for $0.10")
    status = await alice.wait_for("SMS #")
    assert app_a.sms is not None
    (send,) = await app_a.sms.recent(alice.id)
    assert await sms_holder(app_a, send.id) == app_a.instances.instance.id

    def details_from(host: str) -> int:
        return sum(
            1 for r in smspm.requests if r.path == "/smsdetails" and r.host.startswith(host)
        )

    await eventually(lambda: details_from("127.0.0.1") >= 1, what="A follows the send")
    assert details_from("localhost") == 0
    await pair.crash(pair.a)
    (sms,) = smspm.messages.values()
    smspm.set_status(sms.id, "delivered")
    await alice.wait_for(
        lambda m: m.message_id == status.message_id and "delivered" in m.plain,
        timeout=LEASE + 10,
    )
    assert details_from("localhost") >= 1
    assert await sms_holder(app_b, send.id) == app_b.instances.instance.id
    assert await app_b.wallet.balance(alice.id) == 90  # charged once, nothing refunded


async def sms_holder(app: App, send_id: int) -> str | None:
    row = await app.db.fetchone(
        "SELECT lease_owner FROM sms_sends WHERE id = :id", {"id": send_id}
    )
    assert row is not None
    return row["lease_owner"]
