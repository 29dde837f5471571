"""Two `python -m bot` processes in webhook mode on one database and one Redis, behind the fake
Bot API playing Telegram and a round-robin proxy (tests/e2e/multiproc.py): the money rules and
"each job done once" hold across instances, and when one instance is SIGKILLed the other carries
on, and every upstream's rate limit holds across both. Every test ends with each balance equal
to its ledger, read from the shared database.

SQLite (WAL) by default; `NUMBOT_TEST_DATABASE=postgresql` runs the same tests on a fresh
PostgreSQL database each. Skipped without Redis (several instances need it)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.factory.database import create_repositories
from tests.conftest import fund
from tests.databases import DatabaseTarget
from tests.e2e.helpers import buy_to_confirm, start
from tests.e2e.multiproc import WEBHOOK_URL, BotProcess, Cluster, cluster
from tests.e2e.test_topups import invoice_for
from tests.e2e.upstreams import Upstreams, running_upstreams
from tests.fakes.papsms import FakePapSMS
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspool import FakeSMSPool
from tests.fakes.spotsms import FakeSpotSMS
from tests.fakes.telegram import FakeTelegram, FakeUser, Message
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture

WAIT = 30.0  # generous: two bot processes and the fakes share 2 busy cores
POLL_SECONDS = 0.2
LEASE_SECONDS = 3  # ORDER_LEASE_SECONDS of the instances (the least it may be)


@pytest.fixture(autouse=True)
def quick_retries(telegram: FakeTelegram) -> None:
    telegram.webhook_retry_delay = 0.05
    telegram.webhook_retry_max = 0.5


def palm_env(palm: FakeSMSPalm, **overrides: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "SMSPALM_API_KEY": palm.api_key,
        "SMSPALM_BASE_URL": palm.base_url,
        "SMSPALM_RATE": "0.001",
        "SMSPALM_RATE_LIMIT": 6000,
        "MARKUP_PERCENT": 30,
        "POLL_INTERVAL_SECONDS": POLL_SECONDS,
        "ORDER_TIMEOUT_SECONDS": 600,
        "ORDER_LEASE_SECONDS": LEASE_SECONDS,
        **overrides,
    }
    return {key: str(value) for key, value in values.items()}


def _kind(target: DatabaseTarget) -> str:
    return "sqlite" if target.url is None else "postgresql"


@pytest.fixture
def two(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    tmp_path: Path,
    database_target: DatabaseTarget,
) -> Callable[..., Any]:
    """`async with two(**env) as shop:` two instances with these extra settings, on SQLite
    and on PostgreSQL (the `database_target` parameter); `secrets` are more values that no
    log may show."""

    def make(secrets: Iterable[str] = (), **env: Any) -> Any:
        return cluster(
            telegram,
            shared_redis,
            tmp_path,
            env=palm_env(palm, **env),
            secrets=[palm.api_key, *secrets],
            kind=_kind(database_target),
        )

    return make


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    seconds: float = WAIT,
    what: str = "condition",
) -> Any:
    """Until `check()` is truthy (polled; returns early on success)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {seconds}s")
        await asyncio.sleep(0.05)


async def scalar(shop: Cluster, sql: str, **params: Any) -> Any:
    async with shop.db() as db:
        return await db.fetchval(sql, params)


# -- money across instances -------------------------------------------------------------------


async def test_double_pay_split_across_instances_charges_once(
    two: Callable[..., Any],
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    async with two() as shop:
        await start(admin)
        await start(alice)
        await fund(admin, alice, "10")
        confirm = await buy_to_confirm(alice)
        await telegram.wait_webhook_idle(timeout=WAIT)
        before = len(telegram.deliveries)
        palm.delay_next("getNumber", 1.0)  # the first purchase is still running at the second
        await alice.click(confirm, "Pay")
        await alice.click(confirm, "Pay")
        await alice.wait_for("Waiting for the SMS", timeout=WAIT)
        await telegram.wait_webhook_idle(timeout=WAIT)
        pays = [d for d in telegram.deliveries[before:] if d.ok]
        assert len(pays) == 2
        assert {shop.by_target(d.target).name for d in pays} == {"bot0", "bot1"}
        assert palm.count("getNumber") == 1
        assert len(palm.activations) == 1
        orders = await scalar(shop, "SELECT COUNT(*) FROM orders WHERE user_id = :u", u=alice.id)
        assert orders == 1
        charges = await scalar(
            shop, "SELECT COUNT(*) FROM ledger WHERE user_id = :u AND amount < 0", u=alice.id
        )
        assert charges == 1


async def test_stars_payment_whose_instance_dies_before_answering_is_credited_once(
    two: Callable[..., Any], telegram: FakeTelegram, alice: FakeUser
) -> None:
    """The instance that takes the successful_payment credits it, then is SIGKILLed while its
    reply is on the way (the fake holds that sendMessage): Telegram never got a 200, so it
    delivers the update again, to the other instance once the dead one's claim lapses. The
    payment is credited exactly once."""
    async with two() as shop:
        await start(alice)
        invoice = await invoice_for(alice, "$5.00")
        checkout = await alice.checkout(invoice, timeout=WAIT)
        assert checkout.ok, checkout.error_message
        telegram.hold("sendMessage")
        charge = alice.complete(checkout)
        assert charge.update_id is not None and charge.charge_id is not None
        await eventually(lambda: telegram.held, what="the reply held")
        target = telegram.delivering(charge.update_id)
        assert target is not None  # handled, not answered yet
        topups = "SELECT COUNT(*) FROM ledger WHERE user_id = :u AND kind = 'topup'"
        assert await scalar(shop, topups, u=alice.id) == 1  # credited before the kill
        dying = shop.by_target(target)
        await dying.kill()
        telegram.release("sendMessage")
        # Retried; the dead instance's claim in Redis lapses within ~30 s, then the other
        # instance handles it again.
        handled = await telegram.wait_delivered(charge.update_id, timeout=90)
        assert handled.target != target
        assert any(not d.ok for d in telegram.deliveries_of(charge.update_id))
        assert await scalar(shop, topups, u=alice.id) == 1
        assert await scalar(shop, "SELECT balance FROM users WHERE id = :u", u=alice.id) == 500
        status = await scalar(
            shop, "SELECT status FROM star_charges WHERE charge_id = :c", c=charge.charge_id
        )
        assert status == "credited"


# -- orders across instances ------------------------------------------------------------------


def sends_with(telegram: FakeTelegram, user: FakeUser, needle: str) -> int:
    """How many messages `user` was sent (sendMessage answered ok) that carry `needle`."""
    return sum(
        1
        for call in telegram.calls_to("sendMessage")
        if call.ok
        and str(call.params.get("chat_id")) == str(user.id)
        and needle in str(call.params.get("text", ""))
    )


async def buy_on(shop: Cluster, telegram: FakeTelegram, user: FakeUser) -> tuple[str, Any]:
    """`user` buys a number; returns the instance that handled the Pay click and the order
    card."""
    confirm = await buy_to_confirm(user)
    await telegram.wait_webhook_idle(timeout=WAIT)  # the screen came before the 200
    before = len(telegram.deliveries)
    await user.click(confirm, "Pay")
    card = await user.wait_for("Waiting for the SMS", timeout=WAIT)
    await telegram.wait_webhook_idle(timeout=WAIT)
    [pay] = [d for d in telegram.deliveries[before:] if d.ok]
    return shop.by_target(pay.target).name, card


async def test_a_code_arriving_after_its_instance_is_killed_is_delivered_by_the_other(
    two: Callable[..., Any],
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    async with two() as shop:
        await start(admin)
        await start(alice)
        await fund(admin, alice, "10")
        name, _card = await buy_on(shop, telegram, alice)
        dying = next(bot for bot in shop.bots if bot.name == name)
        await dying.kill()
        [activation] = palm.activations
        palm.deliver_code(activation, "246810")
        # Within one lease and one poll (plus room for a busy machine); without leases only
        # the other instance's sweeper (every 60 s) would find the order.
        await alice.wait_for("246810", timeout=LEASE_SECONDS + POLL_SECONDS + 10)
        await shop.restart(shop.bots.index(dying))
        await asyncio.sleep(10 * POLL_SECONDS)  # the restarted instance polls its orders
        assert sends_with(telegram, alice, "246810") == 1  # no second code message


async def test_a_timeout_refund_happens_exactly_once(
    two: Callable[..., Any],
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    """Two orders, one bought through each instance (as the round-robin falls); one instance
    is SIGKILLed and started again before the deadline, so both instances know both orders
    when they expire. Each is cancelled upstream, refunded and announced once."""
    async with two(ORDER_TIMEOUT_SECONDS=8) as shop:
        for user in (admin, alice, bob):
            await start(user)
        await fund(admin, alice, "10")
        await fund(admin, bob, "10")
        await buy_on(shop, telegram, alice)
        await buy_on(shop, telegram, bob)
        await shop[1].kill()
        await shop.restart(1)
        for user in (alice, bob):
            await user.wait_for("is back on your balance", timeout=WAIT)
        await asyncio.sleep(2)  # room for a second refund, were there one
        for user in (alice, bob):
            assert sends_with(telegram, user, "is back on your balance") == 1
            refunds = await scalar(
                shop,
                "SELECT COUNT(*) FROM ledger WHERE user_id = :u AND kind = 'refund'",
                u=user.id,
            )
            assert refunds == 1
            assert await scalar(shop, "SELECT balance FROM users WHERE id = :u", u=user.id) == 1000
        assert all(a.status == "cancelled" for a in palm.activations.values())
    # After the instances stopped (and the ledger was checked): one cancel upstream each.
    cancels = sorted(
        r.params["id"]
        for r in palm.requests
        if r.action == "setStatus" and r.params.get("status") == "8"
    )
    assert cancels == sorted(palm.activations)


# -- shared limits and singleton jobs ---------------------------------------------------------


# Each upstream's limit, per 60 s on one API key: SMSPalm's and PapSMS's are documented
# (../shared/upstream-docs: "100 requests/min per token", "60 requests per minute"). SMSPool's and
# SpotSMS's docs name none: their fakes enforce what the bot allows itself by default
# (SMSPOOL_RATE_LIMIT, SPOTSMS_RATE_LIMIT). SMSPM is left out: its doc names no limit and the
# bot calls it only to send an SMS and follow its statuses, not to poll live orders.
LIMITS = {"SMSPalm": 100, "SMSPool": 120, "SpotSMS": 60, "PapSMS": 60}
ROUTES = {
    "SMSPalm": "SMSPalm Server 2",
    "SMSPool": "SMSPool",
    "SpotSMS": "SpotSMS",
    "PapSMS": "PapSMS",
}
# How long both instances poll with every budget spent. Without the shared budget each would
# have its own schedule of 0.95 x limit a minute, and the two together pass the limit within
# 60 / 1.9 = 31.6 s. Kept under a minute in all (pays, codes, this, the stop), so that no 60-s
# window holds a minute of full-rate polling: a process stalled for seconds cannot push a
# request that was on time into the next one.
FULL_LOAD_SECONDS = 36.0


NAMES = {"SMSPalm": "smspalm", "SMSPool": "smspool", "SpotSMS": "spotsms", "PapSMS": "papsms"}


def by_name(upstreams: Upstreams) -> dict[str, Any]:
    """Every upstream with a request budget, each enforcing its limit per 60 s on its key."""
    return {name: upstreams.fake(provider) for name, provider in NAMES.items()}


def env(upstreams: Upstreams) -> dict[str, Any]:
    """Settings for the instances: every upstream on, each at its limit (PapSMS polled: no
    webhook)."""
    values: dict[str, Any] = {"SMSPALM_RATE_LIMIT": LIMITS["SMSPalm"]}
    for name, provider in NAMES.items():
        if provider != "smspalm":
            keys = upstreams.keys(provider, LIMITS[name])
            values.update({key.upper(): value for key, value in keys.items()})
    return values


def deliver_code(upstreams: Upstreams, route: str, activation_id: str, code: str) -> None:
    if route.startswith("smspalm"):
        upstreams.palm.deliver_code(activation_id, code)
    elif route == "smspool":
        upstreams.pool.deliver_code(activation_id, code)
    elif route == "spotsms":  # the bot keeps "rs_id|phone|service"
        upstreams.spot.deliver_code(activation_id.split("|", 1)[0], code)
    else:
        upstreams.pap.deliver_code(activation_id, code, webhook=False)


@pytest.fixture
async def upstreams(palm: FakeSMSPalm) -> AsyncIterator[Upstreams]:
    palm.rate_limit, palm.window_seconds = LIMITS["SMSPalm"], 60.0
    async with running_upstreams(
        palm,
        FakeSMSPool(rate_limit=LIMITS["SMSPool"], window_seconds=60.0),
        FakeSpotSMS(rate_limit=LIMITS["SpotSMS"], window_seconds=60.0),
        FakePapSMS(rate_limit=LIMITS["PapSMS"], window_seconds=60.0),
    ) as made:
        yield made


def busiest_minute(times: list[float], window: float = 60.0) -> int:
    """The most requests any `window`-second span held (the fakes' sliding window)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


async def upstream_requests(bot: BotProcess) -> Counter[str]:
    """Upstream requests this instance made so far, by provider (its /metrics)."""
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"http://127.0.0.1:{bot.port}/metrics")
    answer.raise_for_status()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(answer.text):
        if family.name == "numbot_upstream_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["provider"]] += int(sample.value)
    return counts


async def test_every_upstream_rate_limit_holds_across_both_instances(
    two: Callable[..., Any],
    telegram: FakeTelegram,
    upstreams: Upstreams,
    admin: FakeUser,
) -> None:
    """Both instances hold live orders on every upstream, polled every 0.2 s: each instance
    alone asks for more than the whole limit, so only the schedule they share in Redis keeps
    the two under it (without it they pass it after 32 s of this). Every upstream sees no
    HTTP 429 and never more than its limit in any 60 s; every code reaches its customer once
    although both instances go on polling the orders that have it."""
    telegram.webhook_connections = 8  # the Pay clicks below reach the instances at once
    users = telegram.make_users(2 * len(ROUTES), first_id=5001)
    keys = [fake.api_key for fake in by_name(upstreams).values()]
    async with two(secrets=keys, **env(upstreams)) as shop:

        async def catalog_loaded() -> bool:  # both SMSPalm servers and the other three
            return await scalar(shop, "SELECT COUNT(*) FROM routes WHERE ok = 1") == 5

        await eventually(catalog_loaded, what="the catalog refreshed")
        await start(admin, timeout=WAIT)
        await asyncio.gather(*(start(user, timeout=WAIT) for user in users))
        for user in users:
            await fund(admin, user, "10")
        # Two customers per upstream, their Pay clicks sent together: the proxy hands them out
        # in turn, so each upstream gets an order bought (and held) by each instance.
        names = [name for name in ROUTES for _ in range(2)]
        confirms = await asyncio.gather(
            *(
                buy_to_confirm(u, route=ROUTES[n], timeout=WAIT)
                for u, n in zip(users, names, strict=True)
            )
        )
        await telegram.wait_webhook_idle(timeout=WAIT)
        telegram.steer_webhook(WEBHOOK_URL, shop[0].target)
        for user, confirm in zip(users, confirms, strict=True):
            await user.click(confirm, "Pay")
        await asyncio.gather(*(u.wait_for("Waiting for the SMS", timeout=WAIT) for u in users))
        loaded = time.monotonic()
        async with shop.db() as db:
            orders = await db.fetchall(
                "SELECT user_id, route, activation_id, lease_owner FROM orders", {}
            )
        owners: dict[str, set[str]] = {}
        for order in orders:
            owners.setdefault(str(order["route"]), set()).add(str(order["lease_owner"]))
        assert len(orders) == len(users)
        assert all(len(held) == 2 for held in owners.values()), owners
        before = [await upstream_requests(bot) for bot in shop.bots]
        # The codes come at once; the orders stay live (another SMS may come) and polled.
        for order in orders:
            code = f"7{int(order['user_id']):05d}"
            deliver_code(upstreams, str(order["route"]), str(order["activation_id"]), code)
        for user in users:
            await user.wait_for(f"7{user.id:05d}", timeout=WAIT)
        await asyncio.sleep(max(0.0, loaded + FULL_LOAD_SECONDS - time.monotonic()))
        after = [await upstream_requests(bot) for bot in shop.bots]
        for name in LIMITS:  # each instance kept asking each upstream
            grew = [a[name] > b[name] for a, b in zip(after, before, strict=True)]
            assert grew == [True, True], (name, before, after)
        assert [u.id for u in users if sends_with(telegram, u, f"7{u.id:05d}") != 1] == []
    # The instances have stopped: every request either of them made is in.
    for name, fake in by_name(upstreams).items():
        assert fake.rejected_429 == 0, name
        assert busiest_minute([r.at for r in fake.requests]) <= LIMITS[name], name


async def register(shop: Cluster, users: list[FakeUser]) -> None:
    """Users who started the bot, written as the instances' middleware writes them
    (a /start each through the webhooks would make the test slow without proving more)."""
    async with shop.db() as db:
        repo = create_repositories(db).users
        for user in users:
            await repo.upsert(user.id, user.username, user.first_name, "en")


async def compose_broadcast(admin: FakeUser, text: str) -> Message:
    """/broadcast, then the content; returns the confirm screen."""
    await admin.send("/broadcast")
    await admin.wait_for("Send me the message", timeout=WAIT)
    await admin.send(text)
    return await admin.wait_for("This is how it will look", timeout=WAIT)


def progress_says(confirm: Message, word: str) -> Callable[[Message], bool]:
    def check(m: Message) -> bool:
        return m.message_id == confirm.message_id and word in m.plain

    check.__name__ = f"progress says {word!r}"
    return check


def copies(user: FakeUser, text: str, after: Message | None = None) -> int:
    first = after.message_id if after is not None else 0
    return sum(1 for m in user.messages if m.plain == text and m.message_id > first)


async def test_a_broadcast_is_sent_once_while_the_other_instance_restarts(
    two: Callable[..., Any], telegram: FakeTelegram, admin: FakeUser
) -> None:
    """The instance that did not start the broadcast is SIGKILLed and started again while
    the sender has copies in flight (the fake holds them): the restarted one must leave the
    broadcast to its sender, neither starting a second sender nor taking those copies for
    unknown outcomes."""
    users = telegram.make_users(59, first_id=7001)
    async with two(BROADCAST_RATE=10) as shop:
        await start(admin)
        await register(shop, users)
        confirm = await compose_broadcast(admin, "Sent-once")
        await admin.click(confirm, "Send to 60")
        await users[5].wait_for("Sent-once", timeout=WAIT)
        [sender] = await eventually(lambda: shop.logged("Broadcast 1 started"))
        other = shop.bots.index(next(b for b in shop.bots if b is not sender))
        telegram.hold("copyMessage")
        await eventually(lambda: telegram.held, what="a copy in flight")
        await shop[other].kill()
        await shop.restart(other)  # ready: its start-up (resuming broadcasts) is over
        telegram.release("copyMessage")
        progress = await admin.wait_for(progress_says(confirm, "done"), timeout=60)
        assert "Sent: 60 · failed: 0 · blocked: 0 · left: 0 · total: 60" in progress.plain
        assert "unknown" not in progress.plain and "being sent" not in progress.plain
        assert copies(admin, "Sent-once", after=confirm) == 1
        assert [u.id for u in users if copies(u, "Sent-once") != 1] == []


async def test_a_broadcast_whose_sender_is_killed_is_finished_by_the_other_instance(
    two: Callable[..., Any], telegram: FakeTelegram, admin: FakeUser
) -> None:
    users = telegram.make_users(59, first_id=8001)
    async with two(BROADCAST_RATE=10) as shop:
        await start(admin)
        await register(shop, users)
        confirm = await compose_broadcast(admin, "Carried-on")
        await admin.click(confirm, "Send to 60")
        await users[5].wait_for("Carried-on", timeout=WAIT)
        [sender] = await eventually(lambda: shop.logged("Broadcast 1 started"))
        await sender.kill()
        # The other instance takes the broadcast over within a lease and sends the rest;
        # copies that were in flight at the kill are never sent again.
        progress = await admin.wait_for(progress_says(confirm, "done"), timeout=WAIT)
        assert "left: 0 · total: 60" in progress.plain
        assert [u.id for u in users if copies(u, "Carried-on") > 1] == []
        assert sum(copies(u, "Carried-on") for u in users) >= len(users) - 10


# -- starting together ------------------------------------------------------------------------


async def test_two_instances_started_at_once_on_a_fresh_database(
    shared_redis: SharedRedis,  # noqa: F811
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    tmp_path: Path,
    alice: FakeUser,
    database_target: DatabaseTarget,
) -> None:
    kind = _kind(database_target)
    async with cluster(
        telegram, shared_redis, tmp_path, env=palm_env(palm), at_once=True, kind=kind
    ) as shop:
        for user in telegram.make_users(4, first_id=9001):
            await start(user)
        await start(alice)
        assert {shop.by_target(d.target).name for d in telegram.deliveries if d.ok} == {
            "bot0",
            "bot1",
        }
