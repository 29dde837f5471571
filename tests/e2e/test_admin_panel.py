"""The owner's panel and admin commands, end to end: every button, every command by an admin
(happy path and malformed input) and by a non-admin, and an audit row for every action."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.app import App
from handlers.commands import ADMIN_COMMANDS
from tests.conftest import BotHarness, fund, sms_settings
from tests.e2e.helpers import buy, start
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.smspm import FakeSMSPM
from tests.fakes.telegram import FakeTelegram, FakeUser, Message


def _app(harness: BotHarness) -> App:
    assert harness.app is not None
    return harness.app


async def _actions(app: App) -> list[tuple[int, str, str, str]]:
    entries = await app.admin.audit.recent(1000)
    return [(e.actor_id, e.action, e.target, e.detail) for e in reversed(entries)]


async def _reply(user: FakeUser, *needles: str) -> Message:
    """The next bot message containing any of `needles`."""
    return await user.wait_for(lambda m: any(n in m.plain for n in needles))


async def _redrawn(telegram: FakeTelegram, edits_before: int) -> None:
    """Wait until the fake Bot API has answered an editMessageText made after `edits_before`
    of them: the screen a click redraws has landed, even when it came out unchanged ("message
    is not modified" leaves no new event to wait for)."""
    for _ in range(1000):
        edits = telegram.calls_to("editMessageText")[edits_before:]
        if edits and all(call.response is not None for call in edits):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the screen was not redrawn")


async def test_panel_opens_and_every_button_works(
    running: BotHarness, telegram: FakeTelegram, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await admin.send("/admin")
    panel = await admin.wait_for("Admin panel")
    assert panel.button_texts == [
        "📊 Stats",
        "👤 Users",
        "🧾 Orders",
        "💲 Pricing",
        "📣 Broadcast",
        "⚖️ Reconciliation",
        "💾 Backup",
        "📜 Audit log",
    ]

    async def open_section(button: str, expect: str) -> Message:
        await admin.click(panel, button)
        screen = await admin.wait_for(expect)
        assert screen.message_id == panel.message_id  # one message, edited in place
        return screen

    async def back(screen: Message) -> None:
        await admin.click(screen, "⬅️ Back")
        await admin.wait_for(lambda m: m.message_id == panel.message_id and "Admin" in m.plain)

    screen = await open_section("Stats", "📊 Stats")
    assert "Users: 2 (" in screen.plain
    assert "Upstream balances" in screen.plain and "SMSPalm: 50000 NGN" in screen.plain
    edits_before = len(telegram.calls_to("editMessageText"))
    await admin.wait_answer(await admin.click(screen, "Refresh"))
    await _redrawn(telegram, edits_before)  # else a slow refresh can land after "Back"
    await back(screen)

    screen = await open_section("Users", "/subbalance <user_id> <amount> <reason>")
    assert "/ban <id or @username> [reason]" in screen.plain
    await back(screen)

    screen = await open_section("Orders", "/refund <order_id>")
    await back(screen)

    screen = await open_section("Pricing", "Default markup: 30%")
    assert "Minimum top-up: $1.00" in screen.plain and "1 ⭐ = 0.013 USD" in screen.plain
    await back(screen)

    screen = await open_section("Broadcast", "/broadcast")
    await back(screen)

    screen = await open_section("Reconciliation", "Reconciliation, last 7 days")
    assert "SMSPalm" in screen.plain and "Deposits you make upstream" in screen.plain
    await admin.click(screen, "30 days")
    await admin.wait_for("Reconciliation, last 30 days")
    await back(screen)

    if running.settings.database.startswith("sqlite"):
        screen = await open_section("Backup", "Every day at 03:00 UTC")
        assert "No backup yet" in screen.plain
        await admin.click(screen, "Back up now")
        document = await admin.wait_for(lambda m: m.kind == "document")
        assert document.file is not None and document.file.content.startswith(b"SQLite format 3")
        await admin.wait_for(
            lambda m: m.message_id == panel.message_id and "Kept now: 1" in m.plain
        )
        await back(screen)
        actions = ["backup"]
    else:  # PostgreSQL: the operator's pg_dump, no button
        screen = await open_section("Backup", "pg_dump")
        await back(screen)
        actions = []

    screen = await open_section("Audit log", "Audit log (page 1/1)")
    assert ("backup" in screen.plain) == bool(actions)
    await back(screen)

    app = _app(running)
    assert [a[1] for a in await _actions(app)] == actions


async def test_audit_log_pages(running: BotHarness, admin: FakeUser, alice: FakeUser) -> None:
    await start(alice)
    for i in range(12):
        await admin.send(f"/addbalance {alice.id} 0.0{i % 9 + 1} gift {i}")
        await admin.wait_for("Credited")
    await admin.send("/audit")
    first = await admin.wait_for("Audit log (page 1/2)")
    assert "gift 11" in first.plain and "gift 0" not in first.plain
    await admin.click(first, "▶")
    second = await admin.wait_for("Audit log (page 2/2)")
    assert second.message_id == first.message_id and "gift 0" in second.plain
    await admin.send("/audit 2")
    await admin.wait_for(lambda m: "page 2/2" in m.plain and m.message_id != first.message_id)
    await admin.send("/audit x")
    await admin.wait_for("Usage: /audit [page]")


async def test_stats_show_users_orders_routes_services_topups_and_balances(
    harness_factory: Callable[..., BotHarness],
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    harness = harness_factory(low_balance_warning="100")  # 50000 NGN × 0.001 = $50 < $100
    await harness.start()
    app = _app(harness)
    await start(alice)
    await start(bob)
    await fund(admin, alice, "1")
    await fund(admin, bob, "1")
    card = await buy(alice)
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "123456")
    await alice.wait_for("123456")
    card = await buy(bob)
    await bob.click(card, "Cancel")
    await bob.wait_for("back on your balance")
    now = int(time.time())
    async with app.db.transaction() as tx:  # a paid Stars top-up, as the top-up flow stores it
        await tx.execute(
            "INSERT INTO topups (user_id, method, amount, pay_amount, pay_currency, status, "
            "charge_id, created_at, expires_at, paid_at) "
            "VALUES (?, 'stars', 500, '385', 'XTR', 'paid', 'ch-1', ?, ?, ?)",
            (alice.id, now, now + 600, now),
        )

    await admin.send("/stats")
    stats = await admin.wait_for("📊 Stats")
    text = stats.plain
    assert "Users: 3 (3 new today, 3 active in 7 days, 0 banned)" in text
    assert "Today (UTC): 2 orders · 1 paid · revenue $0.33" in text
    assert "7 days: 2 orders · 1 paid" in text and "Total: 2 orders · 1 paid" in text
    assert "SMSPalm Server 2: 1/2 (50%)" in text
    assert "1. WhatsApp — 1 · $0.33" in text
    assert "Top-ups: today 1 · $5.00; 7 days 1 · $5.00; total 1 · $5.00" in text
    assert "⚠️ SMSPalm: 49750 NGN (≈ $49.75) — under $100.00" in text


async def test_user_card(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    for query in ("@alice", "@ALICE", str(alice.id)):
        await admin.send(f"/user {query}")
        card = await admin.wait_for("id 1001")
        assert "Alice @alice" in card.plain
        assert "Balance: $0.67" in card.plain and "Flags: none" in card.plain
        assert "Last orders (1 of 1):" in card.plain and "WhatsApp · US · $0.33" in card.plain
        assert "credited by admin" in card.plain and "-$0.33" in card.plain
        assert "Referrer: —" in card.plain
    for bad, expect in (("/user", "Usage"), ("/user @nobody", "No user @nobody")):
        await admin.send(bad)
        await admin.wait_for(expect)


async def test_addbalance_and_subbalance(
    running: BotHarness, admin: FakeUser, alice: FakeUser
) -> None:
    app = _app(running)
    await start(alice)
    await admin.send(f"/addbalance {alice.id} 2.50 welcome gift")
    await admin.wait_for("Credited $2.50 to 1001. New balance: $2.50.")
    await alice.wait_for("$2.50 was added")

    await admin.send(f"/subbalance {alice.id} 1 chargeback on order 7")
    await admin.wait_for("Debited $1.00 from 1001. New balance: $1.50.")
    notice = await alice.wait_for("deducted")
    assert "$1.00 was deducted from your balance: chargeback on order 7" in notice.plain
    assert "Balance: $1.50" in notice.plain

    await admin.send(f"/subbalance {alice.id} 1.51 too much")
    await admin.wait_for("does not cover that debit")
    for bad in (
        "/subbalance",
        f"/subbalance {alice.id}",
        f"/subbalance {alice.id} 1",  # the reason is required
        f"/subbalance {alice.id} 0 zero",
        f"/subbalance {alice.id} -1 negative",
        f"/subbalance {alice.id} 0.001 too precise",
        f"/subbalance {alice.id} abc letters",
        "/subbalance 999 1 nobody",
        "/addbalance x",
        f"/addbalance {alice.id} 1e3",
    ):
        await admin.send(bad)
        reply = await _reply(admin, "Usage", "Bad amount", "No user")
        assert "Debited" not in reply.plain and "Credited" not in reply.plain
    assert await app.wallet.balance(alice.id) == 150
    entries = await app.wallet.history(alice.id, 10)
    assert [(e.kind.value, e.amount, e.reason) for e in entries] == [
        ("adjustment", -100, "chargeback on order 7"),
        ("credit", 250, "welcome gift"),
    ]
    assert entries[0].actor_id == 1
    assert await _actions(app) == [
        (1, "addbalance", "1001", "$2.50 welcome gift"),
        (1, "subbalance", "1001", "-$1.00 chargeback on order 7"),
    ]


async def test_order_refund_markup_and_sms_price_are_audited(
    running: BotHarness, palm: FakeSMSPalm, admin: FakeUser, alice: FakeUser
) -> None:
    app = _app(running)
    await start(alice)
    await fund(admin, alice, "1")
    await buy(alice)
    (order,) = (await app.orders.page_for_user(alice.id, 0, 5))[0]
    await admin.send(f"/order {order.id}")
    await admin.wait_for(f"Order #{order.id}")
    for bad, expect in (("/order", "Usage"), ("/order x", "Usage"), ("/order 999", "No such")):
        await admin.send(bad)
        await admin.wait_for(expect)
    await admin.send(f"/refund {order.id}")
    await admin.wait_for(f"Refunded $0.33 for order #{order.id}.")
    for bad, expect in (("/refund", "Usage"), ("/refund x", "Usage"), ("/refund 999", "not")):
        await admin.send(bad)
        await admin.wait_for(expect)
    await admin.send("/setmarkup 25 smspalm WhatsApp")
    await admin.wait_for("Markup 25%")
    await admin.send("/smsprice EE 0.08")
    await admin.wait_for("SMS sending is not configured")  # no SMSPM here: nothing to audit
    assert await _actions(app) == [
        (1, "addbalance", "1001", "$1.00 credited by admin"),
        (1, "refund", str(order.id), "$0.33"),
        (1, "setmarkup", "smspalm/WhatsApp", "25%"),
    ]
    await admin.send("/admin")
    panel = await admin.wait_for("Admin panel")
    await admin.click(panel, "Pricing")
    pricing = await admin.wait_for("💲 Pricing")
    assert "• smspalm, WhatsApp: 25%" in pricing.plain


async def test_reconcile_compares_spend_revenue_and_balance(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
) -> None:
    app = _app(running)
    await start(alice)
    await start(bob)
    await fund(admin, alice, "1")
    await fund(admin, bob, "1")
    await app.admin.reconciliation.snapshot_balances()
    opened = int(time.time())
    while int(time.time()) == opened:  # orders must come after the opening snapshot's second
        await asyncio.sleep(0.05)

    await buy(alice)
    (activation,) = palm.activations.values()
    palm.deliver_code(activation.id, "424242")
    await alice.wait_for("424242")
    card = await buy(bob)
    await bob.click(card, "Cancel")
    await bob.wait_for("back on your balance")
    await app.admin.reconciliation.snapshot_balances()

    await admin.send("/reconcile")
    report = await admin.wait_for("Reconciliation, last 7 days")
    text = report.plain
    assert "Numbers: 2 · with a code 1 · given back 1 · waiting 0" in text
    assert "Paid upstream: 250 NGN (≈ $0.25)" in text
    assert "Charged customers: $0.66 − refunds $0.33 = $0.33" in text
    assert "Margin: $0.08" in text
    assert "Balance: 50000 → 49750 NGN (-250)" in text
    assert "Our orders explain -250 NGN." in text and "✅ The balance matches" in text

    palm.balance += 1000  # the owner deposits upstream
    await app.admin.reconciliation.snapshot_balances()
    await admin.send("/reconcile 1")
    report = await admin.wait_for("Reconciliation, last 1 day")
    assert "1000 NGN more came in than our orders explain" in report.plain

    palm.balance -= 1077  # and 77 NGN leak away
    await app.admin.reconciliation.snapshot_balances()
    await admin.send("/reconcile 30")
    report = await admin.wait_for("Reconciliation, last 30 days")
    assert "77 NGN more went out than our orders explain" in report.plain

    for bad in ("/reconcile x", "/reconcile 0", "/reconcile 9999", "/reconcile 1 2"):
        await admin.send(bad)
        await admin.wait_for("Usage: /reconcile [days]")


async def test_non_admin_gets_unknown_command_and_nothing_changes(
    running: BotHarness,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
    bob: FakeUser,
    telegram: FakeTelegram,
) -> None:
    app = _app(running)
    await start(alice)
    await start(bob)
    await fund(admin, bob, "1")
    await buy(bob)
    (order,) = (await app.orders.page_for_user(bob.id, 0, 5))[0]
    before = await _actions(app)
    arguments = {
        "user": f"{bob.id}",
        "addbalance": f"{alice.id} 100",
        "subbalance": f"{bob.id} 1 nope",
        "ban": f"{bob.id} spam",
        "unban": f"{bob.id}",
        "order": f"{order.id}",
        "refund": f"{order.id}",
        "reconcile": "7",
        "audit": "1",
        "smsprice": "EE 0.01",
        "setmarkup": "0",
    }
    assert set(arguments) <= set(ADMIN_COMMANDS)
    for name in ADMIN_COMMANDS:
        await alice.send(f"/{name} {arguments.get(name, '')}".strip())
        reply = await alice.wait_for(lambda m: m.kind == "text")
        assert reply.plain.startswith("Unknown command. Send /help"), (name, reply.plain)
    panel = await start(alice)
    for section in ("home", "stats", "audit", "dobackup", "recon"):
        answer = await alice.wait_answer(await alice.click_data(panel, f"adm:{section}:0"))
        assert answer.show_alert and "no longer valid" in (answer.text or "")
    assert await app.wallet.balance(alice.id) == 0
    assert await app.wallet.balance(bob.id) == 67
    (order,) = (await app.orders.page_for_user(bob.id, 0, 5))[0]
    assert not order.refunded
    assert not await app.admin.people.is_banned(bob.id)
    assert await _actions(app) == before
    assert app.admin.backups.backups() == []
    assert all(m.kind != "document" for m in alice.messages)


async def test_sms_price_is_audited(
    harness_factory: Callable[..., BotHarness], smspm: FakeSMSPM, admin: FakeUser
) -> None:
    harness = harness_factory(**sms_settings(smspm))
    await harness.start()
    await admin.send("/smsprice EE 0.08")
    await admin.wait_for("$0.08 per segment")
    for bad in ("/smsprice", "/smsprice EE", "/smsprice EE -1", "/smsprice EE 0.001"):
        await admin.send(bad)
        await _reply(admin, "Usage", "Bad amount")
    actions = await _actions(_app(harness))
    assert len(actions) == 1 and actions[0][:2] == (1, "smsprice")
    assert "Estonia" in actions[0][2] and actions[0][3] == "$0.08"
