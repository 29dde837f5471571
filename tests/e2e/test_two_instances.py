"""Two `python -m bot` processes in webhook mode on one database and one Redis, behind the fake
Bot API playing Telegram and a round-robin proxy (tests/e2e/multiproc.py): the money rules and
"each job done once" hold across instances, and when one instance is SIGKILLed the other carries
on. Every test ends with each balance equal to its ledger, read from the shared database.

SQLite (WAL) by default; `NUMBOT_TEST_DATABASE=postgresql` runs the same tests on a fresh
PostgreSQL database each. Skipped without Redis (several instances need it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fund
from tests.e2e.helpers import buy, buy_to_confirm, start
from tests.e2e.multiproc import Cluster, cluster
from tests.e2e.test_topups import invoice_for
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser, Message
from tests.redis_support import SharedRedis, shared_redis  # noqa: F401 - the fixture

WAIT = 30.0  # generous: two bot processes and the fakes share 2 busy cores
POLL_SECONDS = 0.2
LEASE_SECONDS = 2  # ORDER_LEASE_SECONDS for the instances (read once h14l lands)
NEEDS_ORDER_LEASES = "needs order leases (h14l): a dead instance's orders are not taken over"
NEEDS_JOB_LEASES = "needs job leases (h14l): a dead instance's broadcast is not taken over"


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


@pytest.fixture
def two(
    shared_redis: SharedRedis,  # noqa: F811 - first: its keys are deleted after the bots stop
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    tmp_path: Path,
) -> Callable[..., Any]:
    """`async with two(**env) as shop:` two instances with these extra settings."""

    def make(**env: Any) -> Any:
        return cluster(
            telegram,
            shared_redis,
            tmp_path,
            env=palm_env(palm, **env),
            secrets=[palm.api_key],
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


def texts(user: FakeUser, needle: str) -> list[Message]:
    return [m for m in user.messages if needle in m.plain]


async def served(user: FakeUser) -> Message:
    """The main menu, once the catalog is loaded (each instance refreshes it at start)."""
    return await start(user)


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
        palm.delay_next("getNumber", 1.0)  # the first purchase is still running at the second
        await alice.click(confirm, "Pay")
        await alice.click(confirm, "Pay")
        await alice.wait_for("Waiting for the SMS", timeout=WAIT)
        await telegram.wait_webhook_idle(timeout=WAIT)
        pays = [d for d in telegram.deliveries if d.ok][-2:]
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
        assert target is not None  # handled (credited), not answered yet
        dying = shop.by_target(target)
        await dying.kill()
        telegram.release("sendMessage")
        # Retried; the dead instance's claim in Redis lapses within ~30 s, then the other
        # instance handles it again.
        handled = await telegram.wait_delivered(charge.update_id, timeout=90)
        assert handled.target != target
        assert any(not d.ok for d in telegram.deliveries_of(charge.update_id))
        credits = await scalar(
            shop, "SELECT COUNT(*) FROM ledger WHERE user_id = :u AND kind = 'topup'", u=alice.id
        )
        assert credits == 1
        assert await scalar(shop, "SELECT balance FROM users WHERE id = :u", u=alice.id) == 500
        status = await scalar(
            shop, "SELECT status FROM star_charges WHERE charge_id = :c", c=charge.charge_id
        )
        assert status == "credited"
