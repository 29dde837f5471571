"""Promo codes, referrals and the wallet history, end to end."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy
from tests.e2e.test_topups import balance_of, execute, menu, rows, stars_topup
from tests.fakes.telegram import FakeTelegram, FakeUser

LINE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} [+−]\$\d+\.\d{2} ")


async def test_promo_codes(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    carol = telegram.user(1003, first_name="Carol")
    for user in (admin, alice, bob, carol):
        await menu(user)
    await admin.send("/newpromo WELCOME 1.50 2")
    created = await admin.wait_for("Promo code WELCOME")
    assert "$1.50 × 2 uses, never expires" in created.plain

    await alice.send("/promo welcome")  # codes are case-insensitive
    done = await alice.wait_for("+$1.50 credited")
    assert "Balance: $1.50" in done.plain
    await alice.send("/promo WELCOME")
    await alice.wait_for("already used this promo code")
    await bob.send("/promo WELCOME")
    await bob.wait_for("+$1.50 credited")
    await carol.send("/promo WELCOME")
    await carol.wait_for("has been used up")
    await carol.send("/promo NOPE")
    await carol.wait_for("Unknown promo code")
    await carol.send("/promo")
    await carol.wait_for("Usage: /promo <code>")

    await admin.send("/newpromo OLD 1 5 1d")
    await admin.wait_for("Promo code OLD")
    await execute(running, "UPDATE promo_codes SET expires_at = ? WHERE code = 'OLD'", 1)
    await carol.send("/promo OLD")
    await carol.wait_for("has expired")

    await admin.send("/newpromo LATER 0.25 1 2999-12-31")
    later = await admin.wait_for("Promo code LATER")
    assert "expires 3000-01-01 00:00 UTC" in later.plain
    await admin.send("/newpromo WELCOME 1 1")
    await admin.wait_for("exists already")
    await admin.send("/newpromo X 1 1")
    await admin.wait_for("3-32 letters")
    for bad in ("/newpromo A1B2 1.001 1", "/newpromo A1B2 1 0", "/newpromo A1B2 1 1 soon"):
        await admin.send(bad)
        await admin.wait_for("Usage: /newpromo")

    assert await balance_of(running, alice) == 150
    assert await balance_of(running, bob) == 150
    assert await balance_of(running, carol) == 0
    (promo,) = await rows(running, "SELECT used, max_uses FROM promo_codes WHERE code = 'WELCOME'")
    assert (promo["used"], promo["max_uses"]) == (2, 2)
    audit = await rows(running, "SELECT actor_id, action, target FROM audit_log ORDER BY id")
    assert [tuple(r) for r in audit] == [
        (admin.id, "newpromo", "WELCOME"),
        (admin.id, "newpromo", "OLD"),
        (admin.id, "newpromo", "LATER"),
    ]


async def test_non_admin_cannot_create_promo_codes(running: BotHarness, alice: FakeUser) -> None:
    await menu(alice)
    await alice.send("/newpromo FREE 100 100")
    await alice.wait_for("Unknown command")
    await alice.send("/promo FREE")
    await alice.wait_for("Unknown promo code")
    assert await rows(running, "SELECT * FROM promo_codes") == []
    assert await balance_of(running, alice) == 0


async def test_referral_link_bonus_and_screen(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    await bob.send(f"/start ref_{alice.id}")  # bob's first message: he is new
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)  # the normal menu still shows
    (row,) = await rows(running, "SELECT referrer_id FROM users WHERE id = ?", bob.id)
    assert row["referrer_id"] == alice.id

    charge = await stars_topup(bob, "$10.00")
    notice = await alice.wait_for("Your referral topped up")
    assert "+$0.50" in notice.plain and "Balance: $0.50" in notice.plain
    await stars_topup(bob, "$25.00")
    await alice.wait_for("+$1.25")
    # Promo codes and admin credits earn nothing; a refunded top-up's bonus is taken back.
    await fund(admin, bob, "3")
    await admin.send("/newpromo BOB 1 1")
    await admin.wait_for("Promo code BOB")
    await bob.send("/promo BOB")
    await bob.wait_for("credited")
    await admin.send(f"/refundstars {charge}")
    done = await admin.wait_for("Refunded")
    assert f"The referral bonus of $0.50 was taken back from user {alice.id}" in done.plain
    bonuses = await rows(
        running, "SELECT user_id, amount, topup_id FROM ledger WHERE kind = 'referral' ORDER BY id"
    )
    assert [tuple(r) for r in bonuses] == [(alice.id, 50, 1), (alice.id, 125, 2)]
    taken = await rows(
        running,
        "SELECT amount, topup_id FROM ledger WHERE user_id = ? AND kind = 'adjustment'",
        alice.id,
    )
    assert [tuple(r) for r in taken] == [(-50, 1)]
    assert await balance_of(running, alice) == 125


async def test_refund_leaves_a_spent_referral_bonus_and_restores_a_taken_one(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser, bob: FakeUser
) -> None:
    await menu(admin)
    await menu(alice)
    await bob.send(f"/start ref_{alice.id}")
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    first = await stars_topup(bob, "$10.00")
    await alice.wait_for("+$0.50")
    second = await stars_topup(bob, "$25.00")
    await alice.wait_for("+$1.25")

    # Telegram refuses the refund: bob's debit and alice's bonus both come back.
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    await admin.send(f"/refundstars {second}")
    await admin.wait_for("Telegram refused the refund")
    assert await balance_of(running, alice) == 175
    assert await balance_of(running, bob) == 3500

    # Alice spent her bonuses: the refund goes through and the bonus stays with her.
    assert running.app is not None
    await running.app.wallet.adjust(alice.id, -175, "spent")
    await admin.send(f"/refundstars {first}")
    done = await admin.wait_for("Refunded")
    assert f"User {alice.id} has spent the referral bonus of $0.50 already" in done.plain
    assert await balance_of(running, alice) == 0
    assert await balance_of(running, bob) == 2500

    await alice.send("/referrals")
    screen = await alice.wait_for("Referrals")
    assert f"https://t.me/{telegram.bot_username}?start=ref_{alice.id}" in screen.plain
    assert "Invited: 1" in screen.plain and "Earned: $1.75" in screen.plain
    assert "5% of every top-up" in screen.plain
    main = await menu(alice)
    await alice.click(main, "Balance")
    balance = await alice.wait_for("Your balance")
    await alice.click(balance, "Referrals")
    await alice.wait_for(lambda m: "Invited: 1" in m.plain and "Earned: $1.75" in m.plain)


async def test_referral_links_only_new_users(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser, bob: FakeUser
) -> None:
    carol = telegram.user(1003, first_name="Carol")
    await menu(alice)
    await alice.send(f"/start ref_{alice.id}")  # themselves
    await alice.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await bob.send("/start ref_424242")  # an inviter who never started the bot
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await bob.send(f"/start ref_{alice.id}")  # bob is new, so this one counts
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await carol.send("/start")
    await carol.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await execute(running, "UPDATE users SET created_at = ? WHERE id = ?", 1, carol.id)
    await carol.send(f"/start ref_{alice.id}")  # carol registered long ago
    await carol.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await alice.send(f"/start ref_{bob.id}")  # alice already has history? no: she invited bob
    await alice.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await bob.send(f"/start ref_{carol.id}")  # bob has a referrer already
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    found = {
        r["id"]: r["referrer_id"]
        for r in await rows(running, "SELECT id, referrer_id FROM users ORDER BY id")
    }
    assert found == {alice.id: None, bob.id: alice.id, carol.id: None}


async def test_referral_off_when_percent_is_zero(
    harness_factory: Callable[..., BotHarness], alice: FakeUser, bob: FakeUser
) -> None:
    harness = harness_factory(referral_percent=0)
    await harness.start()
    await menu(alice)
    await bob.send(f"/start ref_{alice.id}")
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await stars_topup(bob, "$10.00")
    assert await balance_of(harness, alice) == 0
    await alice.send("/referrals")
    await alice.wait_for("paused")


async def test_history_pages_with_every_kind(
    harness_factory: Callable[..., BotHarness],
    telegram: FakeTelegram,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(throttle_per_second=100, throttle_burst=100)
    await harness.start()
    await menu(admin)
    await menu(alice)
    await alice.send("/history")
    await alice.wait_for("No movements yet")

    await bob.send(f"/start ref_{alice.id}")
    await bob.wait_for(lambda m: "💰 Balance" in m.button_texts)
    await stars_topup(bob, "$10.00")  # alice: referral +$0.50
    charge = await stars_topup(alice, "$5.00")  # topup
    telegram.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    await admin.send(f"/refundstars {charge}")  # topup_refund, then adjustment back
    await admin.wait_for("Telegram refused")
    await admin.send("/newpromo HIST 0.75 5")
    await admin.wait_for("Promo code HIST")
    await alice.send("/promo HIST")  # promo
    await alice.wait_for("credited")
    for _ in range(4):
        await fund(admin, alice, "1")  # credit
    card = await buy(alice)  # purchase
    order_id = int(re.search(r"#(\d+)", card.plain).group(1))  # type: ignore[union-attr]
    await admin.send(f"/refund {order_id}")  # refund
    await admin.wait_for("Refunded")

    ledger = await rows(
        harness, "SELECT kind FROM ledger WHERE user_id = ? ORDER BY id DESC", alice.id
    )
    kinds = [r["kind"] for r in ledger]
    assert len(kinds) == 11
    assert set(kinds) == {
        "referral",
        "topup",
        "topup_refund",
        "adjustment",
        "promo",
        "credit",
        "purchase",
        "refund",
    }

    main = await menu(alice)
    await alice.click(main, "Balance")
    balance = await alice.wait_for("Your balance")
    await alice.click(balance, "History")
    first = await alice.wait_for("Wallet history (page 1")
    page_one, buttons_one = first.plain, first.button_texts
    lines = [line for line in page_one.splitlines() if LINE_RE.match(line)]
    assert len(lines) == 10
    assert "Refund" in lines[0] and f"· #{order_id}" in lines[0]
    assert "Purchase" in lines[1] and f"· #{order_id}" in lines[1]
    assert lines[1].split()[2].startswith("−$")
    assert "Credited by the shop" in page_one and "Promo code HIST" in page_one
    assert "Adjustment" in page_one and "Top-up refunded" in page_one
    assert "◀ Newer" not in buttons_one and "Older ▶" in buttons_one
    await alice.click(first, "Older")
    second = await alice.wait_for("Wallet history (page 2")
    older = [line for line in second.plain.splitlines() if LINE_RE.match(line)]
    assert len(older) == 1 and "+$0.50 Referral bonus" in older[0]
    assert "+$5.00 Top-up" in lines[-1]
    assert "Older ▶" not in second.button_texts
    await alice.click(second, "Newer")
    await alice.wait_for("Wallet history (page 1")
