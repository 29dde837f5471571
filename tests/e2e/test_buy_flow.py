"""The customer's whole flow through the real Dispatcher, fake Bot API and fake SMSPalm."""

from __future__ import annotations

from tests.conftest import BotHarness, fund
from tests.e2e.helpers import buy_to_confirm
from tests.fakes.smspalm import FakeSMSPalm
from tests.fakes.telegram import FakeTelegram, FakeUser


async def test_start_shows_menu_and_registers_commands(
    running: BotHarness, telegram: FakeTelegram, alice: FakeUser
) -> None:
    await alice.send("/start")
    menu = await alice.wait_for("Hi, Alice")
    assert menu.button_texts == [
        "📱 Buy a number",
        "💰 Balance",
        "🗂 My orders",
        "❓ Help",
        "🌐 Language",
    ]
    assert "$0.00" in menu.plain
    commands = telegram.calls_to("setMyCommands")
    names = [[c["command"] for c in call.params["commands"]] for call in commands]
    assert [
        "start",
        "buy",
        "balance",
        "topup",
        "history",
        "orders",
        "promo",
        "referrals",
        "language",
        "help",
    ] in names
    assert any("addbalance" in n for n in names)  # the admin's own scope


async def test_buy_whatsapp_us_and_receive_code(
    running: BotHarness,
    telegram: FakeTelegram,
    palm: FakeSMSPalm,
    admin: FakeUser,
    alice: FakeUser,
) -> None:
    await alice.send("/start")
    await alice.wait_for("Hi, Alice")
    await fund(admin, alice, "10")
    await alice.wait_for("was added to your balance")

    confirm = await buy_to_confirm(alice)
    # 250 NGN × 0.001 × 1.30 = $0.325 -> $0.33, rounded up
    assert "Price: $0.33" in confirm.plain
    assert "$10.00 → $9.67" in confirm.plain
    routes_msg_id = confirm.message_id
    await alice.click(confirm, "Pay")
    card = await alice.wait_for("Waiting for the SMS")
    assert card.message_id == routes_msg_id  # edited in place, not a new message
    activation = next(iter(palm.activations.values()))
    assert activation.ref is not None and activation.server == "servertwo"
    assert f"+{activation.phone}" in card.plain
    assert "✖ Cancel" in card.button_texts
    assert "<code>" in card.text  # tap to copy

    palm.deliver_code(activation.id, "739214")
    code_msg = await alice.wait_for("739214")
    assert "WhatsApp" in code_msg.plain
    card = await alice.wait_for(
        lambda m: m.message_id == routes_msg_id and "Code received" in m.plain
    )
    assert "✖ Cancel" not in card.button_texts

    await alice.send("/balance")
    balance = await alice.wait_for("Your balance")
    assert "$9.67" in balance.plain
    assert telegram.unanswered_callbacks() == []
    app = running.app
    assert app is not None
    orders, _ = await app.orders.page_for_user(alice.id, 0, 10)
    assert [o.status.value for o in orders] == ["code_received"]
