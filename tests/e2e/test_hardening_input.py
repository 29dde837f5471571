"""Bad input from strangers (issue 12, items 10 and 11).

Item 10: numbers in callback data and commands are ASCII digits within SQLite's range; a huge
or exotic number gets the specific answer ("not found", the usage line), never the apology.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import buy, start
from tests.e2e.test_crypto_topups import crypto_settings
from tests.fakes.cryptopay import FakeCryptoPay
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser

BIG = str(10**20)
APOLOGY = "something went wrong"


def _no_apology(*users: FakeUser) -> None:
    for user in users:
        assert not [m.plain for m in user.messages if APOLOGY in m.plain], user
        assert not [a.text for a in user.answers if APOLOGY in (a.text or "")], user


async def _tap(user: FakeUser, data: str) -> str:
    """Tap forged callback data on the user's last message; the answer's text."""
    assert user.last is not None
    answer = await user.wait_answer(await user.click_data(user.last, data))
    return answer.text or ""


async def test_forged_callbacks_with_huge_or_exotic_numbers(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    smspm: FakeSMSPM,
    cryptopay: FakeCryptoPay,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    settings: dict[str, Any] = {**sms_settings(smspm), **crypto_settings(cryptopay)}
    harness = harness_factory(**settings)
    app = await harness.start()
    await start(alice)
    await start(admin)
    await fund(admin, alice, "1")
    await buy(alice)
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]

    for action in ("show", "cancel", "another", "done", "refresh"):
        text = await _tap(alice, f"o:{BIG}:{action}")
        assert "not found" in text.lower(), (action, text)
    assert "not available" in await _tap(alice, f"q:{BIG}")

    # Pages far past the end show the last page, as a page just past the end does.
    await _tap(alice, f"op:{BIG}")
    await alice.wait_for(lambda m: "Your orders" in m.plain and f"#{order.id}" in m.plain)
    await _tap(alice, f"wl:hist:{BIG}")
    await alice.wait_for(lambda m: "Wallet history (page 1," in m.plain and "Purchase" in m.plain)
    await _tap(alice, f"sp:{BIG}:")
    await alice.wait_for("Choose a service")

    for data in (
        f"s:{BIG}:0",
        f"c:{BIG}:US",
        f"r:{BIG}:US:smspalm2",
        f"w:{BIG}:US",
        f"sm:{BIG}:show",
        f"sm:{BIG}:send",
        f"sm:{BIG}:cancel",
    ):
        text = await _tap(alice, data)
        assert APOLOGY not in text, (data, text)

    text = await _tap(alice, f"ta:{BIG}")
    assert APOLOGY not in text
    for method in ("stars", "crypto"):
        text = await _tap(alice, f"tp:{method}:{BIG}")
        assert APOLOGY not in text

    # Digits int() would take or refuse, but that are not plain ASCII: a forged button.
    for data in ("o:²:show", "o:١٢:show", "o:-1:show", "o:+5:show", "op:²", "wl:hist:-1"):
        assert "no longer valid" in await _tap(alice, data), data

    for data in (f"adm:audit:{BIG}", f"adm:recon:{BIG}", f"bc:{BIG}:send", f"bc:{BIG}:stop"):
        text = await _tap(admin, data)
        assert APOLOGY not in text, (data, text)

    _no_apology(alice, admin)
    assert telegram.unanswered_callbacks() == []
    assert await app.wallet.balance(alice.id) == 67


async def test_commands_with_huge_or_exotic_numbers(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await start(admin)
    await fund(admin, alice, "1")

    for command in (f"/order {BIG}", f"/order #{BIG}"):
        await admin.send(command)
        await admin.wait_for("No such order")
    await admin.send(f"/refund {BIG}")
    await admin.wait_for(f"Order #{BIG} does not exist")
    for command in (
        "/order ²",
        "/refund ²",
        "/order ١٢",
        "/refund -1",
        "/audit ²",
        "/reconcile ³",
    ):
        await admin.send(command)
        await admin.wait_for("Usage:")
    await admin.send(f"/reconcile {BIG}")
    await admin.wait_for("Usage: /reconcile")
    await admin.send(f"/audit {BIG}")
    await admin.wait_for("addbalance")  # the last page of the log
    for command in (
        f"/user {BIG}",
        "/user ²",
        f"/addbalance {BIG} 1",
        "/addbalance ² 1",
        f"/subbalance {BIG} 1 test",
        f"/ban {BIG}",
        "/unban ²",
    ):
        await admin.send(command)
        await admin.wait_for("No user")
    for command in ("/newpromo GIFT 1 ²", f"/newpromo GIFT 1 {BIG}"):
        await admin.send(command)
        await admin.wait_for("Usage: /newpromo")

    await alice.send("/start ref_١٢")
    await alice.wait_for("👋 Hi")

    _no_apology(admin, alice)
    assert running.app is not None
    assert await running.app.wallet.balance(alice.id) == 100
